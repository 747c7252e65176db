"""PolynomialDetrender: a multiplicative linear baseline on time and pointing regressors."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from atmospec.transit.detrenders._core import (
    ChannelFit,
    WhiteFit,
    channel_models,
    fit_channel,
    fit_white,
    regressors,
    require_time_bins,
    smoothed_channel_limb_darkening,
)
from atmospec.transit.detrenders.base import DepthSpectrum, Detrender
from atmospec.transit.observation import TransitObservation

__all__ = ["PolynomialDetrender", "fit_linear_spectrum"]


def fit_linear_spectrum(
    obs: TransitObservation,
    R: NDArray[np.float64],
    *,
    inflate: bool = True,
) -> tuple[WhiteFit, list[ChannelFit]]:
    """Fit every channel with baseline ``R a`` times a limb-darkened transit.

    Steps: white-light fit (mid-time, limb darkening); per channel a fit with free limb
    darkening; a quadratic in wavelength through the AIRS-CH0 limb-darkening estimates; a
    final per-channel fit of the radius ratio with the smoothed limb darkening fixed (FGS1
    keeps its own free limb darkening).

    Example:
        >>> from atmospec.transit.lightcurve import TransitGeometry, TransitModel
        >>> t = np.linspace(0.0, 6.0, 80)
        >>> f = TransitModel(t, TransitGeometry(3.0, 3.0, 10.0, 90.0))(0.1, 0.3, 0.2)
        >>> flux = 1e4 * f[:, None] * (1 + np.random.default_rng(0).normal(0, 1e-4, (80, 3)))
        >>> obs = TransitObservation("1", t, np.array([0.7, 2.0, 3.0]), flux, np.ones((80, 3)),
        ...     np.zeros((80, 3)), star={"P": 3.0, "sma": 10.0, "i": 90.0})
        >>> from atmospec.transit.detrenders._core import regressors
        >>> white, fits = fit_linear_spectrum(obs, regressors(obs, 2))
        >>> round(white.rp, 2), [round(fit.rp**2 * 1e6, -2) for fit in fits]
        (0.1, [10100.0, 10000.0, 10000.0])
        >>> fits[0].u_sigma[0] > 0, fits[1].u_sigma   # AIRS-CH0: smoothed, then held fixed
        (True, (0.0, 0.0))
    """
    # the free limb-darkening pass fits the radius ratio, u1, u2 and the baseline
    require_time_bins(obs, R.shape[1] + 3, "a transit with free limb darkening on this baseline")
    norm = obs.normalized()
    white = fit_white(norm, R)
    models = channel_models(norm, white.geometry)
    first = [
        fit_channel(
            norm.flux[:, k],
            norm.flux_err[:, k],
            R,
            models[k],
            white.rp,
            (white.u1, white.u2),
            free_u=True,
            inflate=inflate,
        )
        for k in range(obs.n_wavelength)
    ]
    smooth_u = smoothed_channel_limb_darkening(obs.wavelength, first)
    fits = [first[0]]
    for k in range(1, obs.n_wavelength):
        fits.append(
            fit_channel(
                norm.flux[:, k],
                norm.flux_err[:, k],
                R,
                models[k],
                first[k].rp,
                smooth_u[k - 1],
                free_u=False,
                inflate=inflate,
            )
        )
    return white, fits


def spectrum_from_fits(
    obs: TransitObservation, fits: list[ChannelFit], method: str
) -> DepthSpectrum:
    """Depth = rp**2 with sigma = 2 |rp| sigma_rp (floored at 1 ppm)."""
    rp = np.array([f.rp for f in fits])
    sig = np.array([f.rp_sigma for f in fits])
    depth = np.sign(rp) * rp**2
    sigma = np.maximum(2.0 * np.abs(rp) * sig, 1e-6)
    return DepthSpectrum(
        obs.wavelength.copy(),
        depth,
        sigma,
        planet_id=obs.planet_id,
        method=method,
        meta={"beta": [f.beta for f in fits], "chi2_red": [f.chi2_red for f in fits]},
    )


class PolynomialDetrender(Detrender):
    """Baseline = polynomial in time + pointing regressors (FGS1 centroids), times the transit.

    The classic linear-regression baseline: each channel's flux is modelled as
    ``(a0 + a1 t + a2 t^2 + b . centroids) * T(t)``; sigmas are scaled by the residual
    chi-square and the red-noise factor.

    Args:
        degree: polynomial degree in time.
        centroid: include the pointing regressors.

    Example:
        >>> from atmospec.transit.lightcurve import TransitGeometry, TransitModel
        >>> t = np.linspace(0.0, 6.0, 80)
        >>> f = TransitModel(t, TransitGeometry(3.0, 3.0, 10.0, 90.0))(0.1, 0.3, 0.2)
        >>> flux = 1e4 * f[:, None] * (1 + np.random.default_rng(0).normal(0, 1e-4, (80, 3)))
        >>> obs = TransitObservation("1", t, np.array([0.7, 2.0, 3.0]), flux, np.ones((80, 3)),
        ...     np.zeros((80, 3)), star={"P": 3.0, "sma": 10.0, "i": 90.0})
        >>> spec = PolynomialDetrender(degree=2).fit(obs)   # injected depth 0.01
        >>> spec.method, spec.depth.round(3), (spec.sigma * 1e6).round(-1)
        ('poly', array([0.01, 0.01, 0.01]), array([40., 30., 30.]))
    """

    name = "poly"

    def __init__(self, degree: int = 2, centroid: bool = True) -> None:
        self.degree = degree
        self.centroid = centroid

    def fit(self, observation: TransitObservation) -> DepthSpectrum:
        self.check_transit(observation)
        R = regressors(observation, self.degree, self.centroid)
        white, fits = fit_linear_spectrum(observation, R)
        return self._finish(observation, white, fits)

    def _finish(
        self, observation: TransitObservation, white: WhiteFit, fits: list[ChannelFit]
    ) -> DepthSpectrum:
        self.observation_ = observation
        self.white_ = white
        self.transit_ = np.column_stack([f.transit for f in fits])
        self.model_ = self.transit_ * np.column_stack([f.baseline for f in fits])
        self.spectrum_ = self._scaled(spectrum_from_fits(observation, fits, self.name))
        return self.spectrum_
