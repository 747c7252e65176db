"""Reader of generic FITS binary tables (and of the FITS files atmospec writes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from atmospec.errors import FileFormatError
from atmospec.io._common import (
    FLUX_NAMES,
    MASK_NAMES,
    WAVE_NAMES,
    Invalid,
    build_spectrum,
    check_file,
    check_flux_unit,
    check_wave_unit,
    find_column,
    match_columns,
    meta_from_json,
    open_fits,
    parse_unit,
    wave_column_unit,
)
from atmospec.io.error_columns import find_error_column, note_errors, to_sigma
from atmospec.io.flux_density import mark_assumed
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
        table = hdu.data
        names = list(hdu.columns.names)
        cw = find_column(names, WAVE_NAMES, what="wavelength", source=src, given=wave_col)
        cf = find_column(names, FLUX_NAMES, what="flux", source=src, given=flux_col)
        ce, kind = find_error_column(names, source=src, given=err_col)
        cm = find_column(names, MASK_NAMES, what="mask", source=src, required=False)
        assert cw is not None and cf is not None
        units = {c.name: c.unit for c in hdu.columns}
        wunit = check_wave_unit(
            wave_unit or wave_column_unit(cw, units.get(cw), source=src),
            source=src,
            column=cw,
        )
        file_unit = parse_unit(units.get(cf), source=src, column=cf)
        funit = check_flux_unit(
            flux_unit if flux_unit is not None else file_unit, source=src, column=cf
        )

        def column(name: str | None) -> np.ndarray | None:
            if name is None:
                return None
            values = np.asarray(table[name])
            if values.ndim == 2 and values.shape[0] == 1:  # one row of array cells
                values = values[0]
            if values.ndim != 1:
                raise FileFormatError(
                    f"{src}: column '{name}' has shape {values.shape}; expected one value per "
                    "pixel, or a single row holding the arrays"
                )
            return values

        wave = column(cw)
        flux = column(cf)
        unc = to_sigma(column(ce), kind)
        mask = column(cm)
        stored = hdu.header.get(META_KEY)
    name: str | None = None
    if stored is not None:
        name, meta = meta_from_json(str(stored), source=src)
    else:
        meta = {"source": src, "format": "fits-table"}
        name = p.name.split(".")[0]
        note_errors(meta, names, ce, kind)
    # atmospec writes a relative flux as F_lambda: only someone else's file leaves it open
    mark_assumed(meta, funit, stated=flux_unit is not None or bool(file_unit) or bool(stored))
    return build_spectrum(
        wave,  # type: ignore[arg-type]
        flux,  # type: ignore[arg-type]
        unc,
        source=src,
        wave_unit=wunit,
        flux_unit=funit,
        mask=None if mask is None else mask.astype(bool),
        meta=meta,
        name=name,
        invalid=invalid,
    )
