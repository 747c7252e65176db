"""The learned line list as a table a spectroscopist reads."""

from __future__ import annotations

from typing import Any

import numpy as np

from atmospec.highres.extrinsic import C_KMS
from atmospec.highres.linefinder import LineList

__all__ = ["line_table"]


def line_table(lines: LineList) -> Any:
    """A line list as a table a spectroscopist reads: rest-frame vacuum wavelength (Å), the
    line's central depth and equivalent width (mÅ, each line alone, before rotation and
    instrument), its intrinsic FWHM in km/s, and where it came from (``template`` / ``data``,
    from ``lines.meta["origin"]`` when present).

    Example:
        >>> t = line_table(LineList([8700.0], [0.02], [0.04], [0.002]))
        >>> t.colnames[:3], round(float(t["ew_mA"][0]), 1)
        (['wavelength_A', 'depth', 'ew_mA'], 18.7)
    """
    from astropy.table import Table
    from scipy.special import voigt_profile

    n = len(lines)
    fwhm = lines.fwhm
    half = 10.0 * fwhm + 20.0 * lines.gamma
    x = np.linspace(-1.0, 1.0, 801)[None, :] * half[:, None]
    absorbed = 1.0 - np.exp(
        -lines.amplitude[:, None] * voigt_profile(x, lines.sigma[:, None], lines.gamma[:, None])
    )
    ew = np.trapezoid(absorbed, x, axis=1) if n else np.zeros(0)
    origin = lines.meta.get("origin")
    table = Table(
        {
            "wavelength_A": np.round(lines.center, 4),
            "depth": np.round(lines.depth, 4),
            "ew_mA": np.round(1e3 * ew, 2),
            "fwhm_kms": np.round(fwhm / lines.center * C_KMS, 2),
            "origin": np.asarray(origin if origin is not None and len(origin) == n else ["?"] * n),
        }
    )
    table["wavelength_A"].unit = "Angstrom"
    table["ew_mA"].unit = "mAngstrom"
    table["fwhm_kms"].unit = "km/s"
    table.meta["description"] = (
        "rest-frame vacuum wavelength; depth and equivalent width of each line alone, before "
        "rotation and instrumental broadening; intrinsic FWHM (Voigt)"
    )
    return table
