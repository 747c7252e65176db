"""The cells of a (possibly sparse) grid, and the parameters an estimator learns from it."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray

if TYPE_CHECKING:
    from atmospec.grids import ModelGrid

__all__ = ["Lattice", "target_params"]


def target_params(grid: ModelGrid) -> tuple[str, ...]:
    """Grid parameters an estimator learns: all except those tied to another one (BT-Settl
    alpha follows [M/H]) and those with a single value.

    Example:
        >>> import tempfile, pathlib
        >>> from atmospec.grids import ModelGrid
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "toy.h5"
        >>> with ModelGrid.create(path, [1.0, 2.0], ("teff", "logg", "kzz"), name="toy") as w:
        ...     for t in (1000.0, 2000.0):
        ...         for g in (4.0, 5.0):
        ...             w.add({"teff": t, "logg": g, "kzz": 2.0}, [t, t * g])
        >>> target_params(ModelGrid(path))  # kzz has a single value
        ('teff', 'logg')
    """
    return tuple(p for p in grid.param_names if p not in _tied(grid) and grid.axes[p].size > 1)


def _tied(grid: ModelGrid) -> set[str]:
    params = grid.params
    tied = set()
    for a in grid.param_names:
        for b in grid.param_names:
            if a != b and b not in tied and params[a].nunique() > 1:
                if (params.groupby(b)[a].nunique() <= 1).all() and params[b].nunique() >= params[
                    a
                ].nunique():
                    tied.add(a)
                    break
    return tied


class Lattice:
    """The cells of a (possibly sparse) grid for off-node sampling.

    A cell spans adjacent axis values of each continuous parameter and one value of each
    categorical parameter; it is usable when all its corners exist. The lattice is built on
    ``rows`` only (default all): with held-out parameter slices removed, training cells span
    the gap, so held-out nodes never contribute to training spectra. ``cells(allowed, mode)``
    lists the cells whose corners are all allowed (``"inside"``) or that touch an allowed node
    (``"touching"``, used for points around held-out test nodes).

    Example:
        >>> import tempfile, pathlib
        >>> from atmospec.grids import ModelGrid
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "toy.h5"
        >>> with ModelGrid.create(path, [1.0, 2.0], ("teff", "logg"), name="toy") as w:
        ...     for t in (1000.0, 1500.0, 2000.0):
        ...         for g in (4.0, 5.0):
        ...             w.add({"teff": t, "logg": g}, [t, t * g])
        >>> grid = ModelGrid(path)
        >>> Lattice(grid).cells(range(6)).tolist()
        [[0, 1, 2, 3], [2, 3, 4, 5]]
        >>> Lattice(grid, rows=[0, 1, 4, 5]).cells(range(6)).tolist()  # Teff 1500 held out
        [[0, 1, 4, 5]]
        >>> lat = Lattice(grid)
        >>> rng = np.random.default_rng(0)
        >>> corners, w, values, _ = lat.sample(lat.cells(range(6)), 2, rng)
        >>> corners.tolist(), w.sum(axis=1).round(6).tolist(), values.round(1).tolist()
        ([[2, 3, 4, 5], [2, 3, 4, 5]], [1.0, 1.0], [[1634.9, 4.0], [1508.3, 4.8]])
    """

    def __init__(self, grid: ModelGrid, rows: ArrayLike | None = None) -> None:
        self.names = target_params(grid)
        cat = set(getattr(grid, "categorical", ()) or ())
        self.continuous = tuple(p for p in self.names if p not in cat)
        self.categorical = tuple(p for p in self.names if p in cat)
        self.values = grid.params[list(grid.param_names)].to_numpy(dtype=np.float64)
        self.col = {p: grid.param_names.index(p) for p in grid.param_names}
        members = (
            np.arange(len(grid)) if rows is None else np.unique(np.asarray(rows, dtype=np.int64))
        )
        sub = self.values[members]
        # Axes from the member rows only: with held-out slices, cells span the gap.
        self.axes = {p: np.unique(sub[:, self.col[p]]) for p in self.names}
        idx = np.stack(
            [np.searchsorted(self.axes[p], sub[:, self.col[p]]) for p in self.names], axis=1
        )
        self.lookup = {tuple(r): int(m) for m, r in zip(members, idx.tolist(), strict=True)}

    def cells(self, allowed: ArrayLike, mode: str = "inside") -> NDArray[np.int64]:
        """(n_cells, 2**k) corner rows of usable cells (k = number of continuous parameters)."""
        ok = np.zeros(self.values.shape[0], dtype=bool)
        ok[np.asarray(allowed, dtype=np.int64)] = True
        ranges = [
            range(self.axes[p].size - 1) if p in self.continuous else range(self.axes[p].size)
            for p in self.names
        ]
        k = len(self.continuous)
        offsets = list(itertools.product((0, 1), repeat=k))
        out = []
        cont = [p in self.continuous for p in self.names]
        for base in itertools.product(*ranges):
            rows = []
            for off in offsets:
                it = iter(off)
                key = tuple(b + (next(it) if c else 0) for b, c in zip(base, cont, strict=True))
                r = self.lookup.get(key)
                if r is None:
                    break
                rows.append(r)
            else:
                good = ok[rows]
                if good.all() if mode == "inside" else good.any():
                    out.append(rows)
        return np.array(out, dtype=np.int64).reshape(-1, 2**k)

    def sample(
        self, cells: NDArray[np.int64], n: int, rng: np.random.Generator
    ) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
        """Draw n points uniformly inside random cells.

        Returns ``(corner_rows (n, 2**k), weights (n, 2**k), values (n, n_all_params), cell_id)``;
        the values of every grid parameter (tied ones too) are interpolated with the weights.
        """
        which = rng.integers(0, cells.shape[0], n)
        corners = cells[which]
        k = len(self.continuous)
        u = rng.uniform(0, 1, (n, k))
        offsets = np.array(list(itertools.product((0, 1), repeat=k)), dtype=float).reshape(-1, k)
        w = np.prod(np.where(offsets[None] == 1, u[:, None, :], 1 - u[:, None, :]), axis=2)
        values = np.einsum("nc,ncp->np", w, self.values[corners])
        return corners, w, values, which
