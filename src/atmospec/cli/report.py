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
    max_objects: int = typer.Option(60, "--max-objects", min=0, help="Embed figures of this many."),
) -> None:
    """Write RUN_DIR/report.html: tables and figures embedded, no external files needed."""
    import logging

    from atmospec.report import write_report

    path = write_report(run_dir, out, max_objects=max_objects)
    size = path.stat().st_size / 1e6
    logging.getLogger(__name__).info("wrote %s (%.2f MB)", path, size)


def register(app: typer.Typer) -> None:
    app.command("report")(report_cmd)
