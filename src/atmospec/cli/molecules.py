"""``atmospec molecules``: which molecules an observed transmission spectrum shows."""

from __future__ import annotations

import json
from typing import Optional

import typer

from atmospec.cli._checks import SEED_MAX

__all__ = ["register"]

train_app = typer.Typer(add_completion=False, help="Rebuild the molecule classifier.")


@train_app.command()
def train_cmd(
    bins: str = typer.Option(
        "",
        "--bins",
        help="Observed spectrum whose bins and error bars to train on "
        "(default: the WASP-39b JWST file in the shared data).",
    ),
    n: int = typer.Option(24000, "--n", help="Number of simulated planets (70/15/15 split)."),
    seed: int = typer.Option(1, "--seed", min=0, max=SEED_MAX, help="Random seed."),
    training_set: Optional[str] = typer.Option(  # noqa: UP045
        None,
        "--training-set",
        help="HDF5 training set: reused if it exists and holds these bins (refused if it holds "
        "others), else simulated and written.",
    ),
    epochs: int = typer.Option(40, "--epochs", help="Maximum epochs."),
    tune: int = typer.Option(0, "--tune", help="Optuna trials before the final fit (0 = off)."),
    max_minutes: Optional[float] = typer.Option(  # noqa: UP045
        20.0, "--max-minutes", help="Training budget (minutes)."
    ),
    any_binning: bool = typer.Option(
        False,
        "--any-binning",
        help="Train the classifier for any binning (random instrument sets per batch) on a "
        "population simulated once on a fine axis; --bins is then not used.",
    ),
    native: Optional[str] = typer.Option(  # noqa: UP045
        None, "--native", help="HDF5 fine-axis population set: reused if it exists, else written."
    ),
) -> None:
    """Simulate a training set, train and calibrate the CNN, save it to --out."""


def _run_train(args: list[str], out: str | None) -> None:

    from atmospec.cli._subcommand import parse_subcommand
    from atmospec.errors import DataNotFoundError

    p = parse_subcommand(train_app, "atmospec molecules train", args)
    if out is None:
        raise typer.BadParameter("`atmospec molecules train` needs --out DIR")
    if p["any_binning"]:
        from atmospec.molecules.pipeline import train_any_binning

        train_any_binning(
            out,
            n=p["n"],
            seed=p["seed"],
            native=p["native"],
            max_epochs=p["epochs"],
            max_minutes=p["max_minutes"],
        )
        typer.echo(f"saved the any-binning classifier to {out}")
        return
    bins = p["bins"]
    if not bins:
        from atmospec.data import shared_data

        shared = shared_data()
        if shared is None:
            raise DataNotFoundError("no --bins given and the shared WASP-39b file is absent")
        bins = str(shared / "transmission" / "wasp39b_jwst_transit.dat")
    from atmospec.molecules.pipeline import train_classifier

    train_classifier(
        bins,
        out,
        n=p["n"],
        seed=p["seed"],
        training_set=p["training_set"],
        max_epochs=p["epochs"],
        tune_trials=p["tune"],
        max_minutes=p["max_minutes"],
    )
    typer.echo(f"saved the classifier to {out}")


def _pairs(text: str | None, option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise typer.BadParameter(f"{option} takes NAME=VALUE[,NAME=VALUE], got {item!r}")
        out[key.strip()] = value.strip()
    return out


def molecules_cmd(
    ctx: typer.Context,
    files: list[str] = typer.Argument(  # noqa: B008
        ...,
        help="Observed spectrum file(s) (pyratbay .dat, CSV/TSV/whitespace, ECSV, IPAC, VOTable); "
        "several files are combined, one instrument each. Or 'train' to rebuild.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object {molecule: p}."),
    out: Optional[str] = typer.Option(  # noqa: UP045
        None, "--out", "-o", help="Folder for report, plot and JSON."
    ),
    model: str | None = typer.Option(
        None, "--model", help="Classifier folder or registry name (default: molecules-any-binning)."
    ),  # noqa: UP045
    n_mc: int = typer.Option(100, "--n-mc", help="Dropout passes for the intervals."),
    depth_unit: Optional[str] = typer.Option(  # noqa: UP045
        None,
        "--depth-unit",
        help="Depth unit when the file does not say: ppm, percent, ppt, fraction.",
    ),
    width: Optional[str] = typer.Option(  # noqa: UP045
        None,
        "--width",
        help="Bin widths: 'half' or 'full' for an ambiguous width column, 'contiguous' when the "
        "file has none (edges halfway between centres).",
    ),
    wave_unit: Optional[str] = typer.Option(None, "--wave-unit", help="um, nm or AA."),  # noqa: UP045
    columns: Optional[str] = typer.Option(  # noqa: UP045
        None,
        "--columns",
        help="Column mapping ROLE=NAME[,...] (roles: wavelength, half_width, full_width, width, "
        "depth, radius_ratio, error, error_lower, radius_ratio_error, radius_ratio_error_lower, "
        "instrument, order, quality) where a file is ambiguous.",
    ),
    offset: Optional[str] = typer.Option(  # noqa: UP045
        None,
        "--offset",
        help="Known depth offsets INSTRUMENT=PPM[,...] added before classifying; other "
        "instruments keep a free offset.",
    ),
    trim: bool = typer.Option(
        False, "--trim", help="Leave out (and report) bins beyond the opacities' wavelengths."
    ),
    no_fit: bool = typer.Option(
        False, "--no-fit", help="With --out: skip the best-fit model with molecules removed."
    ),
) -> None:
    """Probability per molecule (H2O, CO2, CH4, CO, Na, K) with an interval, attributions, report.

    Prints what it assumed while reading (units, widths, columns, dropped bins).
    `atmospec molecules train --out DIR [--bins FILE --n N --epochs E --tune T]` rebuilds the
    classifier instead; `atmospec molecules retrieve FILE --out DIR [--method npe|nested|both
    --evidence]` retrieves abundances, temperature, radius and clouds with intervals.
    """
    if files and files[0] == "train":
        _run_train([*files[1:], *ctx.args], out)
        return
    if files and files[0] == "retrieve":
        from atmospec.cli.retrieve import run_retrieve

        shared = [*(["--out", out] if out else []), *(["--trim"] if trim else [])]
        shared += [*(["--json"] if as_json else []), *(["--width", width] if width else [])]
        shared += ["--depth-unit", depth_unit] if depth_unit else []
        run_retrieve([*files[1:], *ctx.args, *shared])
        return
    if ctx.args:
        raise typer.BadParameter(f"unexpected arguments {ctx.args}")
    import torch

    torch.set_num_threads(1)
    from atmospec.cli._planet_files import read_planet
    from atmospec.errors import FileFormatError
    from atmospec.molecules.io import combine
    from atmospec.molecules.pipeline import identify

    try:
        offsets = {k: float(v) * 1e-6 for k, v in _pairs(offset, "--offset").items()}
    except ValueError:
        raise typer.BadParameter(f"--offset values are numbers in ppm, got {offset!r}") from None
    mapping = _pairs(columns, "--columns") or None
    spectra = [
        read_planet(f, depth_unit=depth_unit, width=width, wave_unit=wave_unit, columns=mapping)
        for f in files
    ]
    if not spectra:
        raise FileFormatError("no spectrum file given")
    spec = combine(spectra, offsets or None)
    report = identify(spec, model=model, out=out, n_mc=n_mc, trim=trim, fit=not no_fit)
    from rich.console import Console
    from rich.markup import escape

    from atmospec.cli._console import summary_console

    err = summary_console(stderr=True)  # the notes; the table below always prints
    err.print("[bold]assumed while reading:[/bold]")
    for note in report.info.get("assumptions", []):
        err.print("  - " + escape(str(note)))
    for m, t in report.info.get("testability", {}).items():
        if not t["testable"]:
            err.print(escape(f"{m}: {t['reason']}"))
    if as_json:
        typer.echo(json.dumps(report.as_json(), allow_nan=False))
        return
    from rich.table import Table

    table = Table(title=escape(f"molecules in {report.name} (present and detectable)"))
    for col in ("molecule", "probability", "90% interval", "testable with these bins"):
        table.add_column(col)
    tests = report.info.get("testability", {})
    for m, v in report.probabilities.items():
        ok = tests.get(m, {}).get("testable", True)
        table.add_row(
            m, f"{v['probability']:.3f}", f"{v['low']:.3f} - {v['high']:.3f}", "yes" if ok else "NO"
        )
    Console().print(table)
    if report.files:
        Console().print(
            escape(f"report: {report.files['report']}  plot: {report.files['attribution_plot']}")
        )


def register(app: typer.Typer) -> None:
    app.command(
        "molecules",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )(molecules_cmd)
