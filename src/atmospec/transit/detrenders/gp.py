"""GPDetrender: a celerite2 GP fitted jointly with the white-light transit, then each channel
measured relative to the white light (differential spectroscopy)."""

from __future__ import annotations

import numpy as np

from atmospec.transit.detrenders.base import DepthSpectrum
from atmospec.transit.detrenders.common_mode import (
    LD_PRIOR,
    fit_common_mode,
    fit_differential,
    white_noise_level,
)
from atmospec.transit.detrenders.polynomial import PolynomialDetrender, spectrum_from_fits
from atmospec.transit.observation import TransitObservation

__all__ = ["GPDetrender", "white_noise_level"]


class GPDetrender(PolynomialDetrender):
    """Common-mode systematics by a Gaussian process, channels by differential spectroscopy.

    1. The AIRS-CH0 white light curve is fitted as transit x (polynomial in time + pointing
       regressors + exponential ramp) + a Matern-3/2 GP (celerite2) + white noise, all jointly
       (:func:`~atmospec.transit.detrenders.common_mode.fit_common_mode`). The GP follows the
       gain drift and the 1/f noise shared by all channels; the white depth's sigma comes from
       the GP likelihood with everything else marginalised.
    2. Each channel divided by the white light curve leaves its depth relative to the white
       depth; what remains of the systematics has the time shape of the fitted white-light
       components (ramp, pointing, GP), on which every channel regresses linearly
       (:func:`~atmospec.transit.detrenders.common_mode.fit_differential`).
    3. ``sigma^2 = sigma_relative^2 + sigma_white^2``: the shared white-light error is in every
       bin's sigma.

    Args:
        degree: polynomial degree in time of the white-light baseline and of each channel's
            relative baseline.
        ld_prior: Gaussian prior (u1, u2, sd) on the white-light limb darkening, or None.

    Example:
        >>> from atmospec.transit.lightcurve import TransitGeometry, TransitModel
        >>> t = np.linspace(0.0, 6.0, 80)
        >>> f = TransitModel(t, TransitGeometry(3.0, 3.0, 10.0, 90.0))(0.1, 0.3, 0.2)
        >>> flux = 1e4 * f[:, None] * (1 + np.random.default_rng(0).normal(0, 1e-4, (80, 3)))
        >>> obs = TransitObservation("1", t, np.array([0.7, 2.0, 3.0]), flux, np.ones((80, 3)),
        ...     np.zeros((80, 3)), star={"P": 3.0, "sma": 10.0, "i": 90.0})
        >>> spec = GPDetrender().fit(obs)   # injected depth 0.01 in every channel
        >>> spec.method, spec.depth.round(3), round(spec.meta["white_depth"] * 1e6, -1)
        ('gp', array([0.01, 0.01, 0.01]), 10000.0)
        >>> own, white = spec.meta["sigma_relative"], spec.meta["white_depth_sigma"]
        >>> bool(np.allclose(spec.sigma, np.hypot(own, white)))
        True
    """

    name = "gp"

    def __init__(
        self, degree: int = 1, ld_prior: tuple[float, float, float] | None = LD_PRIOR
    ) -> None:
        super().__init__(degree=degree, centroid=True)
        self.ld_prior = ld_prior

    def fit(self, observation: TransitObservation) -> DepthSpectrum:
        self.check_transit(observation)
        cm = fit_common_mode(observation, self.degree, self.ld_prior)
        fits = fit_differential(
            observation, cm, self.degree, ld_sd=None if self.ld_prior is None else 0.2
        )
        self.common_mode_ = cm
        self.observation_ = observation
        self.white_ = cm.white
        self.transit_ = np.column_stack([f.transit for f in fits])
        self.model_ = self.transit_ * np.column_stack([f.baseline for f in fits])
        spec = spectrum_from_fits(observation, fits, self.name)
        spec.meta["sigma_relative"] = spec.sigma.copy()
        spec.meta["white_depth"] = cm.depth
        spec.meta["white_depth_sigma"] = cm.depth_sigma
        spec.sigma = np.hypot(spec.sigma, cm.depth_sigma)
        self.spectrum_ = self._scaled(spec)
        return self.spectrum_
