"""Shared fitting machinery: regressors, the white-light fit and per-channel transit fits."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import least_squares

from atmospec.errors import InvalidSpectrumError
from atmospec.transit.lightcurve import TransitGeometry, TransitModel
from atmospec.transit.observation import TransitObservation

__all__ = [
    "ChannelFit",
    "WhiteFit",
    "beta_factor",
    "channel_models",
    "fit_channel",
    "fit_white",
    "linear_solve",
    "normalized_time",
    "ramp_regressor",
    "regressors",
    "require_time_bins",
    "smooth_limb_darkening",
    "smoothed_channel_limb_darkening",
]

_U_BOUNDS = (-1.0, 2.0)


def normalized_time(t: NDArray[np.float64]) -> NDArray[np.float64]:
    """Times mapped linearly onto [-1, 1].

    Example:
        >>> normalized_time(np.array([2.0, 3.0, 6.0]))
        array([-1. , -0.5,  1. ])
    """
    span = float(t.max() - t.min()) or 1.0
    return np.asarray(2.0 * (t - t.min()) / span - 1.0, dtype=np.float64)


def regressors(
    obs: TransitObservation, degree: int = 2, centroid: bool = True
) -> NDArray[np.float64]:
    """Systematics regressors: a polynomial in time and (optionally) the pointing centroids
    (FGS1 x, y, AIRS-CH0 spatial y, and the squared FGS1 offset), each standardised.

    Example:
        >>> c = np.random.default_rng(0).normal(size=(50, 3))
        >>> obs = TransitObservation("1", np.linspace(0, 5, 50), np.array([0.7, 2.0]),
        ...                          np.ones((50, 2)), np.ones((50, 2)), c)
        >>> regressors(obs, 2).shape, regressors(obs, 1, centroid=False)[[0, -1]].tolist()
        ((50, 7), [[1.0, -1.0], [1.0, 1.0]])
    """
    tau = normalized_time(obs.time_h)
    cols = [tau**k for k in range(degree + 1)]
    if centroid:
        c = obs.centroid
        for extra in (c[:, 0], c[:, 1], c[:, 2], c[:, 0] ** 2 + c[:, 1] ** 2):
            s = extra.std()
            if s > 0:
                cols.append((extra - extra.mean()) / s)
    return np.column_stack(cols)


def require_time_bins(obs: TransitObservation, n_params: int, what: str) -> None:
    """Refuse a fit of ``n_params`` parameters to fewer time bins than that plus one: with no
    residual left, the scatter, and so every sigma, would come out as 0 (or the fit singular).

    Raises:
        InvalidSpectrumError: naming the planet, its time bins and the fit's parameters.

    Example:
        >>> obs = TransitObservation("4", np.linspace(0, 5, 6), np.array([0.7, 2.0]),
        ...                          np.ones((6, 2)), np.ones((6, 2)), np.zeros((6, 3)))
        >>> require_time_bins(obs, 5, "a 5-parameter fit")   # 6 bins: one to spare
        >>> require_time_bins(obs, 6, "a 6-parameter fit")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        atmospec.errors.InvalidSpectrumError: planet 4: 6 time bins are too few for ...
    """
    if obs.n_time <= n_params:
        raise InvalidSpectrumError(
            f"planet {obs.planet_id}: {obs.n_time} time bins are too few for {what} "
            f"({n_params} parameters): it needs more bins than parameters to measure the "
            "scatter its sigmas come from; use a longer visit or smaller time bins "
            "(CalibrationConfig.time_bin)"
        )


def linear_solve(X: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.float64]:
    """Least-squares coefficients of ``X a = y``.

    Example:
        >>> x = np.arange(4.0)
        >>> linear_solve(np.column_stack([np.ones(4), x]), 1.0 + 2.0 * x).round(6)
        array([1., 2.])
    """
    return np.asarray(np.linalg.lstsq(X, y, rcond=None)[0], dtype=np.float64)


def beta_factor(resid: NDArray[np.float64], max_bin: int | None = None) -> float:
    """Red-noise factor (Winn et al. 2008): how much binned residuals exceed white-noise scaling.

    Example:
        >>> import numpy as np
        >>> round(beta_factor(np.random.default_rng(0).normal(size=400)), 1)
        1.0
    """
    n = resid.size
    s1 = resid.std()
    if s1 == 0 or n < 8:
        return 1.0
    ratios = []
    for m in range(2, (max_bin or n // 8) + 1):
        k = n // m
        if k < 4:
            break
        binned = resid[: k * m].reshape(k, m).mean(axis=1)
        expected = s1 / np.sqrt(m) * np.sqrt(k / (k - 1))
        ratios.append(binned.std() / expected)
    return float(max(1.0, np.median(ratios))) if ratios else 1.0


def channel_models(obs: TransitObservation, geometry: TransitGeometry) -> list[TransitModel]:
    """One supersampled transit model per channel (FGS1 and AIRS-CH0 exposure times differ).

    Example:
        >>> obs = TransitObservation("1", np.linspace(0, 6, 20), np.array([0.7, 2.0, 3.0]),
        ...     np.ones((20, 3)), np.ones((20, 3)), np.zeros((20, 3)),
        ...     meta={"exposure_offsets_h": {"FGS1": [-0.01, 0.01], "AIRS-CH0": [0.0]}})
        >>> ms = channel_models(obs, TransitGeometry(3.0, 3.0, 10.0, 90.0))
        >>> len(ms), ms[1] is ms[2], ms[0].offsets_h.tolist()
        (3, True, [-0.01, 0.01])
    """
    offsets = obs.meta.get("exposure_offsets_h", {})
    m_fgs = TransitModel(obs.time_h, geometry, offsets.get("FGS1"))
    m_airs = TransitModel(obs.time_h, geometry, offsets.get("AIRS-CH0"))
    return [m_fgs] + [m_airs] * (obs.n_wavelength - 1)


def _weights(err: NDArray[np.float64]) -> NDArray[np.float64]:
    """Equal weights at the channel's median error: per-bin errors from a few exposures are
    too noisy to weight with (their inverse squares are heavy-tailed)."""
    good = err[np.isfinite(err) & (err > 0)]
    level = float(np.median(good)) if good.size else 1.0
    return np.full(err.shape, 1.0 / max(level, 1e-12))


@dataclass
class WhiteFit:
    """Result of the white-light fit: orbit (with fitted mid-time), radius ratio, limb darkening.

    Example:
        >>> t = np.linspace(0.0, 6.0, 80)
        >>> f = TransitModel(t, TransitGeometry(3.0, 3.0, 10.0, 90.0))(0.1, 0.3, 0.2)
        >>> flux = 1e4 * f[:, None] * (1 + np.random.default_rng(0).normal(0, 1e-4, (80, 3)))
        >>> obs = TransitObservation("1", t, np.array([0.7, 2.0, 3.0]), flux, np.ones((80, 3)),
        ...     np.zeros((80, 3)), star={"P": 3.0, "sma": 10.0, "i": 90.0})
        >>> w = fit_white(obs.normalized(), regressors(obs, 2))
        >>> round(w.geometry.t0_h, 2), round(w.rp, 2), w.geometry.period_d
        (3.0, 0.1, 3.0)
    """

    geometry: TransitGeometry
    rp: float
    u1: float
    u2: float


def _star(obs: TransitObservation) -> dict[str, float]:
    missing = [k for k in ("P", "sma", "i") if k not in obs.star]
    if missing:
        raise InvalidSpectrumError(
            f"planet {obs.planet_id}: star info lacks {missing}; the detrenders need the orbit "
            "(P days, sma stellar radii, i degrees) from *_star_info.csv"
        )
    return obs.star


def fit_white(obs: TransitObservation, R: NDArray[np.float64]) -> WhiteFit:
    """Fit mid-time, radius ratio and limb darkening to the AIRS-CH0 white light curve with a
    multiplicative linear baseline ``R a``.

    Example:
        >>> t = np.linspace(0.0, 6.0, 80)
        >>> f = TransitModel(t, TransitGeometry(3.0, 3.0, 10.0, 90.0))(0.1, 0.3, 0.2)
        >>> flux = 1e4 * f[:, None] * (1 + np.random.default_rng(0).normal(0, 1e-4, (80, 3)))
        >>> obs = TransitObservation("1", t, np.array([0.7, 2.0, 3.0]), flux, np.ones((80, 3)),
        ...     np.zeros((80, 3)), star={"P": 3.0, "sma": 10.0, "i": 90.0})
        >>> w = fit_white(obs.normalized(), regressors(obs, 1))   # injected: t0 3 h, rp 0.1
        >>> round(w.geometry.t0_h, 2), round(w.rp, 2)
        (3.0, 0.1)
    """
    star = _star(obs)
    y = obs.white
    err = np.sqrt((obs.flux_err[:, 1:] ** 2).sum(axis=1))
    med = float(np.median(y))
    y, err = y / med, err / med
    w = _weights(err)
    t = obs.time_h
    # start at the centre of the deepest part of the smoothed curve
    k = max(1, t.size // 20)
    smooth = np.convolve(y, np.ones(k) / k, mode="same")
    inner = slice(k, t.size - k) if t.size > 2 * k + 2 else slice(None)
    t0_start = float(t[inner][np.argmin(smooth[inner])])
    geo0 = TransitGeometry.from_star(star, t0_start)
    model = TransitModel(t, geo0, obs.meta.get("exposure_offsets_h", {}).get("AIRS-CH0"))
    depth0 = max(1e-5, float(1.0 - smooth[inner].min()))

    def resid(theta: NDArray[np.float64]) -> NDArray[np.float64]:
        T = model(theta[1], theta[2], theta[3], t0_h=theta[0])
        X = R * T[:, None]
        a = linear_solve(X * w[:, None], y * w)
        return (y - X @ a) * w

    span = float(t.max() - t.min())
    lo = np.array([t.min() + 0.05 * span, 1e-3, *[_U_BOUNDS[0]] * 2])
    hi = np.array([t.max() - 0.05 * span, 0.5, *[_U_BOUNDS[1]] * 2])
    x0 = np.clip([t0_start, np.sqrt(depth0), 0.3, 0.1], lo + 1e-9, hi - 1e-9)
    res = least_squares(resid, x0=x0, bounds=(lo, hi), x_scale=[0.01, 0.01, 0.1, 0.1])
    t0, rp, u1, u2 = (float(v) for v in res.x)
    return WhiteFit(TransitGeometry.from_star(star, t0), rp, u1, u2)


@dataclass
class ChannelFit:
    """Per-channel result of a multiplicative-baseline transit fit.

    Example:
        >>> t = np.linspace(0.0, 6.0, 80)
        >>> model = TransitModel(t, TransitGeometry(3.0, 3.0, 10.0, 90.0))
        >>> R = np.column_stack([np.ones(80), normalized_time(t)])   # baseline 2 (1 + 0.01 tau)
        >>> y = 2 * (1 + 0.01 * R[:, 1]) * model(0.1, 0.3, 0.2)
        >>> y *= 1 + np.random.default_rng(1).normal(0.0, 1e-4, 80)
        >>> fit = fit_channel(y, np.full(80, 2e-4), R, model, 0.09, (0.3, 0.2), free_u=False)
        >>> round(fit.rp, 3), fit.u, round(float(fit.transit.min()), 2), fit.baseline.shape
        (0.1, (0.3, 0.2), 0.99, (80,))
    """

    rp: float
    rp_sigma: float
    u: tuple[float, float]
    u_sigma: tuple[float, float]
    transit: NDArray[np.float64]
    baseline: NDArray[np.float64]
    chi2_red: float
    beta: float


def fit_channel(
    y: NDArray[np.float64],
    err: NDArray[np.float64],
    R: NDArray[np.float64],
    model: Callable[[float, float, float], NDArray[np.float64]],
    rp0: float,
    u0: tuple[float, float],
    *,
    free_u: bool,
    inflate: bool = True,
    u_prior: tuple[float, float, float] | None = None,
) -> ChannelFit:
    """Fit ``y = (R a) * T(rp, u)`` by variable projection (``a`` solved linearly).

    With ``free_u`` the limb darkening is fitted too, with a Gaussian prior
    ``u_prior = (mean u1, mean u2, sd)`` if given. The 1-sigma of ``rp`` comes from the
    Jacobian, scaled by the reduced chi-square and (with ``inflate``) the red-noise factor.

    Example:
        >>> t = np.linspace(0.0, 6.0, 80)
        >>> model = TransitModel(t, TransitGeometry(3.0, 3.0, 10.0, 90.0))
        >>> R = np.column_stack([np.ones(80), normalized_time(t)])   # baseline 2 (1 + 0.01 tau)
        >>> y = 2 * (1 + 0.01 * R[:, 1]) * model(0.1, 0.3, 0.2)
        >>> y *= 1 + np.random.default_rng(1).normal(0.0, 1e-4, 80)
        >>> fit = fit_channel(y, np.full(80, 2e-4), R, model, 0.09, (0.3, 0.2), free_u=False)
        >>> round(fit.rp, 3), round(fit.rp_sigma * 1e4, 1), fit.baseline[[0, -1]].round(2)
        (0.1, 0.9, array([1.98, 2.02]))
    """
    w = _weights(err)
    cache: dict[str, NDArray[np.float64]] = {}

    def transit(theta: NDArray[np.float64]) -> NDArray[np.float64]:
        u = (theta[1], theta[2]) if free_u else u0
        return model(theta[0], u[0], u[1])

    def resid(theta: NDArray[np.float64]) -> NDArray[np.float64]:
        T = transit(theta)
        X = R * T[:, None]
        a = linear_solve(X * w[:, None], y * w)
        cache["a"], cache["T"] = a, T
        r = (y - X @ a) * w
        if free_u and u_prior is not None:
            prior = (np.asarray(theta[1:3]) - np.asarray(u_prior[:2])) / u_prior[2]
            return np.concatenate([r, prior])
        return r

    if free_u:
        x0 = [rp0, *u0]
        bounds = ([-0.5, _U_BOUNDS[0], _U_BOUNDS[0]], [0.5, _U_BOUNDS[1], _U_BOUNDS[1]])
        x_scale = [0.001, 0.1, 0.1]
    else:
        x0, bounds, x_scale = [rp0], ([-0.5], [0.5]), [0.001]
    # a start outside the bounds (an extreme white-light fit) is moved just inside them
    lo_b, hi_b = np.asarray(bounds[0], float), np.asarray(bounds[1], float)
    x0 = np.clip(np.nan_to_num(np.asarray(x0, float)), lo_b + 1e-9, hi_b - 1e-9)
    res = least_squares(resid, x0=x0, bounds=bounds, x_scale=x_scale, diff_step=1e-6)
    r = resid(res.x)[: y.size]
    n, p = y.size, res.x.size + R.shape[1]
    chi2_red = float((r**2).sum() / max(n - p, 1))
    J = res.jac
    try:
        cov = np.linalg.inv(J.T @ J)
    except np.linalg.LinAlgError:
        cov = np.linalg.pinv(J.T @ J)
    beta = beta_factor(r) if inflate else 1.0
    scale = np.sqrt(max(chi2_red, 1e-30)) * beta
    sig = np.sqrt(np.clip(np.diag(cov), 0, None)) * scale
    u = (float(res.x[1]), float(res.x[2])) if free_u else u0
    u_sig = (float(sig[1]), float(sig[2])) if free_u else (0.0, 0.0)
    T = transit(res.x)
    baseline = R @ cache["a"]
    return ChannelFit(float(res.x[0]), float(sig[0]), u, u_sig, T, baseline, chi2_red, beta)


def smooth_limb_darkening(
    wl: NDArray[np.float64],
    u: NDArray[np.float64],
    u_sigma: NDArray[np.float64],
    degree: int = 2,
) -> NDArray[np.float64]:
    """Weighted polynomial (in wavelength) through per-channel limb-darkening estimates.

    Example:
        >>> wl = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
        >>> u = np.array([0.1, 0.2, 1.0, 0.4, 0.5])   # the 1.0 has a large sigma: overruled
        >>> smooth_limb_darkening(wl, u, np.array([0.01, 0.01, 10.0, 0.01, 0.01])).round(3)
        array([0.1, 0.2, 0.3, 0.4, 0.5])
    """
    s = np.where(np.isfinite(u_sigma) & (u_sigma > 0), u_sigma, np.inf)
    s = np.maximum(s, 1e-6 * np.ones_like(s))
    w = 1.0 / s
    if not np.isfinite(w).any() or (w > 0).sum() <= degree:
        return u.copy()
    coef = np.polyfit(wl, u, degree, w=w)
    return np.asarray(np.polyval(coef, wl), dtype=np.float64)


def smoothed_channel_limb_darkening(
    wavelength: NDArray[np.float64], fits: Sequence[ChannelFit]
) -> list[tuple[float, float]]:
    """Quadratic limb-darkening coefficients for the spectral channels, smoothed in
    wavelength (:func:`smooth_limb_darkening`) through free per-channel fits; ``fits[0]`` is
    the white light curve and is not part of the smoothing. Returns one ``(u1, u2)`` per
    spectral channel (``len(fits) - 1``).

    Example:
        >>> wl = np.array([0.7, 2.0, 2.5, 3.0, 3.5])
        >>> u1 = [0.9, 0.40, 0.35, 0.30, 0.25]       # fits[0] (0.9) is left out
        >>> fits = [ChannelFit(0.1, 1e-3, (a, 0.2), (0.02, 0.02), wl, wl, 1.0, 1.0) for a in u1]
        >>> [(round(a, 3), round(b, 3)) for a, b in smoothed_channel_limb_darkening(wl, fits)]
        [(0.4, 0.2), (0.35, 0.2), (0.3, 0.2), (0.25, 0.2)]
    """
    wl = np.asarray(wavelength, dtype=np.float64)[1:]
    u = np.array([f.u for f in fits[1:]])
    us = np.array([f.u_sigma for f in fits[1:]])
    u1s = smooth_limb_darkening(wl, u[:, 0], us[:, 0])
    u2s = smooth_limb_darkening(wl, u[:, 1], us[:, 1])
    return [(float(a), float(b)) for a, b in zip(u1s, u2s, strict=True)]


def ramp_regressor(
    obs: TransitObservation, R: NDArray[np.float64], white: WhiteFit
) -> NDArray[np.float64]:
    """``exp(-(t - t_start) / tau)`` with the time scale that best fits the white light curve.

    The detector ramp at the start of a visit is shared by the channels (with different
    amplitudes), so one time scale, picked on a grid by the white-light chi-square, gives a
    regressor every channel can use linearly.

    Example:
        >>> t = np.linspace(0.0, 6.0, 80)
        >>> f = TransitModel(t, TransitGeometry(3.0, 3.0, 10.0, 90.0))(0.1, 0.3, 0.2)
        >>> f = f * (1 - 2e-3 * np.exp(-t / 0.3))   # a ramp with time scale 0.3 h
        >>> flux = 1e4 * f[:, None] * (1 + np.random.default_rng(0).normal(0, 1e-4, (80, 3)))
        >>> obs = TransitObservation("1", t, np.array([0.7, 2.0, 3.0]), flux, np.ones((80, 3)),
        ...     np.zeros((80, 3)), star={"P": 3.0, "sma": 10.0, "i": 90.0})
        >>> R = regressors(obs, 2)
        >>> col = ramp_regressor(obs, R, fit_white(obs.normalized(), R))
        >>> float(col[0]), round(float((t[0] - t[1]) / np.log(col[1])), 2)  # grid tau nearest 0.3
        (1.0, 0.28)
    """
    norm = obs.normalized()
    y = norm.white / np.median(norm.white)
    T = channel_models(norm, white.geometry)[1](white.rp, white.u1, white.u2)
    t = norm.time_h - norm.time_h.min()
    best, best_col = np.inf, np.zeros_like(t)
    for tau in np.geomspace(0.03, 2.0, 16):
        col = np.exp(-t / tau)
        X = np.column_stack([R, col]) * T[:, None]
        r = y - X @ linear_solve(X, y)
        chi2 = float(r @ r)
        if chi2 < best:
            best, best_col = chi2, col
    return best_col
