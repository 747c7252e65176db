"""Physical sanity gates: refuse spectra no fit or network can answer honestly.

A reader checks that a file is well formed; these gates check that what it holds can be a
spectrum at all before any fit or prediction is attempted: flux that is zero, constant or
negative everywhere, numbers so large or small that their squares leave float64 (1e300 flux,
1e-300 errors), or an "uncertainty" column that holds S/N values. Each refusal is an
:class:`~atmospec.errors.InvalidSpectrumError` naming the source and what was found; milder
oddities come back as notes for the result (and are logged).

Example:
    >>> import numpy as np
    >>> from atmospec.spectrum import Spectrum
    >>> w = np.linspace(1.0, 2.0, 50)
    >>> check_spectrum(Spectrum(w, 1.0 + 0.1 * np.sin(9 * w), np.full(50, 0.02)))
    []
    >>> check_spectrum(Spectrum(w, np.zeros(50), np.full(50, 0.02), name="z"))
    Traceback (most recent call last):
    ...
    atmospec.errors.InvalidSpectrumError: z: the flux is zero at every usable pixel ...
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from atmospec.errors import InvalidSpectrumError

if TYPE_CHECKING:
    from atmospec.spectrum import Spectrum

__all__ = ["check_spectrum", "check_arrays", "LIMITS"]

log = logging.getLogger(__name__)

LIMITS = {
    "max_abs": 1e100,
    "min_abs": 1e-100,
    "max_dynamic_range": 1e8,
    "min_median_snr": 0.2,
    "max_median_snr": 1e7,
}
"""The gates' thresholds.

``max_abs`` / ``min_abs``: no flux density in any unit (W m-2 um-1 ~ 1e-16, Jy ~ 1e-3, grid
surface fluxes ~ 1e5) comes near 1e+-100, and squares of values beyond it overflow or
underflow float64 in a chi-square. ``max_dynamic_range``: the ratio of the largest |flux| to
the median |flux|; real spectra (deepest T-dwarf absorption bands included) span < 1e4.
``min_median_snr``: a median |flux| / sigma below 0.2 means the uncertainty column is not
1-sigma errors (S/N values, variances in other units) or the data carry no signal.
``max_median_snr``: above 1e7 the errors are placeholders (flagged, not refused)."""


def _where(source: str) -> str:
    return source or "spectrum"


def check_arrays(
    flux: NDArray[np.floating],
    uncertainty: NDArray[np.floating] | None = None,
    *,
    source: str,
) -> list[str]:
    """The gates on plain arrays of *usable* pixels; raise or return notes (see module doc).

    Example:
        >>> check_arrays(np.array([1.0, 2.0, 3.0]) * 1e300, source="x.fits")
        Traceback (most recent call last):
        ...
        atmospec.errors.InvalidSpectrumError: x.fits: |flux| reaches 3e+300, ...
    """
    src = _where(source)
    f = np.asarray(flux, dtype=np.float64)
    finite = np.isfinite(f)
    if f.size == 0 or not finite.any():
        raise InvalidSpectrumError(f"{src}: no pixel has a finite flux value")
    f = f[finite]
    a = np.abs(f)
    notes: list[str] = []
    if not a.any():
        raise InvalidSpectrumError(
            f"{src}: the flux is zero at every usable pixel ({f.size}); an empty or blank "
            "extraction has no spectrum to fit"
        )
    top = float(a.max())
    if top > LIMITS["max_abs"]:
        raise InvalidSpectrumError(
            f"{src}: |flux| reaches {top:.3g}, beyond {LIMITS['max_abs']:.0e} in any unit: the "
            "values are corrupt or in a wrong unit (fluxes this large overflow a chi-square)"
        )
    nonzero = a[a > 0]
    low = float(nonzero.min())
    if low < LIMITS["min_abs"]:
        raise InvalidSpectrumError(
            f"{src}: |flux| goes down to {low:.3g}, below {LIMITS['min_abs']:.0e} in any unit: "
            "the values are corrupt or in a wrong unit"
        )
    if np.ptp(f) <= 1e-12 * top:
        raise InvalidSpectrumError(
            f"{src}: the flux is constant ({f[0]:.6g}) at every usable pixel ({f.size}); a "
            "flat line holds no spectral information (a blank, saturated or filled file?)"
        )
    median = float(np.median(f))
    if median < 0:
        raise InvalidSpectrumError(
            f"{src}: the median flux is negative ({median:.3g}; {np.mean(f < 0):.0%} of pixels "
            "< 0): a spectrum's flux is positive. Is the sign flipped, or the sky over-subtracted?"
        )
    scale = float(np.median(a))
    if scale > 0 and top / scale > LIMITS["max_dynamic_range"]:
        raise InvalidSpectrumError(
            f"{src}: the largest |flux| ({top:.3g}) is {top / scale:.2g} times the median "
            f"({scale:.3g}); no spectrum spans that range: corrupt pixels?"
        )
    n_top = int(np.sum(f == f.max()))
    if f.size >= 20 and n_top >= max(3, int(0.05 * f.size)):
        raise InvalidSpectrumError(
            f"{src}: {n_top} of {f.size} pixels sit exactly at the maximum flux {f.max():.6g}: "
            "the spectrum is saturated or clipped"
        )
    if uncertainty is not None:
        notes += _check_errors(f, np.asarray(uncertainty, dtype=np.float64)[finite], src)
    for note in notes:
        log.warning("%s", note)
    return notes


def _check_errors(f: NDArray[np.float64], u: NDArray[np.float64], src: str) -> list[str]:
    ok = np.isfinite(u) & (u > 0)
    if not ok.any():
        raise InvalidSpectrumError(f"{src}: no pixel has a finite positive uncertainty")
    u = u[ok]
    if float(u.max()) > LIMITS["max_abs"] or float(u.min()) < LIMITS["min_abs"]:
        raise InvalidSpectrumError(
            f"{src}: uncertainties span {u.min():.3g} to {u.max():.3g}, outside "
            f"{LIMITS['min_abs']:.0e}-{LIMITS['max_abs']:.0e}: corrupt or in a wrong unit "
            "(their squares leave float64)"
        )
    ratio = np.abs(f[ok]) / u
    peak = float(ratio.max())
    if peak > LIMITS["max_abs"]:
        raise InvalidSpectrumError(
            f"{src}: |flux| / uncertainty reaches {peak:.3g} at a pixel, beyond "
            f"{LIMITS['max_abs']:.0e}: flux and uncertainties are each in range but not in the "
            "same unit (its square leaves float64 in a chi-square)"
        )
    snr = float(np.median(ratio))
    if snr < LIMITS["min_median_snr"]:
        raise InvalidSpectrumError(
            f"{src}: the median |flux| / uncertainty is {snr:.3g}: the uncertainty column is "
            f"not 1-sigma errors (median {np.median(u):.3g} against a median |flux| of "
            f"{np.median(np.abs(f)):.3g}). If it holds S/N values, divide the flux by it "
            "(sigma = flux / S/N) or name the real error column"
        )
    if snr > LIMITS["max_median_snr"]:
        return [
            f"{src}: median S/N {snr:.3g} is unphysically high; the uncertainties look like "
            "placeholders, so chi2 and intervals that use them are not meaningful"
        ]
    return []


def check_spectrum(spectrum: Spectrum) -> list[str]:
    """Run the gates on the unmasked pixels of ``spectrum``; raise, or return notes.

    Example:
        >>> from atmospec.spectrum import Spectrum
        >>> w, f = np.linspace(1.0, 2.0, 5), np.array([1.0, 1.2, 1e300, 0.9, 1.1])
        >>> check_spectrum(Spectrum(w, f, mask=[False, False, True, False, False]))
        []
        >>> check_spectrum(Spectrum(w, f, meta={"source": "x.fits"}))
        Traceback (most recent call last):
        ...
        atmospec.errors.InvalidSpectrumError: x.fits: |flux| reaches 1e+300, ...
    """
    use = ~np.asarray(spectrum.mask, dtype=bool)
    unc = spectrum.uncertainty
    return check_arrays(
        np.asarray(spectrum.flux)[use],
        None if unc is None else np.asarray(unc)[use],
        source=str(spectrum.meta.get("source") or spectrum.name or "spectrum"),
    )
