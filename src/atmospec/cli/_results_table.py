"""The answers of a prediction run as a terminal table: what a user reads first."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["results_table"]


def _text(value: Any) -> str:
    """A cell as text; empty for a missing one (masked, NaN)."""
    if value is None or value is np.ma.masked:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return ""
    return str(value)


def _interval(row: Any, p: str) -> str:
    med, lo, hi = (float(row[f"{p}_{s}"]) for s in ("median", "p16", "p84"))
    if not all(math.isfinite(v) for v in (med, lo, hi)):
        return "-"
    digits = 0 if abs(med) >= 100 else 2
    return f"{med:.{digits}f}\n[{lo:.{digits}f}, {hi:.{digits}f}]"


def _flags(row: Any, params: list[str]) -> str:
    cols = row.colnames
    out = []
    if "outside_grid" in cols and bool(row["outside_grid"]):
        # several grids: outside the primary one (ood_reason "outside_grid:dback24"), which
        # is named, since the answer then comes from the grids that cover the object
        reason = _text(row["ood_reason"]) if "ood_reason" in cols else ""
        primary = [r.split(":", 1)[1] for r in reason.split(",") if r.startswith("outside_grid:")]
        out.append(f"outside {primary[0]}" if primary else "outside grid")
    if "misfit_flag" in cols and bool(row["misfit_flag"]):
        out.append("misfit")
    if "outside_grid" not in cols and "ood_flag" in cols and bool(row["ood_flag"]):
        reason = _text(row["ood_reason"]) if "ood_reason" in cols else ""
        out.append(f"OOD ({reason})" if reason else "OOD")
    if "low_resolution" in cols and _text(row["low_resolution"]) and bool(row["low_resolution"]):
        out.append("low resolution")
    if "flux_unit_suspect" in cols and bool(row["flux_unit_suspect"]):
        out.append("flux unit: F_nu?")
    if "grids_disagree" in cols and bool(row["grids_disagree"]):
        out.append("grids disagree")
    edge = [p for p in params if f"{p}_at_bound" in cols and bool(row[f"{p}_at_bound"])]
    if edge:
        out.append("at the edge: " + ", ".join(edge))
    return ", ".join(out) or "-"


def results_table(table: Any, limit: int = 20, title: str = "", total: int | None = None) -> Any:
    """A rich Table of the first ``limit`` rows of a predictions table: per object the median
    and 68 % interval of each parameter and the warnings (a parameter at the edge of the
    grid's or model's range, outside the grid, misfit beyond the model of mismatch, out of
    distribution, a spectrum coarser than the models, a flux that reads as F_nu, grids that
    disagree); the notes column of the file says why.

    ``total``: the number of rows of the whole run when ``table`` holds only its first rows
    (a survey's file is not read whole to print twenty of them).

    The parameters are the table's own: every ``X`` with ``X_median``, ``X_p16``, ``X_p84``
    and ``X_p2.5`` columns (per-grid columns carry no 95 % bounds; they, the grids used and
    the notes are left to the file).

    Example:
        >>> from astropy.table import Table
        >>> t = Table({"source": ["HD 3651B"], "teff_median": [795.0], "teff_p16": [704.0],
        ...            "teff_p84": [894.0], "teff_p2.5": [610.0], "outside_grid": [True]})
        >>> from rich.console import Console
        >>> Console(width=80).print(results_table(t))  # doctest: +NORMALIZE_WHITESPACE
        ┏━━━━━━━━━━━━┳━━━━━━━━━━━━┳━━━━━━━━━━━━━━┓
        ┃ object     ┃       teff ┃ warnings     ┃
        ┡━━━━━━━━━━━━╇━━━━━━━━━━━━╇━━━━━━━━━━━━━━┩
        │ HD 3651B   │        795 │ outside grid │
        │            │ [704, 894] │              │
        └────────────┴────────────┴──────────────┘

        With several grids the object is outside the primary one, which is named:

        >>> t["ood_reason"] = ["outside_grid:dback24"]
        >>> Console(width=80).print(results_table(t))  # doctest: +NORMALIZE_WHITESPACE
        ┏━━━━━━━━━━━━┳━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━┓
        ┃ object     ┃       teff ┃ warnings        ┃
        ┡━━━━━━━━━━━━╇━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━┩
        │ HD 3651B   │        795 │ outside dback24 │
        │            │ [704, 894] │                 │
        └────────────┴────────────┴─────────────────┘
    """
    from rich.table import Table

    cols = table.colnames
    params = [
        c[: -len("_median")]
        for c in cols
        if c.endswith("_median")
        and all(f"{c[: -len('_median')]}_{s}" in cols for s in ("p16", "p84", "p2.5"))
    ]
    n = len(table) if total is None else int(total)
    shown = table[: max(int(limit), 0)]
    caption = (
        f"the first {len(shown)} of {n} rows; every row, with its notes, is in the file"
        if len(shown) < n
        else ""
    )
    out = Table(title=title or None, caption=caption or None, show_lines=True)
    out.add_column("object", overflow="fold", min_width=10)
    for p in params:
        out.add_column(p, justify="right", no_wrap=True)
    out.add_column("warnings", min_width=10)
    for row in shown:
        name = _text(row["name"]) if "name" in cols else ""
        name = name or _text(row["source"])
        cells = [name] + [_interval(row, p) for p in params]
        cells.append(_flags(row, params))
        out.add_row(*cells)
    return out
