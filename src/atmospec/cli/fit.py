"""``atmospec fit``: classic grid fitting (chi-square over nodes, or nested sampling)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from atmospec.cli._checks import SEED_MAX, finite
from atmospec.cli.predict import (
    Aperture,
    AssumeSnr,
    FluxUnit,
    Resolution,
    WaveUnit,
    stated_resolution_option,
)

__all__ = ["register", "load_target", "write_fit"]


def load_target(target: str, **read_options: Any) -> Any:
    """A Spectrum from a file path, or from the SpeX library when ``target`` is a library key.

    ``read_options`` (``wave_unit=``, ``err_col=`` ...) go to :func:`atmospec.io.read`.
    Pixels with NaN flux or no valid error are masked, as ``atmospec predict`` reads them
    (the fit's notes count them), not refused; a table that lists spectra is refused with
    the ``--catalog`` call that reads them (:func:`atmospec.prediction.sources.read_spectrum`).
    """
    path = Path(target)
    if path.exists():
        from atmospec.prediction.sources import read_spectrum

        return read_spectrum(path, **{k: v for k, v in read_options.items() if v is not None})
    from atmospec.library import catalogue, load

    if target in set(catalogue()["key"]):
        return load(target)
    from atmospec.errors import DataNotFoundError

    raise DataNotFoundError(
        f"{target}: no such file, and not a SpeX library key (see `atmospec library`)"
    )


def fit_cmd(
    target: str = typer.Argument(..., help="Spectrum file, or a SpeX library key (10703_10070)."),
    grid: str = typer.Option(..., "--grid", "-g", help="Grid name (atmospec grids) or .h5 path."),
    method: str = typer.Option("chi2", help="chi2 (best grid node) or nested (dynesty)."),
    distance_pc: Optional[float] = typer.Option(  # noqa: UP045
        None,
        "--distance-pc",
        help="Distance in parsecs: the radius from the flux scale (calibrated flux only).",
        callback=finite(0.0, low_open=True),
    ),
    inflate_errors: bool = typer.Option(
        False,
        "--inflate-errors",
        help="Fit an error-inflation floor (chi2: chi2_red=1 at the best node; nested: sampled).",
    ),
    sys_floor: Optional[float] = typer.Option(  # noqa: UP045
        None,
        "--sys-floor",
        help="chi2: fixed systematic floor, fraction of median |flux| (0-1).",
        callback=finite(0.0, 1.0),
    ),
    nlive: int = typer.Option(250, min=2, max=100_000, help="nested: live points."),
    seed: int = typer.Option(0, min=0, max=SEED_MAX, help="nested: random seed."),
    top: int = typer.Option(5, min=0, help="chi2: show this many best nodes."),
    no_discrepancy: bool = typer.Option(
        False,
        "--no-discrepancy",
        help="Photon noise only: leave out the grid's model-discrepancy covariance "
        "(on by default for grids that have one).",
    ),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write results here."),  # noqa: UP045
    wave_unit: WaveUnit = None,
    flux_unit: FluxUnit = None,
    wave_col: Optional[str] = typer.Option(None, "--wave-col", help="Wavelength column name."),  # noqa: UP045
    flux_col: Optional[str] = typer.Option(None, "--flux-col", help="Flux column name."),  # noqa: UP045
    err_col: Optional[str] = typer.Option(None, "--err-col", help="1-sigma error column name."),  # noqa: UP045
    resolution: Resolution = None,
    aperture: Aperture = None,
    assume_snr: AssumeSnr = None,
) -> None:
    """Fit a spectrum with a model grid; print the best parameters, chi2_red and dof."""
    from rich.markup import escape

    from atmospec.cli._console import problem_console, summary_console
    from atmospec.fitting import fit
    from atmospec.fitting.result import rich_table
    from atmospec.grids import load_grid

    if method not in ("chi2", "nested"):
        raise typer.BadParameter(f"--method must be chi2 or nested, got {method!r}")
    if inflate_errors and sys_floor is not None:
        raise typer.BadParameter("give --inflate-errors or --sys-floor, not both")
    if method == "nested" and sys_floor is not None:
        # nested sampling has no fixed floor: it would be dropped without a word
        raise typer.BadParameter(
            "--sys-floor is a chi2 option; nested sampling fits the floor instead "
            "(--method nested --inflate-errors)"
        )
    console = summary_console()
    spectrum = load_target(
        target,
        wave_unit=wave_unit,
        flux_unit=flux_unit,
        wave_col=wave_col,
        flux_col=flux_col,
        err_col=err_col,
        aperture=aperture,
    )
    if resolution is not None:
        spectrum.meta["resolution"] = stated_resolution_option(resolution)
    assumed = ""
    if assume_snr is not None:
        from atmospec.prediction.coverage import assumed_uncertainty

        sigma, assumed = assumed_uncertainty(spectrum, assume_snr)
        spectrum = spectrum.copy(uncertainty=sigma)
    model_grid = load_grid(grid)
    kwargs: dict[str, Any] = {
        "distance_pc": distance_pc,
        "discrepancy": None if no_discrepancy else "auto",
    }
    if method == "chi2":
        kwargs["inflate_errors"] = "auto" if inflate_errors else sys_floor
    else:
        kwargs.update(inflate_errors=inflate_errors, nlive=nlive, seed=seed)
    result = fit(spectrum, model_grid, method=method, **kwargs)  # type: ignore[arg-type]
    result.source = spectrum.name if spectrum.name else result.source
    if assumed:
        result.notes.append(assumed)
    suspect = "" if no_discrepancy else flux_unit_warning(spectrum, model_grid)
    if suspect:
        result.notes.append(suspect)
    problems = problem_console()
    for warning in ([suspect] if suspect else []) + result.warnings:
        problems.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    console.print(rich_table([result], f"{spectrum.name}: {method} fit with {model_grid.name}"))
    console.print(
        f"dof = {result.n_pix} pixels - {result.n_fitted} fitted "
        f"({', '.join(result.fitted)} + scale{' + inflation' if result.inflation_fitted else ''})"
    )
    if result.radius_rjup is not None:
        console.print(f"radius = {result.radius_rjup:.3f} R_Jup at {distance_pc} pc")
    if result.discrepancy is not None:
        d = result.discrepancy  # a flagged misfit is among the warnings (standard error)
        console.print(
            f"misfit score {d['misfit_score']:.2f} (threshold {d['misfit_threshold']:.2f} at "
            f"{d['misfit_false_alarm_rate']:.0%} false alarms on real field dwarfs)"
        )
    if result.logz is not None:
        console.print(f"log Z = {result.logz:.2f} ± {result.logz_err:.2f}")
    console.print(f"wall time {result.wall_time_s:.2f} s")
    for note in result.notes:
        console.print(f"[dim]note: {note}[/]")
    if result.nodes is not None and top > 0:
        from atmospec.fitting.result import nodes_table

        console.print(nodes_table(result.nodes, result.fitted, top))
    if out is not None:
        written = write_fit(result, out)
        console.print(f"wrote {', '.join(p.name for p in written)} to {out}")


def flux_unit_warning(spectrum: Any, grid: Any) -> str:
    """For a flux read as F_lambda because its file gave no unit: the warning when ``grid``,
    under its shipped model of mismatch, reproduces it decisively better read as F_nu (the
    test ``predict`` makes with every grid, :func:`~atmospec.multigrid.flux_reading.flux_reading`),
    else ``""`` (also without a model of mismatch for the grid).

    Measured by ``benchmarks/flux_units.py --quick --fit-grid dback24`` (150 library objects
    M0-T9 written without a unit, as F_lambda and as F_nu): 1.3 % of the F_lambda files
    warned of, 81 % of the F_nu ones (M7-L9: 96 %); ``--fit-grid btsettl08``: 1.3 % and 87 %.
    """
    from atmospec.discrepancy.route import shipped_model
    from atmospec.errors import DataNotFoundError
    from atmospec.multigrid.flux_reading import flux_reading

    try:
        disc = shipped_model(grid.name)
    except DataNotFoundError:
        return ""
    reading = flux_reading(spectrum, {grid.name: grid}, {grid.name: disc})
    if reading is None or not reading.suspect:
        return ""
    return reading.note().replace("the grids reproduce", f"{grid.name} reproduces")


def write_fit(result: Any, out: Path) -> list[Path]:
    """Write fit.ecsv, fit.json, fit.png (+ nodes.csv or samples.csv and corner.png)."""
    from atmospec._fileio import atomic_path, write_json
    from atmospec.plots import corner, save_figure

    out.mkdir(parents=True, exist_ok=True)
    written = []
    with atomic_path(out / "fit.ecsv") as tmp:
        result.table().write(tmp, format="ascii.ecsv", overwrite=True)
    written.append(out / "fit.ecsv")
    written.append(write_json(out / "fit.json", result.to_dict()))
    written.append(save_figure(result.plot(), out / "fit.png"))
    if result.nodes is not None:
        with atomic_path(out / "nodes.csv") as tmp:
            result.nodes.to_csv(tmp, index=False)
        written.append(out / "nodes.csv")
    if result.samples is not None:
        with atomic_path(out / "samples.csv") as tmp:
            result.samples.to_csv(tmp, index=False)
        written.append(out / "samples.csv")
        written.append(save_figure(corner(result.samples), out / "corner.png"))
    return written


def register(app: typer.Typer) -> None:
    app.command("fit")(fit_cmd)
