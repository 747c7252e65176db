"""Likelihood temperature from repeat spectra: node posteriors as wide as repeat scatter.

The discrepancy covariance has a few modes; the real residuals are correlated on more scales
than that, so ``-2 log L`` still changes by tens between neighbouring grid nodes and the node
posterior of one spectrum is narrower than the scatter between two spectra of the *same*
object taken on different nights. Dividing ``-2 log L`` by a temperature ``tau >= 1`` (a power
posterior; the usual correction for correlated residuals, which count fewer independent
pixels than there are) widens it. ``tau`` is chosen so that the pulls of repeat spectra
``(mu_1 - mu_2) / sqrt(s_1^2 + s_2^2)`` of Teff have unit root mean square, on objects of the fit half
only: unlabelled data, no atmospheric-model-independent Teff is used.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from atmospec.grids import ModelGrid

__all__ = [
    "LibraryFit",
    "node_moments",
    "repeat_pulls",
    "pull_rms",
    "fit_temperature",
    "grid_pull_std",
]

FloatArray = NDArray[np.float64]
_TAU_RANGE = (1.0, 1e4)


@dataclass
class LibraryFit:
    """The best grid node of one library spectrum (on its own fitted pixels).

    Example:
        >>> w = np.linspace(1.0, 2.0, 5)
        >>> fit = LibraryFit("10703_10070", 10070, w, np.full(5, 1.1), np.full(5, 0.1),
        ...                  np.ones(5), 900.0, {"teff": 900.0}, np.array([0.0, 3.0]), 2)
        >>> chi2 = float(np.sum(((fit.flux - fit.model) / fit.error) ** 2))
        >>> round(chi2 / (fit.flux.size - fit.n_fitted), 3)  # reduced chi-square of the fit
        1.667
    """

    key: str
    source_key: int
    wavelength: FloatArray
    flux: FloatArray
    error: FloatArray
    model: FloatArray  # scaled best model
    teff: float
    best: dict[str, float]
    neg2_loglike: FloatArray  # per node, -2 log L (+ const)
    n_fitted: int


def node_moments(
    neg2_loglike: FloatArray, teff: FloatArray, cell_var: FloatArray, tau: float
) -> tuple[float, float]:
    """Mean and standard deviation of Teff under the node posterior at temperature ``tau``.

    Each node counts as a uniform distribution over its grid cell (variance ``cell_var``).

    Example:
        >>> m, s = node_moments(np.array([0.0, 0.0]), np.array([900.0, 1000.0]),
        ...                     np.zeros(2), 1.0)
        >>> float(m), float(s)
        (950.0, 50.0)
    """
    x = -0.5 * (neg2_loglike - np.min(neg2_loglike)) / tau
    w = np.exp(x)
    w /= w.sum()
    mu = float(w @ teff)
    var = float(w @ ((teff - mu) ** 2 + cell_var))
    return mu, float(np.sqrt(var))


def _cell_var(teff: FloatArray) -> FloatArray:
    axis = np.unique(teff)
    if axis.size == 1:
        return np.zeros_like(teff)
    mids = 0.5 * (axis[1:] + axis[:-1])
    lo = np.concatenate([[axis[0]], mids])
    hi = np.concatenate([mids, [axis[-1]]])
    j = np.searchsorted(axis, teff)
    return (hi[j] - lo[j]) ** 2 / 12.0


def repeat_pulls(fits: Sequence[LibraryFit], node_teff: FloatArray, tau: float) -> FloatArray:
    """Teff pulls between the first two spectra of every object with several.

    Example:
        >>> nodes = np.array([900.0, 1000.0, 1100.0, 1200.0])
        >>> mk = lambda src, mu: LibraryFit("k", src, nodes, nodes, nodes, nodes, mu, {},
        ...                                 ((nodes - mu) / 50.0) ** 2, 1)
        >>> fits = [mk(1, 1000.0), mk(1, 1100.0), mk(2, 1000.0)]  # object 2: one spectrum
        >>> [repeat_pulls(fits, nodes, tau).round(2).tolist() for tau in (1.0, 4.0)]
        [[-1.31], [-0.61]]
    """
    cell = _cell_var(node_teff)
    by_object: dict[int, list[LibraryFit]] = defaultdict(list)
    for f in fits:
        by_object[f.source_key].append(f)
    pulls = []
    for group in by_object.values():
        if len(group) < 2:
            continue
        (m1, s1), (m2, s2) = (node_moments(f.neg2_loglike, node_teff, cell, tau) for f in group[:2])
        pulls.append((m1 - m2) / np.hypot(s1, s2))
    return np.asarray(pulls)


def pull_rms(pulls: FloatArray) -> float:
    """Root mean square of pulls (their expected mean is 0: the order of two spectra is
    arbitrary), 1 when the intervals describe the scatter.

    Example:
        >>> pull_rms(np.array([1.0, -1.0, 1.0, -1.0]))
        1.0
    """
    return float(np.sqrt(np.mean(np.square(pulls))))


def fit_temperature(fits: Sequence[LibraryFit], node_teff: FloatArray) -> tuple[float, int]:
    """The temperature giving repeat pulls of unit standard deviation (at least 1).

    Returns ``(tau, n_objects)``; ``tau = 1`` when fewer than five objects have repeats.

    Example:
        >>> nodes = np.arange(900.0, 2401.0, 10.0)
        >>> mk = lambda src, mu: LibraryFit("k", src, nodes, nodes, nodes, nodes, mu, {},
        ...                                 ((nodes - mu) / 20.0) ** 2, 1)  # sd 20 K at tau 1
        >>> fits = [mk(o, 1200.0 + 150 * o + d) for o in range(6) for d in (-50.0, 50.0)]
        >>> round(pull_rms(repeat_pulls(fits, nodes, 1.0)), 2)  # 100 K apart: too narrow
        3.5
        >>> tau, n = fit_temperature(fits, nodes)
        >>> round(tau), n, round(pull_rms(repeat_pulls(fits, nodes, tau)), 2)
        (12, 6, 1.0)
    """
    from scipy.optimize import brentq

    n = len(repeat_pulls(fits, node_teff, 1.0))
    if n < 5:
        return 1.0, n

    def excess(log_tau: float) -> float:
        return pull_rms(repeat_pulls(fits, node_teff, float(np.exp(log_tau)))) - 1.0

    lo, hi = np.log(_TAU_RANGE[0]), np.log(_TAU_RANGE[1])
    if excess(lo) <= 0:
        return 1.0, n
    if excess(hi) > 0:
        return _TAU_RANGE[1], n
    return float(np.exp(brentq(excess, lo, hi, xtol=1e-3))), n


def grid_pull_std(fits: Sequence[LibraryFit], grid: ModelGrid, tau: float) -> float | None:
    """:func:`pull_rms` of the Teff repeat pulls over ``grid``'s nodes (None: no repeats).

    Example:
        >>> import pandas as pd
        >>> from types import SimpleNamespace as NS
        >>> grid = NS(params=pd.DataFrame({"teff": [900.0, 1000.0, 1100.0, 1200.0]}))
        >>> nodes = grid.params["teff"].to_numpy()
        >>> mk = lambda src, mu: LibraryFit("k", src, nodes, nodes, nodes, nodes, mu, {},
        ...                                 ((nodes - mu) / 50.0) ** 2, 1)
        >>> round(grid_pull_std([mk(1, 1000.0), mk(1, 1100.0)], grid, 1.0), 2)
        1.31
        >>> print(grid_pull_std([mk(1, 1000.0), mk(2, 1100.0)], grid, 1.0))  # no repeats
        None
    """
    pulls = repeat_pulls(fits, grid.params["teff"].to_numpy(dtype=np.float64), tau)
    return pull_rms(pulls) if pulls.size else None
