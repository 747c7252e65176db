"""Grid health checks: duplicate spectra under different labels, leave-one-node-out errors."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from typing import Any

import numpy as np
from numpy.typing import NDArray

from atmospec.grids.grid import ModelGrid

__all__ = ["find_duplicates", "leave_one_out", "check_grid", "node_error"]

FloatArray = NDArray[np.float64]


def find_duplicates(
    grid: ModelGrid, *, decimals: int = 3, batch_size: int = 512
) -> list[dict[str, Any]]:
    """Groups of spectra that are identical (or nearly) but carry different parameter labels.

    Two hashes are computed per spectrum while streaming through the grid once (so any
    size works): an *exact* hash of the stored flux values, and a *near* hash of the shape,
    ``round(ln(flux / mean flux), decimals)``. With the default ``decimals=3`` spectra whose
    shapes agree to about 0.1 % in every pixel collide (a pure change of flux scale does not
    change the shape, so it is reported too: a model grid should never contain it). Hashing
    is a screen: two spectra closer than the rounding step may still straddle a rounding
    boundary in some pixel and escape detection. Each reported group is verified by its
    largest pixel-wise fractional difference in shape.

    Returns:
        One dict per group: ``kind`` ("exact" or "near"), ``rows``, ``labels``, ``params``
        (one dict per member), ``differing`` (parameters that differ within the group) and
        ``max_frac_diff`` (largest |shape_i / shape_0 - 1| over pixels and members).

    Example:
        >>> import numpy as np, tempfile, pathlib
        >>> from atmospec.grids import GridWriter, ModelGrid
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "dup.h5"
        >>> with GridWriter(path, [1.0, 2.0, 3.0], ("mh",), name="dup") as w:
        ...     w.add([0.0], [1.0, 2.0, 3.0], label="a")
        ...     w.add([0.5], [1.0, 2.0, 3.0], label="b")
        ...     w.add([1.0], [3.0, 2.0, 1.0], label="c")
        >>> groups = find_duplicates(ModelGrid(path))
        >>> first = groups.pop()
        >>> len(groups), first["kind"], " ".join(first["labels"]), " ".join(first["differing"])
        (0, 'exact', 'a b', 'mh')
    """
    exact: dict[bytes, list[int]] = defaultdict(list)
    near: dict[bytes, list[int]] = defaultdict(list)
    for idx, flux in grid.iter_batches(batch_size):
        stored = flux.astype(np.float32)
        shape = np.round(np.log(flux / flux.mean(axis=1, keepdims=True)), decimals) + 0.0
        for i, f, s in zip(idx, stored, shape, strict=True):
            exact[hashlib.sha1(f.tobytes()).digest()].append(int(i))
            near[hashlib.sha1(s.tobytes()).digest()].append(int(i))
    groups: list[dict[str, Any]] = []
    exact_sets = [rows for rows in exact.values() if len(rows) > 1]
    seen = {frozenset(r) for r in exact_sets}
    near_sets = [r for r in near.values() if len(r) > 1 and frozenset(r) not in seen]
    for kind, sets in (("exact", exact_sets), ("near", near_sets)):
        for rows in sets:
            groups.append(_describe(grid, kind, sorted(rows)))
    return groups


def _describe(grid: ModelGrid, kind: str, rows: list[int]) -> dict[str, Any]:
    flux = grid.flux(np.array(rows))
    shape = flux / flux.mean(axis=1, keepdims=True)
    diff = float(np.abs(shape / shape[0] - 1).max())
    values = grid.params.iloc[rows]
    differing = [p for p in grid.param_names if values[p].nunique() > 1]
    return {
        "kind": kind,
        "rows": rows,
        "labels": [grid.labels[i] for i in rows],
        "params": values.to_dict(orient="records"),
        "differing": differing,
        "max_frac_diff": diff,
    }


def _tied(grid: ModelGrid) -> dict[str, str]:
    """Parameter -> the parameter it is tied to (e.g. alpha -> mh in BT-Settl)."""
    out: dict[str, str] = {}
    for cell in grid._get_cells():
        for q, (p, _, _) in cell.dependent.items():
            out[grid.param_names[q]] = grid.param_names[p]
    return out


def node_error(predicted: FloatArray, true: FloatArray, metric: str = "weighted") -> float:
    """Fractional flux error of a predicted spectrum.

    ``"weighted"`` (default): ``sum|predicted - true| / sum(true)``, the fraction of the flux
    that is misplaced (on an evenly sampled axis), robust to the faint pixels where a relative
    error means little. ``"mean"``: the mean over pixels of ``|predicted / true - 1|``, which
    the faintest pixels dominate.

    Example:
        >>> import numpy as np
        >>> round(node_error(np.array([1.1, 2.0]), np.array([1.0, 2.0])), 4)  # 0.1 of 3.0
        0.0333
        >>> round(node_error(np.array([1.1, 2.0]), np.array([1.0, 2.0]), "mean"), 3)
        0.05
    """
    if metric == "weighted":
        return float(np.abs(predicted - true).sum() / true.sum())
    if metric == "mean":
        return float(np.mean(np.abs(predicted / true - 1)))
    raise ValueError(f"unknown metric {metric!r}: use 'weighted' or 'mean'")


def leave_one_out(
    grid: ModelGrid,
    axis: str,
    *,
    max_nodes: int | None = None,
    seed: int = 0,
    metric: str = "weighted",
) -> dict[str, Any]:
    """Leave-one-node-out interpolation error along one parameter axis.

    Every *interior* node along ``axis`` (one with a neighbouring node on each side along that
    axis, all other parameters equal) is dropped and predicted from those two neighbours by
    linear interpolation in log flux, exactly what :meth:`ModelGrid.interpolate` does along a
    single axis of a regular grid. The node's error is given by :func:`node_error`
    (default: the flux-weighted fractional error ``sum|predicted - true| / sum(true)``). In a
    sparse grid the neighbours are the nearest populated nodes on each side, so gaps make the
    estimate larger. Parameters tied to ``axis`` (BT-Settl alpha to mh) follow it; categorical
    parameters have no interpolation error.

    Args:
        grid: the grid.
        axis: the parameter to interpolate along.
        max_nodes: evaluate at most this many interior nodes (a seeded random subset).
        seed: seed of that subset.
        metric: "weighted" or "mean" (see :func:`node_error`).

    Returns:
        ``{"axis", "n_nodes", "median", "p95", "max", "worst": label, "rows": array,
        "errors": array}`` (``rows`` and ``errors`` per evaluated node).

    Example:
        >>> import tempfile, pathlib
        >>> from atmospec.grids import ModelGrid
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "loo.h5"
        >>> with ModelGrid.create(path, [1.0, 2.0], ("teff",), name="loo") as w:
        ...     for t, f in ((1000.0, 1.0), (1500.0, 2.5), (2000.0, 4.0)):
        ...         w.add({"teff": t}, [f, f], label=f"t{t:.0f}")
        >>> res = leave_one_out(ModelGrid(path), "teff")  # predicts 2.0 = sqrt(1 * 4)
        >>> res["n_nodes"], res["worst"], round(res["max"], 3)  # |2.0 - 2.5| / 2.5
        (1, 't1500', 0.2)
    """
    if axis not in grid.param_names:
        raise KeyError(f"{grid.name} has no parameter {axis!r}; it has {grid.param_names}")
    if axis in grid.categorical:
        raise ValueError(f"{axis} is categorical in {grid.name}: it is never interpolated")
    tied = _tied(grid)
    if axis in tied:
        raise ValueError(f"{axis} is tied to {tied[axis]} in {grid.name}: it follows that axis")
    j = grid.param_names.index(axis)
    group_cols = [k for k, p in enumerate(grid.param_names) if k != j and tied.get(p) != axis]
    values = grid._values
    keys = [tuple(r) for r in values[:, group_cols]]
    lines: dict[tuple[float, ...], list[int]] = defaultdict(list)
    for row, key in enumerate(keys):
        lines[key].append(row)
    triples: list[tuple[int, int, int]] = []
    for rows in lines.values():
        if len(rows) < 3:
            continue
        order = sorted(rows, key=lambda r: values[r, j])
        triples.extend(zip(order[:-2], order[1:-1], order[2:], strict=True))
    if max_nodes is not None and len(triples) > max_nodes:
        pick = np.random.default_rng(seed).choice(len(triples), size=max_nodes, replace=False)
        triples = [triples[i] for i in np.sort(pick)]
    errors = np.empty(len(triples))
    mids = np.array([m for _, m, _ in triples], dtype=np.intp)
    for start in range(0, len(triples), 256):
        block = triples[start : start + 256]
        need = np.unique(np.array(block).ravel())
        flux = dict(zip(need.tolist(), np.log(grid.flux(need)), strict=True))
        for k, (a, m, b) in enumerate(block, start=start):
            t = (values[m, j] - values[a, j]) / (values[b, j] - values[a, j])
            pred = np.exp((1 - t) * flux[a] + t * flux[b])
            errors[k] = node_error(pred, np.exp(flux[m]), metric)
    if not len(errors):
        return {
            "axis": axis,
            "n_nodes": 0,
            "median": None,
            "p95": None,
            "max": None,
            "worst": None,
            "rows": mids,
            "errors": errors,
        }
    worst = int(np.argmax(errors))
    return {
        "axis": axis,
        "n_nodes": int(errors.size),
        "median": float(np.median(errors)),
        "p95": float(np.percentile(errors, 95)),
        "max": float(errors[worst]),
        "worst": grid.labels[int(mids[worst])],
        "rows": mids,
        "errors": errors,
    }


def check_grid(
    grid: ModelGrid,
    *,
    decimals: int = 3,
    max_nodes: int | None = None,
    seed: int = 0,
    metric: str = "weighted",
) -> dict[str, Any]:
    """The report of ``atmospec grid check``: duplicates and leave-one-node-out errors per axis.

    Returns a JSON-ready dict: ``grid``, ``n_spectra``, ``duplicates`` (see
    :func:`find_duplicates`), ``leave_one_out`` (per parameter: ``n_nodes``, ``median``,
    ``p95``, ``max`` fractional flux error and the ``worst`` node's label; or a ``skipped``
    reason for categorical and tied parameters and axes without interior nodes).

    Example:
        >>> import tempfile, pathlib
        >>> from atmospec.grids import ModelGrid
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "toy.h5"
        >>> with ModelGrid.create(path, [1.0, 2.0], ("teff", "logg"), name="toy") as w:
        ...     for t in (1000.0, 1500.0, 2000.0):
        ...         for g in (4.0, 5.0):
        ...             w.add({"teff": t, "logg": g}, [t, t * t * g], label=f"t{t:.0f}g{g:.0f}")
        >>> rep = check_grid(ModelGrid(path))
        >>> rep["n_spectra"], rep["duplicates"]["n_groups"], rep["leave_one_out"]["logg"]
        (6, 0, {'skipped': 'no interior nodes along this axis'})
        >>> teff = rep["leave_one_out"]["teff"]
        >>> teff["n_nodes"], round(teff["max"], 4), teff["worst"]
        (2, 0.1111, 't1500g5')
    """
    tied = _tied(grid)
    loo: dict[str, Any] = {}
    for p in grid.param_names:
        if p in grid.categorical:
            loo[p] = {"skipped": "categorical: never interpolated"}
        elif p in tied:
            loo[p] = {"skipped": f"tied to {tied[p]}: follows that axis"}
        else:
            res = leave_one_out(grid, p, max_nodes=max_nodes, seed=seed, metric=metric)
            res.pop("rows")
            res.pop("errors")
            res.pop("axis")
            if res["n_nodes"] == 0:
                res = {"skipped": "no interior nodes along this axis"}
            loo[p] = res
    dups = find_duplicates(grid, decimals=decimals)
    return {
        "grid": grid.name,
        "n_spectra": len(grid),
        "regular": grid.regular,
        "duplicates": {
            "n_groups": len(dups),
            "n_exact": sum(g["kind"] == "exact" for g in dups),
            "n_near": sum(g["kind"] == "near" for g in dups),
            "decimals": decimals,
            "groups": dups,
        },
        "leave_one_out": loo,
        "error_metric": metric,
        "error_definition": (
            "per interior node: the node predicted from its two neighbours along the axis "
            "(linear in log flux) and compared with the true spectrum; "
            + (
                "sum|predicted - true| / sum(true)"
                if metric == "weighted"
                else "mean over pixels of |predicted/true - 1|"
            )
        ),
    }
