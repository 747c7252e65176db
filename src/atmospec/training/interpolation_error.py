"""Grid interpolation error: how far true model spectra depart from interpolation between nodes.

Off-node training spectra are log-flux multilinear interpolations inside a grid cell. A real
atmosphere between two nodes differs from that interpolation by roughly the grid's local
curvature, and that difference is largest where the spectra change fastest (the L/T transition
in Teff). An estimator trained only on exact interpolations is over-confident there: it has never
seen a spectrum that is not one.

The leave-one-node-out residual measures the curvature with the allowed (training) nodes only:
for node ``i`` and continuous axis ``k``, ``r_ik = log F_i - interp_k(log F)`` where ``interp_k``
is the linear interpolation between ``i``'s two neighbours along ``k``. The builder's
``interpolation_error`` option adds ``sum_k xi_k * a * 4 u_k (1 - u_k) * r_k`` to the log flux of
each off-node sample (``u_k`` its position inside the cell along ``k``, ``r_k`` the corner-weighted
residual, ``xi_k`` standard normal, ``a`` the amplitude): zero on nodes, largest mid-cell, of the
size and spectral shape of the grid's own interpolation error. Held-out nodes never contribute.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from .lattice import Lattice

__all__ = ["node_residuals", "interpolation_perturbation"]


def node_residuals(
    lattice: Lattice, rows: NDArray[np.int64], logflux: NDArray[np.float64]
) -> NDArray[np.float32]:
    """Leave-one-node-out interpolation residuals ``(len(rows), k, n_wave)`` along each of the
    lattice's ``k`` continuous axes.

    ``rows`` are lattice member rows and ``logflux`` their log fluxes (same order). A node with
    both neighbours along an axis gets ``log F - linear interpolation of the neighbours``; a
    node at the end of an axis (or next to a missing node) takes the residual of the nearest
    interior node along that axis; an axis with no interior node gives zeros.

    Example:
        >>> import numpy as np
        >>> from types import SimpleNamespace
        >>> x = np.array([0.0, 1.0, 2.0, 4.0])  # log F = x**2 at one wavelength
        >>> lat = SimpleNamespace(continuous=("t",), names=("t",), col={"t": 0},
        ...     axes={"t": x}, values=x[:, None], lookup={(i,): i for i in range(4)})
        >>> node_residuals(lat, np.arange(4), (x**2)[:, None])[:, 0, 0].tolist()
        [-1.0, -1.0, -2.0, -2.0]
    """
    k = len(lattice.continuous)
    rows = np.asarray(rows, dtype=np.int64)
    out = np.zeros((rows.size, k, logflux.shape[1]), dtype=np.float32)
    pos = {int(r): j for j, r in enumerate(rows)}
    idx = np.stack(
        [
            np.searchsorted(lattice.axes[p], lattice.values[rows, lattice.col[p]])
            for p in lattice.names
        ],
        axis=1,
    )
    for a, p in enumerate(lattice.continuous):
        ax = lattice.names.index(p)
        vals = lattice.axes[p]
        done = np.zeros(rows.size, dtype=bool)
        for j, key in enumerate(idx.tolist()):
            i = key[ax]
            if i == 0 or i == vals.size - 1:
                continue
            lo = lattice.lookup.get((*key[:ax], i - 1, *key[ax + 1 :]))
            hi = lattice.lookup.get((*key[:ax], i + 1, *key[ax + 1 :]))
            if lo is None or hi is None or lo not in pos or hi not in pos:
                continue
            t = (vals[i] - vals[i - 1]) / (vals[i + 1] - vals[i - 1])
            interp = (1 - t) * logflux[pos[lo]] + t * logflux[pos[hi]]
            out[j, a] = logflux[j] - interp
            done[j] = True
        # Nodes without both neighbours: the nearest interior node along the same line.
        for j, key in enumerate(idx.tolist()):
            if done[j]:
                continue
            i = key[ax]
            for d in range(1, vals.size):
                near = [
                    lattice.lookup.get((*key[:ax], i + s, *key[ax + 1 :]))
                    for s in (-d, d)
                    if 0 <= i + s < vals.size
                ]
                hit = [pos[r] for r in near if r is not None and r in pos and done[pos[r]]]
                if hit:
                    out[j, a] = out[hit[0], a]
                    break
    return out


def interpolation_perturbation(
    rows: NDArray[np.int64],
    weights: NDArray[np.float64],
    corner_values: NDArray[np.float64],
    values: NDArray[np.float64],
    residuals: NDArray[np.float32],
    amplitude: float | NDArray[np.float64],
    rng: np.random.Generator,
) -> NDArray[np.float64]:
    """Log-flux perturbations ``(n, n_wave)`` of off-node samples.

    Pass off-node samples only: node samples are exact and get none (the builder's plan pads
    their corner rows with row 0 at weight 0, which would span a false cell here).

    Args:
        rows: ``(n, m)`` grid rows of each sample's cell corners.
        weights: ``(n, m)`` interpolation weights of the corners.
        corner_values: ``(n, m, k)`` continuous-parameter values of the corners.
        values: ``(n, k)`` the samples' continuous-parameter values.
        residuals: ``(n_grid_rows, k, n_wave)`` node residuals (:func:`node_residuals`).
        amplitude: scale of the perturbation (1: the size of the grid's own residuals), one
            value or one per axis ``(k,)``.
        rng: random generator (one standard-normal factor per sample and axis).

    Example:
        >>> import numpy as np
        >>> rows = np.array([[0, 1]]); w = np.array([[0.5, 0.5]])
        >>> cv = np.array([[[0.0], [2.0]]]); v = np.array([[1.0]])  # mid-cell along one axis
        >>> res = np.ones((2, 1, 3), dtype=np.float32)
        >>> d = interpolation_perturbation(rows, w, cv, v, res, 1.0, np.random.default_rng(0))
        >>> d.shape, bool(np.allclose(d, d[0, 0]))  # bump 1 x N(0, 1) x residual 1
        ((1, 3), True)
    """
    lo, hi = corner_values.min(axis=1), corner_values.max(axis=1)
    span = np.where(hi > lo, hi - lo, 1.0)
    u = np.clip((values - lo) / span, 0.0, 1.0)
    bump = 4.0 * u * (1.0 - u) * (hi > lo)  # (n, k)
    xi = rng.standard_normal(bump.shape)
    r = np.zeros((rows.shape[0], residuals.shape[1], residuals.shape[2]))
    for c in range(rows.shape[1]):  # corner by corner: (n, k, n_wave) at a time
        r += weights[:, c, None, None] * residuals[rows[:, c]]
    return np.einsum("nk,nkw->nw", np.asarray(amplitude) * xi * bump, r)
