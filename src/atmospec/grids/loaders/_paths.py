"""Where loaders write by default and how they report the result."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["default_out"]


def default_out(name: str, out: str | os.PathLike[str] | None) -> Path:
    """``out`` if given, else ``data_dir()/grids/<name>.h5`` (so ``load_grid(name)`` finds it).

    Example:
        >>> from atmospec.grids.registry import grid_path
        >>> default_out("mine", "elsewhere/my.h5").as_posix()
        'elsewhere/my.h5'
        >>> default_out("mine", None) == grid_path("mine")
        True
    """
    if out is not None:
        return Path(out)
    from atmospec.grids.registry import grid_path

    return grid_path(name)
