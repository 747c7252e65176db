"""Statistics: chi-square test, predictive intervals, standard errors, coverage and metrics."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "ChiSquareTest",
    "degrees_of_freedom",
    "chi2_test",
    "chi_square",
    "quantiles",
    "predictive_interval",
    "standard_error",
    "coverage",
    "calibration_curve",
    "pit",
    "regression_metrics",
]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class ChiSquareTest:
    """A chi-square goodness-of-fit test: statistic, degrees of freedom and p-value.

    ``p_value`` is the probability of a chi-square at least this large if the model were right
    and the errors Gaussian and correct; ``chi2_red = chi2 / dof``.

    Example:
        >>> t = ChiSquareTest(chi2=12.0, dof=8, p_value=0.151)  # as chi2_test(12.0, 8) gives
        >>> t.chi2_red
        1.5
    """

    chi2: float
    dof: int
    p_value: float

    @property
    def chi2_red(self) -> float:
        return self.chi2 / self.dof


def degrees_of_freedom(n_points: int, n_fitted: int) -> int:
    """``n_points - n_fitted``: every fitted parameter (including a flux scale) costs one.

    Example:
        >>> degrees_of_freedom(500, 5)
        495
    """
    dof = int(n_points) - int(n_fitted)
    if dof <= 0:
        raise ValueError(
            f"{n_points} data points cannot test a model with {n_fitted} fitted parameters "
            "(degrees of freedom must be > 0)"
        )
    return dof


def chi2_test(chi2: float, dof: int) -> ChiSquareTest:
    """The upper-tail p-value of a chi-square statistic with ``dof`` degrees of freedom.

    Example:
        >>> t = chi2_test(3.841458820694124, 1)  # the 95 % point of chi2(1) is 1.96^2
        >>> round(t.p_value, 6)
        0.05
    """
    from scipy.stats import chi2 as chi2_dist

    if dof <= 0:
        raise ValueError(f"degrees of freedom must be > 0, got {dof}")
    return ChiSquareTest(float(chi2), int(dof), float(chi2_dist.sf(chi2, dof)))


def chi_square(
    data: ArrayLike,
    model: ArrayLike,
    sigma: ArrayLike,
    n_fitted: int,
    *,
    mask: ArrayLike | None = None,
) -> ChiSquareTest:
    """Chi-square test of ``model`` against ``data`` with errors ``sigma``.

    Args:
        data: measured values.
        model: model values, same shape.
        sigma: 1-sigma errors, same shape (> 0).
        n_fitted: number of parameters fitted to *these* data (e.g. grid parameters + scale);
            the degrees of freedom are ``N - n_fitted`` (TelescopeML forgot this).
        mask: True for points to leave out.

    Example:
        >>> chi_square([1.0, 2.0, 3.0], [1.0, 2.0, 5.0], [1.0, 1.0, 1.0], n_fitted=1).chi2_red
        2.0
    """
    d = np.asarray(data, dtype=np.float64)
    m = np.asarray(model, dtype=np.float64)
    s = np.asarray(sigma, dtype=np.float64)
    keep = np.ones(d.shape, dtype=bool) if mask is None else ~np.asarray(mask, dtype=bool)
    keep &= np.isfinite(d) & np.isfinite(m) & np.isfinite(s)
    if np.any(s[keep] <= 0):
        raise ValueError("chi_square: sigma must be > 0 on every used point")
    chi2 = float(np.sum(((d[keep] - m[keep]) / s[keep]) ** 2))
    return chi2_test(chi2, degrees_of_freedom(int(keep.sum()), n_fitted))


def quantiles(
    samples: ArrayLike,
    q: Sequence[float] | ArrayLike = (2.5, 16.0, 50.0, 84.0, 97.5),
    *,
    weights: ArrayLike | None = None,
    axis: int = 0,
) -> FloatArray:
    """Percentiles ``q`` (0-100) of samples along ``axis``, optionally importance-weighted.

    Example:
        >>> quantiles([1.0, 2.0, 3.0, 4.0, 5.0], [50.0]).tolist()
        [3.0]
    """
    x = np.asarray(samples, dtype=np.float64)
    qs = np.asarray(q, dtype=np.float64)
    if weights is None:
        return np.percentile(x, qs, axis=axis)
    w = np.asarray(weights, dtype=np.float64)
    xm = np.moveaxis(x, axis, 0)
    order = np.argsort(xm, axis=0)
    xs = np.take_along_axis(xm, order, axis=0)
    ws = w[order]
    cdf = np.cumsum(ws, axis=0) - 0.5 * ws
    cdf /= np.sum(ws, axis=0)
    if xm.ndim == 1:
        return np.interp(qs / 100.0, cdf, xs)
    out = np.empty((qs.size,) + xm.shape[1:])
    for idx in np.ndindex(*xm.shape[1:]):
        sl = (slice(None),) + idx
        out[sl] = np.interp(qs / 100.0, cdf[sl], xs[sl])
    return out


def predictive_interval(
    samples: ArrayLike, level: float = 0.68, *, axis: int = 0
) -> tuple[FloatArray, FloatArray]:
    """Central interval holding ``level`` of the samples (percentiles of the samples).

    This is a *predictive* (or credible) interval: it describes where the quantity lies, and
    does not shrink as more samples are drawn. It is not a confidence interval of the mean
    (that one shrinks like 1/sqrt(N): see :func:`standard_error`).

    Example:
        >>> import numpy as np
        >>> x = np.random.default_rng(0).normal(size=200_000)
        >>> lo, hi = predictive_interval(x, 0.6827)
        >>> round(float(lo), 2), round(float(hi), 2)
        (-1.0, 1.0)
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    tail = 50.0 * (1.0 - level)
    lo, hi = np.percentile(np.asarray(samples, dtype=np.float64), [tail, 100 - tail], axis=axis)
    return lo, hi


def standard_error(samples: ArrayLike, *, axis: int = 0) -> FloatArray:
    """Standard error of the *mean*: ``std(ddof=1) / sqrt(N)``.

    Use it for the precision of an average (e.g. of a Monte Carlo estimate), never as an error
    bar on a single prediction (use :func:`predictive_interval`).

    Example:
        >>> float(standard_error([1.0, 2.0, 3.0, 4.0]))  # std 1.291 / sqrt(4)
        0.6454972243679028
    """
    x = np.asarray(samples, dtype=np.float64)
    n = x.shape[axis]
    if n < 2:
        raise ValueError("standard_error needs at least 2 samples")
    return np.std(x, axis=axis, ddof=1) / np.sqrt(n)


def coverage(truth: ArrayLike, lower: ArrayLike, upper: ArrayLike) -> float:
    """Fraction of true values inside their intervals [lower, upper].

    A calibrated 68 % interval covers ~68 % of the truths.

    Example:
        >>> coverage([0.0, 1.0, 5.0], [-1.0, -1.0, -1.0], [1.0, 1.0, 1.0])
        0.6666666666666666
    """
    t = np.asarray(truth, dtype=np.float64)
    inside = (t >= np.asarray(lower)) & (t <= np.asarray(upper))
    return float(np.mean(inside))


def pit(truth: ArrayLike, samples: ArrayLike) -> FloatArray:
    """Probability integral transform: the fraction of samples below each truth.

    ``samples`` has shape (n_samples, n_objects) (or (n_samples,) for one object). For
    calibrated posteriors the PIT values are uniform on [0, 1].

    Example:
        >>> pit([0.5], [[0.0], [1.0], [0.2], [0.9]]).tolist()
        [0.5]
    """
    s = np.asarray(samples, dtype=np.float64)
    t = np.asarray(truth, dtype=np.float64)
    if s.ndim == 1:
        s = s[:, None]
    return np.mean(s < t[None, ...], axis=0)


def calibration_curve(
    truth: ArrayLike,
    samples: ArrayLike,
    levels: Sequence[float] | ArrayLike = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.68, 0.8, 0.9, 0.95),
) -> tuple[FloatArray, FloatArray]:
    """Empirical coverage of central predictive intervals at each nominal level.

    Args:
        truth: true values (n_objects,).
        samples: predictive samples (n_samples, n_objects).
        levels: nominal interval probabilities.

    Returns:
        ``(levels, empirical)``; a calibrated model gives ``empirical ~ levels``.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(1)
        >>> truth = rng.normal(size=4000)
        >>> samples = rng.normal(size=(500, 4000))  # same distribution: calibrated
        >>> lv, emp = calibration_curve(truth, samples, [0.5, 0.9])
        >>> bool(np.all(np.abs(emp - lv) < 0.03))
        True
    """
    lv = np.asarray(levels, dtype=np.float64)
    u = pit(truth, samples)
    emp = np.array([np.mean(np.abs(u - 0.5) <= level / 2) for level in lv])
    return lv, emp


def regression_metrics(y_true: ArrayLike, y_pred: ArrayLike) -> dict[str, float]:
    """RMSE, mean bias (pred - true), MAE and R^2 with the arguments in the right order.

    ``r2 = 1 - sum((true - pred)^2) / sum((true - mean(true))^2)`` (TelescopeML swapped the
    arguments of ``r2_score``).

    Example:
        >>> m = regression_metrics([1.0, 2.0, 3.0], [1.0, 2.0, 4.0])
        >>> round(m["rmse"], 4), round(m["bias"], 4), round(m["r2"], 4)
        (0.5774, 0.3333, 0.5)
    """
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    err = p - t
    ss_tot = float(np.sum((t - t.mean()) ** 2))
    return {
        "rmse": float(np.sqrt(np.mean(err**2))),
        "bias": float(np.mean(err)),
        "mae": float(np.mean(np.abs(err))),
        "r2": float(1.0 - np.sum(err**2) / ss_tot) if ss_tot > 0 else float("nan"),
        "n": float(t.size),
    }
