"""The official Sonora release files (Bobcat, Cholla, Diamondback) for users with full grids.

Formats (as distributed on Zenodo; gravity ``g`` in the names is in m/s^2, so
``logg = log10(100 g)``, rounded to 0.01 dex: g316 -> 4.50):

- **Bobcat** (Marley et al. 2021): ``sp_t{teff}g{g}nc_m{mh}`` with optional ``_co{co}``
  (e.g. ``sp_t1000g1000nc_m+0.0_co1.5``); 2 header lines, then micron and F_nu in
  erg cm^-2 s^-1 Hz^-1, wavelengths decreasing. C/O defaults to 1 (solar) when absent.
- **Cholla** (Karalidi et al. 2021): ``{teff}K_{g}g_logkzz{kzz}.spec``; 2 header lines,
  micron and F_lambda in W m^-2 m^-1.
- **Diamondback** (Morley et al. 2024): ``t{teff}g{g}f{fsed}_m{mh}_co{co}.spec`` or
  ``...nc_...`` for cloud-free models (stored as fsed = 10 like the SPLAT copy); 3 header
  lines, micron and F_lambda in W m^-2 m^-1.

All fluxes are converted to surface F_lambda in erg s^-1 cm^-2 micron^-1, the unit of the
SPLAT model sets, so grids from either source can be compared directly.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from atmospec.errors import FileFormatError
from atmospec.grids.grid import ModelGrid
from atmospec.grids.loaders._paths import default_out
from atmospec.grids.loaders._text import build_grid, read_table

__all__ = ["SONORA_FAMILIES", "parse_sonora_name", "read_sonora", "load_sonora"]

FLUX_UNIT = "erg / (s cm2 um)"
_C_UM = 2.99792458e14  # speed of light in micron/s
_NUM = r"[-+]?\d+(?:\.\d*)?"

_PATTERNS: dict[str, re.Pattern[str]] = {
    "bobcat": re.compile(
        rf"sp_t(?P<teff>{_NUM})g(?P<g>{_NUM})nc_m(?P<mh>{_NUM})(?:_co(?P<co>{_NUM}))?(?:\.\w+)*"
    ),
    "cholla": re.compile(rf"(?P<teff>{_NUM})K_(?P<g>{_NUM})g_logkzz(?P<kzz>{_NUM})(?:\.\w+)*"),
    "diamondback": re.compile(
        rf"t(?P<teff>{_NUM})g(?P<g>{_NUM})(?:f(?P<fsed>{_NUM})|(?P<nc>nc))_m(?P<mh>{_NUM})"
        rf"_co(?P<co>{_NUM})(?:\.\w+)*"
    ),
}

#: family -> (parameter names, header lines, credit)
SONORA_FAMILIES: dict[str, tuple[tuple[str, ...], int, str]] = {
    "bobcat": (("teff", "logg", "mh", "co"), 2, "Sonora Bobcat (Marley et al. 2021, ApJ 920, 85)"),
    "cholla": (("teff", "logg", "kzz"), 2, "Sonora Cholla (Karalidi et al. 2021, ApJ 923, 269)"),
    "diamondback": (
        ("teff", "logg", "mh", "fsed", "co"),
        3,
        "Sonora Diamondback (Morley et al. 2024, ApJ)",
    ),
}


def _logg(g_ms2: str) -> float:
    return round(math.log10(100.0 * float(g_ms2)), 2) + 0.0


def parse_sonora_name(family: str, filename: str) -> dict[str, float] | None:
    """Parameters of an official Sonora file name, or None when it does not match.

    Example:
        >>> parse_sonora_name("diamondback", "t1000g316nc_m+0.5_co1.0.spec")
        {'teff': 1000.0, 'logg': 4.5, 'mh': 0.5, 'fsed': 10.0, 'co': 1.0}
        >>> parse_sonora_name("bobcat", "sp_t1000g1000nc_m0.0")
        {'teff': 1000.0, 'logg': 5.0, 'mh': 0.0, 'co': 1.0}
        >>> parse_sonora_name("cholla", "1000K_1780g_logkzz4.spec")
        {'teff': 1000.0, 'logg': 5.25, 'kzz': 4.0}
    """
    rx = _PATTERNS[_family(family)]
    m = rx.fullmatch(filename)
    if m is None:
        return None
    d = m.groupdict()
    out: dict[str, float] = {"teff": float(d["teff"]) + 0.0, "logg": _logg(d["g"])}
    fam = _family(family)
    if fam == "cholla":
        out["kzz"] = float(d["kzz"]) + 0.0
        return out
    out["mh"] = float(d["mh"]) + 0.0
    if fam == "diamondback":
        out["fsed"] = 10.0 if d["nc"] else float(d["fsed"]) + 0.0
    out["co"] = float(d["co"]) + 0.0 if d.get("co") else 1.0
    return out


def _family(family: str) -> str:
    fam = family.lower()
    if fam not in _PATTERNS:
        raise ValueError(f"unknown Sonora family {family!r}; known: {sorted(_PATTERNS)}")
    return fam


def read_sonora(family: str, path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Wavelength (micron, increasing) and F_lambda (erg s^-1 cm^-2 micron^-1) of one file.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "1000K_1780g_logkzz4.spec"
        >>> _ = path.write_text("Cholla model\\nmicron W/m2/m\\n2.0 3000.0\\n1.0 5000.0\\n")
        >>> wave, flux = read_sonora("cholla", path)  # W m^-2 m^-1 -> erg s^-1 cm^-2 um^-1
        >>> wave.tolist(), flux.round(6).tolist()
        ([1.0, 2.0], [5.0, 3.0])
    """
    fam = _family(family)
    n_header = SONORA_FAMILIES[fam][1]
    header, data = read_table(path, skip=n_header)
    if data.shape[1] < 2:
        raise FileFormatError(f"{path}: expected 2 columns (micron, flux), found {data.shape[1]}")
    wave, flux = data[:, 0], data[:, 1]
    order = np.argsort(wave)
    wave, flux = wave[order], flux[order]
    if fam == "bobcat":  # F_nu [erg/cm2/s/Hz] -> F_lambda [erg/cm2/s/um]
        flux = flux * _C_UM / wave**2
    else:  # W m^-2 m^-1 -> erg s^-1 cm^-2 um^-1: 1e7 erg/J / 1e4 cm2/m2 / 1e6 um/m
        flux = flux * 1e-3
    return wave, flux


def load_sonora(
    folder: str | os.PathLike[str],
    family: str,
    *,
    name: str | None = None,
    out: str | os.PathLike[str] | None = None,
) -> ModelGrid:
    """Convert a folder of official Sonora release files of one family into a grid.

    Args:
        folder: the unpacked release folder (files may be gzip-compressed).
        family: "bobcat", "cholla" or "diamondback".
        name: grid name (default ``sonora-<family>``); written to ``data_dir()/grids``.
        out: output file instead of the default.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> for t, f in ((1100, 6000.0), (1000, 5000.0)):
        ...     text = f"Cholla model\\nmicron W/m2/m\\n1.0 {f}\\n2.0 {f / 2}\\n"
        ...     _ = (d / f"{t}K_1780g_logkzz4.spec").write_text(text)
        >>> _ = (d / "notes.txt").write_text("not a Sonora file: ignored")
        >>> grid = load_sonora(d, "cholla", out=d / "cholla.h5")
        >>> grid.name, grid.params.to_dict("records")[0]  # g = 1780 m/s^2 -> logg 5.25
        ('sonora-cholla', {'teff': 1000.0, 'logg': 5.25, 'kzz': 4.0})
        >>> grid.flux(slice(None)).round(6).tolist(), grid.flux_unit
        ([[5.0, 2.5], [6.0, 3.0]], 'erg / (s cm2 um)')
    """
    fam = _family(family)
    src = Path(folder)
    if not src.is_dir():
        raise FileFormatError(f"{src}: not a folder")
    names, _, credit = SONORA_FAMILIES[fam]
    items = []
    for f in sorted(src.iterdir()):
        params = parse_sonora_name(fam, f.name) if f.is_file() else None
        if params is not None:
            items.append((f, params))
    if not items:
        raise FileFormatError(f"{src}: no Sonora {fam} files (e.g. {_EXAMPLES[fam]}) found")
    items.sort(key=lambda it: tuple(it[1][p] for p in names))
    grid_name = name or f"sonora-{fam}"
    reader: Callable[[Path], tuple[np.ndarray, np.ndarray]] = lambda p: read_sonora(fam, p)  # noqa: E731
    path = build_grid(
        items,
        default_out(grid_name, out),
        param_names=names,
        name=grid_name,
        read=reader,
        total=len(items),
        source=f"{src} (official Sonora {fam} release files, {len(items)} spectra)",
        credit=credit,
        flux_unit=FLUX_UNIT,
        notes=(
            "logg = log10(100 g[m/s^2]) rounded to 0.01 dex",
            "flux converted to surface F_lambda in erg/s/cm2/um",
        )
        + (("fsed = 10 are the cloud-free ('nc') models",) if fam == "diamondback" else ()),
        builder=f"sonora-{fam}/1",
        value_labels={"fsed": {10.0: "nc"}} if fam == "diamondback" else None,
    )
    return ModelGrid(path)


_EXAMPLES = {
    "bobcat": "sp_t1000g1000nc_m0.0",
    "cholla": "1000K_1000g_logkzz2.spec",
    "diamondback": "t1000g316f2_m0.0_co1.0.spec",
}
