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
    """The best grid node of one library spectrum (on its own fitted pixels)."""

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
    """Teff pulls between the first two spectra of every object with several."""
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

    Returns ``(tau, n_objects)``.
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
    """:func:`pull_rms` of the Teff repeat pulls over ``grid``'s nodes (None: no repeats)."""
    pulls = repeat_pulls(fits, grid.params["teff"].to_numpy(dtype=np.float64), tau)
    return pull_rms(pulls) if pulls.size else None
