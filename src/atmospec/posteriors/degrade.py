"""Bring a spectrum whose S/N lies above an NPE's training range into it, by adding noise.

A noise-conditional NPE has learned ``p(theta | flux, sigma)`` for the S/N range its noise
model drew (:class:`~atmospec.posteriors.npe.NoiseModel`). Above that range its posterior is
an extrapolation: on simulated Diamondback spectra carrying model-error realisations, the
shipped ``npe_dback24`` (trained at S/N 3-30) puts the truth inside its 68 % Teff interval
for 49 % of spectra at S/N 100 and for 24 % at S/N 300.

Adding Gaussian noise of standard deviation ``sigma * sqrt(k**2 - 1)`` to each pixel, with
``k = S/N / snr_max``, turns the observation into one taken with errors ``k * sigma``: a
spectrum at exactly ``snr_max``, with the same error shape, that the NPE was trained on. Its
posterior is then the exact (calibrated) posterior of that noisier observation: wider than
what the data alone would allow, never narrower than the truth allows. On the same simulated
spectra at S/N 100 the 68 % Teff interval holds the truth for 65 % (67 % for spectra taken
at S/N 30), and the Teff RMSE of the median is 15 K against 18 K without the added noise.
One noise draw is used (seeded): averaging posteriors over several draws would widen them
by the spread of their medians and over-cover (75 % at 68 % with 16 draws).

The target is :data:`MARGIN` times the top of the range, not the top itself: the added noise
moves the median flux that normalises the spectrum, hence the measured S/N, by up to a
couple of per cent (a spectrum of deep bands has few pixels near its median), and a
spectrum brought to exactly the top would often be measured above it again;
:func:`degrade_into_range` adds more noise while that happens.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from atmospec.spectrum import Spectrum

__all__ = [
    "MARGIN",
    "noise_snr_rows",
    "degrade_to_snr",
    "degrade_spectrum",
    "degrade_into_range",
    "degraded_note",
]

FloatArray = NDArray[np.float64]

MARGIN: float = 0.99
"""A spectrum above an NPE's S/N range is brought to this fraction of the range's top."""


def noise_snr_rows(flux: FloatArray, sigma: FloatArray) -> FloatArray:
    """Per-row S/N in the noise model's sense: ``median(flux) / median(sigma)`` over the bins
    with a finite flux and error (a masked bin, of infinite error, is no measurement; NaN for
    a row without one). The one definition: :func:`atmospec.prediction.routing.noise_snr`
    reads one spectrum with it, and the OOD score's threshold is read at it.

    Example:
        >>> noise_snr_rows(np.full((2, 4), 2.0), np.array([[0.1] * 4, [0.02] * 4])).tolist()
        [20.0, 100.0]
        >>> float(noise_snr_rows(np.full(4, 2.0), np.array([0.1, 0.1, 0.1, np.inf]))[0])
        20.0
    """
    f = np.atleast_2d(np.asarray(flux, dtype=np.float64))
    s = np.atleast_2d(np.asarray(sigma, dtype=np.float64))
    good = np.isfinite(f) & np.isfinite(s)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a row without a measured bin: NaN
        num = np.nanmedian(np.where(good, f, np.nan), axis=1)
        den = np.nanmedian(np.where(good, s, np.nan), axis=1)
    return np.asarray(num / den, dtype=np.float64)


def degrade_to_snr(
    flux: FloatArray, sigma: FloatArray, snr_max: float, rng: np.random.Generator
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Rows of ``flux`` (errors ``sigma``) above ``snr_max`` get noise that brings them to
    ``MARGIN * snr_max``.

    Returns ``(flux, sigma, factor)``: ``factor`` (per row, 1 where nothing was added) is
    how much the errors grew. Rows at or below ``snr_max`` come back unchanged.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> f, s = np.ones((2, 20_000)), np.array([[0.01] * 20_000, [0.1] * 20_000])
        >>> f2, s2, k = degrade_to_snr(f, s, 30.0, rng)
        >>> k.round(3).tolist(), (1.0 / np.median(s2, axis=1)).round(3).tolist()  # S/N of sigma
        ([3.367, 1.0], [29.7, 10.0])
        >>> round(float(np.std(f2[0] - 1.0)), 3)  # sqrt(0.03367**2 - 0.01**2): 0.0321
        0.032
        >>> bool(np.array_equal(f2[1], f[1]))
        True
    """
    f = np.array(np.atleast_2d(flux), dtype=np.float64)
    s = np.array(np.atleast_2d(sigma), dtype=np.float64)
    snr = noise_snr_rows(f, s)
    factor = np.where(np.isfinite(snr) & (snr > snr_max), snr / (MARGIN * snr_max), 1.0)
    for i in np.flatnonzero(factor > 1.0):
        f[i], s[i] = _noisier(f[i], s[i], float(factor[i]), rng)
    return f, s, factor


def _noisier(
    flux: FloatArray, sigma: FloatArray, k: float, rng: np.random.Generator
) -> tuple[FloatArray, FloatArray]:
    """``flux`` observed with errors ``k * sigma`` instead of ``sigma`` (``k >= 1``)."""
    extra = np.where(np.isfinite(sigma), sigma, 0.0) * np.sqrt(k * k - 1.0)
    return flux + extra * rng.standard_normal(flux.shape), sigma * k


def degrade_spectrum(spectrum: Spectrum, k: float, rng: np.random.Generator) -> Spectrum:
    """``spectrum`` as if observed with ``k`` times its errors (``k >= 1``), on its own pixels.

    Resampling onto a model's axis is linear, so errors ``k * sigma`` here become ``k``
    times the propagated errors there, and the S/N an NPE measures drops by ``k``.

    Example:
        >>> from atmospec.spectrum import Spectrum
        >>> s = Spectrum(np.linspace(1.0, 2.0, 5000), np.ones(5000), np.full(5000, 0.01))
        >>> d = degrade_spectrum(s, 3.0, np.random.default_rng(0))
        >>> float(d.uncertainty[0]), round(float(np.std(d.flux - 1.0)), 3)  # sqrt(8) * 0.01
        (0.03, 0.028)
    """
    if not k >= 1.0:
        raise ValueError(f"degrade_spectrum: k must be >= 1, got {k}")
    if spectrum.uncertainty is None:
        raise ValueError(f"{spectrum.source}: no uncertainties to scale")
    flux, sigma = _noisier(
        np.asarray(spectrum.flux, dtype=np.float64),
        np.asarray(spectrum.uncertainty, dtype=np.float64),
        float(k),
        rng,
    )
    return spectrum.copy(flux=flux, uncertainty=sigma)


def degrade_into_range(
    spectrum: Spectrum,
    snr_of: Callable[[Spectrum], float],
    top: float,
    rng: np.random.Generator,
    *,
    max_steps: int = 5,
) -> tuple[Spectrum, float]:
    """``spectrum`` with noise added until ``snr_of`` measures it at or below ``top``
    (each step aims at ``MARGIN * top``); returns it and the S/N it had. A spectrum at or
    below ``top`` comes back as it is.

    Example:
        >>> from atmospec.spectrum import Spectrum
        >>> w = np.linspace(1.0, 2.0, 4000)
        >>> s = Spectrum(w, 1.0 + 0.5 * np.sin(20 * w), np.full(4000, 0.005))
        >>> snr = lambda x: float(np.median(x.flux) / np.median(x.uncertainty))
        >>> d, before = degrade_into_range(s, snr, 30.0, np.random.default_rng(1))
        >>> round(before), snr(d) <= 30.0
        (210, True)
    """
    snr = before = float(snr_of(spectrum))
    for _ in range(max_steps):
        if not (np.isfinite(snr) and snr > top):
            break
        spectrum = degrade_spectrum(spectrum, snr / (MARGIN * top), rng)
        snr = float(snr_of(spectrum))
    return spectrum, before


def degraded_note(snr: float, snr_range: tuple[float, float], seed: int) -> str:
    """What a user reads when a spectrum was brought into an NPE's S/N range.

    Example:
        >>> degraded_note(120.0, (3.0, 30.0), 0)[:70]
        'S/N 120 is above the S/N range 3-30 the NPE was trained on: noise was '
    """
    lo, hi = snr_range
    return (
        f"S/N {snr:.3g} is above the S/N range {lo:g}-{hi:g} the NPE was trained on: noise was "
        f"added to bring it to S/N {MARGIN * hi:.3g} (one draw, seed {seed}), so the posterior "
        "is the calibrated one of that noisier spectrum, wider than the data alone would allow "
        "(read at its own S/N the NPE would extrapolate, with intervals too narrow)"
    )
