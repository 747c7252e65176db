"""Grid-node likelihoods under noise + model discrepancy, and intervals from the node posterior."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from numpy.typing import NDArray

if TYPE_CHECKING:
    from atmospec.discrepancy.model import DiscrepancyModel

__all__ = ["scan_nodes", "node_weights", "node_samples", "node_intervals"]

FloatArray = NDArray[np.float64]


class _Batch:
    """Woodbury pieces for rows g: ``C_g = diag(d_g) + diag(m_g) F F^T diag(m_g)``."""

    def __init__(self, diag: FloatArray, mm: FloatArray, fac: FloatArray, pairs: FloatArray):
        self.diag, self.mm, self.fac = diag, mm, fac
        r = fac.shape[1]
        k = np.eye(r)[None] + ((mm * mm / diag) @ pairs).reshape(-1, r, r)
        self.k = k
        self.k_inv = np.linalg.inv(k)

    def quad(self, x: FloatArray, y: FloatArray) -> FloatArray:
        """``x_g^T C_g^-1 y_g`` for every row g."""
        ax = (self.mm * x / self.diag) @ self.fac
        ay = (self.mm * y / self.diag) @ self.fac
        corr = np.einsum("gr,grs,gs->g", ax, self.k_inv, ay)
        return np.einsum("gn,gn->g", x / self.diag, y) - corr

    def logdet(self) -> FloatArray:
        return np.sum(np.log(self.diag), axis=1) + np.linalg.slogdet(self.k)[1]


def scan_nodes(
    models: FloatArray,
    data: FloatArray,
    sigma: FloatArray,
    teff: FloatArray,
    discrepancy: DiscrepancyModel,
    wavelength: FloatArray,
    *,
    n_iter: int = 2,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Chi-square, log det C and flux scale of every node under noise + discrepancy.

    For node i with unscaled model ``m_i`` the covariance is built from the scaled model
    ``s_i m_i``; the scale is solved by generalised least squares with that covariance,
    starting from the ordinary least-squares scale and repeated ``n_iter`` times.
    ``-2 log L_i = chi2_i + logdet_i`` (+ a constant) ranks nodes; the log-determinant matters
    because the covariance changes from node to node.

    Example:
        >>> import numpy as np
        >>> from atmospec.discrepancy.model import DiscrepancyModel
        >>> w = np.linspace(1, 2, 4)
        >>> d = DiscrepancyModel(w, [1000.0], np.full((1, 4), 0.1), np.zeros((1, 1, 4)), "toy")
        >>> m = np.ones((1, 4))
        >>> chi2, ld, s = scan_nodes(m, 2 * m[0], np.full(4, 0.1), np.array([1000.0]), d, w)
        >>> round(float(s[0]), 6), round(float(chi2[0]), 6)
        (2.0, 0.0)
    """
    models = np.atleast_2d(np.asarray(models, dtype=np.float64))
    n_nodes = models.shape[0]
    noise = np.asarray(sigma, dtype=np.float64) ** 2
    w0 = 1.0 / noise
    scale = (models @ (data * w0)) / ((models * models) @ w0)
    chi2 = np.empty(n_nodes)
    logdet = np.empty(n_nodes)
    for t in np.unique(teff):
        idx = np.flatnonzero(teff == t)
        var, fac = discrepancy.fractional(float(t), wavelength)
        pairs = (fac[:, :, None] * fac[:, None, :]).reshape(fac.shape[0], -1)
        m = models[idx]
        s = scale[idx]
        dd = np.broadcast_to(data, m.shape)
        # reference(s m) = |s| reference(m): the median is taken once, not per iteration
        ref = discrepancy.reference(m)
        for _ in range(max(n_iter, 1)):
            mm = np.abs(s)[:, None] * ref
            batch = _Batch(noise[None, :] + var[None, :] * mm**2, mm, fac, pairs)
            s = batch.quad(m, dd) / batch.quad(m, m)
        mm = np.abs(s)[:, None] * ref
        batch = _Batch(noise[None, :] + var[None, :] * mm**2, mm, fac, pairs)
        r = data[None, :] - s[:, None] * m
        chi2[idx] = batch.quad(r, r)
        logdet[idx] = batch.logdet()
        scale[idx] = s
    return chi2, logdet, scale


def node_weights(neg2_loglike: FloatArray) -> FloatArray:
    """Normalised posterior weights of grid nodes from ``-2 log L`` (flat prior over nodes).

    Example:
        >>> node_weights(np.array([0.0, 2 * np.log(3.0)])).round(3).tolist()
        [0.75, 0.25]
    """
    x = -0.5 * (np.asarray(neg2_loglike, dtype=np.float64))
    x -= np.max(x)
    w = np.exp(x)
    return w / w.sum()


def _cell_edges(axis: FloatArray, values: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Lower and upper edge of each value's grid cell (half-way to its axis neighbours)."""
    axis = np.unique(axis)
    if axis.size == 1:
        return values.copy(), values.copy()
    mids = 0.5 * (axis[1:] + axis[:-1])
    lo_edges = np.concatenate([[axis[0]], mids])
    hi_edges = np.concatenate([mids, [axis[-1]]])
    j = np.searchsorted(axis, values)
    return lo_edges[j], hi_edges[j]


def node_samples(
    params: pd.DataFrame,
    weights: FloatArray,
    names: Sequence[str],
    *,
    n: int = 4000,
    seed: int = 0,
) -> pd.DataFrame:
    """Equal-weight samples of the node posterior, each spread uniformly over its grid cell.

    A node stands for the cell of parameter space nearer to it than to its neighbours, so a
    posterior on a grid with 100 K steps cannot be narrower than that cell; at the grid's
    edge the cell stops at the edge (a posterior piled there shows it).

    Example:
        >>> p = pd.DataFrame({"teff": [900.0, 1000.0, 1100.0]})
        >>> s = node_samples(p, np.array([0.0, 1.0, 0.0]), ["teff"], n=1000)
        >>> bool(s.teff.between(950, 1050).all())
        True
    """
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(params), size=n, p=np.asarray(weights, dtype=np.float64))
    out = {}
    for p in names:
        col = params[p].to_numpy(dtype=np.float64)
        lo, hi = _cell_edges(col, col[pick])
        out[p] = lo + rng.random(n) * (hi - lo)
    return pd.DataFrame(out)


def node_intervals(
    params: pd.DataFrame,
    weights: FloatArray,
    names: Sequence[str],
    *,
    n: int = 4000,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Median and 68 / 95 % central intervals per parameter from :func:`node_samples`.

    Example:
        >>> p = pd.DataFrame({"teff": [900.0, 1000.0, 1100.0]})
        >>> iv = node_intervals(p, np.array([0.0, 1.0, 0.0]), ["teff"])  # one node: its cell
        >>> {k: round(v) for k, v in iv["teff"].items()}
        {'p2.5': 953, 'p16': 965, 'median': 1001, 'p84': 1034, 'p97.5': 1048}
    """
    s = node_samples(params, weights, names, n=n, seed=seed)
    out = {}
    for p in names:
        q = np.percentile(s[p].to_numpy(), [2.5, 16, 50, 84, 97.5])
        out[p] = dict(zip(("p2.5", "p16", "median", "p84", "p97.5"), map(float, q), strict=True))
    return out
