"""Burrows, Sudarsky & Hubeny (2006) at SpeX prism resolution, from the splat resources.

File names such as ``burrows06_t1000_g4.50_z-0.00_cldf100_SPEX-PRISM.txt.gz`` give ``teff``,
``logg``, ``mh`` and a cloud flag: ``cldf100`` (cloudy) -> ``cloudy = 1``, ``cldnc`` (clear)
-> ``cloudy = 0``. ``cloudy`` is categorical: the cloudy and clear models are two separate
sub-grids, never interpolated between. Neither sub-grid is complete (252 files of the
20 x 3 x 3 x 2 = 360 combinations: the hottest and coolest Teff exist only at some log g and
[M/H]), so each is interpolated with a Delaunay triangulation.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from atmospec.grids.loaders._splat import build_splat_grid, number

__all__ = ["PARAM_NAMES", "BUILDER", "parse_name", "build"]

PARAM_NAMES = ("teff", "logg", "mh", "cloudy")
BUILDER = "splat-burrows06/3"
_PATTERN = re.compile(
    r"burrows06_t(?P<teff>\d+)_g(?P<logg>[\d.]+)_z(?P<mh>[-+]?[\d.]+)_cld(?P<cld>f100|nc)"
    r"_SPEX-PRISM\.txt(\.gz)?"
)


def parse_name(filename: str) -> dict[str, float]:
    """Parameters of a Burrows 2006 file name.

    Example:
        >>> parse_name("burrows06_t1000_g4.50_z-0.00_cldnc_SPEX-PRISM.txt.gz")
        {'teff': 1000.0, 'logg': 4.5, 'mh': 0.0, 'cloudy': 0.0}
    """
    m = _PATTERN.fullmatch(filename)
    if m is None:
        raise ValueError(f"{filename}: not a Burrows 2006 SpeX-prism file name")
    return {
        "teff": number(m["teff"]),
        "logg": number(m["logg"]),
        "mh": number(m["mh"]),
        "cloudy": 1.0 if m["cld"] == "f100" else 0.0,
    }


def build(out: str | os.PathLike[str], folder: str | os.PathLike[str] | None = None) -> Path:
    """Convert the 252 Burrows 2006 files (default: the fetched splat data) to a grid file.

    Example:
        >>> import tempfile, pathlib
        >>> from atmospec.grids import ModelGrid
        >>> d = pathlib.Path(tempfile.mkdtemp())  # two tiny files named like the real ones
        >>> for cld, f in (("nc", 1.0), ("f100", 2.0)):
        ...     name = f"burrows06_t1000_g4.50_z-0.00_cld{cld}_SPEX-PRISM.txt"
        ...     _ = (d / name).write_text(f"1.0 {f}\\n2.0 {f}\\n")
        >>> grid = ModelGrid(build(d / "burrows06.h5", folder=d))
        >>> grid.categorical, grid.params["cloudy"].tolist()
        (('cloudy',), [0.0, 1.0])
        >>> point = {"teff": 1000.0, "logg": 4.5, "mh": 0.0, "cloudy": 1.0}
        >>> grid.interpolate(point).round(3).tolist()  # the cloudy sub-grid only
        [2.0, 2.0]
    """
    return build_splat_grid(
        "burrows06",
        out,
        parse_name,
        param_names=PARAM_NAMES,
        pattern=_PATTERN,
        folder=folder,
        categorical=("cloudy",),
        builder=BUILDER,
        value_labels={"cloudy": {0.0: "cldnc", 1.0: "cldf100"}},
        notes=(
            "cloudy = 1 are the 'cldf100' (cloudy) models, cloudy = 0 the 'cldnc' (clear) "
            "ones; categorical, never interpolated between",
            "sparse grid: each cloud sub-grid is interpolated Delaunay-linearly",
        ),
    )
