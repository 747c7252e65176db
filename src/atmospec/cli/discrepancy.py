"""``atmospec discrepancy``: learn and inspect model-discrepancy models from the SpeX library."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from atmospec.cli._checks import SEED_MAX

__all__ = ["register"]

group = typer.Typer(help="Model discrepancy learned from real SpeX library spectra.")


@group.command("fit")
def fit_cmd(
    grid: str = typer.Option(
        ...,
        "--grid",
        help="Grid name (dback24, btsettl08, burrows06, or one converted into the cache) or "
        "grid .h5 file; give the model to `atmospec predict --grids ...,GRID=OUT`.",
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for discrepancy.safetensors/.json."),
    seed: int = typer.Option(
        0, min=0, max=SEED_MAX, help="Seed of the split of objects into fit / evaluation."
    ),
    snr_min: float = typer.Option(20.0, "--snr-min", help="Minimum median S/N of spectra."),
    n_modes: int = typer.Option(6, "--modes", help="Correlated modes per Teff bin."),
    n_iter: int = typer.Option(2, "--iter", help="Refits with the learned covariance."),
    max_spectra: Optional[int] = typer.Option(  # noqa: UP045
        None, "--max-spectra", help="At most this many spectra per half (quick builds)."
    ),
    figure: bool = typer.Option(True, help="Also write discrepancy.png."),
    floor_only: bool = typer.Option(
        False,
        "--floor-only",
        help="Scale each Teff bin's floor alone to chi2/pixel 1; the modes keep the variance "
        "of the residuals' principal components (the shipped models scale both).",
    ),
) -> None:
    """Learn a grid's discrepancy model on half the library's objects, evaluate on the rest."""
    import json

    from atmospec._fileio import atomic_path, write_json
    from atmospec.discrepancy.learn import fit_discrepancy
    from atmospec.errors import AtmospecError

    try:
        model, record = fit_discrepancy(
            grid,
            seed=seed,
            snr_min=snr_min,
            n_modes=n_modes,
            n_iter=n_iter,
            max_spectra=max_spectra,
            scale_modes=not floor_only,
        )
    except AtmospecError:
        raise  # said in one line by the entry point
    except ValueError as err:  # too few library spectra inside the grid: nothing is written
        typer.secho(f"error: {err}", fg="red", err=True)
        raise typer.Exit(2) from None
    model.save(out)
    write_json(out / "scores.json", record)
    if figure:
        from atmospec.discrepancy.figure import plot_discrepancy

        with atomic_path(out / "discrepancy.png") as tmp:
            plot_discrepancy(model).savefig(tmp, dpi=90, format="png")
    typer.echo(json.dumps({"grid": grid, "out": str(out), **model.meta["evaluation"]}))


@group.command("temperature")
def temperature_cmd(
    folder: Path = typer.Argument(..., help="A discrepancy model folder to recalibrate."),
) -> None:
    """Recompute a saved model's likelihood temperature from its fit half's repeat spectra."""
    import json

    from atmospec.discrepancy.learn import recalibrate_temperature

    model = recalibrate_temperature(folder)
    typer.echo(
        json.dumps(
            {
                "grid": model.grid,
                **model.meta["temperature_calibration"],
                "eval_repeat_pull_std": model.meta["evaluation"]["repeat_pull_std"],
            }
        )
    )


@group.command("show")
def show_cmd(
    grid: str = typer.Argument(..., help="Grid name of a shipped model, or a model folder."),
) -> None:
    """Print a discrepancy model's record (split, calibration, evaluation)."""
    import json

    from atmospec.discrepancy import DiscrepancyModel, load_discrepancy

    model = DiscrepancyModel.load(grid) if Path(grid).is_dir() else load_discrepancy(grid)
    meta = {k: v for k, v in model.meta.items() if k != "split"}
    typer.echo(json.dumps({**model.describe(), **meta}, indent=2, default=str))


@group.command("calibrate")
def calibrate_cmd(
    companions: Path = typer.Option(
        ...,
        "--companions",
        help="CSV of labelled companions: splat_key, teff, teff_err (Teff from luminosity "
        "and evolutionary models).",
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for calibration.json."),
    seed: int = typer.Option(
        0, min=0, max=SEED_MAX, help="Seed of the split of companions into halves."
    ),
    draws: int = typer.Option(1000, help="Draws per spectrum."),
    max_field: int = typer.Option(150, "--max-field", help="At most this many field dwarfs."),
) -> None:
    """Learn the correction for the grids' shared systematic error (default multi-grid model).

    Teff from half the companions, the [M/H] zero point from field dwarfs of the
    discrepancy models' fit half; the other half of the companions is recorded as held out."""
    import json

    from atmospec.errors import FileFormatError
    from atmospec.multigrid.calibration_fit import fit_calibration

    if not companions.is_file():
        raise FileFormatError(f"{companions}: no such file")
    try:
        cal = fit_calibration(companions, seed=seed, draws=draws, max_field=max_field)
    except ValueError as err:
        raise FileFormatError(str(err)) from None
    path = cal.save(out)
    summary = {
        p: {"n": len(c.objects), "length_scale_K": 1000 * c.length_scale}
        for p, c in cal.corrections.items()
    }
    refused = cal.meta["split"]["calibration_refused"]  # objects of its half it could not use
    for key, why in refused.items():
        typer.secho(f"{key}: left out of the calibration half: {why}", fg="yellow", err=True)
    typer.echo(
        json.dumps({"out": str(path), "model_id": cal.model_id, **summary, "refused": refused})
    )


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="discrepancy")
