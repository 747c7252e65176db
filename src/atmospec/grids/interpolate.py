"""Interpolation weights on model-grid nodes: multilinear on regular axes, Delaunay if sparse."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

__all__ = ["RegularWeights", "SparseWeights", "combine_log"]

IntArray = NDArray[np.intp]
FloatArray = NDArray[np.float64]


class RegularWeights:
    """Multilinear interpolation weights on a complete rectangular grid.

    For a point inside the box, the 2^d corner nodes of the enclosing cell receive the product
    of the 1-D linear weights along each axis; axes may be unevenly spaced. Points exactly on a
    node get weight 1 on that node (and zero elsewhere), so nodes are reproduced exactly.

    Args:
        axes: sorted unique values of each of the d axes.
        lattice: integer array of shape ``[len(a) for a in axes]`` giving the grid row of
            each node.

    Example:
        >>> import numpy as np
        >>> w = RegularWeights([np.array([0.0, 1.0])], np.array([7, 9]))
        >>> rows, weights = w(np.array([[0.25]]))
        >>> rows.tolist(), weights.tolist()
        ([[7, 9]], [[0.75, 0.25]])
    """

    def __init__(self, axes: Sequence[FloatArray], lattice: IntArray) -> None:
        self.axes = [np.asarray(a, dtype=np.float64) for a in axes]
        self.lattice = np.asarray(lattice)
        d = len(self.axes)
        # corner offsets: (2^d, d) of 0/1
        self._corners = ((np.arange(2**d)[:, None] >> np.arange(d)[None, :]) & 1).astype(np.intp)

    def __call__(self, points: FloatArray) -> tuple[IntArray, FloatArray]:
        """Rows (n, 2^d) and weights (n, 2^d) for points (n, d) already checked to be inside."""
        n, d = points.shape
        lo = np.empty((n, d), dtype=np.intp)
        t = np.empty((n, d), dtype=np.float64)
        for j, axis in enumerate(self.axes):
            if axis.size == 1:
                lo[:, j] = 0
                t[:, j] = 0.0
                continue
            i = np.clip(np.searchsorted(axis, points[:, j], side="right") - 1, 0, axis.size - 2)
            lo[:, j] = i
            t[:, j] = np.clip((points[:, j] - axis[i]) / (axis[i + 1] - axis[i]), 0.0, 1.0)
        idx = lo[:, None, :] + self._corners[None, :, :]  # (n, 2^d, d)
        sizes = np.array([a.size for a in self.axes])
        idx = np.minimum(idx, sizes - 1)
        weights = np.prod(
            np.where(self._corners[None, :, :] == 1, t[:, None, :], 1.0 - t[:, None, :]), axis=2
        )
        rows = self.lattice[tuple(idx[..., j] for j in range(d))]
        return rows, weights


class SparseWeights:
    """Linear barycentric interpolation over a Delaunay triangulation of the populated nodes.

    The parameters are first scaled by the median spacing of each axis (so a regular step in
    every parameter becomes 1), then triangulated with Qhull. A point is interpolated from the
    d+1 vertices of the simplex that contains it; a point outside the convex hull of the
    populated nodes is not interpolated (``inside`` returns False).

    Args:
        coords: (n_nodes, d) parameter values of the populated nodes.
        rows: the grid row of each node.

    Example:
        >>> import numpy as np
        >>> pts = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
        >>> w = SparseWeights(pts, np.array([0, 1, 2]))
        >>> rows, weights = w(np.array([[0.25, 0.25]]))
        >>> sorted(zip(rows[0].tolist(), weights[0].round(3).tolist()))
        [(0, 0.5), (1, 0.25), (2, 0.25)]
    """

    def __init__(self, coords: FloatArray, rows: IntArray) -> None:
        from scipy.spatial import Delaunay

        coords = np.asarray(coords, dtype=np.float64)
        self.rows = np.asarray(rows, dtype=np.intp)
        self.scale = np.array([_median_step(coords[:, j]) for j in range(coords.shape[1])])
        self.offset = coords.min(axis=0)
        self.coords = (coords - self.offset) / self.scale
        self.tri = Delaunay(self.coords)

    def _normalise(self, points: FloatArray) -> FloatArray:
        return (np.asarray(points, dtype=np.float64) - self.offset) / self.scale

    def simplex(self, points: FloatArray) -> IntArray:
        """Index of the simplex containing each point, -1 outside the hull."""
        return np.asarray(self.tri.find_simplex(self._normalise(points), tol=1e-9), dtype=np.intp)

    def inside(self, points: FloatArray) -> NDArray[np.bool_]:
        return self.simplex(points) >= 0

    def __call__(self, points: FloatArray) -> tuple[IntArray, FloatArray]:
        """Rows (n, d+1) and weights (n, d+1) for points (n, d) inside the hull."""
        x = self._normalise(points)
        s = np.asarray(self.tri.find_simplex(x, tol=1e-9), dtype=np.intp)
        if (s < 0).any():
            raise ValueError("points outside the hull; check with inside() first")
        d = x.shape[1]
        transform = self.tri.transform[s]  # (n, d+1, d)
        b = np.einsum("nij,nj->ni", transform[:, :d, :], x - transform[:, d, :])
        weights = np.concatenate([b, 1.0 - b.sum(axis=1, keepdims=True)], axis=1)
        weights = np.clip(weights, 0.0, None)
        weights /= weights.sum(axis=1, keepdims=True)
        rows = self.rows[self.tri.simplices[s]]
        return rows, weights


def _median_step(values: FloatArray) -> float:
    u = np.unique(values)
    if u.size < 2:
        return 1.0
    return float(np.median(np.diff(u)))


def combine_log(
    rows: IntArray,
    weights: FloatArray,
    read: Callable[[IntArray], FloatArray],
    *,
    max_rows: int = 4096,
) -> FloatArray:
    """exp(sum_k w_k log F[row_k]) for each point, reading only the rows with non-zero weight.

    Args:
        rows: (n, k) grid rows per point.
        weights: (n, k) weights per point, summing to 1.
        read: returns the flux (m, n_wave) of sorted unique rows (m,).
        max_rows: largest number of distinct spectra read at once (memory bound).

    Returns:
        (n, n_wave) interpolated flux.

    Example:
        >>> import numpy as np
        >>> flux = np.array([[1.0, 2.0], [4.0, 8.0], [9.0, 9.0]])
        >>> rows = np.array([[0, 1], [1, 2]])
        >>> weights = np.array([[0.5, 0.5], [1.0, 0.0]])  # row 2 has weight 0: never read
        >>> combine_log(rows, weights, lambda need: flux[need]).round(3).tolist()
        [[2.0, 4.0], [4.0, 8.0]]
    """
    n = rows.shape[0]
    out: FloatArray | None = None
    start = 0
    while start < n:
        # a block of points whose corners (k per point) are at most max_rows spectra
        stop = min(n, start + max(1, max_rows // max(1, rows.shape[1])))
        r, w = rows[start:stop], weights[start:stop]
        used = w > 0
        need, inverse = np.unique(r[used], return_inverse=True)
        logf = np.log(read(need))
        if out is None:
            out = np.empty((n, logf.shape[1]), dtype=np.float64)
        pos = np.zeros(r.shape, dtype=np.intp)
        pos[used] = inverse
        acc = np.zeros((r.shape[0], logf.shape[1]), dtype=np.float64)
        for k in range(r.shape[1]):
            wk = np.where(used[:, k], w[:, k], 0.0)
            acc += wk[:, None] * logf[pos[:, k]]
        out[start:stop] = np.exp(acc)
        start = stop
    assert out is not None
    return out
