"""Sonora Diamondback (Morley et al. 2024) at SpeX prism resolution, from the splat resources.

File names carry the parameters, e.g. ``dback24_t1000_g3.49_z-0.00_f1.00_SPEX-PRISM.txt.gz``:
``teff`` 1000 K, ``logg`` 3.49 -> **3.5** (the lowest gravity is written 3.49 in the files;
log g is rounded to 0.1 dex, giving the nominal 3.5/4.0/4.5/5.0/5.5 steps), ``mh`` 0.0,
``fsed`` 1. ``f10.00`` marks the cloud-free ("nc") models; they are kept numerically as
``fsed = 10`` (the convention of the Sonora release), so interpolating between fsed 8 and
the cloud-free models is possible but has no physical meaning: treat fsed > 8 with care.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from atmospec.grids.loaders._splat import build_splat_grid, number

__all__ = ["PARAM_NAMES", "BUILDER", "parse_name", "build"]

PARAM_NAMES = ("teff", "logg", "mh", "fsed")
BUILDER = "splat-dback24/2"
_PATTERN = re.compile(
    r"dback24_t(?P<teff>\d+)_g(?P<logg>[\d.]+)_z(?P<mh>[-+]?[\d.]+)_f(?P<fsed>[\d.]+)"
    r"_SPEX-PRISM\.txt(\.gz)?"
)


def parse_name(filename: str) -> dict[str, float]:
    """Parameters of a Diamondback file name.

    Example:
        >>> parse_name("dback24_t1000_g3.49_z-0.00_f10.00_SPEX-PRISM.txt.gz")
        {'teff': 1000.0, 'logg': 3.5, 'mh': 0.0, 'fsed': 10.0}
    """
    m = _PATTERN.fullmatch(filename)
    if m is None:
        raise ValueError(f"{filename}: not a Diamondback SpeX-prism file name")
    return {
        "teff": number(m["teff"]),
        "logg": round(number(m["logg"]), 1),  # 3.49 in the files means the 3.5 dex node
        "mh": number(m["mh"]),
        "fsed": number(m["fsed"]),  # 10 = cloud-free ("nc")
    }


def build(out: str | os.PathLike[str], folder: str | os.PathLike[str] | None = None) -> Path:
    """Convert the 1,440 Diamondback files (default: the fetched splat data) to a grid file.

    Example:
        >>> import tempfile, pathlib
        >>> from atmospec.grids import ModelGrid
        >>> d = pathlib.Path(tempfile.mkdtemp())  # two tiny files named like the real ones
        >>> for t in (1100, 1000):
        ...     name = f"dback24_t{t}_g3.49_z-0.00_f10.00_SPEX-PRISM.txt"
        ...     _ = (d / name).write_text(f"wave flux\\n1.0 {t}\\n2.0 {t / 2}\\n")
        >>> grid = ModelGrid(build(d / "dback24.h5", folder=d))
        >>> grid.params.to_dict("records")[0]  # logg 3.49 -> the 3.5 dex node
        {'teff': 1000.0, 'logg': 3.5, 'mh': 0.0, 'fsed': 10.0}
        >>> len(grid), grid.flux(1).tolist()
        (2, [1100.0, 550.0])
    """
    return build_splat_grid(
        "dback24",
        out,
        parse_name,
        param_names=PARAM_NAMES,
        pattern=_PATTERN,
        folder=folder,
        builder=BUILDER,
        value_labels={"fsed": {10.0: "nc"}},
        notes=(
            "logg parsed from the file names and rounded to 0.1 dex: the files write the "
            "3.5 dex node as g3.49",
            "fsed = 10 are the cloud-free ('nc', f10.00 in the file names) models",
        ),
    )
