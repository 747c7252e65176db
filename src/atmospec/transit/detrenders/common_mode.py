"""Common-mode systematics: a joint GP + transit fit of the white light curve, then each
channel fitted relative to it (differential spectroscopy)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize

from atmospec.transit.detrenders._core import (
    ChannelFit,
    WhiteFit,
    channel_models,
    fit_channel,
    fit_white,
    ramp_regressor,
    regressors,
    require_time_bins,
    smoothed_channel_limb_darkening,
)
from atmospec.transit.lightcurve import TransitGeometry, TransitModel
from atmospec.transit.observation import TransitObservation

__all__ = [
    "CommonModeFit",
    "RatioModel",
    "fit_common_mode",
    "fit_differential",
    "gp_log_likelihood",
    "white_noise_level",
]

_U_BOUNDS = (-1.0, 2.0)


def white_noise_level(y: NDArray[np.float64]) -> float:
    """Point-to-point scatter / sqrt(2): the white noise, blind to smooth systematics.

    Example:
        >>> import numpy as np
        >>> y = np.random.default_rng(1).normal(0, 2.0, 4000) + np.linspace(0, 50, 4000)
        >>> round(white_noise_level(y), 1)
        2.0
    """
    d = np.diff(y)
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2.0)) or 1e-12


def gp_log_likelihood(
    t: NDArray[np.float64],
    y: NDArray[np.float64],
    X: NDArray[np.float64],
    sigma: float,
    rho: float,
    white: float,
) -> tuple[float, NDArray[np.float64], NDArray[np.float64]]:
    """Log-likelihood of ``y = X a + GP + white noise`` with ``a`` marginalised (flat prior).

    The GP is a celerite2 Matern-3/2 term (amplitude ``sigma``, time scale ``rho``); the
    coefficients ``a`` are integrated out analytically (restricted likelihood), so their
    uncertainty widens whatever is fitted alongside them. Returns the log-likelihood, the
    generalised-least-squares coefficients and the GP prediction of the residuals.

    Example:
        >>> import numpy as np
        >>> t = np.linspace(0, 1, 50); X = np.ones((50, 1))
        >>> ll, a, _ = gp_log_likelihood(t, 2.0 + 0 * t, X, 1e-3, 0.1, 1e-3)
        >>> round(float(a[0]), 6)
        2.0
    """
    from atmospec._optional import require

    celerite2 = require("celerite2", "transit")
    terms = require("celerite2.terms", "transit")

    gp = celerite2.GaussianProcess(terms.Matern32Term(sigma=sigma, rho=rho))
    gp.compute(t, diag=np.full(t.size, white**2), quiet=False)
    KX = gp.apply_inverse(X)
    A = X.T @ KX + 1e-14 * np.eye(X.shape[1])
    a = np.linalg.solve(A, KX.T @ y)
    r = y - X @ a
    sign, logdet = np.linalg.slogdet(A)
    ll = float(gp.log_likelihood(r)) - 0.5 * float(logdet)
    return ll, a, np.asarray(gp.predict(r, return_cov=False), dtype=np.float64)


@dataclass
class CommonModeFit:
    """The white light curve decomposed as transit x (regressors + GP).

    Attributes:
        white: the white-light orbit, radius ratio and limb darkening.
        depth: white-light transit depth ``rp**2``.
        depth_sigma: its 1-sigma, from the curvature of the GP likelihood with the baseline
            coefficients and the GP hyperparameters marginalised (Laplace approximation).
        transit: the fitted white-light transit ``T_w(t)``.
        systematics: named time series (mean 0) whose sum is the fitted multiplicative
            systematics minus 1: each regressor's contribution and the GP.
        gp: ln amplitude, ln time scale and white-noise level of the GP.

    Example:
        >>> t = np.linspace(0.0, 6.0, 80)
        >>> f = TransitModel(t, TransitGeometry(3.0, 3.0, 10.0, 90.0))(0.1, 0.3, 0.2)
        >>> flux = 1e4 * f[:, None] * (1 + np.random.default_rng(0).normal(0, 1e-4, (80, 3)))
        >>> obs = TransitObservation("1", t, np.array([0.7, 2.0, 3.0]), flux, np.ones((80, 3)),
        ...     np.zeros((80, 3)), star={"P": 3.0, "sma": 10.0, "i": 90.0})
        >>> cm = fit_common_mode(obs)
        >>> round(cm.depth, 4), round(cm.depth_sigma * 1e6, -1), sorted(cm.systematics)
        (0.01, 30.0, ['gp', 'ramp', 't^1'])
    """

    white: WhiteFit
    depth: float
    depth_sigma: float
    transit: NDArray[np.float64]
    systematics: dict[str, NDArray[np.float64]] = field(default_factory=dict)
    gp: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def regressors(self) -> NDArray[np.float64]:
        """The systematics components above a tenth of the white noise, as columns scaled
        to unit standard deviation (components below the noise would only let the channels
        trade transit-shape errors against them)."""
        level = 0.1 * self.gp[2]
        cols = [v / s for v in self.systematics.values() if (s := float(np.std(v))) > level]
        return np.column_stack(cols) if cols else np.zeros((self.transit.size, 0))


def _white_curve(obs: TransitObservation) -> NDArray[np.float64]:
    norm = obs.normalized()
    w = norm.flux[:, 1:].mean(axis=1)
    return np.asarray(w / np.median(w), dtype=np.float64)


#: Gaussian prior on the quadratic limb darkening (u1, u2, sd): generic near-infrared values
#: for FGK dwarfs (model-atmosphere tables give u1 ~ 0.1-0.4, u2 ~ 0.1-0.3 at 2-4 um).
LD_PRIOR: tuple[float, float, float] = (0.25, 0.15, 0.15)


def fit_common_mode(
    obs: TransitObservation,
    degree: int = 1,
    ld_prior: tuple[float, float, float] | None = LD_PRIOR,
) -> CommonModeFit:
    """Fit the AIRS-CH0 white light curve with transit x (polynomial + pointing + ramp
    regressors) + a Matern-3/2 GP, all jointly.

    The mid-time, radius ratio, limb darkening (with the Gaussian prior ``ld_prior``) and GP
    amplitude, time scale and white-noise level are found by maximising the likelihood with
    the regressor coefficients marginalised; the depth's sigma comes from the inverse Hessian
    over all of them, so it contains the correlated noise the GP cannot tell from the transit
    (drifts and 1/f noise on the transit's time scale).

    Example:
        >>> t = np.linspace(0.0, 6.0, 80)
        >>> f = TransitModel(t, TransitGeometry(3.0, 3.0, 10.0, 90.0))(0.1, 0.3, 0.2)
        >>> flux = 1e4 * f[:, None] * (1 + np.random.default_rng(0).normal(0, 1e-4, (80, 3)))
        >>> obs = TransitObservation("1", t, np.array([0.7, 2.0, 3.0]), flux, np.ones((80, 3)),
        ...     np.zeros((80, 3)), star={"P": 3.0, "sma": 10.0, "i": 90.0})
        >>> cm = fit_common_mode(obs)   # injected: depth 0.1**2 = 10000 ppm at 3 h
        >>> round(cm.depth * 1e6, -1), round(float(cm.white.geometry.t0_h), 2), cm.transit.shape
        (10000.0, 3.0, (80,))
    """
    R0 = regressors(obs, degree, centroid=True)
    # the baseline and ramp coefficients, mid-time, radius ratio, limb darkening, 3 GP terms
    require_time_bins(obs, R0.shape[1] + 8, "the white-light transit, baseline and GP")
    start = fit_white(obs.normalized(), R0)
    ramp = ramp_regressor(obs, R0, start)
    R = np.column_stack([R0, ramp])
    names = [f"t^{k}" for k in range(degree + 1)] + [
        f"pointing{j}" for j in range(R0.shape[1] - degree - 1)
    ]
    names.append("ramp")
    y = _white_curve(obs)
    t = obs.time_h
    model = TransitModel(t, start.geometry, obs.meta.get("exposure_offsets_h", {}).get("AIRS-CH0"))
    wn = max(white_noise_level(y), 1e-5)  # a 10 ppm floor keeps noiseless curves well posed
    span = float(t.max() - t.min())
    dt = float(np.median(np.diff(t)))
    u_start = (ld_prior[0], ld_prior[1]) if ld_prior is not None else (start.u1, start.u2)
    t0s, rp_s = _scan_mid_time(t, y, R, model, u_start, start)
    T_s = model(rp_s, *u_start, t0_h=t0s)
    a_s = np.linalg.lstsq(R * T_s[:, None], y, rcond=None)[0]
    sd = max(float(np.std(y - (R @ a_s) * T_s)), wn)
    lo = np.array(
        [
            t0s - 0.03 * span,
            0.5 * rp_s,
            _U_BOUNDS[0],
            _U_BOUNDS[0],
            np.log(wn) - 5,
            np.log(2 * dt),
            np.log(0.3),
        ]
    )
    hi = np.array(
        [
            t0s + 0.03 * span,
            2.0 * rp_s,
            _U_BOUNDS[1],
            _U_BOUNDS[1],
            np.log(sd) + 3,
            np.log(3 * span),
            np.log(3.0),
        ]
    )

    def nll(theta: NDArray[np.float64]) -> float:
        if np.any(theta < lo) or np.any(theta > hi):
            return 1e25
        t0, rp, u1, u2, ln_s, ln_r, ln_w = theta
        T = model(rp, u1, u2, t0_h=t0)
        try:
            ll, _, _ = gp_log_likelihood(
                t, y, R * T[:, None], np.exp(ln_s), np.exp(ln_r), wn * np.exp(ln_w)
            )
        except Exception:  # the factorisation fails for pathological hyperparameters
            return 1e25
        if ld_prior is not None:
            ll -= 0.5 * ((u1 - ld_prior[0]) ** 2 + (u2 - ld_prior[1]) ** 2) / ld_prior[2] ** 2
        return -ll if np.isfinite(ll) else 1e25

    # staged Nelder-Mead (derivative-free: the bounds and failed factorisations make the
    # likelihood non-smooth): GP hyperparameters at the scanned transit, from two starts
    # (short-scale noise at the white level, long-scale drift); then the transit with the
    # GP fixed; then everything together
    scale = np.array([1e-2, 1e-3, 0.05, 0.05, 0.5, 0.5, 0.1])
    opts = {"xatol": 1e-3, "fatol": 1e-3}
    theta = np.clip(np.array([t0s, rp_s, *u_start, 0.0, 0.0, 0.0]), lo + 1e-9, hi - 1e-9)

    def sub(idx: list[int], x: NDArray[np.float64], maxiter: int) -> NDArray[np.float64]:
        def f(z: NDArray[np.float64]) -> float:
            full = x.copy()
            full[idx] = z * scale[idx]
            return nll(full)

        res = minimize(
            f, x[idx] / scale[idx], method="Nelder-Mead", options={"maxiter": maxiter, **opts}
        )
        out = x.copy()
        if res.fun < nll(x):
            out[idx] = res.x * scale[idx]
        return out

    best, best_f = theta, np.inf
    for ln_s0, ln_r0 in ((np.log(wn), np.log(0.1 * span)), (np.log(sd), np.log(span))):
        x = theta.copy()
        x[4:6] = np.clip([ln_s0, ln_r0], lo[4:6] + 1e-9, hi[4:6] - 1e-9)
        x = sub([4, 5, 6], x, 200)
        if (f := nll(x)) < best_f:
            best, best_f = x, f
    best = sub([0, 1, 2, 3], best, 300)
    best = sub(list(range(7)), best, 400)
    t0, rp, u1, u2, ln_s, ln_r, ln_w = best
    geo = TransitGeometry(t0, start.geometry.period_d, start.geometry.a_rs, start.geometry.inc_deg)
    T = model(rp, u1, u2, t0_h=t0)
    X = R * T[:, None]
    _, a, pred = gp_log_likelihood(t, y, X, np.exp(ln_s), np.exp(ln_r), wn * np.exp(ln_w))
    sigma_rp = _fisher_sigma(
        lambda th: model(th[0], th[1], th[2], t0_h=th[3]) * (R @ a),
        np.array([rp, u1, u2, t0]),
        np.array([1e-4, 1e-3, 1e-3, 1e-4]),
        X,
        t,
        (np.exp(ln_s), np.exp(ln_r), wn * np.exp(ln_w)),
        None if ld_prior is None else ld_prior[2],
    )
    level = float(a[0]) if abs(a[0]) > 0 else 1.0
    syst: dict[str, NDArray[np.float64]] = {}
    for j, name in enumerate(names):
        if j == 0:
            continue
        part = R[:, j] * a[j] / level
        syst[name] = part - part.mean()
    gp_part = pred / (T * level)
    syst["gp"] = gp_part - gp_part.mean()
    return CommonModeFit(
        WhiteFit(geo, float(rp), float(u1), float(u2)),
        float(rp**2),
        float(2 * abs(rp) * sigma_rp),
        T,
        syst,
        (float(ln_s), float(ln_r), float(wn * np.exp(ln_w))),
    )


def _fisher_sigma(
    mean: Callable[[NDArray[np.float64]], NDArray[np.float64]],
    theta: NDArray[np.float64],
    h: NDArray[np.float64],
    X: NDArray[np.float64],
    t: NDArray[np.float64],
    gp: tuple[float, float, float],
    ld_sd: float | None,
) -> float:
    """1-sigma of ``theta[0]`` from the Fisher matrix of the GP likelihood, with the linear
    coefficients (columns ``X``) and the other nonlinear parameters (limb darkening with its
    prior, mid-time) marginalised: ``cov = (J^T K^-1 J + prior)^-1``, ``J = [X, dmean/dtheta]``."""
    from atmospec._optional import require

    celerite2 = require("celerite2", "transit")
    terms = require("celerite2.terms", "transit")

    fn = mean
    cols = []
    for i in range(theta.size):
        e = np.zeros(theta.size)
        e[i] = h[i]
        cols.append((fn(theta + e) - fn(theta - e)) / (2 * h[i]))
    J = np.column_stack([np.column_stack(cols), X])
    k = celerite2.GaussianProcess(terms.Matern32Term(sigma=gp[0], rho=gp[1]))
    k.compute(t, diag=np.full(t.size, gp[2] ** 2), quiet=True)
    F = J.T @ k.apply_inverse(J)
    if ld_sd is not None:
        F[1, 1] += 1.0 / ld_sd**2
        F[2, 2] += 1.0 / ld_sd**2
    F += 1e-12 * np.trace(F) / F.shape[0] * np.eye(F.shape[0])
    try:
        var = float(np.linalg.inv(F)[0, 0])
    except np.linalg.LinAlgError:
        var = float(np.linalg.pinv(F)[0, 0])
    return float(np.sqrt(var)) if np.isfinite(var) and var > 0 else 0.0


def _scan_mid_time(
    t: NDArray[np.float64],
    y: NDArray[np.float64],
    R: NDArray[np.float64],
    model: TransitModel,
    u: tuple[float, float],
    start: WhiteFit,
) -> tuple[float, float]:
    """Mid-time and radius ratio to start the joint fit from: a scan of mid-times over the
    visit, each with the depth and baseline solved by generalised least squares under a
    Matern-3/2 noise model (a smooth drift can fool an unweighted fit's mid-time)."""
    from atmospec._optional import require

    celerite2 = require("celerite2", "transit")
    terms = require("celerite2.terms", "transit")

    span = float(t.max() - t.min())
    T0 = model(start.rp, u[0], u[1], t0_h=start.geometry.t0_h)
    a = np.linalg.lstsq(R * T0[:, None], y, rcond=None)[0]
    sd = float(np.std(y - (R @ a) * T0)) or 1e-6
    gp = celerite2.GaussianProcess(terms.Matern32Term(sigma=sd, rho=0.1 * span))
    gp.compute(t, diag=np.full(t.size, (0.3 * sd) ** 2), quiet=True)
    rp_unit = 0.1
    best = (np.inf, start.geometry.t0_h, start.rp)
    candidates = np.append(
        np.linspace(t.min() + 0.15 * span, t.max() - 0.15 * span, 41), start.geometry.t0_h
    )
    for t0 in candidates:
        shape = (1.0 - model(rp_unit, u[0], u[1], t0_h=t0)) / rp_unit**2
        X = np.column_stack([R, -shape])
        KX = gp.apply_inverse(X)
        coef = np.linalg.solve(X.T @ KX + 1e-14 * np.eye(X.shape[1]), KX.T @ y)
        r = y - X @ coef
        chi2 = float(r @ gp.apply_inverse(r))
        depth = coef[-1] / max(float(coef[0]), 1e-12)
        if depth > 0 and chi2 < best[0]:
            best = (chi2, float(t0), float(np.sqrt(depth)))
    return best[1], float(np.clip(best[2], 2e-3, 0.45))


class RatioModel:
    """A channel's transit divided by the fitted white-light transit: ``T_k(rp, u) / T_w``.

    Example:
        >>> import numpy as np
        >>> from atmospec.transit.lightcurve import TransitGeometry
        >>> m = TransitModel(np.linspace(-2, 2, 9), TransitGeometry(0.0, 3.0, 10.0, 90.0))
        >>> r = RatioModel(m, m(0.1, 0.3, 0.2))
        >>> float(np.abs(r(0.1, 0.3, 0.2) - 1).max())
        0.0
    """

    def __init__(self, model: TransitModel, white_transit: NDArray[np.float64]) -> None:
        self.model = model
        self.white_transit = white_transit

    def __call__(self, rp: float, u1: float, u2: float) -> NDArray[np.float64]:
        return np.asarray(self.model(rp, u1, u2) / self.white_transit, dtype=np.float64)


def fit_differential(
    obs: TransitObservation,
    cm: CommonModeFit,
    degree: int = 1,
    ld_sd: float | None = 0.2,
) -> list[ChannelFit]:
    """Fit every channel divided by the white light curve: ``y_k / W = T_k / T_w x baseline``.

    Systematics common to all channels cancel in the ratio; what is left of a systematic whose
    amplitude varies with wavelength (a gain drift ``f(t) g(lambda)``, a ramp, pointing losses)
    has the time shape of the white-light systematics, so each channel regresses linearly on
    those components (and a polynomial in time). The radius ratio's sigma is the relative one
    (chi-square and red-noise scaled); the white-light depth's sigma is added by the caller.
    Limb darkening is first fitted per channel with a Gaussian prior (sd ``ld_sd``) around
    the white-light values, smoothed in wavelength, then held fixed.

    Example:
        >>> t = np.linspace(0.0, 6.0, 80)
        >>> model = TransitModel(t, TransitGeometry(3.0, 3.0, 10.0, 90.0))
        >>> f = np.column_stack([model(rp, 0.3, 0.2) for rp in (0.1, 0.1, 0.105)])
        >>> flux = 1e4 * f * (1 + np.random.default_rng(0).normal(0, 1e-4, (80, 3)))
        >>> obs = TransitObservation("1", t, np.array([0.7, 2.0, 3.0]), flux, np.ones((80, 3)),
        ...     np.zeros((80, 3)), star={"P": 3.0, "sma": 10.0, "i": 90.0})
        >>> fits = fit_differential(obs, fit_common_mode(obs))
        >>> [round(fit.rp, 3) for fit in fits]
        [0.1, 0.1, 0.105]
    """
    norm = obs.normalized()
    w = _white_curve(obs)
    ratio = norm.flux / w[:, None]
    err = norm.flux_err / w[:, None]
    tau = np.linspace(-1.0, 1.0, obs.n_time)
    R = np.column_stack([tau**k for k in range(degree + 1)] + [cm.regressors])
    require_time_bins(obs, R.shape[1] + 3, "a channel's relative transit on this baseline")
    models = [RatioModel(m, cm.transit) for m in channel_models(norm, cm.white.geometry)]
    u0 = (cm.white.u1, cm.white.u2)

    def one(k: int, rp0: float, u: tuple[float, float], free_u: bool) -> ChannelFit:
        return fit_channel(
            ratio[:, k],
            err[:, k],
            R,
            models[k],
            rp0,
            u,
            free_u=free_u,
            inflate=True,
            u_prior=None if ld_sd is None else (*u0, ld_sd),
        )

    first = [one(k, cm.white.rp, u0, True) for k in range(obs.n_wavelength)]
    smooth_u = smoothed_channel_limb_darkening(obs.wavelength, first)
    fits = [first[0]]
    for k in range(1, obs.n_wavelength):
        fits.append(one(k, first[k].rp, smooth_u[k - 1], False))
    for f in fits:  # back to the channel itself: transit T_k and baseline W / T_w x (R b)
        f.transit = f.transit * cm.transit
        f.baseline = f.baseline * w / cm.transit
    return fits
