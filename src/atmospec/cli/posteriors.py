"""CLI group "posteriors": ``atmospec calibrate MODEL`` and ``atmospec posterior train``."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import typer

from atmospec.cli._checks import SEED_MAX
from atmospec.cli.predict import (
    Aperture,
    AssumeSnr,
    FluxUnit,
    Resolution,
    WaveUnit,
    stated_resolution_option,
)

__all__ = ["register"]

posterior_app = typer.Typer(
    name="posterior",
    help="Amortised posteriors by simulation-based inference (NPE): train, sample.",
    no_args_is_help=True,
)


@posterior_app.command("train")
def train(
    config: Path = typer.Option(
        ..., "--config", "-c", help="TOML config with an npe table (see configs/npe_dback24.toml)."
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Model folder to write (default: ./<name from the config>)."
    ),
    no_calibrate: bool = typer.Option(False, "--no-calibrate", help="Skip the calibration run."),
) -> None:
    """Train a neural posterior estimator on a grid, calibrate it, save model + report."""
    from atmospec.posteriors.pipeline import read_config, train_npe

    cfg = read_config(config)
    target = out or Path(cfg.name)
    est, rep = train_npe(cfg, target, calibrate=not no_calibrate)
    hist = est.history_
    typer.echo(
        f"trained {cfg.name}: {len(hist.get('val_loss', []))} epochs, best validation loss "
        f"{min(hist.get('val_loss', [float('nan')])):.4f}; saved to {target}"
    )
    if rep is not None:
        status = "PASSED" if rep.passed else "FAILED"
        typer.echo(
            f"calibration {status}: max |coverage - level| = {rep.max_error:.3f} "
            f"(tolerance {rep.tolerance:.2f}, {rep.n_tests} test spectra)"
        )


@posterior_app.command("sample")
def sample(
    files: list[Path] = typer.Argument(
        ..., help="Spectra to read (any format atmospec reads), or SpeX library keys."
    ),
    model: str = typer.Option("npe_dback24", "--model", "-m", help="Shipped NPE name or folder."),
    n: int = typer.Option(
        10_000, "--n", min=1, max=10_000_000, help="Posterior samples per spectrum."
    ),
    seed: int = typer.Option(0, "--seed", min=0, max=SEED_MAX),
    out: Path = typer.Option(Path("posteriors"), "--out", "-o", help="Output folder."),
    refuse_outside: bool = typer.Option(
        False,
        "--refuse-outside",
        help="Write no samples (and exit 3) for spectra whose posterior piles at the grid's "
        "edge, that lie below the S/N range or outside the wavelength axis the NPE was trained "
        "on, or that its OOD score finds unlike the synthetic spectra it learned.",
    ),
    wave_unit: WaveUnit = None,
    flux_unit: FluxUnit = None,
    resolution: Resolution = None,
    aperture: Aperture = None,
    assume_snr: AssumeSnr = None,
) -> None:
    """Draw posterior samples: one CSV per spectrum, and the run's record in posterior.json.

    The record holds the model, seed, versions and each file's warnings and notes; atmospec
    report makes a page of the folder. A spectrum whose S/N lies above the range the NPE was
    trained on first gets noise that brings it just inside that range (one seeded draw;
    noted): its posterior is then the calibrated one of that noisier spectrum, where read as
    it is the NPE would extrapolate with intervals too narrow. Each spectrum is checked as
    predict checks it: a posterior piled at an edge of the grid (the object lies outside its
    parameters), a spectrum outside the NPE's training domain (an S/N below the trained
    range, bins of its axis the spectrum does not fill) or unlike the synthetic spectra it
    learned (its OOD score above 1; predict routes such spectra to the CNN) and a best grid
    fit that misses the spectrum beyond the grid's model-discrepancy allowance are reported
    as warnings (and in NAME_warnings.json), and so, once for the run and in every file's
    warnings, is an NPE whose calibration record is missing or did not pass. A file's samples
    or warnings left in the folder by an earlier run and not written by this one (refused,
    unusable, no warnings now) are removed.

    A file that cannot be used (unreadable, no errors, bins missing from the NPE's axis) is
    reported with its reason, recorded in posterior.json, and the other files go on. Exit
    status: 0 every file sampled; 3 some refused (--refuse-outside) or unusable; 4 none could
    be used.
    """
    import numpy as np
    import pandas as pd

    from atmospec._fileio import atomic_path, provenance, write_json
    from atmospec.cli.fit import load_target
    from atmospec.discrepancy.domain import edge_warnings, grid_of, misfit_warning
    from atmospec.errors import AtmospecError
    from atmospec.fitting.result import plus_minus
    from atmospec.grids import resolution_of
    from atmospec.io.flux_density import assumed_note
    from atmospec.models import load_model
    from atmospec.posteriors.calibration import read_calibration
    from atmospec.posteriors.degrade import degrade_into_range, degraded_note
    from atmospec.prediction.coverage import (
        assumed_uncertainty,
        min_resolution_of,
        prepare_input,
    )
    from atmospec.prediction.predictor import Predictor
    from atmospec.prediction.routing import NPEDomain, noise_snr
    from atmospec.report.posterior import POSTERIOR_RECORD

    stems: dict[str, Path] = {}
    for f in files:  # every file writes NAME_samples.csv: two of one name would overwrite
        if Path(f).stem in stems:
            raise typer.BadParameter(
                f"{stems[Path(f).stem]} and {f} would both write {Path(f).stem}_samples.csv "
                f"in {out}: give the files distinct names, or sample them in separate runs"
            )
        stems[Path(f).stem] = Path(f)
    est = load_model(model, kind="npe")
    calibration = read_calibration(_model_folder(model))
    uncalibrated = (
        ""
        if calibration.passed
        else f"NPE {model}: {calibration.summary()}, so its intervals are not known to hold "
        "their stated coverage (`atmospec predict` does not use such an NPE); `atmospec "
        "calibrate MODEL --out FOLDER` measures it"
    )
    if uncalibrated:
        typer.secho(f"warning: {uncalibrated}", fg=typer.colors.YELLOW, err=True)
    grid = grid_of(est.meta_)
    domain = NPEDomain.of(est, model)
    # the OOD score `predict` routes by (calibrated once per model, cached)
    checker = Predictor(est, ood=True, coverage="mask", max_masked_fraction=1.0, draws=200)
    out.mkdir(parents=True, exist_ok=True)
    refused = 0
    objects: dict[str, dict[str, Any]] = {}
    stated = stated_resolution_option(resolution)

    def on_npe_axis(spectrum: Any) -> Any:
        return prepare_input(
            spectrum,
            est.wavelength_,
            policy="mask",
            max_masked_fraction=1.0,
            min_resolution=min_resolution_of(grid),
            model_resolution=resolution_of(grid),
            model=f"NPE {model}",
        )

    def axis_snr(spectrum: Any) -> float:
        inp = on_npe_axis(spectrum)
        return noise_snr(inp.flux, inp.sigma)

    def read_and_draw(f: Path) -> tuple[Any, Any, Any, list[str], list[str]]:
        """The spectrum as observed and as sampled, its draws, notes and edge warnings."""
        # read as fit and predict read: NaN pixels masked (the domain check says so), a SpeX
        # library key taken for its spectrum
        sp = load_target(str(f), wave_unit=wave_unit, flux_unit=flux_unit, aperture=aperture)
        if stated is not None:
            sp.meta["resolution"] = stated
        said = []
        if assume_snr is not None:  # a file without (usable) errors, as fit and predict take it
            sigma, assumed_errors = assumed_uncertainty(sp, assume_snr)
            sp = sp.copy(uncertainty=sigma)
            said.append(assumed_errors)
        # A spectrum above the NPE's S/N range is brought into it on its own pixels, so that
        # the draws, the domain check and the OOD score below all read the same spectrum; the
        # grid's misfit is judged on the spectrum as observed.
        observed = sp
        sp, snr = degrade_into_range(
            sp, axis_snr, domain.snr_range[1], np.random.default_rng([seed, 1])
        )
        if snr > domain.snr_range[1]:
            said.append(degraded_note(snr, domain.snr_range, seed))
        draws = est.sample(sp, n=n, seed=seed)
        return observed, sp, draws, said, edge_warnings(draws, est.param_names_, est.bounds_, grid)

    failed = 0
    for f in files:
        try:
            observed, sp, draws, notes, edges = read_and_draw(f)
        except AtmospecError as err:
            # one unusable file does not end the run: it is recorded and the exit status says so
            failed += 1
            said = str(err).removeprefix(f"{f}: ")  # most messages name the file first
            typer.secho(f"{f}: error: {said}", fg=typer.colors.RED, err=True)
            objects[Path(f).stem] = {"file": str(f), "error": str(err), "samples": None}
            _drop_stale(out, Path(f).stem, samples=True, warnings=True)
            continue
        inp = on_npe_axis(sp)
        assumed = assumed_note(observed)
        outside = domain.input_problem(inp)
        if outside:
            edges.append(
                f"outside the NPE's training domain: {outside}; its intervals are not "
                "calibrated here (`atmospec predict` serves such spectra with the CNN)"
            )
        else:
            unlike = npe_ood(checker, sp)
            if unlike:
                edges.append(unlike)
        misfit = misfit_warning(observed, grid) if grid else None
        warnings = edges + ([misfit] if misfit else []) + ([assumed] if assumed else [])
        for note in notes:
            typer.echo(f"{f}: note: {note}", err=True)
        for w in warnings:
            typer.secho(f"{f}: warning: {w}", fg=typer.colors.YELLOW, err=True)
        if uncalibrated:  # said once above; every posterior of this run carries it
            warnings.append(uncalibrated)
        if warnings:
            write_json(
                out / f"{Path(f).stem}_warnings.json", {"file": str(f), "warnings": warnings}
            )
        else:
            _drop_stale(out, Path(f).stem, samples=False, warnings=True)
        entry: dict[str, Any] = {
            "file": str(f),
            "warnings": warnings,
            "notes": notes,
            "samples": None,
        }
        objects[Path(f).stem] = entry
        if refuse_outside and edges:
            refused += 1
            typer.secho(f"{f}: refused (--refuse-outside): no samples written", err=True)
            _drop_stale(out, Path(f).stem, samples=True, warnings=False)
            continue
        table = pd.DataFrame(draws, columns=list(est.param_names_))
        with atomic_path(out / f"{Path(f).stem}_samples.csv") as tmp:
            table.to_csv(tmp, index=False)
        entry["samples"] = f"{Path(f).stem}_samples.csv"
        q = np.percentile(draws, [16, 50, 84], axis=0)
        text = ", ".join(
            f"{p} {plus_minus(q[0, j], q[1, j], q[2, j])}" for j, p in enumerate(est.param_names_)
        )
        typer.echo(f"{f}: {text}")
    scope = (
        f"posterior on the {grid or 'its'} grid with that grid's model of mismatch; the spread "
        "between grids and their shared systematic error (in `atmospec predict`'s combined "
        "intervals) are not in it"
    )
    summary = {
        "files": len(files),
        "sampled": sum(1 for o in objects.values() if o.get("samples")),
        "with_warnings": sum(1 for o in objects.values() if o.get("warnings")),
        "refused": refused,
        "unusable": failed,
    }
    record = provenance(seed=seed, grid=grid or None, model=next(iter(checker.members)))
    record.update(
        command="posterior sample",
        n=n,
        intervals=scope,
        calibration=dataclasses.asdict(calibration),
        summary=summary,
        objects=objects,
    )
    write_json(out / POSTERIOR_RECORD, record)
    typer.secho(f"{model}: {scope}", err=True)
    typer.echo(
        f"{summary['sampled']} of {len(files)} files sampled, {summary['with_warnings']} with "
        f"warnings, {refused} refused (--refuse-outside), {failed} unusable: {out / POSTERIOR_RECORD}"
    )
    if failed:
        typer.secho(
            f"{failed} of {len(files)} files could not be used (each reason is in "
            f"{out / POSTERIOR_RECORD})",
            fg=typer.colors.RED,
            err=True,
        )
    if failed and failed + refused == len(files):
        raise typer.Exit(4)
    if refused or failed:
        raise typer.Exit(3)


def _model_folder(model: str) -> Path:
    """The folder of an NPE given as ``--model`` (a folder, its model.json, or a shipped name)."""
    from atmospec.models import model_path

    path = Path(model)
    if path.is_dir():
        return path
    return path.parent if path.name == "model.json" else model_path(model)


def _drop_stale(out: Path, stem: str, *, samples: bool, warnings: bool) -> None:
    """Remove ``stem``'s samples / warnings file that an earlier run left in ``out`` and this
    run does not write (the folder must not show samples or warnings this run did not make)."""
    names = ([f"{stem}_samples.csv"] if samples else []) + (
        [f"{stem}_warnings.json"] if warnings else []
    )
    for name in names:
        if (out / name).is_file():
            (out / name).unlink()
            typer.echo(f"{out / name}: removed (left by an earlier run)", err=True)


def npe_ood(checker: Any, spectrum: Any) -> str:
    """The warning for a spectrum the NPE's OOD score finds unlike the synthetic spectra it
    learned (the score ``predict`` routes by), or ``""``."""
    res = checker.predict(spectrum)
    if not bool(res.ood_flag[0]):
        return ""
    return (
        f"unlike the synthetic spectra the NPE learned (ood_score {res.ood_score[0]:.2f} > 1: "
        f"{res.ood_reason[0]}): its posterior is not calibrated here and describes the grid's "
        "closest spectra, not this object (`atmospec predict` serves such spectra with the CNN "
        "and other grids)"
    )


def calibrate_cmd(
    model: str = typer.Argument(..., help="Shipped NPE name (npe_dback24) or model folder."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Folder for calibration.json/png (default ./calibration_<model>)."
    ),
    n_tests: int | None = typer.Option(
        None, "--n-tests", min=1, help="Test spectra (default: config)."
    ),
    n_samples: int | None = typer.Option(
        None, "--n-samples", min=1, help="Draws per test spectrum (default: config)."
    ),
    seed: int | None = typer.Option(
        None, "--seed", min=0, max=SEED_MAX, help="Seed of the test split."
    ),
) -> None:
    """Measure the coverage of an NPE on its held-out simulation split (SBC, HPD, TARP)."""
    from atmospec.posteriors.pipeline import calibrate_model

    target = out or Path(f"calibration_{Path(model).name}")
    rep = calibrate_model(model, n_tests=n_tests, n_samples=n_samples, seed=seed, out=target)
    typer.echo(f"{'level':>6} {'HPD':>6} {'TARP':>6}")
    for lev in rep.levels:
        typer.echo(f"{lev:6.2f} {rep.hpd[str(lev)]:6.3f} {rep.tarp[str(lev)]:6.3f}")
    status = "PASSED" if rep.passed else "FAILED"
    typer.echo(
        f"calibration {status}: max |coverage - level| = {rep.max_error:.3f} "
        f"(tolerance {rep.tolerance:.2f}, {rep.n_tests} tests); report in {target}"
    )


def register(app: typer.Typer) -> None:
    """Add ``calibrate`` and the ``posterior`` sub-app to the root app."""
    app.command("calibrate")(calibrate_cmd)
    app.add_typer(posterior_app, name="posterior")
