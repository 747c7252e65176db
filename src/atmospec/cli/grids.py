"""``atmospec grids`` and ``atmospec grid check``: list model grids and check their health."""

from __future__ import annotations

import json
from typing import Any

import typer

__all__ = ["register"]

grid_app = typer.Typer(help="Inspect one model grid.", no_args_is_help=True)


def _fmt_axis(values: list[float], labels: dict[str, str], limit: int = 8) -> str:
    text = [f"{v:g}" + (f"({labels[f'{v:g}']})" if f"{v:g}" in labels else "") for v in values]
    if len(text) > limit:
        return f"{text[0]}..{text[-1]} ({len(text)} values)"
    return ",".join(text)


def grids_cmd(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    rebuild: bool = typer.Option(
        False, "--rebuild", help="Convert the built-in grids again (e.g. after a checksum error)."
    ),
) -> None:
    """List the model grids: number of spectra, axes, ranges, regular/sparse, wavelengths."""
    from atmospec.grids import list_grids

    if rebuild:
        from atmospec.errors import DataNotFoundError
        from atmospec.grids.registry import BUILTIN_GRIDS, load_grid

        for name in BUILTIN_GRIDS:
            try:
                load_grid(name, rebuild=True)
            except DataNotFoundError:
                continue  # listed below with the command that fetches its data

    rows = list_grids()
    if as_json:
        typer.echo(json.dumps({"grids": rows}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="atmospec model grids")
    for col in ("name", "n_spectra", "axes", "kind", "wavelength (um)", "credit"):
        table.add_column(col, overflow="fold")
    for r in rows:
        if not r.get("available"):
            table.add_row(r["name"], "-", f"[red]{r.get('error', 'unavailable')}[/]", "", "", "")
            continue
        vl = r.get("value_labels", {})
        axes = "\n".join(f"{p}: {_fmt_axis(v, vl.get(p, {}))}" for p, v in r["axes"].items())
        wl = r["wavelength_range"]
        table.add_row(
            r["name"],
            f"{r['n_spectra']:,}",
            axes,
            "regular" if r["regular"] else "sparse",
            f"{wl[0]:.3f}-{wl[1]:.3f} ({r['n_wave']} px)",
            r["credit"].split(";")[0],
        )
    Console().print(table)


@grid_app.command("check")
def check_cmd(
    name: str = typer.Argument(..., help="Grid name (dback24, btsettl08, burrows06) or path."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    decimals: int = typer.Option(3, help="Rounding of ln(normalised flux) for near duplicates."),
    max_nodes: int = typer.Option(0, help="Evaluate at most this many nodes per axis (0: all)."),
    metric: str = typer.Option("weighted", help="Node error: 'weighted' or 'mean'."),
) -> None:
    """Duplicate spectra under different labels and leave-one-node-out error per parameter."""
    from atmospec.grids import load_grid
    from atmospec.grids.check import check_grid

    grid = load_grid(name)
    report = check_grid(grid, decimals=decimals, max_nodes=max_nodes or None, metric=metric)
    if as_json:
        typer.echo(json.dumps(report, indent=2, default=_json))
        return
    _print_report(report)


def _json(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(type(obj).__name__)


def _print_report(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    dups = report["duplicates"]
    console.print(
        f"[bold]{report['grid']}[/]: {report['n_spectra']:,} spectra, "
        f"{'regular' if report['regular'] else 'sparse'}"
    )
    if not dups["groups"]:
        console.print(
            f"duplicates: none (exact, or same shape to ln-flux rounded at {dups['decimals']} "
            "decimals)"
        )
    for g in dups["groups"]:
        console.print(
            f"[yellow]{g['kind']} duplicate[/] (differ in {', '.join(g['differing'])}; max "
            f"shape difference {g['max_frac_diff']:.2e}): {', '.join(g['labels'])}"
        )
    table = Table(title=f"leave-one-node-out error ({report['error_metric']})")
    for col in ("parameter", "interior nodes", "median", "95th pct", "max", "worst node"):
        table.add_column(col)
    for p, r in report["leave_one_out"].items():
        if "skipped" in r:
            table.add_row(p, "-", "", "", "", r["skipped"])
            continue
        table.add_row(
            p,
            str(r["n_nodes"]),
            f"{r['median']:.2%}",
            f"{r['p95']:.2%}",
            f"{r['max']:.2%}",
            str(r["worst"]),
        )
    console.print(table)
    console.print(report["error_definition"], style="dim")


def register(app: typer.Typer) -> None:
    app.command("grids")(grids_cmd)
    app.add_typer(grid_app, name="grid")
