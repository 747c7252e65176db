"""Reading and writing spectra: one reader per format and a ``read()`` that detects it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from atmospec._fileio import first_block
from atmospec.errors import FileFormatError
from atmospec.io._common import check_file, open_fits
from atmospec.io.fits_image import image_spectrum_hdu, read_fits_image
from atmospec.io.fits_table import read_fits_table
from atmospec.io.jwst import has_extract1d, read_jwst_x1d
from atmospec.io.spex import read_spex
from atmospec.io.telescopeml import read_fluxcal
from atmospec.io.text import read_csv, read_text
from atmospec.io.unit_tables import read_ecsv, read_ipac, read_votable
from atmospec.io.writers import WRITE_FORMATS, format_for_path
from atmospec.spectrum import Spectrum

__all__ = [
    "read",
    "write",
    "detect_format",
    "READERS",
    "read_spex",
    "read_jwst_x1d",
    "read_fits_table",
    "read_fits_image",
    "read_text",
    "read_csv",
    "read_ecsv",
    "read_ipac",
    "read_votable",
    "read_fluxcal",
]

READERS: dict[str, Callable[..., Spectrum]] = {
    "spex": read_spex,
    "jwst-x1d": read_jwst_x1d,
    "fits-table": read_fits_table,
    "fits-image": read_fits_image,
    "ecsv": read_ecsv,
    "ipac": read_ipac,
    "votable": read_votable,
    "csv": read_csv,
    "text": read_text,
    "telescopeml": read_fluxcal,
}
"""Format name -> reader. Each reader takes the path plus its own keyword arguments."""

_FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz")


def detect_format(path: str | Path) -> str:
    """The format name of a spectrum file, from its content and name (a key of READERS).

    FITS (by content, even compressed): an EXTRACT1D extension is ``jwst-x1d``, a 1-D image
    (or IRAF bands) with a wavelength WCS ``fits-image``, a 2-4 × N primary array ``spex``, a
    binary table ``fits-table``. Text: ``# %ECSV`` is ``ecsv``, an XML ``<VOTABLE>`` is
    ``votable``, a table whose first line is an IPAC ``\\keyword`` or ``|name|`` row is ``ipac``,
    ``*_fluxcal.dat`` is ``telescopeml``, ``.csv`` is ``csv``, anything else ``text``.

    Example:
        >>> import pathlib, tempfile
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "HD3651B_fluxcal.dat"
        >>> _ = f.write_text("1.0 1e-16 1e-17\\n1.1 1e-16 1e-17\\n")
        >>> detect_format(f)
        'telescopeml'
    """
    p = check_file(path)
    head = first_block(p)
    name = p.name.lower()
    if head.startswith(b"SIMPLE  ="):
        with open_fits(p) as hdul:
            if has_extract1d(hdul):
                return "jwst-x1d"
            if image_spectrum_hdu(hdul) is not None:
                return "fits-image"
            primary = hdul[0].data
            if primary is not None and primary.ndim in (2, 3):
                return "spex"
            if any(getattr(h, "columns", None) is not None for h in hdul[1:]):
                return "fits-table"
            one_d = primary is not None and sum(k > 1 for k in primary.shape) == 1
        if one_d:
            raise FileFormatError(
                f"{p}: the primary HDU holds a 1-D array but no wavelength axis (no CRVAL1 / "
                "CDELT1 WCS cards, no IRAF WAT cards); cannot tell the wavelength of its pixels"
            )
        raise FileFormatError(
            f"{p}: a FITS file with neither a spectrum array in the primary HDU nor a table "
            "extension; cannot read a spectrum from it"
        )
    if name.endswith(_FITS_SUFFIXES):
        raise FileFormatError(
            f"{p}: named like a FITS file but does not start with a FITS header "
            "(truncated, corrupt or mislabelled)"
        )
    if b"\x00" in head:
        raise FileFormatError(f"{p}: {_binary_kind(head)}; {_READABLE}")
    text = head.decode("utf-8-sig", errors="replace")
    if text.startswith("# %ECSV"):
        return "ecsv"
    if text.lstrip().startswith("<") and "<VOTABLE" in text.upper():
        return "votable"
    if text.lstrip().startswith(("\\", "|")):
        return "ipac"
    if name.endswith(".ecsv"):
        raise FileFormatError(f"{p}: named .ecsv but the first line is not '# %ECSV <version>'")
    if name.endswith(("_fluxcal.dat", "_fluxcal.dat.gz")):
        return "telescopeml"
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    return "text"


_READABLE = (
    "atmospec reads spectra from FITS (SpeX, JWST x1d, 1-D images, binary tables), ECSV, "
    "IPAC, VOTable, CSV and whitespace text tables"
)


def _binary_kind(head: bytes) -> str:
    """What a binary file that is not FITS is, where its signature says."""
    if head.startswith(b"\x89HDF"):
        return "an HDF5 file, not a spectrum format atmospec reads"
    if head.startswith(b"PAR1"):
        return "a Parquet file, not a spectrum format atmospec reads"
    return "binary file of unknown format"


def read(
    path: str | Path,
    format: str | None = None,  # noqa: A002
    *,
    hint: bool = True,
    **kwargs: Any,
) -> Spectrum:
    """Read a spectrum file of any supported format (detected when ``format`` is None).

    Args:
        path: the file.
        format: one of :data:`READERS` (``spex``, ``jwst-x1d``, ``fits-image``, ``fits-table``,
            ``ecsv``, ``ipac``, ``votable``, ``csv``, ``text``, ``telescopeml``) to skip
            detection.
        hint: when the layout is refused, say which other atmospec command reads the file (a
            transmission spectrum: ``atmospec molecules``; an HPF echelle file:
            ``atmospec highres``; :mod:`atmospec.io.other_kinds`).
        **kwargs: passed to the reader (e.g. ``invalid="mask"``, ``wave_unit="nm"``).

    Raises:
        DataNotFoundError: the file does not exist.
        FileFormatError: empty, corrupt or truncated file, unknown layout, missing columns.
        UnitError: missing, unknown or wrong units.
        InvalidSpectrumError: unsorted / repeated wavelengths, NaN flux, bad uncertainties.

    Example:
        >>> import pathlib, tempfile
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "s.csv"
        >>> _ = f.write_text("wavelength [AA],flux [erg s-1 cm-2 AA-1]\\n12000,1e-16\\n13000,2e-16\\n")
        >>> s = read(f)
        >>> s.wavelength.round(6).tolist(), s.meta["format"]
        ([1.2, 1.3], 'csv')
    """
    try:
        return _read(path, format, **kwargs)
    except FileFormatError as err:
        from atmospec.io.other_kinds import spectrum_hint

        said = spectrum_hint(path) if hint else None
        if said is None:
            raise
        raise FileFormatError(f"{err}; {said}") from None


def _read(path: str | Path, format: str | None, **kwargs: Any) -> Spectrum:  # noqa: A002
    if format is None:
        format = detect_format(path)  # noqa: A001
    if format not in READERS:
        raise FileFormatError(f"{path}: unknown format {format!r}; known: {sorted(READERS)}")
    reader = READERS[format]
    unknown = [k for k, v in kwargs.items() if v is not None and k not in _accepted(reader)]
    if unknown:
        takes = sorted(n for n, r in READERS.items() if all(k in _accepted(r) for k in unknown))
        raise FileFormatError(
            f"{path}: is a {format} file, whose reader takes no {', '.join(unknown)} option "
            f"(the file's own header decides); {', '.join(unknown)} applies to "
            f"{', '.join(takes) or 'no format'} files"
        )
    return reader(path, **{k: v for k, v in kwargs.items() if k in _accepted(reader)})


def _accepted(reader: Callable[..., Spectrum]) -> frozenset[str]:
    import inspect

    return frozenset(inspect.signature(reader).parameters)


def write(spectrum: Spectrum, path: str | Path, format: str | None = None) -> Path:  # noqa: A002
    """Write ``spectrum`` to ECSV or FITS (by the file name, or ``format``), atomically.

    Reading the file back with :func:`read` gives the same arrays, mask, unit, name and meta,
    but for ``meta["source"]``: the file read (so messages name it), the spectrum's source
    when written kept as ``meta["origin"]``.

    Example:
        >>> import pathlib, tempfile
        >>> from atmospec.spectrum import Spectrum
        >>> s = Spectrum([1, 2, 3], [3, 4, 5], [0.1, 0.2, 0.1], mask=[0, 1, 0],
        ...              meta={"source": "10703_10070", "a": 1})
        >>> f = write(s, pathlib.Path(tempfile.mkdtemp()) / "s.fits")
        >>> t = read(f)
        >>> t.flux.tolist(), t.mask.tolist(), t.source == str(f), t.meta["origin"], t.meta["a"]
        ([3.0, 4.0, 5.0], [False, True, False], True, '10703_10070', 1)
    """
    target = Path(path)
    fmt = format or format_for_path(target)
    if fmt not in WRITE_FORMATS:
        raise FileFormatError(f"{target}: cannot write format {fmt!r}; use 'ecsv' or 'fits'")
    return WRITE_FORMATS[fmt](spectrum, target)
