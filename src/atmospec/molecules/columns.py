"""Column names and units of published transmission-spectrum tables: exact synonyms, no guessing."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from atmospec.errors import FileFormatError, UnitError

__all__ = [
    "COLUMN_SYNONYMS",
    "DEPTH_UNITS",
    "WAVE_UNITS",
    "ColumnMatch",
    "match_columns",
    "normalise_name",
    "depth_to_fraction",
    "width_kind_from_spacing",
]

DEPTH_UNITS: dict[str, float] = {
    "none": 1.0,
    "fraction": 1.0,
    "percent": 1e-2,
    "ppt": 1e-3,
    "ppm": 1e-6,
}
"""Multipliers from a depth unit to a plain fraction (R_p/R_s)^2."""

WAVE_UNITS: dict[str, float] = {"um": 1.0, "nm": 1e-3, "AA": 1e-4}
"""Multipliers from a wavelength unit to micron."""

# role -> {normalised column name: unit implied by the name (None: not implied)}
COLUMN_SYNONYMS: dict[str, dict[str, str | None]] = {
    "wavelength": {
        **{n: None for n in ("wavelength", "wave", "wl", "wav", "lambda", "centralwavelng")},
        "central_wavelength": None,
    },
    "half_width": {
        n: None
        for n in (
            "half_width",
            "half-width",
            "halfwidth",
            "bin_half_width",
            "hw",
            "wave_error",
            "wavelength_error",
            "wave_err",
            "wl_err",
            "wavelength_err",
            "width_half",
        )
    },
    "full_width": {n: None for n in ("full_width", "bin_width", "width_full", "wave_bin_width")},
    "width": {
        n: None
        for n in (
            "width",
            "bandwidth",
            "delta_wavelength",
            "delta_wave",
            "dwl",
            "delta_wl",
            "bin_size",
            "dlambda",
            "delta_lambda",
        )
    },
    "depth": {
        "depth": None,
        "transit_depth": None,
        "rp_rs2": "fraction",
        "(rp/rs)^2": "fraction",
        "rprs2": "fraction",
        "dppm": "ppm",
        "pl_trandep": "percent",  # NASA Exoplanet Archive: transit depth in percent
    },
    "radius_ratio": {
        "rp_rs": None,
        "rprs": None,
        "(rp/rs)": None,
        "rp/rs": None,
        "radius_ratio": None,
        "pl_ratror": None,
    },
    "error": {
        "error": None,
        "err": None,
        "depth_err": None,
        "depth_error": None,
        "depth_uncertainty": None,
        "uncertainty": None,
        "sigma": None,
        "transit_error": None,
        "transit_depth_error": None,
        "transit_depth_err": None,
        "(rp/rs)^2_+/-uncertainty": "fraction",
        "(rp/rs)^2_uncertainty": "fraction",
        "dppm_err": "ppm",
        "pl_trandeperr1": "percent",
        # the upper (positive) error of asymmetric pairs; alone, it is the error
        **{
            n: None
            for n in (
                "err_up",
                "error_up",
                "err_upper",
                "error_upper",
                "err_pos",
                "error_pos",
                "err_plus",
                "depth_err_up",
                "depth_err_upper",
                "depth_err_pos",
                "depth_err_plus",
                "+err",
                "+error",
            )
        },
    },
    "error_lower": {
        "pl_trandeperr2": "percent",
        **{
            n: None
            for n in (
                "err_low",
                "error_low",
                "err_lower",
                "error_lower",
                "err_neg",
                "error_neg",
                "err_minus",
                "depth_err_low",
                "depth_err_lower",
                "depth_err_neg",
                "depth_err_minus",
                "-err",
                "-error",
            )
        },
    },
    "radius_ratio_error": {
        "rp_rs_err": None,
        "rprs_err": None,
        "pl_ratrorerr1": None,
        "radius_ratio_error": None,
    },
    "radius_ratio_error_lower": {"pl_ratrorerr2": None},
    "instrument": {n: None for n in ("instrument", "inst", "mode", "instrument_mode")},
    "order": {n: None for n in ("order", "spectral_order")},
    "quality": {n: None for n in ("quality", "flag", "quality_flag")},
}
"""Exact (normalised) column names recognised per role, with the depth unit a name implies.

Names are normalised by :func:`normalise_name` (lower case, a unit in brackets or a unit
suffix such as ``_um`` or ``_ppm`` split off, spaces to ``_``). Nothing is matched by
substring: a column that is not listed here is ignored, and two listed columns for one role
are refused with both named.
"""

_UNIT_ALIASES: dict[str, tuple[str, str]] = {
    # text in brackets or an astropy unit string -> (kind, unit)
    "micron": ("wave", "um"),
    "microns": ("wave", "um"),
    "um": ("wave", "um"),
    "µm": ("wave", "um"),
    "micrometer": ("wave", "um"),
    "nm": ("wave", "nm"),
    "angstrom": ("wave", "AA"),
    "aa": ("wave", "AA"),
    "å": ("wave", "AA"),
    "ppm": ("depth", "ppm"),
    "%": ("depth", "percent"),
    "percent": ("depth", "percent"),
    "ppt": ("depth", "ppt"),
    "": ("depth", "fraction"),
    "dimensionless": ("depth", "fraction"),
}


_UNIT_SUFFIXES = ("um", "micron", "microns", "nm", "aa", "angstrom", "ppm", "ppt", "percent")
"""Units a column name may end with after an underscore (``half_width_um``, ``depth_ppm``)."""


def normalise_name(name: str) -> tuple[str, str | None]:
    """``(name, unit text)``: lower case, a trailing ``(unit)`` / ``[unit]`` or a unit suffix
    (``_um``, ``_nm``, ``_ppm`` ...: :data:`_UNIT_SUFFIXES`) split off.

    Example:
        >>> normalise_name("Wavelength (microns)")
        ('wavelength', 'microns')
        >>> normalise_name("(Rp/Rs)^2 +/-uncertainty")
        ('(rp/rs)^2_+/-uncertainty', None)
        >>> normalise_name("bin_half_width_um")
        ('bin_half_width', 'um')
    """
    text = " ".join(name.strip().lower().split())
    unit = None
    m = re.match(r"^(.+?)\s*[\(\[]([^\)\]]*)[\)\]]$", text)
    if m and m.group(1).strip() and not m.group(1).strip().endswith("/"):
        text, unit = m.group(1).strip(), m.group(2).strip()
    text = text.replace(" ", "_")
    stem, sep, suffix = text.rpartition("_")
    if unit is None and sep and stem and suffix in _UNIT_SUFFIXES:
        text, unit = stem, suffix
    return text, unit


@dataclass(frozen=True)
class ColumnMatch:
    """Which table column plays which role, and the units read from names or headers.

    Example:
        >>> m = match_columns(["Wavelength (nm)", "Rp/Rs", "err", "notes"])
        >>> m.columns   # "notes" is no synonym of any role: ignored
        {'wavelength': 'Wavelength (nm)', 'radius_ratio': 'Rp/Rs', 'error': 'err'}
        >>> m.units
        {'wavelength': 'nm'}
    """

    columns: dict[str, str]
    units: dict[str, str]


def match_columns(
    names: Sequence[str],
    units: Mapping[str, str | None] | None = None,
    *,
    mapping: Mapping[str, str] | None = None,
    source: str = "table",
) -> ColumnMatch:
    """Assign table columns to roles by exact synonyms (or by ``mapping`` role -> column).

    ``units`` are per-column units from the table itself (ECSV / IPAC headers).

    Raises:
        FileFormatError: two columns match one role (both named), or a mapped column is absent.

    Example:
        >>> match_columns(["wave", "dppm", "dppm_err"]).columns
        {'wavelength': 'wave', 'depth': 'dppm', 'error': 'dppm_err'}
    """
    units = dict(units or {})
    found: dict[str, list[str]] = {}
    unit_of: dict[str, str] = {}
    for col in names:
        norm, bracket = normalise_name(col)
        for role, synonyms in COLUMN_SYNONYMS.items():
            if norm in synonyms:
                found.setdefault(role, []).append(col)
                implied = synonyms[norm]
                table_unit = units.get(col)
                for text in (bracket, table_unit):
                    if text is not None and text.strip().lower() in _UNIT_ALIASES:
                        implied = _UNIT_ALIASES[text.strip().lower()][1]
                    elif text:
                        implied = text
                if implied is not None:
                    unit_of[col] = implied
    mapped = dict(mapping or {})
    chosen: dict[str, str] = {}
    for role, cols in found.items():
        cols = [c for c in cols if c not in mapped.values()]
        if role in mapped or not cols:
            continue
        if len(cols) > 1:
            raise FileFormatError(
                f"{source}: columns {cols} all look like the {role!r} column; name the one to "
                f"use (option --columns {role}=NAME)"
            )
        chosen[role] = cols[0]
    for role, col in mapped.items():
        if role not in COLUMN_SYNONYMS:
            raise FileFormatError(
                f"{source}: unknown role {role!r}; roles: {sorted(COLUMN_SYNONYMS)}"
            )
        if col not in names:
            raise FileFormatError(f"{source}: no column {col!r} (columns: {list(names)})")
        for other, c in list(chosen.items()):
            if c == col and other != role:
                del chosen[other]
        chosen[role] = col
        norm, bracket = normalise_name(col)
        if bracket and bracket in _UNIT_ALIASES:
            unit_of[col] = _UNIT_ALIASES[bracket][1]
    return ColumnMatch(chosen, {role: unit_of[c] for role, c in chosen.items() if c in unit_of})


def depth_to_fraction(
    depth: NDArray[np.float64],
    error: NDArray[np.float64],
    unit: str | None,
    *,
    source: str,
    how: str,
) -> tuple[NDArray[np.float64], NDArray[np.float64], str, str]:
    """Depths and errors as fractions, checking that the values fit the unit.

    A transit depth is a fraction of the stellar disc: between 0 and 0.5 as a fraction
    (R_p/R_s <= 0.7). With ``unit`` None the unit is inferred only when exactly one of ppm,
    percent and fraction puts every depth in (0, 0.5] and every error at or above 3 ppm (no
    instrument reaches below per bin); otherwise the user must name it.

    Returns ``(depth, error, unit, note)`` where ``note`` says how the unit was decided
    (``how``, where the unit was given).

    Raises:
        UnitError: the values do not fit the declared unit, or the unit is ambiguous.

    Example:
        >>> d, e, unit, note = depth_to_fraction(np.array([21000.0, 21500.0]),
        ...                                      np.array([50.0, 60.0]), None, source="t", how="")
        >>> d.round(6).tolist(), e.round(7).tolist(), unit
        ([0.021, 0.0215], [5e-05, 6e-05], 'ppm')
        >>> note
        'inferred: only ppm puts all depths in (0, 0.5] with errors >= 3 ppm'
        >>> depth_to_fraction(np.array([21000.0]), np.array([50.0]), "percent", source="t.csv",
        ...                   how="from the header")
        Traceback (most recent call last):
        ...
        atmospec.errors.UnitError: t.csv: depth 21000 percent (from the header) in row 0 is 210 ...
    """
    if np.size(depth) == 0:
        raise FileFormatError(f"{source}: no data rows (no depths to read)")
    units = {"ppm": 1e-6, "percent": 1e-2, "fraction": 1.0}

    def fits(scale: float) -> bool:
        d, e = depth * scale, error * scale
        return bool(np.all((d > 0) & (d <= 0.5)) and np.all(e >= 3e-6))

    if unit is not None:
        key = "fraction" if unit == "none" else unit
        if key not in DEPTH_UNITS:
            raise UnitError(f"{source}: depth unit {unit!r} is not one of {sorted(DEPTH_UNITS)}")
        scale = DEPTH_UNITS[key]
        d = depth * scale
        if not np.all(d <= 0.5):
            i = int(np.argmax(~(d <= 0.5)))
            alt = [u for u, s in units.items() if fits(s)]
            hint = f"; the values fit {alt[0]}" if len(alt) == 1 else ""
            raise UnitError(
                f"{source}: depth {depth[i]:g} {key} ({how}) in row {i} is {d[i]:g} of the "
                f"stellar disc, more than a transit can block{hint}; correct the unit"
            )
        return d, error * scale, key, how
    ok = [u for u, s in units.items() if fits(s)]
    if len(ok) == 1:
        return (
            depth * units[ok[0]],
            error * units[ok[0]],
            ok[0],
            f"inferred: only {ok[0]} puts all depths in (0, 0.5] with errors >= 3 ppm",
        )
    if not ok:
        raise UnitError(
            f"{source}: depths {np.nanmin(depth):g}..{np.nanmax(depth):g} fit no depth unit "
            "(ppm, percent, fraction) with all depths positive and at most half the star"
        )
    raise UnitError(
        f"{source}: the depth unit is not stated and depths {np.nanmin(depth):g}.."
        f"{np.nanmax(depth):g} could be {' or '.join(ok)}; name it (option --depth-unit)"
    )


def width_kind_from_spacing(
    wavelength: NDArray[np.float64], width: NDArray[np.float64]
) -> str | None:
    """``"half"`` or ``"full"`` when the spacing of neighbouring bins decides, else None.

    With half widths w, neighbours sit 2w apart when the bins touch; with full widths, w
    apart. The median ratio r = spacing / w decides: r in [1.9, 2.6] means half widths (full
    widths would leave gaps wider than the bins), r in [0.95, 1.15] means full widths
    (half widths would overlap by half). Anything else is undecided.

    Example:
        >>> width_kind_from_spacing(np.array([1.0, 1.1, 1.2]), np.array([0.05, 0.05, 0.05]))
        'half'
    """
    order = np.argsort(wavelength)
    lam, w = wavelength[order], width[order]
    if lam.size < 3:
        return None
    gap = np.diff(lam)
    ratio = np.median(gap / (0.5 * (w[1:] + w[:-1])))
    if 1.9 <= ratio <= 2.6:
        return "half"
    if 0.95 <= ratio <= 1.15:
        return "full"
    return None
