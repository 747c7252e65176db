"""``atmospec demo``: the main job, end to end on the embedded data."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]


def demo_cmd(
    out: Path = typer.Option(Path("atmospec-demo"), "--out", "-o", help="Output folder."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing."),
) -> None:
    """Fit HD 3651B and GJ 570D with the Burrows 2006 and BT-Settl 2008 grids; write results."""
    from atmospec.demo import run_demo

    run_demo(out, quiet=quiet)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_cmd)
