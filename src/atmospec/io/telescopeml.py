"""Reader of TelescopeML's observed spectra, ``<object>_fluxcal.dat``."""

from __future__ import annotations

from pathlib import Path

from atmospec.errors import FileFormatError
from atmospec.io._common import Invalid, build_spectrum, check_file, open_text
from atmospec.io.text import parse_table
from atmospec.spectrum import Spectrum

__all__ = ["read_fluxcal", "FLUXCAL_WAVE_UNIT", "FLUXCAL_FLUX_UNIT"]

# TelescopeML's Predictor reads these files with
#   pd.read_csv(..., delim_whitespace=True, comment='#',
#               names=('wl', 'F_lambda', 'F_lambda_error'), usecols=(0, 1, 2))
# and converts F_lambda with unit erg / s / Angstrom / cm**2 to F_nu using
# u.spectral_density(wl * u.micron): wavelength in micron, F_lambda in erg s-1 cm-2 AA-1.
FLUXCAL_WAVE_UNIT = "um"
FLUXCAL_FLUX_UNIT = "erg s-1 cm-2 AA-1"


def read_fluxcal(path: str | Path, *, invalid: Invalid = "error") -> Spectrum:
    """Read a TelescopeML ``*_fluxcal.dat`` file: wavelength (µm), F_λ, F_λ error.

    Whitespace-separated, ``#`` comments, the first three columns used (further columns are
    ignored), F_λ in erg s⁻¹ cm⁻² Å⁻¹ -- the layout TelescopeML's ``Predictor`` reads.
    TelescopeML silently replaced zero or negative fluxes and errors by interpolated values;
    atmospec refuses non-positive errors or NaN flux instead (``invalid="mask"`` masks them).

    Example:
        >>> import pathlib, tempfile
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "WISE0855_fluxcal.dat"
        >>> rows = "1.0 2e-17 1e-18\\n1.1 3e-17 0.0\\n1.2 4e-17 1e-18\\n"
        >>> _ = f.write_text("# wl F_lambda err\\n" + rows)
        >>> s = read_fluxcal(f, invalid="mask")  # the zero error masks pixel 1
        >>> s.name, s.flux_unit, s.flux.tolist(), s.mask.tolist()
        ('WISE0855', 'erg / (Angstrom s cm2)', [2e-17, 3e-17, 4e-17], [False, True, False])
        >>> read_fluxcal(f)
        Traceback (most recent call last):
        ...
        atmospec.errors.InvalidSpectrumError: ...: 1 uncertainty value(s) are missing, zero, ...
    """
    p = check_file(path)
    src = str(p)
    table = parse_table(open_text(p), source=src)
    if table.data.shape[1] < 3:
        raise FileFormatError(
            f"{src}: a TelescopeML fluxcal file has 3 columns (wavelength um, F_lambda, "
            f"F_lambda error); found {table.data.shape[1]}"
        )
    name = p.name[: -len("_fluxcal.dat")] if p.name.endswith("_fluxcal.dat") else p.stem
    meta = {"source": src, "format": "telescopeml", "object": name}
    return build_spectrum(
        table.data[:, 0],
        table.data[:, 1],
        table.data[:, 2],
        source=src,
        wave_unit=FLUXCAL_WAVE_UNIT,
        flux_unit=FLUXCAL_FLUX_UNIT,
        meta=meta,
        name=name,
        invalid=invalid,
    )
