"""``atmospec molecules retrieve FILE...``: abundances, temperature, radius and clouds with intervals."""

from __future__ import annotations

import json
from typing import Optional

import typer

from atmospec.cli._checks import SEED_MAX

__all__ = ["retrieve_app", "run_retrieve"]

retrieve_app = typer.Typer(add_completion=False, help="Retrieve abundances with intervals.")


@retrieve_app.command()
def retrieve_cmd(
    files: list[str] = typer.Argument(  # noqa: B008
        ..., help="Observed spectrum file(s); several files are combined, one offset each."
    ),
    out: str = typer.Option(
        ..., "--out", "-o", help="Folder for the tables, JSON and corner figure."
    ),
    method: str = typer.Option(
        "npe",
        "--method",
        help="npe (amortised, trained for these bins on first use, then cached), nested "
        "(dynesty) or both (side by side).",
    ),
    gravity: float = typer.Option(
        10.0, "--gravity", help="Planet surface gravity at 10 bar (m/s^2)."
    ),
    star_radius: float = typer.Option(1.0, "--star-radius", help="Stellar radius (R_sun)."),
    evidence: bool = typer.Option(
        False,
        "--evidence",
        help="Also the Bayes factor of each molecule (nested sampling without it; one run per "
        "molecule, minutes each).",
    ),
    evidence_molecules: Optional[str] = typer.Option(  # noqa: UP045
        None, "--evidence-molecules", help="Comma-separated molecules for --evidence (default all)."
    ),
    nlive: int = typer.Option(150, "--nlive", help="Live points of nested sampling."),
    dlogz: float = typer.Option(0.5, "--dlogz", help="Nested sampling stops at this ln Z gain."),
    n_train: int = typer.Option(20000, "--n-train", help="Simulated planets to train the NPE."),
    train_minutes: float = typer.Option(8.0, "--train-minutes", help="NPE training budget."),
    seed: int = typer.Option(0, "--seed", min=0, max=SEED_MAX, help="Random seed."),
    depth_unit: Optional[str] = typer.Option(  # noqa: UP045
        None, "--depth-unit", help="Depth unit when the file does not say: ppm, percent, fraction."
    ),
    width: Optional[str] = typer.Option(  # noqa: UP045
        None, "--width", help="'half', 'full' or 'contiguous' bin widths where ambiguous."
    ),
    trim: bool = typer.Option(
        False, "--trim", help="Leave out (and report) bins beyond the opacities' wavelengths."
    ),
    no_classifier: bool = typer.Option(
        False, "--no-classifier", help="Leave the classifier's probability out of the table."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
) -> None:
    """Posterior of temperature, log10 mixing ratios, radius at 10 bar and clouds."""


def run_retrieve(args: list[str]) -> None:
    """Parse ``atmospec molecules retrieve ...`` arguments and run it."""

    from atmospec.cli._subcommand import parse_subcommand

    p = parse_subcommand(retrieve_app, "atmospec molecules retrieve", args)
    import torch

    torch.set_num_threads(1)
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from atmospec.cli._planet_files import read_planet
    from atmospec.molecules.io import combine
    from atmospec.molecules.retrieve import retrieve

    spectra = [read_planet(f, depth_unit=p["depth_unit"], width=p["width"]) for f in p["files"]]
    spec = combine(spectra)
    mols = tuple(m.strip() for m in (p["evidence_molecules"] or "").split(",") if m.strip())
    res = retrieve(
        spec,
        method=p["method"],
        out=p["out"],
        gravity=p["gravity"],
        star_radius_rsun=p["star_radius"],
        evidence=p["evidence"],
        evidence_molecules=mols or None,
        nlive=p["nlive"],
        dlogz=p["dlogz"],
        n_train=p["n_train"],
        train_minutes=p["train_minutes"],
        seed=p["seed"],
        trim=p["trim"],
        classifier=not p["no_classifier"],
    )
    if p["as_json"]:
        typer.echo(json.dumps(res.as_json(), default=str))
        return
    notes = Console(stderr=True)
    notes.print("[bold]assumed:[/bold]")
    for note in res.info.get("assumptions", []):
        notes.print("  - " + escape(str(note)))
    calibration = res.info.get("npe_calibration") or {}
    if calibration.get("calibrated") is False:  # trained with n_calibration=0, as recorded
        notes.print("[yellow]NPE not calibrated:[/yellow] " + escape(str(calibration["method"])))
    for method, at_bound in res.info.get("at_bound", {}).items():
        for note in at_bound.values():
            notes.print(f"[yellow]at a prior bound ({method}):[/yellow] " + escape(note))
    con = Console()
    for method, table in res.intervals.items():
        t = Table(
            title=escape(f"{res.name}: posterior ({method}), median and 68 % / 95 % intervals")
        )
        for col in ("parameter", "median", "68 %", "95 %"):
            t.add_column(col)
        for name, v in table.items():
            t.add_row(
                name,
                f"{v['median']:.4g}",
                f"{v['p16']:.4g} .. {v['p84']:.4g}",
                f"{v['p2.5']:.4g} .. {v['p97.5']:.4g}",
            )
        con.print(t)
    if res.evidence:
        t = Table(title="detection: Bayes factor with the molecule removed, and the classifier")
        for col in ("molecule", "ln B", "sigma", "classifier p"):
            t.add_column(col)
        for m, v in res.evidence.items():
            lnb = v.get("ln_B")
            prob = v.get("classifier_probability")
            t.add_row(
                m,
                "" if lnb is None else f"{lnb:.1f} +- {v['ln_B_err']:.1f}",
                "" if lnb is None else f"{v['sigma']:.1f}",
                f"{prob:.3f}" if isinstance(prob, float) else escape(str(prob)),
            )
        con.print(t)
    for method, offs in res.info.get("offsets_ppm", {}).items():
        text = ", ".join(f"{k} {v['median']:+.0f}" for k, v in offs.items())
        if text:
            con.print(escape(f"offsets relative to the first instrument ({method}, ppm): {text}"))
    con.print(escape("files: " + ", ".join(res.files.values())))
