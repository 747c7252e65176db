"""Reader of JWST ``x1d`` products: the EXTRACT1D binary-table extension(s)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from atmospec.errors import FileFormatError
from atmospec.io._common import (
    Invalid,
    build_spectrum,
    check_file,
    check_flux_unit,
    check_wave_unit,
    find_column,
    open_fits,
    parse_unit,
)
from atmospec.spectrum import Spectrum

__all__ = ["read_jwst_x1d", "has_extract1d"]

_DO_NOT_USE = 1  # JWST data-quality bit 0: DO_NOT_USE
_PRIMARY_META = ("TELESCOP", "INSTRUME", "DETECTOR", "FILTER", "GRATING", "EXP_TYPE", "TARGNAME")


def has_extract1d(hdul: object) -> bool:
    """True if an opened HDU list has an EXTRACT1D extension.

    Example:
        >>> from astropy.io import fits
        >>> x1d = fits.BinTableHDU.from_columns([fits.Column("FLUX", "D")], name="EXTRACT1D")
        >>> has_extract1d(fits.HDUList([fits.PrimaryHDU(), x1d]))
        True
        >>> has_extract1d(fits.HDUList([fits.PrimaryHDU()]))
        False
    """
    return any(getattr(h, "name", "") == "EXTRACT1D" for h in hdul)  # type: ignore[attr-defined]


def read_jwst_x1d(
    path: str | Path,
    *,
    extension: int = 0,
    invalid: Invalid = "mask",
    use_dq: bool = True,
) -> Spectrum:
    """Read one spectrum of a JWST ``x1d`` file (columns WAVELENGTH, FLUX, FLUX_ERROR).

    Units come from the TUNITn cards (JWST writes ``um`` and ``Jy``). ``extension`` picks the
    n-th EXTRACT1D extension when a file holds several (slits, sources or orders; their count is
    in ``meta["n_extract1d"]``). Pixels with the DO_NOT_USE bit in the DQ column, NaN flux or a
    non-positive error are masked (the pipeline flags bad pixels with NaN); ``invalid="error"``
    refuses them instead.

    Example:
        >>> import pathlib, tempfile
        >>> from astropy.io import fits
        >>> cols = [
        ...     fits.Column("WAVELENGTH", "D", unit="um", array=[1.0, 1.1, 1.2]),
        ...     fits.Column("FLUX", "D", unit="Jy", array=[1e-3, 2e-3, 3e-3]),
        ...     fits.Column("FLUX_ERROR", "D", unit="Jy", array=[1e-4] * 3),
        ...     fits.Column("DQ", "J", array=[0, 1, 0]),  # DO_NOT_USE on pixel 1
        ... ]
        >>> primary = fits.PrimaryHDU(header=fits.Header({"TARGNAME": "WISE 0855"}))
        >>> x1d = fits.BinTableHDU.from_columns(cols, name="EXTRACT1D")
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "jw_x1d.fits"
        >>> fits.HDUList([primary, x1d]).writeto(f)
        >>> s = read_jwst_x1d(f)
        >>> s.name, s.flux_unit, s.mask.tolist(), s.meta["n_extract1d"]
        ('WISE 0855', 'Jy', [False, True, False], 1)
    """
    p = check_file(path)
    src = str(p)
    with open_fits(p) as hdul:
        exts = [h for h in hdul if h.name == "EXTRACT1D"]
        if not exts:
            raise FileFormatError(
                f"{src}: no EXTRACT1D extension; not a JWST x1d file "
                f"(extensions: {[h.name for h in hdul]})"
            )
        if not 0 <= extension < len(exts):
            raise FileFormatError(
                f"{src}: EXTRACT1D extension {extension} requested but the file has {len(exts)}"
            )
        hdu = exts[extension]
        if getattr(hdu, "columns", None) is None or hdu.data is None:
            raise FileFormatError(f"{src}: the EXTRACT1D extension is not a binary table")
        table = hdu.data
        names = list(table.columns.names)
        cw = find_column(names, ("wavelength",), what="wavelength", source=src)
        cf = find_column(names, ("flux",), what="flux", source=src)
        ce = find_column(names, ("flux_error", "error"), what="uncertainty", source=src)
        assert cw is not None and cf is not None
        col = {c.name: c for c in table.columns}
        wunit = check_wave_unit(
            parse_unit(col[cw].unit, source=src, column=cw), source=src, column=cw
        )
        funit = check_flux_unit(
            parse_unit(col[cf].unit, source=src, column=cf), source=src, column=cf
        )
        mask = None
        dq_name = next((n for n in names if n.upper() == "DQ"), None)
        if use_dq and dq_name is not None:
            mask = (np.asarray(table[dq_name]).astype(np.int64) & _DO_NOT_USE) != 0
        meta: dict[str, object] = {"source": src, "format": "jwst-x1d", "n_extract1d": len(exts)}
        for card in _PRIMARY_META:
            value = hdul[0].header.get(card)
            if value not in (None, ""):
                meta[card.lower()] = value
        for card in ("SLTNAME", "SOURCEID", "SPORDER"):
            if card in hdu.header:
                meta[card.lower()] = hdu.header[card]
        wave = np.asarray(table[cw], dtype=np.float64)
        flux = np.asarray(table[cf], dtype=np.float64)
        unc = None if ce is None else np.asarray(table[ce], dtype=np.float64)
    name = str(meta.get("targname", p.name.split(".")[0]))
    return build_spectrum(
        wave,
        flux,
        unc,
        source=src,
        wave_unit=wunit,
        flux_unit=funit,
        mask=mask,
        meta=meta,
        name=name,
        invalid=invalid,
    )
