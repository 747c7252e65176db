"""Units of spectrum files: parsing the spellings real headers use, and checking that a
wavelength column holds a spectral coordinate and a flux column a spectral flux density."""

from __future__ import annotations

import functools
import re
import warnings

from atmospec.errors import UnitError

__all__ = ["parse_unit", "check_wave_unit", "check_flux_unit", "unit_kind", "unit_slip_error"]

# Compact spellings found in real headers (SpeX library YUNITS) and common aliases.
_UNIT_ALIASES = {
    "wm-2um-1": "W m-2 um-1",
    "ergss-1cm-2a-1": "erg s-1 cm-2 AA-1",
    "ergs s-1 cm-2 a-1": "erg s-1 cm-2 AA-1",
    "erg/s/cm2/a": "erg s-1 cm-2 AA-1",
    "erg/s/cm^2/a": "erg s-1 cm-2 AA-1",
    "erg/cm2/s/a": "erg s-1 cm-2 AA-1",
    "microns": "um",
    "micron": "um",
    "angstrom": "AA",
    "angstroms": "AA",
    "a": "AA",
    "å": "AA",
}


def parse_unit(text: str | None, *, source: str, column: str) -> str | None:
    """Parse a unit string from a file header into an astropy unit string (None if absent).

    Understands compact spellings (``Wm-2um-1``), ``µm``, ``microns``, ``Angstrom``/``Å``/``A``.

    Example:
        >>> parse_unit("ergss-1cm-2A-1", source="x.fits", column="flux")
        'erg / (Angstrom s cm2)'
        >>> parse_unit("µm", source="x.fits", column="wavelength")
        'um'
    """
    if text is None or not str(text).strip():
        return None
    try:
        return _parse_unit_cached(str(text).strip())
    except (ValueError, TypeError) as err:
        raise UnitError(
            f"{source}: unknown unit {str(text).strip()!r} for column '{column}'; "
            "write it as an astropy unit string such as 'um', 'nm', 'AA', 'W m-2 um-1' or 'Jy'"
        ) from err


@functools.lru_cache(maxsize=256)
def _parse_unit_cached(raw: str) -> str:
    import astropy.units as u

    key = raw.lower().replace("µ", "u").replace("μ", "u")
    candidate = _UNIT_ALIASES.get(key, _UNIT_ALIASES.get(key.replace(" ", ""), None))
    if candidate is None:
        candidate = raw.replace("µ", "u").replace("μ", "u").replace("Å", "AA")
        candidate = re.sub(r"\bmicrons?\b", "um", candidate)
        candidate = re.sub(r"\b[Aa]ngstroms?\b", "AA", candidate)
        candidate = re.sub(r"\bergs\b", "erg", candidate)
        candidate = re.sub(r"(?<![A-Za-z])A(?=$|[\s/\-^0-9)])", "AA", candidate)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return u.Unit(candidate, parse_strict="raise").to_string()


@functools.lru_cache(maxsize=256)
def unit_kind(unit: str) -> str:
    """What a unit measures, for the readers' checks: ``spectral`` (a wavelength, frequency,
    wavenumber or energy), ``flux density`` (F_lambda or F_nu, energy or photons),
    ``flux`` (power per area: lambda F_lambda, nu F_nu or a band's integral),
    ``dimensionless``, ``counts`` (a detector's counts, per second or not: not
    flux-calibrated) or ``other`` (cached: astropy is slow here).

    Example:
        >>> [unit_kind(x) for x in ("nm", "Jy", "erg / (s cm2)", "ct / s", "K")]
        ['spectral', 'flux density', 'flux', 'counts', 'other']
    """
    import astropy.units as u

    q = u.Unit(unit)
    if q.physical_type == "dimensionless":
        return "dimensionless"
    if q.is_equivalent(u.um, equivalencies=u.spectral()):
        return "spectral"
    # F_lambda or F_nu (energy or photon), but not lambda F_lambda = an integrated flux
    if q.is_equivalent(u.W / u.m**2 / u.um) or q.is_equivalent(u.Jy):
        return "flux density"
    photon = u.photon / u.s / u.cm**2
    if q.is_equivalent(photon / u.AA) or q.is_equivalent(photon / u.Hz):
        return "flux density"
    if q.is_equivalent(u.W / u.m**2):
        return "flux"
    if {str(b) for b in q.bases} & {"ct", "adu", "electron", "DN", "ph", "chan"}:
        return "counts"  # per second or not, without an area: a detector's raw counts
    return "other"


def check_wave_unit(unit: str | None, *, source: str, column: str = "wavelength") -> str:
    """Check that ``unit`` is a spectral coordinate (length, frequency, wavenumber, energy);
    return it as astropy writes it.

    Example:
        >>> check_wave_unit("microns", source="x.txt")
        'um'
    """
    unit = parse_unit(unit, source=source, column=column)
    if unit is None:
        raise UnitError(
            f"{source}: no unit for the wavelength column '{column}'; put it in the header "
            "(e.g. '# wavelength [um] flux [W m-2 um-1]') or give the unit: --wave-unit um on "
            "the command line, wave_unit='um' in Python"
        )
    if unit_kind(unit) != "spectral":
        raise UnitError(
            f"{source}: wavelength column '{column}' has unit {unit!r}, which is not a "
            "wavelength (expected a length such as um, nm or AA)"
        )
    return unit


def check_flux_unit(unit: str | None, *, source: str, column: str = "flux") -> str:
    """Check that ``unit`` is a spectral flux density (F_λ or F_ν) or dimensionless ('');
    detector counts and fluxes per area (λF_λ) are refused with what to do.

    Example:
        >>> check_flux_unit("ergs s-1 cm-2 A-1", source="x.fits")
        'erg / (Angstrom s cm2)'
    """
    unit = parse_unit(unit, source=source, column=column)
    if unit is None or unit == "":
        return ""
    kind = unit_kind(unit)
    if kind == "dimensionless":
        return "" if unit in ("", "dimensionless") else unit
    if kind == "counts":
        raise UnitError(
            f"{source}: flux column '{column}' is in {unit!r}, detector counts: its shape still "
            "holds the instrument's throughput and telluric absorption, which no model fit can "
            "tell from the object's; flux-calibrate it first (a telluric standard, as Spextool's "
            "xtellcor does) or, if only the label is wrong, give the unit (--flux-unit)"
        )
    if kind != "flux density":
        per_area = (
            "; a power per area, as lambda F_lambda or nu F_nu are: divide such a column by "
            "the wavelength (frequency) first"
            if kind == "flux"
            else ""
        )
        raise UnitError(
            f"{source}: flux column '{column}' has unit {unit!r}, which is not a spectral flux "
            "density (expected F_lambda like 'W m-2 um-1' / 'erg s-1 cm-2 AA-1' or F_nu like "
            f"'Jy'){per_area}; if the unit is mislabelled, give it: --flux-unit on the command "
            "line, flux_unit= in Python"
        )
    return unit


def unit_slip_error(
    source: str, lo: float, hi: float, axis_lo: float, axis_hi: float, missed: str
) -> UnitError | None:
    """The error for wavelengths read as micron (``lo``-``hi``) that miss a model's axis
    (``axis_lo``-``axis_hi`` um, described by ``missed``) entirely but would land on it in a
    common unit, naming that unit and the option; None when they overlap it or no common unit
    fits (then the spectrum simply covers another range).

    Example:
        >>> str(unit_slip_error("x.csv", 6500.0, 25600.0, 0.9, 2.45, "the grid"))[:79]
        'x.csv: wavelengths 6500-2.56e+04 (read as micron) do not overlap the grid; they'
        >>> unit_slip_error("x.csv", 3.0, 5.0, 0.9, 2.45, "the grid") is None
        True
    """
    if hi >= axis_lo and lo <= axis_hi:
        return None
    for factor, unit in ((1e4, "AA"), (1e3, "nm"), (1e-4, "cm"), (1e-6, "m")):
        if lo / factor <= axis_hi and hi / factor >= axis_lo:
            return UnitError(
                f"{source}: wavelengths {lo:.4g}-{hi:.4g} (read as micron) do not overlap "
                f"{missed}; they look like {unit!r}: build the Spectrum with wave_unit={unit!r} "
                f"(or pass --wave-unit {unit} / read(..., wave_unit={unit!r}))"
            )
    return None
