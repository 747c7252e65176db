"""Reader of generic FITS binary tables (and of the FITS files atmospec writes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from atmospec.errors import FileFormatError
from atmospec.io._common import (
    FLUX_NAMES,
    WAVE_NAMES,
    Invalid,
    check_file,
    match_columns,
    open_fits,
)
from atmospec.io.unit_tables import spectrum_from_table
from atmospec.spectrum import Spectrum

__all__ = ["read_fits_table", "META_KEY"]

META_KEY = "ATMSMETA"  # header card holding the JSON name/meta of files atmospec writes


def _table_hdus(hdul: Any) -> list[Any]:
    from astropy.io import fits

    return [h for h in hdul if isinstance(h, (fits.BinTableHDU, fits.TableHDU))]


def read_fits_table(
    path: str | Path,
    *,
    extension: int | str | None = None,
    wave_col: str | None = None,
    flux_col: str | None = None,
    err_col: str | None = None,
    wave_unit: str | None = None,
    flux_unit: str | None = None,
    invalid: Invalid = "error",
) -> Spectrum:
    """Read a spectrum from a FITS binary table.

    Columns are found case-insensitively: wavelength (``wave``, ``wavelength``, ``lambda`` ...),
    flux (``flux`` ...), uncertainty (``err``, ``error``, ``unc``, ``sigma`` ...), mask
    (``mask``) -- or named with ``wave_col`` / ``flux_col`` / ``err_col``. Units come from
    TUNITn; a wavelength column without a unit needs ``wave_unit`` (which, when given,
    overrides TUNITn, as in the text readers). ``extension`` is the HDU
    index or EXTNAME (default: the first table with wavelength and flux columns). A table of
    one row whose cells are arrays (one spectrum per row) is read from that row.

    Example:
        >>> import pathlib, tempfile
        >>> from astropy.table import Table
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "spec.fits"
        >>> t = Table({"WAVE": [1000.0, 1500.0, 2000.0], "FLUX": [1.0, 2.0, 3.0], "ERR": [0.1] * 3})
        >>> t["WAVE"].unit = "nm"
        >>> t.write(f)
        >>> s = read_fits_table(f)
        >>> s.name, s.wavelength.tolist(), s.uncertainty.tolist()  # TUNIT1 = nm -> micron
        ('spec', [1.0, 1.5, 2.0], [0.1, 0.1, 0.1])
    """
    p = check_file(path)
    src = str(p)
    with open_fits(p) as hdul:
        if extension is not None:
            try:
                hdu = hdul[extension]
            except (KeyError, IndexError) as err:
                raise FileFormatError(f"{src}: no HDU {extension!r}") from err
            if hdu not in _table_hdus(hdul):
                raise FileFormatError(f"{src}: HDU {extension!r} is not a table")
        else:
            tables = _table_hdus(hdul)
            if not tables:
                raise FileFormatError(
                    f"{src}: no binary table extension (HDUs: {[h.name for h in hdul]}); "
                    "not a FITS table spectrum"
                )
            hdu = tables[0]
            for t in tables:  # the first with wavelength and flux columns
                names = list(t.columns.names)
                if match_columns(names, WAVE_NAMES) and match_columns(names, FLUX_NAMES):
                    hdu = t
                    break
        from astropy.table import Table

        return spectrum_from_table(
            Table(hdu.data),
            src=src,
            fmt="fits-table",
            name=p.name.split(".")[0],
            stored=hdu.header.get(META_KEY),
            given=(wave_col, flux_col, err_col),
            units=(wave_unit, flux_unit),
            invalid=invalid,
            raw_units={c.name: c.unit for c in hdu.columns},  # TUNITn as written
        )
