"""The grid-aware split a recipe's ``[split]`` table describes, over the rows in its ranges."""

from __future__ import annotations

from typing import Any

import numpy as np

from atmospec.errors import FileFormatError

__all__ = ["recipe_split", "require_validation"]


def _rows_in_ranges(grid: Any, ranges: dict[str, list[float]]) -> Any:
    """Rows of ``grid`` whose parameters lie inside ``ranges`` (inclusive)."""
    keep = np.ones(len(grid), dtype=bool)
    for p, (lo, hi) in ranges.items():
        if p not in grid.param_names:
            raise ValueError(
                f"ranges: unknown parameter {p!r} (grid {grid.name} has {list(grid.param_names)})"
            )
        v = grid.params[p].to_numpy()
        keep &= (v >= lo) & (v <= hi)
    return np.flatnonzero(keep)


def recipe_split(
    grid: Any, split: dict[str, Any], ranges: dict[str, list[float]] | None = None
) -> tuple[Any, Any]:
    """The grid-aware split a recipe's ``[split]`` table describes, over the grid rows inside
    its parameter ``ranges`` (all rows without ranges); returns ``(split, rows or None)``.
    Re-derives a trained model's test nodes from the recipe in its metadata.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from atmospec.grids import ModelGrid
        >>> d = Path(tempfile.mkdtemp()); wave = np.linspace(0.8, 2.6, 100)
        >>> with ModelGrid.create(d / "toy.h5", wave, ("teff",), name="toy") as w:
        ...     for t in (1000.0, 1250.0, 1500.0, 1750.0, 2000.0):
        ...         w.add({"teff": t}, wave ** -(t / 1000))
        >>> grid = ModelGrid(d / "toy.h5")
        >>> split, rows = recipe_split(grid, {"hold_out": {"teff": [1500.0]}})
        >>> split.sizes(), rows
        ({'train': 4, 'val': 0, 'test': 1}, None)
        >>> ranges = {"teff": [1000.0, 1750.0]}  # the grid rows inside these ranges only
        >>> split, rows = recipe_split(grid, {"hold_out": {"teff": [1250.0]}}, ranges)
        >>> split.sizes(), rows.tolist(), split.test.tolist()
        ({'train': 3, 'val': 0, 'test': 1}, [0, 1, 2, 3], [1])
    """
    from atmospec.training.splits import grid_aware_split

    rows = _rows_in_ranges(grid, ranges) if ranges else None
    sp = dict(split)
    out = grid_aware_split(
        grid,
        mode=sp.get("mode", "slices"),
        hold_out=sp.get("hold_out"),
        val_hold_out=sp.get("val_hold_out"),
        seed=int(sp.get("seed", 0)),
        rows=rows,
        **{k: sp[k] for k in ("val_fraction", "test_fraction", "keep_edges") if k in sp},
    )
    return out, rows


def require_validation(split: Any, table: dict[str, Any], grid: Any, rows: Any, where: str) -> None:
    """FileFormatError naming ``where`` (the recipe file) when ``split`` has no validation
    node: training sets, early stopping, calibration and tuning all need one. A ``[split]``
    that names ``hold_out`` keeps exactly the slices it names (validation is not guessed), so
    the message says which ``val_hold_out`` slices are free to choose.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from atmospec.grids import ModelGrid
        >>> d = Path(tempfile.mkdtemp()); wave = np.linspace(0.8, 2.6, 100)
        >>> with ModelGrid.create(d / "toy.h5", wave, ("teff",), name="toy") as w:
        ...     for t in (1000.0, 1250.0, 1500.0, 1750.0, 2000.0):
        ...         w.add({"teff": t}, wave ** -(t / 1000))
        >>> grid, table = ModelGrid(d / "toy.h5"), {"hold_out": {"teff": [1500.0]}}
        >>> split, rows = recipe_split(grid, table)
        >>> require_validation(split, table, grid, rows, "my.toml")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        atmospec.errors.FileFormatError: my.toml: [split] leaves no validation node (...), and training needs one; add val_hold_out to [split]: interior nodes outside hold_out are teff [1250.0, 1750.0]
    """
    if split.val.size:
        return
    if table.get("mode", "slices") == "nodes":
        fix = f"raise [split] val_fraction (now {table.get('val_fraction', 0.1)})"
    elif table.get("val_hold_out"):
        fix = f"val_hold_out {table['val_hold_out']} selects test nodes only; choose other slices"
    else:
        hold = table.get("hold_out") or {}
        allowed = np.arange(len(grid)) if rows is None else np.asarray(rows)
        free = []
        for p in hold or ["teff"]:
            axis = np.unique(grid.params[p].to_numpy()[allowed])[1:-1]
            taken = np.asarray(hold.get(p, []), dtype=float)
            left = [float(v) for v in axis if not np.isclose(v, taken, rtol=1e-9).any()]
            free.append(f"{p} {left}")
        fix = "add val_hold_out to [split]: interior nodes outside hold_out are " + ", ".join(free)
    raise FileFormatError(
        f"{where}: [split] leaves no validation node ({split.description}), and training "
        f"needs one; {fix}"
    )
