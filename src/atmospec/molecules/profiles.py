"""Voigt line profiles: exact values and cell averages that conserve every line's strength."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import erf, voigt_profile

from atmospec.lineshapes import pseudo_voigt_parameters

__all__ = ["doppler_sigma", "voigt", "voigt_cell_average", "C2", "C_CGS", "K_B", "AMU"]

C2 = 1.4387769  # second radiation constant hc/k, cm K
C_CGS = 2.99792458e10  # speed of light, cm/s
K_B = 1.380649e-23  # Boltzmann constant, J/K
AMU = 1.66053906660e-27  # atomic mass unit, kg


def doppler_sigma(wavenumber: ArrayLike, temperature: float, mass_amu: float) -> NDArray:
    """Gaussian standard deviation (same units as ``wavenumber``) of thermal Doppler broadening.

    Example:
        >>> round(float(doppler_sigma(16973.0, 1000.0, 22.99)), 3)  # Na D at 1000 K, cm^-1
        0.034
    """
    v = np.sqrt(K_B * temperature / (mass_amu * AMU))
    return np.asarray(wavenumber, dtype=float) * v / (C_CGS * 1e-2)


def voigt(x: ArrayLike, sigma: ArrayLike, gamma: ArrayLike) -> NDArray[np.float64]:
    """The area-normalised Voigt profile (scipy's Faddeeva-based ``voigt_profile``).

    Args:
        x: offset from line centre.
        sigma: Gaussian standard deviation.
        gamma: Lorentzian half width at half maximum.

    Example:
        >>> from scipy.integrate import quad
        >>> round(quad(lambda t: float(voigt(t, 0.1, 0.2)), -1e4, 1e4, limit=500)[0], 3)
        1.0
    """
    return voigt_profile(np.asarray(x, float), np.asarray(sigma, float), np.asarray(gamma, float))


def _pseudo_voigt_cdf(
    x: NDArray[np.float64], sigma: NDArray[np.float64], gamma: NDArray[np.float64]
) -> NDArray[np.float64]:
    """CDF of the Thompson, Cox & Hastings (1987) pseudo-Voigt (within ~1 % of the Voigt)."""
    fg = 2.0 * np.sqrt(2.0 * np.log(2.0)) * sigma
    fl = 2.0 * gamma
    f, eta = pseudo_voigt_parameters(fg, fl)
    hw = 0.5 * f
    sg = f / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    lor = np.arctan(x / hw) / np.pi
    gau = 0.5 * erf(x / (sg * np.sqrt(2.0)))
    return eta * lor + (1.0 - eta) * gau


def voigt_cell_average(
    edges: ArrayLike,
    centres: ArrayLike,
    strengths: ArrayLike,
    sigma: ArrayLike,
    gamma: ArrayLike,
    *,
    cutoff: float = 25.0,
    chunk: int = 64,
) -> NDArray[np.float64]:
    """Mean over each cell of ``sum_i strength_i * profile_i`` (lines truncated at ``cutoff``).

    The integral over a cell is a difference of the profile's CDF, so lines far narrower than
    the cells keep their exact strength (what a sampled profile would miss).

    Args:
        edges: increasing cell edges, shape ``(n_cells + 1,)``, same unit as ``centres``.
        centres: line centres (broadcast against the other per-line arrays).
        strengths: line strengths (integrated over the profile).
        sigma: Gaussian standard deviations per line.
        gamma: Lorentzian half widths at half maximum per line.
        cutoff: profile truncated at ``|x| > cutoff`` (same unit).

    Example:
        >>> e = np.linspace(-50.0, 50.0, 11)
        >>> avg = voigt_cell_average(e, [0.0], [1.0], [0.01], [0.01])
        >>> round(float((avg * np.diff(e)).sum()), 3)  # the whole strength is kept
        1.0
    """
    e = np.asarray(edges, dtype=float)
    nu0, s, sg, gm = np.broadcast_arrays(
        *(np.atleast_1d(np.asarray(v, dtype=float)) for v in (centres, strengths, sigma, gamma))
    )
    keep = (nu0 + cutoff > e[0]) & (nu0 - cutoff < e[-1]) & (s > 0)
    order = np.argsort(nu0[keep])
    nu0, s, sg, gm = (v[keep][order] for v in (nu0, s, sg, gm))
    total = np.zeros(e.size)
    for k in range(0, nu0.size, chunk):
        sl = slice(k, k + chunk)
        lo, hi = np.searchsorted(e, [nu0[sl][0] - cutoff, nu0[sl][-1] + cutoff])
        ends = _pseudo_voigt_cdf(np.array([[-cutoff, cutoff]]), sg[sl, None], gm[sl, None])
        x = np.clip(e[None, lo:hi] - nu0[sl, None], -cutoff, cutoff)
        total[:lo] += s[sl] @ ends[:, 0]
        total[lo:hi] += s[sl] @ _pseudo_voigt_cdf(x, sg[sl, None], gm[sl, None])
        total[hi:] += s[sl] @ ends[:, 1]
    return np.diff(total) / np.diff(e)
