"""Splits: grid-aware (held-out nodes or parameter slices) and random, duplicates kept together."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

if TYPE_CHECKING:
    from atmospec.grids import ModelGrid

__all__ = ["NodeSplit", "grid_aware_split", "default_slices", "random_split", "duplicate_groups"]


@dataclass
class NodeSplit:
    """Grid rows (node indices) of the training, validation and test parts.

    Off-node training samples are drawn only from cells whose corners are all training nodes,
    so a held-out node never contributes to any training spectrum.

    Example:
        >>> s = NodeSplit(np.array([0, 1]), np.array([2]), np.array([3]), "demo")
        >>> s.sizes()
        {'train': 2, 'val': 1, 'test': 1}
    """

    train: NDArray[np.int64]
    val: NDArray[np.int64]
    test: NDArray[np.int64]
    description: str = ""
    duplicates: list[list[int]] = field(default_factory=list)

    def sizes(self) -> dict[str, int]:
        return {
            "train": int(self.train.size),
            "val": int(self.val.size),
            "test": int(self.test.size),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "train": self.train.tolist(),
            "val": self.val.tolist(),
            "test": self.test.tolist(),
            "description": self.description,
            "duplicates": self.duplicates,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NodeSplit:
        return cls(
            np.asarray(d["train"], dtype=np.int64),
            np.asarray(d["val"], dtype=np.int64),
            np.asarray(d["test"], dtype=np.int64),
            str(d.get("description", "")),
            [list(map(int, g)) for g in d.get("duplicates", [])],
        )


def duplicate_groups(grid: ModelGrid) -> list[list[int]]:
    """Groups of grid rows holding identical (or near-identical) spectra under different labels.

    Uses :func:`atmospec.grids.check.find_duplicates` (exact and 0.1 %-shape hashes).

    Example:
        >>> import tempfile, pathlib
        >>> from atmospec.grids import ModelGrid
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "dup.h5"
        >>> with ModelGrid.create(path, [1.0, 2.0], ("teff",), name="dup") as w:
        ...     for t, f in ((1000.0, [1.0, 2.0]), (1100.0, [3.0, 1.0]), (1200.0, [1.0, 2.0])):
        ...         w.add({"teff": t}, f)
        ...     w.add({"teff": 1300.0}, [2.0, 4.0])  # the same shape, twice the flux
        >>> duplicate_groups(ModelGrid(path))  # the exact group, then the same-shape one
        [[0, 2], [0, 2, 3]]
    """
    from atmospec.grids.check import find_duplicates

    return [list(map(int, g["rows"])) for g in find_duplicates(grid)]


def _component_labels(n: int, groups: Sequence[Sequence[int]]) -> NDArray[np.int64]:
    """Label each of n items with its duplicate component (union-find over the groups)."""
    parent = np.arange(n)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = int(parent[i])
        return i

    for g in groups:
        root = find(int(g[0]))
        for j in g[1:]:
            parent[find(int(j))] = root
    return np.array([find(i) for i in range(n)], dtype=np.int64)


def default_slices(
    grid: ModelGrid, param: str = "teff", rows: ArrayLike | None = None
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Interior slices of ``param`` for (test, validation): every 4th value from the 4th
    (test) and every 4th from the 6th (validation); ends stay in training.

    Example:
        >>> class G:  # a stand-in with the 16 Teff values of Sonora Diamondback
        ...     import pandas as pd
        ...     params = pd.DataFrame({"teff": np.arange(900.0, 2401.0, 100.0)})
        >>> default_slices(G())
        ({'teff': [1200.0, 1600.0, 2000.0]}, {'teff': [1400.0, 1800.0, 2200.0]})
    """
    values = grid.params[param].to_numpy()
    if rows is not None:
        values = values[np.asarray(rows, dtype=np.int64)]
    axis = np.unique(values)
    inner = axis[1:-1]
    test = [float(v) for v in inner[2::4]]
    val = [float(v) for v in inner[4::4] if v not in test]
    if not test:
        raise ValueError(f"{param} has too few values ({axis.size}) to hold out interior slices")
    return {param: test}, {param: val}


def grid_aware_split(
    grid: ModelGrid,
    *,
    mode: str = "slices",
    hold_out: Mapping[str, Sequence[float]] | None = None,
    val_hold_out: Mapping[str, Sequence[float]] | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.15,
    keep_edges: bool = True,
    seed: int = 0,
    duplicates: Sequence[Sequence[int]] | None = None,
    rows: ArrayLike | None = None,
) -> NodeSplit:
    """Split a grid by nodes: whole parameter slices (default) or whole nodes are held out.

    Args:
        grid: the model grid.
        mode: ``"slices"``: every node on the ``hold_out`` slices (default: interior Teff
            slices from :func:`default_slices`) is a test node, every node on ``val_hold_out``
            a validation node (a node matching any listed value of any parameter is held
            out). ``"nodes"``: random interior nodes (``test_fraction``, ``val_fraction``);
            note that off-node training samples then need cells whose corners all stayed in
            training, which a dense 4-D grid rarely keeps.
        hold_out: test parameter slices, e.g. ``{"teff": [1500]}``.
        val_hold_out: validation parameter slices.
        val_fraction: validation node fraction for ``mode="nodes"``.
        test_fraction: test node fraction for ``mode="nodes"``.
        keep_edges: in ``"nodes"`` mode, boundary nodes stay in training (interpolation
            problems, not extrapolation).
        seed: seed of the random choice (``"nodes"`` mode).
        duplicates: groups of rows holding identical spectra (default: detected with
            :func:`duplicate_groups`); a whole group lands in the part of its first held-out
            member, so identical spectra never straddle parts.
        rows: restrict the split to these grid rows (e.g. a parameter sub-range).

    Example:
        >>> from atmospec.grids import load_grid  # doctest: +SKIP
        >>> grid_aware_split(load_grid("dback24")).description  # doctest: +SKIP
        "grid-aware slices: test {'teff': [1200.0, 1600.0, 2000.0]}, val {'teff': [1400.0, ...]}"
    """
    if mode not in ("slices", "nodes"):
        raise ValueError(f"mode must be 'slices' or 'nodes', not {mode!r}")
    n = len(grid)
    allowed = np.arange(n) if rows is None else np.unique(np.asarray(rows, dtype=np.int64))
    in_allowed = np.zeros(n, dtype=bool)
    in_allowed[allowed] = True
    dup = duplicate_groups(grid) if duplicates is None else [list(g) for g in duplicates]
    comp = _component_labels(n, dup)
    params = grid.params
    if mode == "slices":
        if hold_out is None:
            hold_out, default_val = default_slices(grid, "teff", allowed)
            if val_hold_out is None:
                val_hold_out = default_val
        test_sel = _on_slices(grid, hold_out, "hold_out", in_allowed)
        val_sel = (
            (
                _on_slices(grid, val_hold_out, "val_hold_out", in_allowed)
                if val_hold_out
                else np.zeros(n, dtype=bool)
            )
            & in_allowed
            & ~test_sel
        )
        if not test_sel.any():
            raise ValueError(f"hold_out {dict(hold_out)} selects no grid node")
        desc = f"grid-aware slices: test {dict(hold_out)}, val {dict(val_hold_out or {})}"
    else:
        rng = np.random.default_rng(seed)
        edge = np.zeros(n, dtype=bool)
        if keep_edges:
            sub = params.iloc[allowed]
            for p in grid.param_names:
                v = params[p].to_numpy()
                edge |= (v == sub[p].min()) | (v == sub[p].max())
        pinned = set(np.unique(comp[edge & in_allowed]).tolist())
        free = np.array([c for c in np.unique(comp[allowed]) if c not in pinned], dtype=np.int64)
        rng.shuffle(free)
        sizes = np.bincount(comp, minlength=n)
        test_c: list[int] = []
        val_c: list[int] = []
        count_t = count_v = 0
        for c in free:
            if count_t < test_fraction * allowed.size:
                test_c.append(int(c))
                count_t += int(sizes[c])
            elif count_v < val_fraction * allowed.size:
                val_c.append(int(c))
                count_v += int(sizes[c])
        test_sel = np.isin(comp, test_c) & in_allowed
        val_sel = np.isin(comp, val_c) & in_allowed
        desc = (
            f"grid-aware nodes: {test_fraction:.0%} test, {val_fraction:.0%} validation "
            f"interior nodes (seed {seed})"
        )
    # Duplicates follow their held-out members: test wins over validation over training.
    test_sel = np.isin(comp, np.unique(comp[test_sel])) & in_allowed
    val_sel = np.isin(comp, np.unique(comp[val_sel])) & in_allowed & ~test_sel
    train_sel = in_allowed & ~test_sel & ~val_sel
    return NodeSplit(
        np.flatnonzero(train_sel),
        np.flatnonzero(val_sel),
        np.flatnonzero(test_sel),
        desc,
        [g for g in dup if any(in_allowed[g])],
    )


def _on_slices(
    grid: ModelGrid,
    slices: Mapping[str, Sequence[float]],
    what: str,
    allowed: NDArray[np.bool_],
) -> NDArray[np.bool_]:
    """Rows on the listed slices, among the ``allowed`` rows; a listed value that is no
    node there is refused (a typo would otherwise shrink or empty a part silently)."""
    sel = np.zeros(len(grid), dtype=bool)
    for p, values in slices.items():
        if p not in grid.param_names:
            raise ValueError(f"{what}: unknown parameter {p!r} (grid has {grid.param_names})")
        col = grid.params[p].to_numpy()
        for v in np.atleast_1d(np.asarray(values, dtype=float)):
            on = np.isclose(col, v, rtol=1e-9, atol=1e-12) & allowed
            if not on.any():
                axis = np.unique(col[allowed]).tolist()
                raise ValueError(
                    f"{what}: {p} = {v:g} is not a node of grid {grid.name} (its {p} values "
                    f"{'in the allowed rows ' if not allowed.all() else ''}are {axis})"
                )
            sel |= on
    return sel


def random_split(
    n: int,
    *,
    val_fraction: float = 0.1,
    test_fraction: float = 0.15,
    groups: ArrayLike | None = None,
    seed: int = 0,
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Random split of ``n`` samples into train / val / test indices.

    With ``groups`` (one label per sample, e.g. the grid node or duplicate group a sample came
    from), whole groups are assigned together, so copies of one spectrum never straddle parts.
    A random split of a regular grid is optimistic (test spectra have near-twins in training);
    use :func:`grid_aware_split` for honest evaluation.

    Example:
        >>> tr, va, te = random_split(10, groups=[0, 0, 1, 1, 2, 2, 3, 3, 4, 4], seed=0,
        ...                           val_fraction=0.2, test_fraction=0.2)
        >>> sorted(np.concatenate([tr, va, te]).tolist()) == list(range(10))
        True
        >>> all(len({g // 2 for g in part}) * 2 == len(part) for part in (tr, va, te))
        True
    """
    rng = np.random.default_rng(seed)
    labels = np.arange(n) if groups is None else np.asarray(groups)
    if labels.shape != (n,):
        raise ValueError(f"groups must have {n} labels, found {labels.shape}")
    uniq = np.unique(labels)
    rng.shuffle(uniq)
    counts = {u: c for u, c in zip(*np.unique(labels, return_counts=True), strict=True)}
    test_g, val_g, acc = [], [], 0
    for u in uniq:
        if acc < test_fraction * n:
            test_g.append(u)
        elif acc < (test_fraction + val_fraction) * n:
            val_g.append(u)
        else:
            break
        acc += counts[u]
    te = np.flatnonzero(np.isin(labels, test_g))
    va = np.flatnonzero(np.isin(labels, val_g))
    tr = np.flatnonzero(~np.isin(labels, test_g + val_g))
    return tr, va, te
