"""Conversion between :class:`atmospec.spectrum.Spectrum` and ``specutils`` spectra."""

from __future__ import annotations

from typing import Any

import numpy as np

from atmospec._optional import require
from atmospec.errors import UnitError
from atmospec.spectrum import Spectrum

__all__ = ["to_specutils", "from_specutils", "specutils_class"]


def specutils_class() -> type:
    """``specutils.Spectrum`` (specutils >= 2) or ``specutils.Spectrum1D`` (older)."""
    specutils = require("specutils", "specutils")

    cls = getattr(specutils, "Spectrum", None) or specutils.Spectrum1D
    return cls


def to_specutils(spectrum: Spectrum) -> Any:
    """``spectrum`` as a specutils spectrum: spectral axis in µm, StdDevUncertainty, mask.

    The flux keeps its unit (dimensionless when normalised); ``meta`` is copied. (The
    examples are skipped in doctests because importing specutils takes seconds.)

    Example:
        >>> s = Spectrum([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [0.1, 0.1, 0.1], flux_unit="Jy")
        >>> sp = to_specutils(s)  # doctest: +SKIP
        >>> str(sp.spectral_axis.unit), str(sp.flux.unit), type(sp.uncertainty).__name__  # doctest: +SKIP
        ('um', 'Jy', 'StdDevUncertainty')
    """
    import astropy.units as u
    from astropy.nddata import StdDevUncertainty

    unit = u.Unit(spectrum.flux_unit) if spectrum.flux_unit else u.dimensionless_unscaled
    unc = None
    if spectrum.uncertainty is not None:
        unc = StdDevUncertainty(np.array(spectrum.uncertainty, copy=True))
    return specutils_class()(
        flux=np.array(spectrum.flux, copy=True) * unit,
        spectral_axis=np.array(spectrum.wavelength, copy=True) * u.um,
        uncertainty=unc,
        mask=np.array(spectrum.mask, copy=True),
        meta={**spectrum.meta, "name": spectrum.name},
    )


def from_specutils(spec: Any, *, name: str | None = None) -> Spectrum:
    """A Spectrum from a specutils spectrum (1-D flux; any spectral-axis unit, any flux unit).

    Uncertainties of type StdDev, Var or InverseVariance are converted to 1-sigma.

    Example:
        >>> s = Spectrum([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [0.1, 0.1, 0.1], flux_unit="Jy")
        >>> back = from_specutils(to_specutils(s))  # doctest: +SKIP
        >>> back.flux.tolist(), back.flux_unit, back.uncertainty.tolist()  # doctest: +SKIP
        ([1.0, 2.0, 3.0], 'Jy', [0.1, 0.1, 0.1])
    """
    import astropy.units as u
    from astropy.nddata import InverseVariance, StdDevUncertainty, VarianceUncertainty

    flux = np.asarray(spec.flux.value, dtype=np.float64)
    if flux.ndim != 1:
        raise UnitError(f"from_specutils: expected a 1-D spectrum, found flux shape {flux.shape}")
    wave = spec.spectral_axis.to_value(u.um, equivalencies=u.spectral())
    unit = spec.flux.unit
    flux_unit = "" if unit == u.dimensionless_unscaled else unit.to_string()
    unc = None
    if spec.uncertainty is not None:
        arr = np.asarray(spec.uncertainty.array, dtype=np.float64)
        if isinstance(spec.uncertainty, StdDevUncertainty):
            unc = arr
        elif isinstance(spec.uncertainty, VarianceUncertainty):
            unc = np.sqrt(arr)
        elif isinstance(spec.uncertainty, InverseVariance):
            with np.errstate(divide="ignore"):
                unc = 1.0 / np.sqrt(arr)
        else:
            raise UnitError(
                f"from_specutils: unsupported uncertainty type {type(spec.uncertainty).__name__}"
            )
    mask = None if spec.mask is None else np.asarray(spec.mask, dtype=bool)
    meta = dict(spec.meta or {})
    label = name or meta.pop("name", None)
    if np.all(np.diff(wave) < 0):  # e.g. a frequency axis
        wave, flux = wave[::-1], flux[::-1]
        unc = None if unc is None else unc[::-1]
        mask = None if mask is None else mask[::-1]
    return Spectrum(wave, flux, unc, mask=mask, meta=meta, flux_unit=flux_unit, name=label)
