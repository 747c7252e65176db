"""Which flux density a spectrum's numbers are (F_lambda or F_nu), and the models' F_lambda.

The model grids give F_lambda (flux per unit wavelength). A spectrum in F_nu (flux per unit
frequency: Jy, erg s-1 cm-2 Hz-1) has the same object's shape tilted by lambda^2, which the
grids read as a much cooler, redder object, so every route converts a stated F_nu before it
compares anything (:func:`as_flux_lambda`). A flux with no unit is read as F_lambda; when a
table file gave no unit for it, the reader records that this was assumed
(:data:`ASSUMED_KEY` in the spectrum's meta, :func:`mark_assumed`) and the routes say so.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

from atmospec.errors import UnitError

if TYPE_CHECKING:
    from atmospec.spectrum import Spectrum

__all__ = [
    "ASSUMED_KEY",
    "GIVEN_KEY",
    "IN_FILE_KEY",
    "MODEL_FLUX_UNIT",
    "as_flux_lambda",
    "assumed_note",
    "file_flux_unit",
    "mark_assumed",
    "mark_overridden",
    "overridden_note",
]

MODEL_FLUX_UNIT = "erg / (s cm2 um)"
"""The F_lambda unit of the built-in grids; flux-calibrated spectra are converted to it."""

ASSUMED_KEY = "flux_unit_assumed"
"""Meta key a reader sets (True) when the file gave no flux unit and none was passed."""


def mark_assumed(meta: MutableMapping[str, Any], flux_unit: str, *, stated: bool) -> None:
    """Record in ``meta`` that a table's flux was read as relative F_lambda by assumption:
    its unit is empty (``flux_unit``) and neither the file nor the caller stated one
    (``stated``: a unit was given, or the file was written by atmospec, whose relative flux
    is F_lambda).

    Example:
        >>> meta = {}
        >>> mark_assumed(meta, "", stated=False); meta
        {'flux_unit_assumed': True}
        >>> meta = {}
        >>> mark_assumed(meta, "Jy", stated=False); meta
        {}
    """
    if not flux_unit and not stated:
        meta[ASSUMED_KEY] = True


IN_FILE_KEY = "flux_unit_in_file"
"""Meta key a reader sets to the file's own flux unit when the caller's unit replaced it."""

GIVEN_KEY = "flux_unit_given"
"""Meta key of the caller's unit that replaced it (the flux may be converted since)."""


def mark_overridden(meta: MutableMapping[str, Any], given: str | None, in_file: str | None) -> None:
    """Record in ``meta`` the flux unit the file states (``in_file``) when the caller's unit
    (``given``: --flux-unit, ``flux_unit=``) is another one and replaced it; the routes then
    say so (:func:`overridden_note`). A file whose column name and unit contradict each
    other is described as such (``in_file`` is then that description).

    Example:
        >>> meta = {}
        >>> mark_overridden(meta, "mJy", "erg / (Angstrom s cm2)"); meta
        {'flux_unit_in_file': 'erg / (Angstrom s cm2)', 'flux_unit_given': 'mJy'}
        >>> meta = {}
        >>> mark_overridden(meta, "mJy", "mJy"); mark_overridden(meta, "Jy", None); meta
        {}
    """
    if given is None or not in_file:
        return
    import astropy.units as u

    try:
        if u.Unit(given) == u.Unit(in_file):
            return
    except ValueError:
        pass
    meta[IN_FILE_KEY] = in_file
    meta[GIVEN_KEY] = given


def file_flux_unit(
    column: str, unit: str | None, error_column: str | None, *, source: str
) -> str | None:
    """The flux unit a table states for its flux ``column`` (its ``unit``, else its name), for
    the record when the caller gives another; where name and unit contradict each other
    (refused without a given unit), the unit as written.

    Example:
        >>> file_flux_unit("flux_mjy", None, None, source="x.csv")
        'mJy'
        >>> file_flux_unit("flux_mjy", "Jy", None, source="x.csv")
        'Jy'
    """
    from atmospec.io._common import flux_column_unit

    try:
        return flux_column_unit(column, unit, error_column, source=source)
    except UnitError:
        return unit


def overridden_note(spectrum: Spectrum) -> str | None:
    """The sentence that says the file's own flux unit was replaced by the one given, or None.

    Example:
        >>> from atmospec.spectrum import Spectrum
        >>> s = Spectrum([1.0, 2.0], [1.0, 1.0], flux_unit="mJy",
        ...              meta={"flux_unit_in_file": "erg / (Angstrom s cm2)",
        ...                    "flux_unit_given": "mJy"})
        >>> overridden_note(s)
        'flux read in mJy as given (--flux-unit, flux_unit=), not in erg / (Angstrom s cm2) as the file states'
    """
    in_file = spectrum.meta.get(IN_FILE_KEY)
    if not in_file:
        return None
    given = spectrum.meta.get(GIVEN_KEY) or spectrum.flux_unit or "relative units"
    return (
        f"flux read in {given} as given (--flux-unit, flux_unit=), not in {in_file} as the "
        "file states"
    )


def assumed_note(spectrum: Spectrum) -> str | None:
    """The sentence that says a file's flux was read as F_lambda without a stated unit, or
    None when the unit was stated (or the spectrum was not read from such a file).

    Example:
        >>> from atmospec.spectrum import Spectrum
        >>> s = Spectrum([1.0, 2.0], [1.0, 1.0], meta={"flux_unit_assumed": True})
        >>> assumed_note(s)[:50]
        'no flux unit in the file: read as F_lambda (per un'
    """
    if spectrum.flux_unit or not spectrum.meta.get(ASSUMED_KEY):
        return None
    return (
        "no flux unit in the file: read as F_lambda (per unit wavelength), so if it is F_nu "
        "(per unit frequency, e.g. Jy) state it with --flux-unit (flux_unit= in Python)"
    )


def as_flux_lambda(spectrum: Spectrum, unit: str = MODEL_FLUX_UNIT) -> tuple[Spectrum, list[str]]:
    """``spectrum`` with an F_nu flux converted to the F_lambda ``unit``, and the notes that
    say what was converted or assumed.

    A relative flux (no unit) and an F_lambda flux in any unit pass unchanged (a fitted or
    normalised flux scale absorbs the unit's factor); an F_nu flux (and its uncertainty) is
    converted pixel by pixel, F_lambda = F_nu c / lambda^2. ``unit`` may itself be an F_nu
    unit (a grid given in F_nu): then an F_lambda flux is converted to it. Anything that is
    not a spectral flux density raises :class:`~atmospec.errors.UnitError`.

    Example:
        >>> from atmospec.spectrum import Spectrum
        >>> s = Spectrum([1.0, 2.0], [1.0, 1.0], [0.1, 0.1], flux_unit="Jy")
        >>> f, notes = as_flux_lambda(s)
        >>> round(float(f.flux[0] / f.flux[1]), 6)  # F_nu flat -> F_lambda ~ lambda^-2
        4.0
        >>> notes
        ['flux converted from Jy (F_nu) to F_lambda (erg / (s cm2 um))']
    """
    notes = [n for n in (overridden_note(spectrum), assumed_note(spectrum)) if n is not None]
    if not spectrum.flux_unit:
        return spectrum, notes
    import astropy.units as u

    have, target = u.Unit(spectrum.flux_unit), u.Unit(unit)
    if have.is_equivalent(target):
        return spectrum, notes
    wave = spectrum.wavelength * u.um
    if not have.is_equivalent(target, equivalencies=u.spectral_density(wave)):
        raise UnitError(
            f"{spectrum.source}: flux unit {spectrum.flux_unit!r} is not a spectral flux density; "
            f"models read F_lambda (e.g. {MODEL_FLUX_UNIT!r}) or F_nu (e.g. 'Jy', converted) or "
            "a normalised flux (no unit). Convert the flux (magnitudes, counts and temperatures "
            "cannot be used) or build the Spectrum with the right flux_unit"
        )
    kind = "F_nu" if have.is_equivalent(u.Jy) else "F_lambda"
    goal = "F_nu" if target.is_equivalent(u.Jy) else "F_lambda"
    notes.append(f"flux converted from {spectrum.flux_unit} ({kind}) to {goal} ({unit})")
    return spectrum.to_flux_unit(unit), notes
