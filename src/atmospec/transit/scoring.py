"""The Ariel Data Challenge 2024 Gaussian log-likelihood score and interval coverage."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from atmospec.errors import InvalidSpectrumError

__all__ = [
    "gaussian_log_likelihood",
    "ariel_score",
    "coverage",
    "rmse_ppm",
    "sigma_scale_for_coverage",
    "fit_sigma_model",
    "fit_sigma_components",
]


def _arrays(*arrays: ArrayLike) -> list[np.ndarray]:
    out = [np.asarray(a, dtype=np.float64) for a in arrays]
    shape = out[0].shape
    for a in out[1:]:
        if a.shape != shape and a.size != 1:
            raise InvalidSpectrumError(f"score inputs have different shapes: {shape} vs {a.shape}")
    return out


def gaussian_log_likelihood(y: ArrayLike, mu: ArrayLike, sigma: ArrayLike) -> float:
    """``sum_i -1/2 [ln(2 pi) + ln sigma_i^2 + (y_i - mu_i)^2 / sigma_i^2]``.

    Example:
        >>> round(gaussian_log_likelihood([0.0], [0.0], [1.0]), 6)   # -ln(2 pi) / 2
        -0.918939
    """
    y_, mu_, s_ = _arrays(y, mu, sigma)
    s_ = np.broadcast_to(s_, y_.shape)
    if (s_ <= 0).any() or not np.isfinite(s_).all():
        raise InvalidSpectrumError("every sigma must be finite and > 0 for the log-likelihood")
    if not (np.isfinite(y_).all() and np.isfinite(mu_).all()):
        raise InvalidSpectrumError("every depth (true and predicted) must be finite to score")
    return float(np.sum(-0.5 * (np.log(2 * np.pi) + np.log(s_**2) + (y_ - mu_) ** 2 / s_**2)))


def ariel_score(
    y: ArrayLike,
    mu: ArrayLike,
    sigma: ArrayLike,
    *,
    ref_mean: float,
    ref_sigma: float,
    ideal_sigma: float = 1e-5,
) -> float:
    """The Ariel 2024 score: ``(GLL(pred) - GLL(ref)) / (GLL(ideal) - GLL(ref))`` clipped to [0, 1].

    ``ref`` predicts ``ref_mean`` with ``ref_sigma`` (mean and standard deviation of all
    training depths) in every bin; ``ideal`` predicts the truth with ``ideal_sigma`` (10 ppm).

    Example:
        >>> import numpy as np
        >>> y = np.array([0.010, 0.012])
        >>> ariel_score(y, y, [1e-5, 1e-5], ref_mean=0.011, ref_sigma=0.001)
        1.0
        >>> ariel_score(y, [0.011, 0.011], [0.001, 0.001], ref_mean=0.011, ref_sigma=0.001)
        0.0
    """
    y_, mu_, s_ = _arrays(y, mu, sigma)
    gll_pred = gaussian_log_likelihood(y_, mu_, s_)
    gll_ref = gaussian_log_likelihood(y_, np.full(y_.shape, ref_mean), np.full(y_.shape, ref_sigma))
    gll_ideal = gaussian_log_likelihood(y_, y_, np.full(y_.shape, ideal_sigma))
    denom = gll_ideal - gll_ref
    if denom <= 0:
        raise InvalidSpectrumError(
            "the reference already matches the ideal; the score is undefined"
        )
    return float(np.clip((gll_pred - gll_ref) / denom, 0.0, 1.0))


def coverage(y: ArrayLike, mu: ArrayLike, sigma: ArrayLike, level: float = 0.68) -> float:
    """Fraction of bins whose truth lies inside the central ``level`` Gaussian interval.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> round(coverage(rng.normal(size=20000), 0.0, 1.0), 2)
        0.68
    """
    from scipy.stats import norm

    y_, mu_, s_ = _arrays(y, mu, sigma)
    z = float(norm.ppf(0.5 + level / 2))
    return float(np.mean(np.abs(y_ - mu_) <= z * s_))


def rmse_ppm(y: ArrayLike, mu: ArrayLike) -> float:
    """Root-mean-square depth error in ppm.

    Example:
        >>> rmse_ppm([0.01, 0.01], [0.0101, 0.0099])
        100.0
    """
    y_, mu_ = _arrays(y, mu)
    return float(np.round(np.sqrt(np.mean((y_ - mu_) ** 2)) * 1e6, 9))


def sigma_scale_for_coverage(
    y: ArrayLike, mu: ArrayLike, sigma: ArrayLike, level: float = 0.68
) -> float:
    """The factor that, multiplied into ``sigma``, makes the ``level`` coverage exact on these
    (calibration) data: the ``level`` quantile of ``|y - mu| / sigma`` over the Gaussian z.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(1)
        >>> round(sigma_scale_for_coverage(rng.normal(0, 2.0, 20000), 0.0, 1.0), 1)
        2.0
    """
    from scipy.stats import norm

    y_, mu_, s_ = _arrays(y, mu, sigma)
    z = np.abs(y_ - mu_) / np.broadcast_to(s_, y_.shape)
    return float(np.quantile(z, level) / norm.ppf(0.5 + level / 2))


def fit_sigma_model(y: ArrayLike, mu: ArrayLike, sigma: ArrayLike) -> tuple[float, float]:
    """Scale ``a`` and floor ``b`` of ``sigma_total = sqrt((a sigma)^2 + b^2)`` that maximise the
    Gaussian log-likelihood of calibration data (planets with known depths).

    The floor absorbs errors shared by all bins of a planet (the white-light depth, limb
    darkening) that per-bin sigmas do not contain.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(2)
        >>> s = np.repeat([1e-4, 4e-4], 20000)   # two noise levels make a and b separable
        >>> y = rng.normal(0, np.sqrt((2 * s) ** 2 + 3e-4**2))
        >>> a, b = fit_sigma_model(y, 0.0, s)
        >>> round(a, 1), round(b * 1e4, 1)
        (2.0, 3.0)
    """
    from scipy.optimize import minimize

    y_, mu_, s_ = _arrays(y, mu, sigma)
    s_ = np.broadcast_to(s_, y_.shape)
    r2 = (y_ - mu_) ** 2
    ref = float(np.median(s_))

    def nll(p: np.ndarray) -> float:
        var = (np.exp(p[0]) * s_) ** 2 + (np.exp(p[1]) * ref) ** 2
        return float(np.sum(np.log(var) + r2 / var))

    res = minimize(
        nll,
        np.array([0.0, -2.0]),
        method="Nelder-Mead",
        options={"xatol": 1e-4, "fatol": 1e-6, "maxiter": 2000},
    )
    return float(np.exp(res.x[0])), float(np.exp(res.x[1]) * ref)


def fit_sigma_components(
    y: ArrayLike, mu: ArrayLike, sigma_own: ArrayLike, sigma_shared: ArrayLike
) -> tuple[float, float, float]:
    """Scales ``a``, ``b`` and floor ``c`` of ``sigma^2 = (a sigma_own)^2 + (b sigma_shared)^2
    + c^2`` that maximise the Gaussian log-likelihood of calibration data.

    ``sigma_own`` is each bin's own error (relative to the white light) and ``sigma_shared``
    the error every bin of a planet shares (the white-light depth's), so the two are
    calibrated separately: a planet whose white-light fit is uncertain keeps wider bars.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(3)
        >>> own = np.tile([1e-4, 3e-4], 20000); shared = np.repeat([1e-4, 4e-4], 20000)
        >>> y = rng.normal(0, np.hypot(1.5 * own, 2.0 * shared))
        >>> a, b, c = fit_sigma_components(y, 0.0, own, shared)
        >>> round(a, 1), round(b, 1), c < 2e-5
        (1.5, 2.0, True)
    """
    from scipy.optimize import minimize

    y_, mu_, so, ss = _arrays(y, mu, sigma_own, sigma_shared)
    so, ss = np.broadcast_to(so, y_.shape), np.broadcast_to(ss, y_.shape)
    r2 = (y_ - mu_) ** 2
    ref = float(np.median(np.hypot(so, ss)))

    def nll(p: np.ndarray) -> float:
        var = (np.exp(p[0]) * so) ** 2 + (np.exp(p[1]) * ss) ** 2 + (np.exp(p[2]) * ref) ** 2
        return float(np.sum(np.log(var) + r2 / var))

    res = minimize(
        nll,
        np.array([0.0, 0.0, -3.0]),
        method="Nelder-Mead",
        options={"xatol": 1e-4, "fatol": 1e-6, "maxiter": 3000},
    )
    return float(np.exp(res.x[0])), float(np.exp(res.x[1])), float(np.exp(res.x[2]) * ref)
