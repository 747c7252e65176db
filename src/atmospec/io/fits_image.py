"""Reader of FITS image spectra: a flux array whose wavelengths the header's WCS describes.

This is how IRAF, the ESO pipelines (X-shooter's ``*_FLUX_MERGE1D`` products), FIRE and many
other reductions write a spectrum: no wavelength array, but ``CRVAL1`` / ``CDELT1`` (or
``CD1_1``) / ``CRPIX1`` / ``CTYPE1`` / ``CUNIT1`` cards, or IRAF's ``WAT`` cards. The
uncertainty is an IRAF band (``BANDIDn = 'sigma ...'``) or an image extension (``ERR``,
``ERRS``, ``SIGMA`` ...; ``VAR`` and ``IVAR`` are converted); a quality extension (``QUAL``,
``DQ``, ``MASK`` ...) masks its non-zero pixels. FIREHOSE (Magellan/FIRE) writes the
errors as a second file: ``NAME_E.fits`` beside ``NAME_F.fits`` is read with it.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from atmospec.errors import FileFormatError, UnitError
from atmospec.io._common import (
    Invalid,
    build_spectrum,
    check_file,
    check_flux_unit,
    check_wave_unit,
    open_fits,
    parse_unit,
)
from atmospec.io.flux_density import mark_assumed, mark_overridden
from atmospec.spectrum import Spectrum

__all__ = [
    "read_fits_image",
    "image_spectrum_hdu",
    "air_to_vacuum",
    "error_partner",
    "flux_partner",
]

_PAIRED = re.compile(r"^(?P<stem>.+)_(?P<kind>[FE])(?P<ext>\.fits(?:\.gz)?)$")

_ERROR_KINDS = {
    **dict.fromkeys(
        ("ERR", "ERRS", "ERROR", "ERRORS", "SIGMA", "UNC", "UNCERT", "UNCERTAINTY", "NOISE"),
        "sigma",
    ),
    **dict.fromkeys(("STDDEV", "STD"), "sigma"),
    **dict.fromkeys(("VAR", "VARIANCE"), "variance"),
    **dict.fromkeys(("IVAR", "INVVAR", "IVARIANCE"), "inverse variance"),
}
"""Extension name -> what its pixels hold."""
_QUALITY_NAMES = ("QUAL", "QUALITY", "DQ", "MASK", "BPM", "FLAGS")
_META_CARDS = {
    "OBJECT": "object",
    "DATE-OBS": "date_obs",
    "TELESCOP": "telescope",
    "INSTRUME": "instrument",
}
# CTYPE1 values that describe a spectral axis: FITS standard types (with or without an
# algorithm code such as -LOG) and the names IRAF and other reductions write.
_SPECTRAL_CTYPES = ("WAVE", "AWAV", "FREQ", "WAVN", "VRAD", "LINEAR", "WAVELENGTH", "LAMBDA")


def air_to_vacuum(wavelength_um: NDArray[np.float64]) -> NDArray[np.float64]:
    """Vacuum wavelengths (µm) of air wavelengths (µm): the IAU standard refractive index of
    dry air at 15 °C (Morton 2000, ApJS 130, 403), inverted as VALD does (Piskunov).

    Example:
        >>> import numpy as np
        >>> round(float(air_to_vacuum(np.array([0.656280]))[0]), 6)  # H-alpha
        0.656461
    """
    lam = np.asarray(wavelength_um, dtype=np.float64)
    s2 = (1.0 / lam) ** 2  # (1 / micron)^2
    n = (
        1.0
        + 8.336624212083e-5
        + 2.408926869968e-2 / (1.301065924522e2 - s2)
        + 1.599740894897e-4 / (3.892568793293e1 - s2)
    )
    return lam * n


def error_partner(path: str | Path) -> Path | None:
    """The error spectrum beside a flux spectrum ``NAME_F.fits``: ``NAME_E.fits``, as
    FIREHOSE (Magellan/FIRE) writes them, when that file exists.

    Example:
        >>> import pathlib, tempfile
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (d / "J0047_F.fits").write_bytes(b""), (d / "J0047_E.fits").write_bytes(b"")
        >>> error_partner(d / "J0047_F.fits").name, error_partner(d / "J0047_E.fits")
        ('J0047_E.fits', None)
    """
    return _partner(path, have="F", want="E")


def flux_partner(path: str | Path) -> Path | None:
    """The flux spectrum ``NAME_F.fits`` an error spectrum ``NAME_E.fits`` belongs to, when
    that file exists (a batch run reads the pair as one spectrum, not the errors alone).

    Example:
        >>> import pathlib, tempfile
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (d / "J0047_F.fits").write_bytes(b""), (d / "J0047_E.fits").write_bytes(b"")
        >>> flux_partner(d / "J0047_E.fits").name, flux_partner(d / "J0047_F.fits")
        ('J0047_F.fits', None)
        >>> flux_partner(d / "J1234_E.fits") is None  # no J1234_F.fits beside it
        True
    """
    return _partner(path, have="E", want="F")


def _partner(path: str | Path, *, have: str, want: str) -> Path | None:
    p = Path(path)
    m = _PAIRED.match(p.name)
    if m is None or m["kind"] != have:
        return None
    partner = p.with_name(f"{m['stem']}_{want}{m['ext']}")
    return partner if partner.is_file() else None


def _has_axis(header: Any) -> bool:
    return "CRVAL1" in header or "multispec" in str(header.get("WAT0_001", ""))


def _is_band_layout(header: Any) -> bool:
    """IRAF bands (``BANDIDn``) or IRAF apertures (``system=multispec`` / ``equispec``)."""
    system = str(header.get("WAT0_001", ""))
    return "BANDID1" in header or "multispec" in system or "equispec" in system


def image_spectrum_hdu(hdul: Any) -> int | None:
    """The index of the HDU holding a FITS image spectrum (a WCS on axis 1), or None.

    The primary HDU when its array is one spectrum (1-D, or with length-1 axes) or IRAF
    bands (``BANDIDn`` cards) with a wavelength WCS; else, when the primary holds no data,
    the first image extension that is such a spectrum and not an error or quality plane.

    Example:
        >>> import numpy as np
        >>> from astropy.io import fits
        >>> hdu = fits.PrimaryHDU(np.ones(5))
        >>> hdu.header.update(CRVAL1=1.0, CDELT1=0.1, CUNIT1="um")
        >>> empty = fits.PrimaryHDU()
        >>> image_spectrum_hdu(fits.HDUList([hdu])), image_spectrum_hdu(fits.HDUList([empty]))
        (0, None)
    """
    from astropy.io import fits

    for i, hdu in enumerate(hdul):
        if i > 0 and not isinstance(hdu, fits.ImageHDU):
            continue
        if hdu.data is None:
            continue
        name = str(hdu.name).upper()
        if i > 0 and (name in _ERROR_KINDS or name in _QUALITY_NAMES):
            continue
        shape = [k for k in np.shape(hdu.data) if k != 1]
        if _has_axis(hdu.header) and (len(shape) == 1 or _is_band_layout(hdu.header)):
            return i
        if i == 0:
            return None  # the primary holds another kind of array (a SpeX table, an image)
    return None


def read_fits_image(
    path: str | Path,
    *,
    extension: int | str | None = None,
    aperture: int | None = None,
    wave_unit: str | None = None,
    flux_unit: str | None = None,
    invalid: Invalid = "mask",
) -> Spectrum:
    """Read a spectrum stored as a FITS image whose header's WCS gives the wavelengths.

    The wavelength of pixel ``i`` comes from the axis-1 WCS (linear, ``-LOG``, IRAF's
    ``DC-FLAG = 1`` log-linear, or IRAF ``multispec`` linear / log-linear apertures); air
    wavelengths (``CTYPE1 = 'AWAV'``) are converted to vacuum. The unit is ``CUNIT1`` or the
    ``units=`` of ``WAT1_001``; a file that states none needs ``wave_unit``, and one that
    states another unit than ``wave_unit`` is refused. The flux unit is ``BUNIT``
    (``flux_unit`` overrides it; with neither, F_lambda is assumed and said). ``aperture``
    picks one of several spectra (IRAF apertures or echelle orders, from 0; a file holding
    several is refused without it, naming them); ``extension`` the HDU holding the flux
    (default: the primary, or the first image extension when the primary is empty).
    Pixels with NaN flux, a bad uncertainty or a non-zero quality flag are masked
    (``invalid="error"`` refuses NaN flux and bad uncertainties instead).

    Example:
        >>> import pathlib, tempfile
        >>> import numpy as np
        >>> from astropy.io import fits
        >>> hdu = fits.PrimaryHDU(np.full(4, 2.0))
        >>> hdu.header.update(CTYPE1="WAVE", CUNIT1="Angstrom", CRVAL1=12000.0, CDELT1=10.0,
        ...                   CRPIX1=1.0, BUNIT="erg s-1 cm-2 Angstrom-1")
        >>> err = fits.ImageHDU(np.full(4, 0.1), name="ERR")
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "spec1d.fits"
        >>> fits.HDUList([hdu, err]).writeto(f)
        >>> s = read_fits_image(f)
        >>> s.wavelength.round(4).tolist(), s.uncertainty.tolist(), s.flux_unit
        ([1.2, 1.201, 1.202, 1.203], [0.1, 0.1, 0.1, 0.1], 'erg / (Angstrom s cm2)')
    """
    p = check_file(path)
    src = str(p)
    with open_fits(p) as hdul:
        idx = _flux_hdu(hdul, extension, src)
        hdu = hdul[idx]
        header = hdu.header
        meta: dict[str, Any] = {"source": src, "format": "fits-image"}
        if idx:
            meta["extension"] = str(hdu.name) or idx
        data = np.asarray(hdu.data, dtype=np.float64)
        flux, sigma, line = _select(data, header, aperture, src)
        chosen = 0 if line is None else line
        if line is not None:
            meta["aperture"] = line
        wave, wunit = _axis(header, flux.size, line, wave_unit, src, meta)
        unc = sigma
        if sigma is not None:
            meta["uncertainty_from"] = "the sigma band"
        else:
            unc = _plane(hdul, idx, flux.size, chosen, src, meta, kind="error")
            partner = error_partner(p) if unc is None else None
            if partner is not None:
                unc = _partner_errors(partner, header, flux.size, src)
                meta["uncertainty_from"] = f"file {partner.name} (the error spectrum beside it)"
        quality = _plane(hdul, idx, flux.size, chosen, src, meta, kind="quality")
        for h in (hdul[0].header, header):
            for card, key in _META_CARDS.items():
                value = h.get(card)
                if isinstance(value, str) and value.strip():
                    meta[key] = value.strip()
        file_unit = parse_unit(
            header.get("BUNIT") or hdul[0].header.get("BUNIT"), source=src, column="BUNIT"
        )
        funit = check_flux_unit(
            flux_unit if flux_unit is not None else file_unit, source=src, column="BUNIT"
        )
    mark_assumed(meta, funit, stated=flux_unit is not None or bool(file_unit))
    mark_overridden(meta, flux_unit, file_unit)
    mask = None
    if quality is not None:
        mask = np.nan_to_num(quality, nan=1.0) != 0
        meta["n_quality_masked"] = int(mask.sum())
    return build_spectrum(
        wave,
        flux,
        unc,
        source=src,
        wave_unit=wunit,
        flux_unit=funit,
        mask=mask,
        meta=meta,
        name=str(meta.get("object", p.name.split(".")[0])),
        invalid=invalid,
    )


def _partner_errors(partner: Path, header: Any, n: int, src: str) -> NDArray[np.float64]:
    """The 1-sigma array of an error file, which must share the flux file's axis."""
    with open_fits(partner) as hdul:
        data = hdul[0].data
        own = hdul[0].header
        sigma = None if data is None else np.squeeze(np.asarray(data, dtype=np.float64))
        cards = ("CRVAL1", "CDELT1", "CD1_1", "CRPIX1", "DC-FLAG")
        differ = [c for c in cards if c in header and c in own and header[c] != own[c]]
    if sigma is None or sigma.shape != (n,) or differ:
        why = (
            f"cards {differ} differ"
            if differ
            else f"shape {None if sigma is None else sigma.shape}"
        )
        raise FileFormatError(
            f"{src}: its error spectrum {partner} does not match it ({why}; the flux has {n} "
            "pixels); correct or move the error file"
        )
    return sigma


def _flux_hdu(hdul: Any, extension: int | str | None, src: str) -> int:
    from astropy.io import fits

    if extension is None:
        idx = image_spectrum_hdu(hdul)
        if idx is None:
            raise FileFormatError(
                f"{src}: no image spectrum with a wavelength axis: no HDU holds a 1-D array (or "
                "IRAF bands) with CRVAL1 / CDELT1 or WAT cards (HDUs: "
                f"{[(h.name, np.shape(h.data)) for h in hdul]})"
            )
        return idx
    try:
        hdu = hdul[extension]
    except (KeyError, IndexError) as err:
        raise FileFormatError(f"{src}: no HDU {extension!r}") from err
    if not isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU)) or hdu.data is None:
        raise FileFormatError(f"{src}: HDU {extension!r} holds no image array")
    return int(hdul.index_of(extension))


def _select(
    data: NDArray[np.float64], header: Any, aperture: int | None, src: str
) -> tuple[NDArray[np.float64], NDArray[np.float64] | None, int | None]:
    """(flux, sigma band or None, the aperture's index in the file or None)."""
    if "BANDID1" in header:
        if data.ndim == 3:
            cube = data
        elif data.ndim == 2:
            cube = data.reshape(data.shape[0], 1, -1)
        else:
            cube = data.reshape(1, 1, -1)
        bands = [str(header.get(f"BANDID{k}", "")) for k in range(1, cube.shape[0] + 1)]
        bands = [b for b in bands if b]
        if len(bands) != cube.shape[0]:
            raise FileFormatError(
                f"{src}: {len(bands)} BANDID cards for {cube.shape[0]} bands of shape "
                f"{data.shape}; cannot tell which band is the spectrum"
            )
        k = _pick(aperture, cube.shape[1], src)
        sigma_bands = [i for i, b in enumerate(bands) if b.lower().startswith(("sigma", "error"))]
        sigma = cube[sigma_bands[0], k] if sigma_bands else None
        return cube[0, k], sigma, k
    squeezed = np.squeeze(data) if data.size > 1 else data.reshape(-1)
    if squeezed.ndim == 1:
        _pick(aperture, 1, src)
        return squeezed, None, None
    if squeezed.ndim == 2:
        k = _pick(aperture, squeezed.shape[0], src)
        return squeezed[k], None, k
    raise FileFormatError(
        f"{src}: an image of shape {data.shape} is not a spectrum (expected one row of flux, "
        "apertures x pixels, or IRAF bands)"
    )


def _pick(aperture: int | None, n: int, src: str) -> int:
    """The aperture to read: the only one, or the one asked for (never a silent choice)."""
    if aperture is None:
        if n == 1:
            return 0
        raise FileFormatError(
            f"{src}: holds {n} spectra (IRAF apertures or echelle orders); choose one with "
            f"aperture= (0 to {n - 1}; --aperture N on the command line)"
        )
    if not 0 <= aperture < n:
        raise FileFormatError(
            f"{src}: aperture {aperture} requested but the file holds {n} "
            f"{'spectra' if n != 1 else 'spectrum'} (aperture 0 to {n - 1})"
        )
    return aperture


def _stated_unit(header: Any, src: str) -> str | None:
    cunit = header.get("CUNIT1")
    if isinstance(cunit, str) and cunit.strip():
        return parse_unit(cunit, source=src, column="CUNIT1")
    match = re.search(r"units=(\S+)", str(header.get("WAT1_001", "")))
    if match:
        return parse_unit(match.group(1), source=src, column="WAT1_001 units")
    return None


def _axis(
    header: Any, n: int, line: int | None, wave_unit: str | None, src: str, meta: dict[str, Any]
) -> tuple[NDArray[np.float64], str]:
    """The wavelength of each pixel and its unit, from the header's WCS."""
    import astropy.units as u

    multispec = "multispec" in str(header.get("WAT0_001", ""))
    ctype = str(header.get("CTYPE1", "")).strip().upper()
    if not multispec and ctype and not ctype.startswith(_SPECTRAL_CTYPES):
        raise FileFormatError(
            f"{src}: axis 1 is {ctype!r}, not a spectral axis (expected WAVE, AWAV, FREQ, "
            "LINEAR ...): not a wavelength-calibrated spectrum"
        )
    for card in ("CRVAL1", "CDELT1", "CD1_1", "CRPIX1"):
        value = header.get(card)
        if card in header and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise FileFormatError(f"{src}: {card} = {value!r} is not a number")
    stated = _stated_unit(header, src)
    given = parse_unit(wave_unit, source=src, column="wavelength") if wave_unit else None
    if stated and given and u.Unit(stated) != u.Unit(given):
        raise UnitError(
            f"{src}: the wavelength axis is in {stated!r} (CUNIT1 / WAT1_001) but {given!r} was "
            "given; drop the option or correct the header"
        )
    if stated is None and given is None:
        raise UnitError(
            f"{src}: the wavelength axis has no unit (no CUNIT1 card, no 'units=' in WAT1_001); "
            "give it: --wave-unit AA on the command line, wave_unit='AA' in Python"
        )
    unit = check_wave_unit(stated or given, source=src, column="CUNIT1")
    if multispec:
        return _multispec(header, n, 1 if line is None else line + 1, src, meta), unit
    from astropy.wcs import WCS, FITSFixedWarning

    cards = header.copy()
    cards["CUNIT1"] = unit
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(cards, naxis=[1])
            world = np.asarray(wcs.all_pix2world(np.arange(n, dtype=np.float64), 0)[0])
    except Exception as err:  # astropy raises several wcslib error types for bad cards
        raise FileFormatError(f"{src}: the wavelength WCS cannot be read ({err})") from err
    out = wcs.wcs.cunit[0].to_string() or unit
    meta["wavelength_axis"] = "log-linear" if "-LOG" in ctype else "linear"
    if header.get("DC-FLAG") == 1 and "-LOG" not in ctype:
        world = 10.0**world  # IRAF: the axis is log10(wavelength)
        meta["wavelength_axis"] = "log-linear (DC-FLAG = 1)"
    if ctype.startswith("AWAV"):
        micron = (world * u.Unit(out)).to_value(u.um)
        world, out = air_to_vacuum(micron), "um"
        meta["air_to_vacuum"] = True
    return world, out


def _multispec(
    header: Any, n: int, line: int, src: str, meta: dict[str, Any]
) -> NDArray[np.float64]:
    """IRAF multispec: ``specN = "ap beam dtype w1 dw nw z ..."`` in the joined WAT2 cards."""
    parts, k = [], 1
    while f"WAT2_{k:03d}" in header:
        parts.append(str(header[f"WAT2_{k:03d}"]).ljust(68))  # FITS strips trailing blanks
        k += 1
    match = re.search(rf'spec{line}\s*=\s*"([^"]*)"', "".join(parts))
    if match is None:
        raise FileFormatError(f"{src}: multispec WCS without an entry for spec{line} in WAT2")
    fields = match.group(1).split()
    try:
        dtype = int(fields[2])
        w1, dw, z = float(fields[3]), float(fields[4]), float(fields[6])
    except (IndexError, ValueError) as err:
        raise FileFormatError(
            f"{src}: unreadable multispec entry spec{line}: {match.group(1)!r}"
        ) from err
    if dtype not in (0, 1):
        kind = "non-linear" if dtype == 2 else "no"
        raise FileFormatError(
            f"{src}: aperture spec{line} has a {kind} dispersion function (dtype {dtype}); only "
            "linear and log-linear axes are read. Resample it to a linear axis first (IRAF "
            "dispcor, or write a table of wavelength and flux)"
        )
    logical = np.arange(1, n + 1, dtype=np.float64)
    physical = (logical - float(header.get("LTV1", 0.0))) / float(header.get("LTM1_1", 1.0))
    world = w1 + dw * (physical - 1.0)
    if dtype == 1:
        world = 10.0**world
    meta["wavelength_axis"] = f"multispec spec{line} {'log-linear' if dtype else 'linear'}"
    return world / (1.0 + z)


def _plane(
    hdul: Any, idx: int, n: int, aperture: int, src: str, meta: dict[str, Any], *, kind: str
) -> NDArray[np.float64] | None:
    """The error (as 1-sigma) or quality plane of the flux, from a named image extension."""
    from astropy.io import fits

    for i, hdu in enumerate(hdul):
        name = str(hdu.name).upper()
        wanted = name in _ERROR_KINDS if kind == "error" else name in _QUALITY_NAMES
        if i == idx or not wanted or not isinstance(hdu, fits.ImageHDU) or hdu.data is None:
            continue
        data = np.asarray(hdu.data, dtype=np.float64)
        plane = np.squeeze(data) if data.size > 1 else data.reshape(-1)
        if plane.ndim == 2 and plane.shape[0] > aperture:
            plane = plane[aperture]
        if plane.shape != (n,):
            raise FileFormatError(
                f"{src}: extension {name} has shape {data.shape}, but the flux has {n} pixels"
            )
        if kind == "quality":
            return plane
        what = _ERROR_KINDS[name]
        meta["uncertainty_from"] = f"extension {name} ({what})"
        with np.errstate(divide="ignore", invalid="ignore"):
            if what == "variance":
                return np.where(plane >= 0, np.sqrt(np.abs(plane)), np.nan)
            if what == "inverse variance":
                return np.where(plane > 0, 1.0 / np.sqrt(np.abs(plane)), np.nan)
        return plane
    return None
