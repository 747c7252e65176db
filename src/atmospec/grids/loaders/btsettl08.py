"""BT-Settl 2008 (Allard et al. 2012) at SpeX prism resolution, from the splat resources.

File names such as ``btsettl08_t1000_g4.00_z-0.50_en0.20_SPEX-PRISM.txt.gz`` give ``teff``,
``logg``, ``mh`` and the alpha enhancement ``en`` -> ``alpha``. The set is sparse (485 of
the 31 x 6 x 7 x 3 combinations): alpha is tied to [M/H] (0 for [M/H] >= 0, +0.2 at -0.5,
+0.4 at -1.0 and below), and the metal-poor models exist only at high Teff. atmospec
therefore interpolates BT-Settl over (teff, logg, mh) with a Delaunay triangulation and
takes alpha from [M/H] (see :class:`atmospec.grids.ModelGrid`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from atmospec.grids.loaders._splat import build_splat_grid, number

__all__ = ["PARAM_NAMES", "BUILDER", "parse_name", "build"]

PARAM_NAMES = ("teff", "logg", "mh", "alpha")
BUILDER = "splat-btsettl08/1"
_PATTERN = re.compile(
    r"btsettl08_t(?P<teff>\d+)_g(?P<logg>[\d.]+)_z(?P<mh>[-+]?[\d.]+)_en(?P<alpha>[-+]?[\d.]+)"
    r"_SPEX-PRISM\.txt(\.gz)?"
)


def parse_name(filename: str) -> dict[str, float]:
    """Parameters of a BT-Settl 2008 file name.

    Example:
        >>> parse_name("btsettl08_t1000_g4.00_z-0.50_en0.20_SPEX-PRISM.txt.gz")
        {'teff': 1000.0, 'logg': 4.0, 'mh': -0.5, 'alpha': 0.2}
    """
    m = _PATTERN.fullmatch(filename)
    if m is None:
        raise ValueError(f"{filename}: not a BT-Settl 2008 SpeX-prism file name")
    return {k: number(m[k]) for k in PARAM_NAMES}


def build(out: str | os.PathLike[str], folder: str | os.PathLike[str] | None = None) -> Path:
    """Convert the 485 BT-Settl 2008 files (default: the fetched splat data) to a grid file.

    Example:
        >>> import tempfile, pathlib
        >>> from atmospec.grids import ModelGrid
        >>> d = pathlib.Path(tempfile.mkdtemp())  # three tiny files named like the real ones
        >>> nodes = [("-0.50", "0.20", 1.0), ("-0.00", "0.00", 4.0), ("+0.50", "0.00", 9.0)]
        >>> for z, en, f in nodes:  # alpha ("en") is tied to [M/H] ("z")
        ...     name = f"btsettl08_t1000_g4.00_z{z}_en{en}_SPEX-PRISM.txt"
        ...     _ = (d / name).write_text(f"1.0 {f}\\n2.0 {f}\\n")
        >>> grid = ModelGrid(build(d / "btsettl08.h5", folder=d))
        >>> grid.params["alpha"].tolist()
        [0.2, 0.0, 0.0]
        >>> grid.interpolate({"teff": 1000.0, "logg": 4.0, "mh": -0.25}).round(3).tolist()
        [2.0, 2.0]
    """
    return build_splat_grid(
        "btsettl08",
        out,
        parse_name,
        param_names=PARAM_NAMES,
        pattern=_PATTERN,
        folder=folder,
        builder=BUILDER,
        notes=(
            "sparse grid: alpha ('en' in the file names) is tied to mh and metal-poor models "
            "exist only at high Teff; interpolation is Delaunay-linear over (teff, logg, mh)",
        ),
    )
