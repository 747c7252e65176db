"""``atmospec transit``: simulate Ariel-like visits, reduce them to spectra, score them."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

import typer

from atmospec.cli._checks import SEED_MAX, finite

__all__ = ["register"]

transit_app = typer.Typer(
    help="Transit time series (Ariel raw format) to transmission spectra with error bars.",
    no_args_is_help=True,
)


@transit_app.command("simulate")
def simulate_cmd(
    out: Path = typer.Option(
        ..., "--out", "-o", help="Dataset folder to write (Ariel raw layout)."
    ),
    planets: int = typer.Option(10, "--planets", min=1, help="Number of planets."),
    seed: int = typer.Option(
        0, "--seed", min=0, max=SEED_MAX, help="Random seed (planet i uses stream (seed, i))."
    ),
    exposures: int = typer.Option(400, "--exposures", min=2, help="AIRS-CH0 CDS exposures."),
    clean: bool = typer.Option(False, "--clean", help="No noise and no systematics."),
) -> None:
    """Simulate planets with known injected spectra in the Ariel Data Challenge raw format."""
    from dataclasses import replace

    from atmospec._logging import progress_enabled
    from atmospec.transit.simulator import SimulationConfig, simulate_dataset

    config = SimulationConfig(n_exposures=exposures)
    if clean:  # files hold uint16, so the ADC rounding stays
        config = replace(config.clean(), quantize=True)
    simulate_dataset(out, planets, config, seed=seed)
    if progress_enabled():
        typer.echo(f"wrote {planets} planets to {out}")


@transit_app.command("reduce")
def reduce_cmd(
    path: Path = typer.Argument(
        ...,
        help="ROOT/train/PLANET_ID folder, or a folder of planets (a dataset root or its "
        "train/ or test/ folder).",
    ),
    method: str = typer.Option("gp", "--method", help="poly | pca | gp | cnn1d | cnn2d"),
    out: Path = typer.Option(Path("."), "--out", "-o", help="Output folder."),
    model: Optional[Path] = typer.Option(  # noqa: UP045
        None,
        "--model",
        help="CNN model folder (from `atmospec transit train-cnn`); default: the shipped one.",
    ),
    sigma_scale: float = typer.Option(
        1.0,
        "--sigma-scale",
        callback=finite(0.0, low_open=True),
        help="Factor applied to sigmas (on top of a CNN's calibrated sigma model).",
    ),
    sigma_floor: float = typer.Option(
        0.0,
        "--sigma-floor",
        callback=finite(0.0),
        help="Depth floor (fraction) added in quadrature to the sigmas.",
    ),
    sigma_shared_scale: float = typer.Option(
        1.0,
        "--sigma-shared-scale",
        callback=finite(0.0, low_open=True),
        help="Factor on the white-light (shared) part of the sigma (gp and cnn); --sigma-scale "
        "then acts on each bin's own part.",
    ),
    figures: bool = typer.Option(True, "--figures/--no-figures", help="Write diagnostic PNGs."),
) -> None:
    """Calibrate raw frames and measure transmission spectra, one planet or a folder of them.

    A spectrum is measured only when the visit holds a detectable transit; otherwise the
    reason is printed, nothing is written for that planet and its spectrum and figures from
    an earlier run into the same folder are removed. For each planet with a transit:
    PLANET_ID_METHOD.ecsv (wavelength, depth, sigma) and, unless --no-figures, the white-light,
    residual and spectrum figures. A folder run also writes summary_METHOD.csv / .json (one
    row per planet) with the GLL score across planets when the dataset has labels.

    Exit codes: 0 all planets reduced, 2 none, 3 some.
    """
    from atmospec._logging import progress_enabled, progress_hidden
    from atmospec.transit.batch import is_planet_folder, planet_folders, reduce_many
    from atmospec.transit.detrenders import METHODS, make_detrender

    if method not in METHODS:
        raise typer.BadParameter(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    try:
        det = make_detrender(method, model=model)
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--model") from None
    # on top of the sigma model the detrender carries (a CNN's calibration), not instead of it
    det.set_sigma_model(
        det.sigma_scale * sigma_scale,
        det.sigma_shared_scale * sigma_shared_scale,
        math.hypot(det.sigma_floor, sigma_floor),
    )
    if is_planet_folder(path):
        with progress_hidden():  # one planet: its path is the output, no bar
            summary = reduce_many([path], det, out, figures=figures)
        outcome = summary.outcomes[0]
        if outcome.error is not None:
            raise outcome.error
        typer.echo(str(outcome.path))
        return
    summary = reduce_many(planet_folders(path), det, out, figures=figures)
    _write_summary(summary, out)
    if progress_enabled():
        _print_summary(summary)
    n, ok = len(summary.outcomes), summary.n_ok
    if ok < n:
        typer.echo(
            f"{n - ok} of {n} planets gave no spectrum (see summary_{det.name}.csv)", err=True
        )
        raise typer.Exit(2 if ok == 0 else 3)


def _write_summary(summary: object, out: Path) -> None:
    import pandas as pd

    from atmospec._fileio import atomic_path, write_json
    from atmospec.transit.batch import ReductionSummary

    assert isinstance(summary, ReductionSummary)
    data = summary.to_dict()
    write_json(out / f"summary_{summary.method}.json", data)
    with atomic_path(out / f"summary_{summary.method}.csv") as tmp:
        pd.DataFrame(data["rows"]).to_csv(tmp, index=False)


def _print_summary(summary: object) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from atmospec.transit.batch import ReductionSummary

    assert isinstance(summary, ReductionSummary)
    table = Table(title=f"transit reduce --method {summary.method}")
    for col in ("planet", "status", "transit S/N", "mean depth (ppm)", "note"):
        table.add_column(col)
    for o in summary.outcomes:
        table.add_row(
            o.planet_id,
            o.status,
            "" if o.transit_snr is None else f"{o.transit_snr:.1f}",
            "" if o.white_depth_ppm is None else f"{o.white_depth_ppm:.0f}",
            escape(o.message[:100]),
        )
    console = Console()
    console.print(table)
    if summary.score:
        s = summary.score
        console.print(
            f"over {s['planets_scored']} planets: GLL score {s['gll_score']:.4f}, "
            f"RMSE {s['rmse_ppm']:.1f} ppm, 68 % coverage {s['coverage68']:.3f}",
            highlight=False,
        )


@transit_app.command("train-cnn")
def train_cnn_cmd(
    out: Path = typer.Option(..., "--out", "-o", help="Model folder to write."),
    kind: str = typer.Option("1d", "--kind", help="1d | 2d"),
    planets: int = typer.Option(200, "--planets", min=4, help="Simulated training planets."),
    calibration_planets: int = typer.Option(
        32,
        "--calibration-planets",
        min=0,
        help="Further simulated planets (not trained on) on which the sigma model is fitted.",
    ),
    calibrate_to: str = typer.Option(
        "coverage",
        "--calibrate-to",
        help="coverage: the likelihood fit, then scaled so 68 % of the calibration depths "
        "fall inside the 68 % intervals; likelihood: the likelihood fit alone.",
    ),
    epochs: int = typer.Option(40, "--epochs", min=1),
    seed: int = typer.Option(1, "--seed", min=0, max=SEED_MAX),
) -> None:
    """Train a transit CNN on simulated planets, calibrate its sigmas on others, and save it.

    The planets are simulated in memory; the model is saved as safetensors + JSON with the
    provenance."""
    if calibrate_to not in ("coverage", "likelihood"):
        raise typer.BadParameter("--calibrate-to: coverage or likelihood")
    if kind not in ("1d", "2d"):  # before minutes of simulation, not after
        raise typer.BadParameter(f"must be 1d or 2d, not {kind!r}", param_hint="--kind")
    from dataclasses import asdict

    import numpy as np
    import torch
    from tqdm.auto import tqdm

    from atmospec._logging import progress_enabled
    from atmospec.transit.calibration import calibrate
    from atmospec.transit.detrenders.base import sigma_model_from
    from atmospec.transit.detrenders.cnn import CNNConfig, CNNDetrender, cnn_features
    from atmospec.transit.simulator import SimulationConfig, simulate_planet

    torch.set_num_threads(1)
    sim = SimulationConfig()
    feats, depths, held_out = [], [], []
    total = planets + calibration_planets
    for i in tqdm(range(total), desc="simulating", disable=not progress_enabled()):
        raw, truth = simulate_planet(str(i), sim, np.random.default_rng([seed, i]))
        obs = calibrate(raw)
        feats.append(cnn_features(obs))
        depths.append(truth.depth)
        if i >= planets:
            held_out.append(obs)
    det = CNNDetrender(CNNConfig(kind=kind, epochs=epochs, seed=seed))
    det.transit_threshold = None  # every simulated planet has its injected transit
    stats = det.train_features(feats[:planets], depths[:planets])
    record: dict[str, object] = {"training_planets": planets, "simulation": asdict(sim), **stats}
    if calibration_planets:
        specs = [det.fit(o, f) for o, f in zip(held_out, feats[planets:], strict=True)]
        model = sigma_model_from(np.concatenate(depths[planets:]), specs, calibrate_to)
        det.set_sigma_model(*model)
        record["sigma_calibration"] = {
            "planets": calibration_planets,
            "target": calibrate_to,
            "stream": f"simulate_planet rng([seed, i]) for i in {planets}..{total - 1}",
            "scale_own_shared_floor": list(model),
        }
    det.transit_threshold = CNNDetrender.transit_threshold
    det.save(out, **record)
    typer.echo(f"saved {det.name} to {out} (validation NLL {stats['val_nll']:.3f})")


@transit_app.command("score")
def score_cmd(
    predictions: list[Path] = typer.Argument(..., help="ECSV spectra written by `reduce`."),
    labels: Path = typer.Option(..., "--labels", help="A *_labels.csv with the true depths."),
    reference: Optional[Path] = typer.Option(  # noqa: UP045
        None, "--reference", help="Training labels for the reference (default: --labels)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Ariel 2024 GLL score, RMSE and 68% coverage of spectra against known depths.

    Per method when the spectra come from several methods (each planet counted once per
    method)."""
    from atmospec.transit.batch import score_spectra

    results = score_spectra(predictions, labels, reference)
    if as_json:
        one = len(results) == 1
        typer.echo(json.dumps(next(iter(results.values())) if one else {"methods": results}))
        return
    for method, result in results.items():
        typer.echo(f"{'method':>12}: {method}")
        for k, v in result.items():
            typer.echo(f"{k:>12}: {v:.4f}" if isinstance(v, float) else f"{k:>12}: {v}")


def register(app: typer.Typer) -> None:
    app.add_typer(transit_app, name="transit")
