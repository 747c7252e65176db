"""Shared helpers of the readers: file checks, column names, building the Spectrum (units:
:mod:`atmospec.io.units`, re-exported here)."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from atmospec._fileio import listed_columns
from atmospec.errors import DataNotFoundError, FileFormatError, InvalidSpectrumError, UnitError
from atmospec.io.units import check_flux_unit, check_wave_unit, parse_unit
from atmospec.spectrum import Spectrum, invalid_pixels, validate_arrays

if TYPE_CHECKING:
    from astropy.io.fits import HDUList

__all__ = [
    "Invalid",
    "check_file",
    "open_fits",
    "open_text",
    "parse_unit",
    "wave_column_unit",
    "flux_column_unit",
    "check_wave_unit",
    "check_flux_unit",
    "find_column",
    "build_spectrum",
    "meta_to_json",
    "meta_from_json",
    "WAVE_NAMES",
    "FLUX_NAMES",
    "ERROR_NAMES",
    "MASK_NAMES",
    "SNR_NAMES",
    "normalise_column",
    "match_columns",
]

Invalid = Literal["error", "mask"]
"""What a reader does with NaN flux or bad uncertainties: refuse the file, or mask the pixels."""

# The ONE list of column names each reader accepts for each role, matched exactly after
# normalisation (case-insensitive, a trailing unit in brackets "[um]" / "(um)" removed, spaces
# and dashes read as underscores). Nothing is matched by substring: a column
# "signal_to_noise" or "flux_uncorrected" is never taken as the error column. Two columns
# matching one role is refused with both named; name the column explicitly instead
# (wave_col= / flux_col= / err_col=, or --wave-col / --flux-col / --err-col on the CLI).
WAVE_NAMES = (
    "wavelength",
    "wave",
    "lambda",
    "lam",
    "wl",
    "wav",
    "wavelength_um",
    "wavelength_micron",
    "wavelength_nm",
    "wavelength_aa",
    "wavelength_angstrom",
)
_JANSKY = {"jy": "Jy", "mjy": "mJy", "ujy": "uJy"}
FLUX_NAME_UNITS = {
    f"{stem}_{suffix}": unit
    for stem in ("flux", "f_nu", "fnu", "flux_density")
    for suffix, unit in _JANSKY.items()
}
"""The unit a flux column's own name states (normalised name -> unit): ``flux_mjy``,
``fnu_jy``... (a flux density per unit frequency; F_lambda names carry no unit this way)."""
ERROR_NAME_UNITS = {
    f"{stem}_{suffix}": unit
    for stem in ("error", "err", "flux_error", "flux_err", "e_flux", "fnu_err", "f_nu_err")
    for suffix, unit in _JANSKY.items()
}
"""The unit an error column's own name states (``flux_err_mjy``...): it must be the flux's."""
FLUX_NAMES = ("flux", "f_lambda", "flam", "f_nu", "fnu", "flux_density", "fluxdensity") + tuple(
    FLUX_NAME_UNITS
)
ERROR_NAMES = (
    "error",
    "err",
    "uncertainty",
    "unc",
    "sigma",
    "flux_error",
    "flux_err",
    "fluxerr",
    "flux_unc",
    "flux_uncertainty",
    "flux_sigma",
    "e_flux",
    "eflux",
    "f_lambda_error",
    "f_lambda_err",
    "f_nu_error",
    "f_nu_err",
    "noise",
    *ERROR_NAME_UNITS,
)
WAVE_NAME_UNITS = {
    "wavelength_um": "um",
    "wavelength_micron": "um",
    "wavelength_nm": "nm",
    "wavelength_aa": "AA",
    "wavelength_angstrom": "AA",
}
"""The unit a wavelength column's own name states (normalised name -> unit)."""
MASK_NAMES = ("mask", "bad")
SNR_NAMES = ("snr", "s/n", "s_n", "sn", "signal_to_noise", "signal_noise", "signaltonoise")
"""Names of signal-to-noise columns: never read as uncertainties (named in the error text)."""


def check_file(path: str | Path) -> Path:
    """Return ``path`` as a Path; raise if it is missing, a directory or empty."""
    p = Path(path)
    if not p.exists():
        raise DataNotFoundError(f"{p}: no such file")
    if p.is_dir():
        raise FileFormatError(f"{p}: is a directory, not a spectrum file")
    if p.stat().st_size == 0:
        raise FileFormatError(f"{p}: the file is empty (0 bytes)")
    return p


@contextlib.contextmanager
def open_fits(path: Path) -> Iterator[HDUList]:
    """Open a FITS file fully in memory; corrupt or truncated files raise FileFormatError."""
    from astropy.io import fits
    from astropy.io.fits.verify import VerifyError
    from astropy.utils.exceptions import AstropyUserWarning

    with warnings.catch_warnings():
        # non-standard cards (e.g. Spextool history banners) are harmless; truncation is not
        warnings.simplefilter("ignore", AstropyUserWarning)
        warnings.filterwarnings("error", message=".*truncated.*", category=AstropyUserWarning)
        try:
            source: Any = path
            with open(path, "rb") as fh:
                compressed = fh.read(2) == b"\x1f\x8b"
            if compressed:  # decompress whole: gzip's CRC-32 and length are checked at its end
                source = io.BytesIO(_gunzip(path))
            hdul = fits.open(source, memmap=False, lazy_load_hdus=False)
            for hdu in hdul:  # force reading every data block now
                _ = hdu.data
        except FileFormatError:
            raise
        except (
            OSError,
            EOFError,
            ValueError,
            TypeError,
            IndexError,
            KeyError,  # an unknown BITPIX
            AttributeError,  # a corrupted HDU astropy could not classify
            AssertionError,  # astropy asserts on column names that fit no header card
            VerifyError,  # an unparsable card met while loading the data
            AstropyUserWarning,
        ) as err:
            raise FileFormatError(
                f"{path}: not a readable FITS file (truncated or corrupt): {err}"
            ) from err
        try:
            yield hdul
        except VerifyError as err:  # a malformed card met while the reader walks the headers
            raise FileFormatError(f"{path}: corrupt FITS header ({err})") from err
        finally:
            hdul.close()


def _gunzip(path: Path) -> bytes:
    """The decompressed content of a gzip file; a failed CRC-32 / length check raises."""
    import zlib

    try:
        with gzip.open(path, "rb") as fh:
            return fh.read()
    except (OSError, EOFError, zlib.error) as err:
        raise FileFormatError(
            f"{path}: corrupt gzip file ({err}); the compressed data fail their checksum, "
            "so the content cannot be trusted. Download or copy the file again"
        ) from err


def open_text(path: Path) -> list[str]:
    """The lines of a text file (decompressed if gzip, whatever its name); binary content raises."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = _gunzip(path)
    except OSError as err:
        raise FileFormatError(f"{path}: cannot be read ({err})") from err
    if b"\x00" in raw[:4096]:
        raise FileFormatError(f"{path}: binary content, not a text table")
    text = raw.decode("utf-8-sig", errors="replace")
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        raise FileFormatError(f"{path}: the file is empty (no data lines)")
    return lines


def wave_column_unit(column: str, unit: str | None, *, source: str) -> str | None:
    """The wavelength unit of ``column``: its header/metadata ``unit``, else the one its name
    states (``wavelength_um``, ``wavelength_nm``, ...; see ``WAVE_NAME_UNITS``); None when
    neither says. A name and a unit that disagree are refused, naming both.

    Example:
        >>> wave_column_unit("wavelength_um", None, source="x.csv")
        'um'
        >>> wave_column_unit("Wavelength_nm", "nm", source="x.csv")
        'nm'
        >>> wave_column_unit("wave", None, source="x.csv") is None
        True
    """
    return _named_unit(column, unit, WAVE_NAME_UNITS, "wavelength", "wave", source=source)


def flux_column_unit(
    column: str, unit: str | None, error_column: str | None = None, *, source: str
) -> str | None:
    """The flux unit of ``column``: its header/metadata ``unit``, else the one its name
    states (``flux_mjy``, ``fnu_jy``...; see ``FLUX_NAME_UNITS``); None when neither says.
    A name and a unit that disagree are refused, naming both, and so is an error column
    named for another unit than the flux's (``flux_mjy`` beside ``err_jy``).

    Example:
        >>> flux_column_unit("Flux_mJy", None, "flux_err_mJy", source="x.csv")
        'mJy'
        >>> flux_column_unit("flux", "Jy", source="x.csv")
        'Jy'
        >>> flux_column_unit("flux", None, source="x.csv") is None
        True
    """
    funit = _named_unit(column, unit, FLUX_NAME_UNITS, "flux", "flux", source=source)
    named_err = ERROR_NAME_UNITS.get(normalise_column(error_column or ""))
    if named_err is not None and not _same_unit(funit, named_err):
        said = f"is in {funit!r}" if funit else "has no unit"
        raise UnitError(
            f"{source}: error column '{error_column}' is named for {named_err!r} but the flux "
            f"column '{column}' {said}; errors are read in the flux's unit, so "
            + (
                "write both columns in one unit"
                if funit
                else "state it: --flux-unit on the command line, flux_unit= in Python"
            )
        )
    return funit


def _same_unit(a: str | None, b: str) -> bool:
    import astropy.units as u

    try:
        return a is not None and u.Unit(a) == u.Unit(b)
    except ValueError:
        return False


def _named_unit(
    column: str,
    unit: str | None,
    named_units: Mapping[str, str],
    role: str,
    option: str,
    *,
    source: str,
) -> str | None:
    """A column's unit from its header/metadata ``unit`` or else its name (``named_units``);
    a name and a unit that disagree are refused, naming both."""
    parsed = parse_unit(unit, source=source, column=column)
    named = named_units.get(normalise_column(column))
    if parsed is None or named is None:
        return parsed if parsed is not None else named
    if not _same_unit(parsed, named):
        raise UnitError(
            f"{source}: {role} column '{column}' is named for {named!r} but its unit is "
            f"{parsed!r}; correct one of them or give the unit: --{option}-unit on the "
            f"command line, {option}_unit= in Python"
        )
    return parsed


def normalise_column(name: str) -> str:
    """A column name as matched against the synonym lists: lower case, unit and spaces removed.

    Example:
        >>> normalise_column(" Flux Error [W m-2 um-1] ")
        'flux_error'
        >>> normalise_column("WAVELENGTH(um)")
        'wavelength'
    """
    text = re.sub(r"\s*(\[[^\]]*\]|\([^)]*\))\s*$", "", str(name).strip())
    return re.sub(r"[\s\-]+", "_", text.strip()).lower()


def match_columns(names: Sequence[str], candidates: Sequence[str]) -> list[str]:
    """The columns of ``names`` whose normalised name is one of ``candidates`` (exact match).

    Example:
        >>> match_columns(["wave", "flux", "signal_to_noise"], ERROR_NAMES)
        []
        >>> match_columns(["wave", "flux", "err", "flux_error"], ERROR_NAMES)
        ['err', 'flux_error']
    """
    wanted = {normalise_column(c) for c in candidates}
    return [n for n in names if normalise_column(n) in wanted]


def find_column(
    names: Sequence[str],
    candidates: Sequence[str],
    *,
    what: str,
    source: str,
    given: str | None = None,
    required: bool = True,
) -> str | None:
    """Pick the column for ``what`` among ``names``, matched exactly against ``candidates``.

    ``given`` names the column explicitly (case-insensitive, units in brackets ignored).
    Several matching columns raise FileFormatError naming them (never a silent pick); no
    match raises when ``required`` (else returns None).

    Example:
        >>> find_column(["Wavelength [um]", "Flux", "S/N"], ERROR_NAMES, what="uncertainty",
        ...             source="x.csv", required=False) is None
        True
    """
    if given is not None:
        hits = [n for n in names if n == given] or match_columns(names, (given,))
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise FileFormatError(f"{source}: several columns are named {given!r}: {hits}")
        raise FileFormatError(f"{source}: no column named {given!r}; found {listed_columns(names)}")
    hits = match_columns(names, candidates)
    option = {"wavelength": "wave_col", "flux": "flux_col", "uncertainty": "err_col"}.get(what)
    how = f" (pass {option}= / --{option.replace('_', '-')})" if option else ""
    if len(hits) > 1:
        raise FileFormatError(
            f"{source}: {len(hits)} columns could be the {what}: {hits}; name the one to use{how}"
        )
    if hits:
        return hits[0]
    if required:
        snr = match_columns(names, SNR_NAMES) if what == "uncertainty" else []
        extra = f"; {snr} hold S/N, not 1-sigma errors" if snr else ""
        named = {*FLUX_NAME_UNITS, *ERROR_NAME_UNITS}
        shown = [c for c in candidates if c not in named]
        examples = "flux_mjy, fnu_jy" if what == "flux" else "flux_err_mjy, err_jy"
        jansky = (
            f" or one named for a jansky unit ({examples}...)"
            if len(shown) < len(candidates)
            else ""
        )
        raise FileFormatError(
            f"{source}: no {what} column; expected one of {shown}{jansky} "
            f"(case-insensitive, units in brackets ignored), found {listed_columns(names)}"
            f"{extra}; name it{how}"
        )
    return None


def build_spectrum(
    wavelength: ArrayLike,
    flux: ArrayLike,
    uncertainty: ArrayLike | None = None,
    *,
    source: str,
    wave_unit: str = "um",
    flux_unit: str = "",
    mask: ArrayLike | None = None,
    meta: Mapping[str, Any] | None = None,
    name: str | None = None,
    invalid: Invalid = "error",
) -> Spectrum:
    """Turn arrays read from ``source`` into a validated Spectrum.

    Wavelengths are converted to micron; a strictly decreasing axis is reversed (recorded as
    ``meta["reversed"]``). With ``invalid="mask"`` pixels with NaN flux or non-positive / NaN
    uncertainty are masked and pixels with a NaN *wavelength* are dropped (their number in
    ``meta["dropped_pixels"]``); with ``invalid="error"`` they raise InvalidSpectrumError.
    Where most uncertainties are so (a column of zeros), the column holds no 1-sigma errors:
    with ``invalid="mask"`` the spectrum is read without them and ``meta["errors_unusable"]``
    says why (a prediction then asks for an assumed S/N, instead of masking every pixel).

    Example:
        >>> s = build_spectrum([2000.0, 1000.0], [1.0, 2.0], source="x.txt", wave_unit="nm")
        >>> s.wavelength.tolist(), s.flux.tolist(), s.meta
        ([1.0, 2.0], [2.0, 1.0], {'reversed': True})
    """
    if invalid not in ("error", "mask"):
        raise ValueError(f"invalid={invalid!r}: expected 'error' or 'mask'")
    wave = np.asarray(wavelength, dtype=np.float64)
    flx = np.asarray(flux, dtype=np.float64)
    unc = None if uncertainty is None else np.asarray(uncertainty, dtype=np.float64)
    msk = np.zeros(flx.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if wave.shape != flx.shape:
        validate_arrays(wave, flx, None, source=source)  # raises with the shapes
    meta = dict(meta or {})
    if wave_unit not in ("um", "micron"):
        import astropy.units as u

        wave = (wave * u.Unit(wave_unit)).to_value(u.um, equivalencies=u.spectral())
    if invalid == "mask":
        keep = np.isfinite(wave)
        if not keep.all():
            meta["dropped_pixels"] = int((~keep).sum())
            wave, flx, msk = wave[keep], flx[keep], msk[keep]
            unc = None if unc is None else unc[keep]
    nonpositive = np.isfinite(wave) & (wave <= 0)
    if nonpositive.any():
        raise InvalidSpectrumError(
            f"{source}: {int(nonpositive.sum())} of {wave.size} wavelengths are zero or negative "
            f"(the first is {float(wave[nonpositive][0]):g} um): not a wavelength axis; check the "
            "wavelength column or the header's WCS and unit"
        )
    if wave.size > 1 and np.all(np.diff(wave) < 0):
        wave, flx, msk = wave[::-1], flx[::-1], msk[::-1]
        unc = None if unc is None else unc[::-1]
        meta["reversed"] = True
    if invalid == "mask" and unc is not None and unc.shape == flx.shape:
        unc = _usable_errors(unc, flx, msk, meta)
    if invalid == "mask" and unc is not None and unc.shape == flx.shape:
        msk = msk | invalid_pixels(flx, unc)
    elif invalid == "mask":
        msk = msk | invalid_pixels(flx)
    validate_arrays(wave, flx, unc, mask=msk, source=source)
    return Spectrum(
        np.ascontiguousarray(wave),
        np.ascontiguousarray(flx),
        None if unc is None else np.ascontiguousarray(unc),
        mask=np.ascontiguousarray(msk),
        meta=meta,
        flux_unit=flux_unit,
        name=name,
        validate=False,
    )


def _usable_errors(
    unc: NDArray[np.float64],
    flux: NDArray[np.float64],
    mask: NDArray[np.bool_],
    meta: dict[str, Any],
) -> NDArray[np.float64] | None:
    """``unc``, or None (said in ``meta["errors_unusable"]``) when most of the pixels with a
    flux have an uncertainty that is zero, negative or missing: no 1-sigma errors to mask by.

    Example:
        >>> meta = {}
        >>> _usable_errors(np.zeros(4), np.ones(4), np.zeros(4, bool), meta) is None
        True
        >>> meta["errors_unusable"]
        '4 of 4 uncertainties are zero, negative or missing (4 zero/negative, 0 NaN)'
    """
    has_flux = np.isfinite(flux) & ~mask
    u = unc[has_flux]
    bad = ~np.isfinite(u) | (u <= 0)
    if not u.size or bad.mean() <= 0.5:
        return unc
    n_zero = int(np.sum(np.isfinite(u) & (u <= 0)))
    meta["errors_unusable"] = (
        f"{int(bad.sum())} of {u.size} uncertainties are zero, negative or missing "
        f"({n_zero} zero/negative, {int(bad.sum()) - n_zero} NaN)"
    )
    return None


def meta_to_json(spectrum: Spectrum) -> str:
    """Serialise a spectrum's name and metadata as JSON (numpy values become plain numbers)."""
    from atmospec._fileio import _json_default

    payload = {"name": spectrum.name, "meta": spectrum.meta}
    try:
        return json.dumps(payload, default=_json_default, ensure_ascii=True, allow_nan=True)
    except TypeError as err:
        raise FileFormatError(
            f"{spectrum.source}: metadata cannot be written ({err}); keep meta to JSON types"
        ) from err


def meta_from_json(text: str, *, source: str) -> tuple[str | None, dict[str, Any]]:
    """Inverse of :func:`meta_to_json`: return (name, meta)."""
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as err:
        raise FileFormatError(f"{source}: the stored atmospec metadata is corrupt ({err})") from err
    return payload.get("name"), dict(payload.get("meta") or {})
