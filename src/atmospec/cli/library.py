"""``atmospec library``: query the observed SpeX prism library."""

from __future__ import annotations

import json
import math
from typing import Any, Optional

import typer

from atmospec.cli._checks import finite

__all__ = ["register"]

_JSON_COLUMNS = (
    "key",
    "name",
    "designation",
    "spt",
    "spt_num",
    "snr",
    "quality",
    "gravity_class",
    "parallax",
    "parallax_err",
    "j",
    "j_err",
    "h",
    "h_err",
    "ks",
    "ks_err",
    "binary",
    "spectral_binary",
    "companion",
    "file",
)


def _plain(value: Any) -> Any:
    if value is None:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    try:
        import pandas as pd

        if value is pd.NA:
            return None
    except ImportError:  # pragma: no cover
        pass
    return value


def library_cmd(
    spt: Optional[str] = typer.Option(None, help="Spectral-type range, e.g. L0-T8 or T5."),  # noqa: UP045
    snr_min: Optional[float] = typer.Option(  # noqa: UP045
        None, "--snr-min", help="Minimum median S/N.", callback=finite(0.0)
    ),
    quality: Optional[list[str]] = typer.Option(  # noqa: UP045
        None, help="Quality flag(s): OK, POOR, BG (repeatable)."
    ),
    gravity: Optional[list[str]] = typer.Option(  # noqa: UP045
        None, help="Gravity class(es): FLD-G, INT-G, VL-G (repeatable)."
    ),
    limit: Optional[int] = typer.Option(None, min=1, help="Show at most N spectra."),  # noqa: UP045
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list of spectra."),
) -> None:
    """List SpeX prism library spectra matching the filters (a table, or JSON with --json)."""
    from atmospec.library import query

    try:
        table = query(spt=spt, snr_min=snr_min, quality=quality or None, gravity=gravity or None)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err
    total = len(table)
    if limit is not None:
        table = table.head(limit)
    if as_json:
        rows = [
            {c: _plain(v) for c, v in zip(_JSON_COLUMNS, rec, strict=True)}
            for rec in table.loc[:, list(_JSON_COLUMNS)].itertuples(index=False)
        ]
        typer.echo(json.dumps(rows, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    shown = f"{len(table)} of {total}" if len(table) < total else f"{total}"
    out = Table(title=f"SpeX prism library: {shown} spectra")
    for col in ("key", "name", "SpT", "S/N", "quality", "gravity", "J", "plx [mas]"):
        out.add_column(col, justify="right" if col in ("S/N", "J", "plx [mas]") else "left")
    for rec in table.itertuples(index=False):
        out.add_row(
            rec.key,
            str(_plain(rec.name) or ""),
            str(_plain(rec.spt) or ""),
            "" if _plain(rec.snr) is None else f"{rec.snr:.0f}",
            str(_plain(rec.quality) or ""),
            str(_plain(rec.gravity_class) or ""),
            "" if _plain(rec.j) is None else f"{rec.j:.2f}",
            "" if _plain(rec.parallax) is None else f"{rec.parallax:.1f}",
        )
    Console().print(out)


def register(app: typer.Typer) -> None:
    app.command("library")(library_cmd)
