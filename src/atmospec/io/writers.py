"""Writers: a Spectrum to ECSV or to a FITS binary table, atomically and losslessly."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

from atmospec._fileio import atomic_path
from atmospec.errors import FileFormatError
from atmospec.io._common import meta_to_json
from atmospec.io.fits_table import META_KEY
from atmospec.io.unit_tables import ECSV_META_KEY
from atmospec.spectrum import Spectrum

__all__ = ["write_ecsv", "write_fits", "WRITE_FORMATS"]


def _table(spectrum: Spectrum) -> object:
    import astropy.units as u
    from astropy.table import Table

    unit = u.Unit(spectrum.flux_unit) if spectrum.flux_unit else None
    table = Table()
    table["wavelength"] = u.Quantity(spectrum.wavelength, u.um)
    table["flux"] = spectrum.flux if unit is None else u.Quantity(spectrum.flux, unit)
    if spectrum.uncertainty is not None:
        unc = spectrum.uncertainty
        table["uncertainty"] = unc if unit is None else u.Quantity(unc, unit)
    table["mask"] = spectrum.mask.astype(bool)
    return table


def write_ecsv(spectrum: Spectrum, path: str | Path) -> Path:
    """Write ``spectrum`` as ECSV (columns wavelength [um], flux, uncertainty, mask).

    Floats are written with full precision, so reading the file back gives identical arrays;
    name and metadata are kept as JSON in ``meta['atmospec']`` (read back, the source is the
    file read and the one written is ``meta['origin']``).

    Example:
        >>> import pathlib, tempfile
        >>> from atmospec.io.unit_tables import read_ecsv
        >>> s = Spectrum([1.0, 2.0], [1 / 3, 2 / 3], flux_unit="Jy", name="W0855",
        ...              meta={"source": "w0855.fits", "snr": 30})
        >>> path = write_ecsv(s, pathlib.Path(tempfile.mkdtemp()) / "w0855.ecsv")
        >>> back = read_ecsv(path)
        >>> back.name, back.flux_unit, back.flux.tolist() == s.flux.tolist()
        ('W0855', 'Jy', True)
        >>> back.source == str(path), back.meta["origin"], back.meta["snr"]
        (True, 'w0855.fits', 30)
    """
    table = _table(spectrum)
    table.meta[ECSV_META_KEY] = meta_to_json(spectrum)  # type: ignore[attr-defined]
    target = Path(path)
    with atomic_path(target) as tmp:
        table.write(tmp, format="ascii.ecsv", overwrite=True)  # type: ignore[attr-defined]
    return target


def write_fits(spectrum: Spectrum, path: str | Path) -> Path:
    """Write ``spectrum`` as a FITS binary table (EXTNAME SPECTRUM; gzip if the name ends .gz).

    Columns wavelength (um), flux, uncertainty (TUNIT = the flux unit) and mask (logical);
    name and metadata as JSON in the ``ATMSMETA`` header card.

    Example:
        >>> import pathlib, tempfile
        >>> from astropy.io import fits
        >>> from atmospec.io.fits_table import read_fits_table
        >>> s = Spectrum([1.0, 2.0], [1 / 3, 2 / 3], [0.1, 0.1], flux_unit="Jy", name="W0855")
        >>> path = write_fits(s, pathlib.Path(tempfile.mkdtemp()) / "w0855.fits.gz")
        >>> with fits.open(path) as hdul:
        ...     [h.name for h in hdul], hdul["SPECTRUM"].columns.names
        (['PRIMARY', 'SPECTRUM'], ['wavelength', 'flux', 'uncertainty', 'mask'])
        >>> back = read_fits_table(path)
        >>> back.name, back.flux_unit, back.flux.tolist() == s.flux.tolist()
        ('W0855', 'Jy', True)
    """
    from astropy.io import fits

    hdu = fits.table_to_hdu(_table(spectrum))
    hdu.name = "SPECTRUM"
    hdu.header[META_KEY] = meta_to_json(spectrum)
    primary = fits.PrimaryHDU()
    primary.header["ORIGIN"] = "atmospec"
    primary.header["OBJECT"] = spectrum.name[:68]
    buffer = io.BytesIO()
    fits.HDUList([primary, hdu]).writeto(buffer)
    payload = buffer.getvalue()
    target = Path(path)
    if target.name.endswith(".gz"):
        payload = gzip.compress(payload, mtime=0)
    with atomic_path(target) as tmp:
        tmp.write_bytes(payload)
    return target


WRITE_FORMATS = {"ecsv": write_ecsv, "fits": write_fits}


def format_for_path(path: Path) -> str:
    """The writer format chosen by the file name."""
    name = path.name.lower()
    if name.endswith(".ecsv"):
        return "ecsv"
    if name.endswith((".fits", ".fits.gz", ".fit", ".fts")):
        return "fits"
    raise FileFormatError(
        f"{path}: cannot choose a format from the name; use a .ecsv or .fits (.fits.gz) name "
        "or pass format='ecsv' / 'fits'"
    )
