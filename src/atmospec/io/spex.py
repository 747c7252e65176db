"""Reader of SpeX prism library FITS files (primary HDU: wavelength, flux, error[, flag])."""

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
    open_fits,
    parse_unit,
)
from atmospec.spectrum import Spectrum

__all__ = ["read_spex"]

_HEADER_META = {"OBJECT": "object", "DATE_OBS": "date_obs", "TELESCOP": "telescope"}


def read_spex(
    path: str | Path,
    *,
    invalid: Invalid = "mask",
    aperture: int | None = None,
    mask_flagged: bool = False,
) -> Spectrum:
    """Read a SpeX prism spectrum (``.fits`` or ``.fits.gz``) as written by Spextool / SPLAT.

    The primary HDU holds a 2-4 × N array: wavelength (µm), flux, uncertainty and optionally the
    Spextool flag row (a few library files store it transposed, N × 2-4, or with a leading
    aperture axis, 2 × 3 × N: ``aperture`` picks one, the first by default). A cross-dispersed
    file whose orders were not merged (``NORDERS`` > 1: one spectrum per order) is refused
    unless ``aperture`` picks one order: merge them first (Spextool's xmergeorders). Units
    come from the ``XUNITS`` /
    ``YUNITS`` cards (microns and relative flux when absent). NaN pixels are *masked*, not
    dropped (``invalid="mask"``); pixels with a NaN wavelength cannot be kept and are dropped.
    Flagged pixels (non-zero flag row) are kept unless ``mask_flagged``; their number is in
    ``meta["n_flagged"]``. The resolving power Spextool records (``RES``: about 200, 120, 75
    and 37.5 for the prism's 0.3, 0.5, 0.8 and 1.6 arcsec slits) is the spectrum's stated
    ``meta["resolution"]``.

    Example:
        >>> from atmospec.data import require
        >>> s = read_spex(require("splat") / "resources/Spectra/Public/SPEX-PRISM/10703_10070.fits.gz")  # doctest: +SKIP
        >>> len(s), s.wavelength[0] < 0.7  # doctest: +SKIP
        (564, True)
    """
    p = check_file(path)
    src = str(p)
    with open_fits(p) as hdul:
        header = hdul[0].header
        data = hdul[0].data
        if data is None:
            raise FileFormatError(
                f"{src}: the primary HDU holds no data; not a SpeX prism spectrum "
                "(expected a 2-4 x N array of wavelength, flux, error)"
            )
        data = np.asarray(data, dtype=np.float64)
        meta: dict[str, object] = {"source": src, "format": "spex"}
        if data.ndim == 3:
            orders = header.get("NORDERS")
            if aperture is None and isinstance(orders, int) and orders > 1:
                raise FileFormatError(
                    f"{src}: a cross-dispersed spectrum of {orders} orders "
                    f"({str(header.get('ORDERS', '')).strip() or 'unnamed'}) not merged into "
                    "one: merge them first (Spextool's xmergeorders), or read one order with "
                    f"aperture= (0 to {data.shape[0] - 1}; --aperture N on the command line)"
                )
            pick = 0 if aperture is None else aperture
            if not 0 <= pick < data.shape[0]:
                raise FileFormatError(
                    f"{src}: aperture {pick} requested but the file has {data.shape[0]}"
                )
            meta["n_apertures"] = int(data.shape[0])
            meta["aperture"] = pick
            data = data[pick]
        elif aperture not in (None, 0):
            raise FileFormatError(
                f"{src}: aperture {aperture} requested but the file holds one spectrum"
            )
        if data.ndim != 2:
            raise FileFormatError(
                f"{src}: expected a 2-4 x N array (wavelength, flux, error[, flag]), "
                f"found shape {data.shape}"
            )
        if data.shape[0] in (2, 3, 4) and data.shape[1] > 4:
            rows = data
        elif data.shape[1] in (2, 3, 4) and data.shape[0] > 4:
            rows = data.T
        else:
            raise FileFormatError(
                f"{src}: expected a 2-4 x N array (wavelength, flux, error[, flag]), "
                f"found shape {data.shape}"
            )
        wunit = check_wave_unit(
            parse_unit(header.get("XUNITS"), source=src, column="XUNITS") or "um", source=src
        )
        funit = check_flux_unit(
            parse_unit(header.get("YUNITS"), source=src, column="YUNITS"),
            source=src,
            column="YUNITS",
        )
        for card, key in _HEADER_META.items():
            value = header.get(card)
            if isinstance(value, str) and value.strip():
                meta[key] = value.strip()
        stated = header.get("RES")  # Spextool: the resolving power of the slit and mode used
        if isinstance(stated, (int, float)) and not isinstance(stated, bool) and stated > 0:
            meta["resolution"] = float(stated)
    unc = rows[2] if rows.shape[0] >= 3 else None
    mask = None
    if rows.shape[0] == 4:
        flagged = np.nan_to_num(rows[3]) != 0
        meta["n_flagged"] = int(flagged.sum())
        if mask_flagged:
            mask = flagged
    name = str(meta.get("object", p.name.split(".")[0]))
    return build_spectrum(
        rows[0],
        rows[1],
        unc,
        source=src,
        wave_unit=wunit,
        flux_unit=funit,
        mask=mask,
        meta=meta,
        name=name,
        invalid=invalid,
    )
