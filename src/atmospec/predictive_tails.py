"""Heavy-tailed predictive intervals: a Student-t whose ±1 sigma interval holds 68.27 %.

The errors of a network estimator on spectra it has not seen are not Gaussian: most are of the
size of its calibrated sigma, a few (where the model grid bends, e.g. the L/T transition) are
several sigma. A Gaussian interval sized to hold 68 % then holds fewer than 95 % at 2 sigma.
Here the predictive distribution of each parameter is a Student-t with ``dof`` degrees of
freedom, scaled so that ``mean ± sigma`` is still its 68.27 % interval; ``dof`` is fitted on
held-out (validation) errors from the ratio of their 95 % and 68.27 % quantiles; ``dof = inf``
is the Gaussian.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "ONE_SIGMA",
    "tail_factor",
    "fit_tail_dof",
    "standardized_draws",
    "dof_list",
    "dof_array",
]

ONE_SIGMA = 0.6826894921370859  # probability inside ±1 sigma of a Gaussian
_Q1 = 0.5 + ONE_SIGMA / 2  # upper quantile of the one-sigma interval
_MIN_DOF = 1.0


def _one_sigma_quantile(dof: NDArray[np.float64]) -> NDArray[np.float64]:
    from scipy.stats import t

    return np.where(np.isfinite(dof), t.ppf(_Q1, np.where(np.isfinite(dof), dof, 1.0)), 1.0)


def tail_factor(level: float, dof: ArrayLike | None, n: int | None = None) -> NDArray[np.float64]:
    """Half-width of the central ``level`` interval in units of sigma, per parameter.

    ``dof`` None or inf gives the Gaussian factor (1.96 at 0.95); ``n`` sets the length when
    ``dof`` is None.

    Example:
        >>> tail_factor(0.95, [np.inf, 10.0]).round(3).tolist()  # Gaussian; t(10): 2.228 / 1.052
        [1.96, 2.117]
        >>> float(tail_factor(ONE_SIGMA, [10.0])[0].round(6))  # ±1 sigma holds 68.27 % always
        1.0
    """
    from scipy.stats import norm, t

    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    q = 0.5 + level / 2
    if dof is None:
        return np.full(1 if n is None else n, float(norm.ppf(q)))
    d = np.asarray(dof, dtype=np.float64)
    finite = np.isfinite(d)
    safe = np.where(finite, d, 1.0)
    return np.where(finite, t.ppf(q, safe) / _one_sigma_quantile(d), norm.ppf(q))


def fit_tail_dof(z: ArrayLike) -> NDArray[np.float64]:
    """Degrees of freedom per column from standardized held-out errors ``z`` (n, p).

    Matches the ratio of the 95 % and 68.27 % quantiles of ``|z|``; columns whose ratio is at
    most the Gaussian one (1.96) get ``inf`` (Gaussian), heavier ones a finite ``dof`` (>= 1).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> z = np.column_stack([rng.normal(size=200_000), rng.standard_t(5, 200_000)])
        >>> d = fit_tail_dof(z); bool(np.isinf(d[0])), bool(4 < d[1] < 6.5)
        (True, True)
    """
    from scipy.optimize import brentq
    from scipy.stats import norm, t

    a = np.abs(np.atleast_2d(np.asarray(z, dtype=np.float64)))
    if a.shape[0] < 2:
        raise ValueError("fit_tail_dof needs at least two rows of errors")
    ratio = np.quantile(a, 0.95, axis=0) / np.maximum(np.quantile(a, ONE_SIGMA, axis=0), 1e-300)
    gauss = float(norm.ppf(0.975))

    def r(d: float) -> float:
        return float(t.ppf(0.975, d) / t.ppf(_Q1, d))

    out = np.full(a.shape[1], np.inf)
    for j, rj in enumerate(ratio):
        if not np.isfinite(rj) or rj <= gauss * (1 + 1e-6):
            continue
        if rj >= r(_MIN_DOF):
            out[j] = _MIN_DOF
            continue
        out[j] = brentq(lambda d, rj=rj: r(d) - rj, _MIN_DOF, 1e6)  # ratio falls with dof
    return out


def standardized_draws(
    rng: np.random.Generator, shape: tuple[int, ...], dof: ArrayLike | None
) -> NDArray[np.float32]:
    """Draws of the standardized predictive (last axis: parameters), ±1 holding 68.27 %.

    Gaussian where ``dof`` is None or inf; Student-t divided by its one-sigma quantile
    elsewhere.

    Example:
        >>> x = standardized_draws(np.random.default_rng(0), (100_000, 2), [np.inf, 4.0])
        >>> np.mean(np.abs(x) <= 1, axis=0).round(2).tolist()
        [0.68, 0.68]
    """
    z = rng.standard_normal(shape, dtype=np.float32)
    if dof is None:
        return z
    d = np.asarray(dof, dtype=np.float64)
    for j in np.flatnonzero(np.isfinite(d)):
        tj = rng.standard_t(d[j], shape[:-1]) / _one_sigma_quantile(d[j : j + 1])[0]
        z[..., j] = tj.astype(np.float32)
    return z


def dof_list(dof: ArrayLike | None) -> list[float | None] | None:
    """JSON form of ``dof``: a list with None for Gaussian (inf) entries.

    Example:
        >>> dof_list([np.inf, 7.5])
        [None, 7.5]
    """
    if dof is None:
        return None
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(dof, dtype=float)]


def dof_array(values: Sequence[float | None] | None) -> NDArray[np.float64] | None:
    """Inverse of :func:`dof_list`.

    Example:
        >>> dof_array([None, 7.5]).tolist()
        [inf, 7.5]
    """
    if values is None:
        return None
    return np.array([np.inf if v is None else float(v) for v in values], dtype=np.float64)
