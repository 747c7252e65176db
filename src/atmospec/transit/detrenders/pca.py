"""PCADetrender: common-mode systematics found as principal components across wavelength."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from atmospec.transit.detrenders._core import regressors
from atmospec.transit.detrenders.base import DepthSpectrum
from atmospec.transit.detrenders.polynomial import PolynomialDetrender, fit_linear_spectrum
from atmospec.transit.observation import TransitObservation

__all__ = ["PCADetrender", "common_modes"]


def common_modes(
    obs: TransitObservation, n_components: int = 2, degree: int = 2
) -> NDArray[np.float64]:
    """The leading temporal principal components of the AIRS-CH0 residuals left by a
    polynomial-baseline transit fit (systematics the polynomial missed that the channels share).

    Returns an ``(n_time, n_components)`` array of unit-variance components.

    Example:
        >>> from atmospec.transit.lightcurve import TransitGeometry, TransitModel
        >>> t = np.linspace(0.0, 6.0, 80)
        >>> f = TransitModel(t, TransitGeometry(3.0, 3.0, 10.0, 90.0))(0.1, 0.3, 0.2)
        >>> drift = 1 + 1e-3 * np.sin(2 * np.pi * t / 1.3)   # shared, not a low-order polynomial
        >>> noise = np.random.default_rng(0).normal(0, 1e-4, (80, 6))
        >>> flux = 1e4 * (f * drift)[:, None] * (1 + noise)
        >>> obs = TransitObservation("1", t, np.linspace(0.7, 3.5, 6), flux, np.ones((80, 6)),
        ...     np.zeros((80, 3)), star={"P": 3.0, "sma": 10.0, "i": 90.0})
        >>> c = common_modes(obs)
        >>> c.shape, c.std(axis=0).round(6), round(abs(float(np.corrcoef(c[:, 0], drift)[0, 1])), 1)
        ((80, 2), array([1., 1.]), 0.8)
    """
    n_channels = obs.flux.shape[1] - 1
    if not 0 < n_components < n_channels:
        # as many components as channels fit every channel's residual exactly (its sigma
        # collapses to the floor): the components must summarise the channels, not copy them
        raise ValueError(
            f"planet {obs.planet_id}: n_components={n_components} must be at least 1 and "
            f"below the number of AIRS-CH0 channels ({n_channels})"
        )
    first = PolynomialDetrender(degree=degree, centroid=True)
    first.transit_threshold = None  # the caller checks the transit
    first.fit(obs)
    norm = obs.normalized()
    resid = norm.flux[:, 1:] - first.model_[:, 1:]
    sd = resid.std(axis=0)
    resid = resid / np.where(sd > 0, sd, 1.0)
    u, _, _ = np.linalg.svd(resid - resid.mean(axis=0), full_matrices=False)
    comps = u[:, :n_components]
    sd_c = comps.std(axis=0)
    return np.asarray(comps / np.where(sd_c > 0, sd_c, 1.0), dtype=np.float64)


class PCADetrender(PolynomialDetrender):
    """Baseline = the polynomial regressors + the leading principal components of the
    residuals shared by all channels.

    Systematics common to the wavelength channels (a gain drift ``1 + f(t) g(lambda)``, a
    ramp) that a low-order polynomial misses appear as the first principal components of the
    residual matrix; every channel then regresses on them (with its own coefficients).

    Args:
        n_components: principal components used as regressors.
        degree: polynomial degree in time kept alongside them.

    Example:
        >>> from atmospec.transit.lightcurve import TransitGeometry, TransitModel
        >>> t = np.linspace(0.0, 6.0, 80)
        >>> f = TransitModel(t, TransitGeometry(3.0, 3.0, 10.0, 90.0))(0.1, 0.3, 0.2)
        >>> drift = 1 + 1e-3 * np.sin(2 * np.pi * t / 1.3)   # shared, not a low-order polynomial
        >>> noise = np.random.default_rng(0).normal(0, 1e-4, (80, 6))
        >>> flux = 1e4 * (f * drift)[:, None] * (1 + noise)
        >>> obs = TransitObservation("1", t, np.linspace(0.7, 3.5, 6), flux, np.ones((80, 6)),
        ...     np.zeros((80, 3)), star={"P": 3.0, "sma": 10.0, "i": 90.0})
        >>> pca, poly = PCADetrender(), PolynomialDetrender()
        >>> sigma_ppm = [round(float(np.median(d.fit(obs).sigma)) * 1e6, -1) for d in (pca, poly)]
        >>> sigma_ppm, pca.components_.shape   # the drift is removed by the components
        ([30.0, 350.0], (80, 2))
    """

    name = "pca"

    def __init__(self, n_components: int = 2, degree: int = 2) -> None:
        super().__init__(degree=degree, centroid=True)
        self.n_components = n_components

    def fit(self, observation: TransitObservation) -> DepthSpectrum:
        self.check_transit(observation)
        comps = common_modes(observation, self.n_components, self.degree)
        R = np.column_stack([regressors(observation, self.degree, self.centroid), comps])
        white, fits = fit_linear_spectrum(observation, R)
        self.components_ = comps
        return self._finish(observation, white, fits)
