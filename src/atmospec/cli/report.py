"""``atmospec report RUN_DIR``: one self-contained HTML page for a predict or fit run."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

__all__ = ["register"]


def report_cmd(
    run_dir: Path = typer.Argument(..., help="A folder written by atmospec predict / fit / demo."),
    out: Optional[Path] = typer.Option(  # noqa: UP045
        None, "--out", "-o", help="HTML file (default RUN_DIR/report.html)."
    ),
    max_objects: int = typer.Option(60, "--max-objects", help="Embed figures of this many."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing."),
) -> None:
    """Write RUN_DIR/report.html: tables and figures embedded, no external files needed."""
    from atmospec.report import write_report

    path = write_report(run_dir, out, max_objects=max_objects)
    if not quiet:
        typer.echo(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")


def register(app: typer.Typer) -> None:
    app.command("report")(report_cmd)
