"""GPDetrender: a celerite2 Gaussian process fitted jointly with the transit per channel."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize

from atmospec.transit.detrenders._core import (
    ChannelFit,
    channel_models,
    fit_channel,
    fit_white,
    ramp_regressor,
    regressors,
)
from atmospec.transit.detrenders.base import DepthSpectrum
from atmospec.transit.detrenders.polynomial import PolynomialDetrender, fit_linear_spectrum
from atmospec.transit.lightcurve import TransitModel
from atmospec.transit.observation import TransitObservation

__all__ = ["GPDetrender", "fit_channel_gp", "white_noise_level"]


def _profile(
    theta: NDArray[np.float64],
    t: NDArray[np.float64],
    y: NDArray[np.float64],
    R: NDArray[np.float64],
    T_of: TransitModel,
    u: tuple[float, float],
    white: float,
    out: dict[str, NDArray[np.float64]] | None = None,
) -> float:
    """Negative GP log-likelihood of ``y - (R a) T`` with ``a`` at its GLS optimum.

    ``theta`` = (rp, ln sigma_gp, ln rho, ln s): GP amplitude, time scale (h) and the
    white-noise level ``s * white``.
    """
    import celerite2
    from celerite2 import terms

    rp, ln_sig, ln_rho, ln_s = theta
    T = T_of(rp, u[0], u[1])
    gp = celerite2.GaussianProcess(terms.Matern32Term(sigma=np.exp(ln_sig), rho=np.exp(ln_rho)))
    try:
        gp.compute(t, diag=np.full(t.size, (np.exp(ln_s) * white) ** 2), quiet=False)
    except Exception:  # the factorisation fails for pathological hyperparameters
        return 1e25
    X = R * T[:, None]
    KX = gp.apply_inverse(X)
    a = np.linalg.solve(X.T @ KX + 1e-12 * np.eye(X.shape[1]), KX.T @ y)
    r = y - X @ a
    ll = float(gp.log_likelihood(r))
    if out is not None:
        out["a"], out["T"], out["pred"] = a, T, gp.predict(r, return_cov=False)
    return -ll if np.isfinite(ll) else 1e25


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


def fit_channel_gp(
    t: NDArray[np.float64],
    y: NDArray[np.float64],
    R: NDArray[np.float64],
    model: TransitModel,
    start: ChannelFit,
    white: float,
    ln_rho: float | None = None,
) -> tuple[ChannelFit, NDArray[np.float64], float]:
    """Maximise the GP likelihood over rp and the GP amplitude (and the time scale when
    ``ln_rho`` is None); the white level is fixed at ``white``. The 1-sigma of rp comes from
    the inverse Hessian of the negative log-likelihood. Returns the fit, the GP prediction
    of the residuals and ln rho."""
    u = start.u
    span = float(t.max() - t.min())
    resid_sd = float(np.std(y - start.baseline * start.transit))
    rho_bounds = (np.log(2 * np.median(np.diff(t))), np.log(2 * span))
    sig0 = np.log(max(resid_sd, 0.3 * white))
    sig_bounds = (np.log(white) - 8, np.log(white) + 4)
    if ln_rho is None:
        x0 = np.array([start.rp, sig0, np.log(0.1 * span)])
        bounds = [(-0.5, 0.5), sig_bounds, rho_bounds]

        def f(th: NDArray[np.float64]) -> float:
            return _profile(np.append(th, 0.0), t, y, R, model, u, white)
    else:
        fixed = float(ln_rho)
        x0 = np.array([start.rp, sig0])
        bounds = [(-0.5, 0.5), sig_bounds]

        def f(th: NDArray[np.float64]) -> float:
            return _profile(np.array([th[0], th[1], fixed, 0.0]), t, y, R, model, u, white)

    x0 = np.clip(x0, [b[0] for b in bounds], [b[1] for b in bounds])
    scale = np.array([max(start.rp_sigma, 1e-6)] + [1.0] * (x0.size - 1))
    res = minimize(
        lambda z: f(z * scale),
        x0 / scale,
        method="Nelder-Mead",
        bounds=[(lo / s, hi / s) for (lo, hi), s in zip(bounds, scale, strict=True)],
        options={"maxiter": 400, "xatol": 1e-3, "fatol": 1e-4},
    )
    best = np.asarray(res.x * scale, dtype=np.float64)
    h = np.array([max(1e-7, 0.2 * start.rp_sigma)] + [0.05] * (best.size - 1))
    H = _hessian(f, best, h)
    sigma_rp = np.nan
    try:
        cov = np.linalg.inv(H)
        if cov[0, 0] > 0:
            sigma_rp = float(np.sqrt(cov[0, 0]))
    except np.linalg.LinAlgError:
        pass
    if not np.isfinite(sigma_rp) and H[0, 0] > 0:
        sigma_rp = float(1.0 / np.sqrt(H[0, 0]))
    if not np.isfinite(sigma_rp):
        sigma_rp = start.rp_sigma
    full = np.array([best[0], best[1], best[2] if ln_rho is None else ln_rho, 0.0])
    out: dict[str, NDArray[np.float64]] = {}
    _profile(full, t, y, R, model, u, white, out)
    baseline = R @ out["a"]
    fit = ChannelFit(float(best[0]), sigma_rp, u, (0.0, 0.0), out["T"], baseline, 1.0, 1.0)
    return fit, out["pred"], float(full[2])


def _hessian(f: object, x: NDArray[np.float64], h: NDArray[np.float64]) -> NDArray[np.float64]:
    """Central finite-difference Hessian."""
    fn = f  # type: ignore[assignment]
    n = x.size
    H = np.empty((n, n))
    f0 = fn(x)  # type: ignore[operator]
    for i in range(n):
        for j in range(i, n):
            if i == j:
                e = np.zeros(n)
                e[i] = h[i]
                H[i, i] = (fn(x + e) - 2 * f0 + fn(x - e)) / h[i] ** 2  # type: ignore[operator]
            else:
                ei = np.zeros(n)
                ej = np.zeros(n)
                ei[i], ej[j] = h[i], h[j]
                H[i, j] = H[j, i] = (
                    fn(x + ei + ej) - fn(x + ei - ej) - fn(x - ei + ej) + fn(x - ei - ej)  # type: ignore[operator]
                ) / (4 * h[i] * h[j])
    return H


class GPDetrender(PolynomialDetrender):
    """Per channel: transit x linear baseline + a Matern-3/2 Gaussian process (celerite2).

    The limb darkening and starting point come from the polynomial fit; the GP time scale
    is fitted once on the white light curve and the white-noise level of each channel is its
    point-to-point scatter; then the radius ratio and the GP amplitude are fitted jointly by
    maximum likelihood (baseline coefficients at their generalised-least-squares optimum).
    The GP absorbs ramps, drifts and 1/f noise that a low-order baseline misses, and its
    likelihood curvature gives a sigma that accounts for correlated noise.

    Args:
        degree: polynomial degree of the baseline under the GP.
        centroid: include the pointing regressors in the baseline.
        ramp: include an exponential start-of-visit ramp (time scale from the white light).
    """

    name = "gp"

    def __init__(self, degree: int = 1, centroid: bool = True, ramp: bool = True) -> None:
        super().__init__(degree=degree, centroid=centroid)
        self.ramp = ramp

    def fit(self, observation: TransitObservation) -> DepthSpectrum:
        R = regressors(observation, self.degree, self.centroid)
        if self.ramp:
            white0 = fit_white(observation.normalized(), R)
            R = np.column_stack([R, ramp_regressor(observation, R, white0)])
        white, first = fit_linear_spectrum(observation, R, inflate=False)
        norm = observation.normalized()
        models = channel_models(norm, white.geometry)
        fits: list[ChannelFit] = []
        gp_pred = np.zeros_like(norm.flux)
        # the GP time scale is learnt once, on the summed AIRS-CH0 channels
        wy = norm.flux[:, 1:].mean(axis=1)
        wstart = fit_channel(
            wy,
            np.ones_like(wy),
            R,
            models[1],
            white.rp,
            (white.u1, white.u2),
            free_u=False,
            inflate=False,
        )
        _, _, ln_rho = fit_channel_gp(norm.time_h, wy, R, models[1], wstart, white_noise_level(wy))
        self.ln_rho_ = ln_rho
        for k in range(observation.n_wavelength):
            y = norm.flux[:, k]
            fit, pred, _ = fit_channel_gp(
                norm.time_h, y, R, models[k], first[k], white_noise_level(y), ln_rho
            )
            fits.append(fit)
            gp_pred[:, k] = pred
        spec = self._finish(observation, white, fits)
        self.model_ = self.model_ + gp_pred
        return spec
