"""The grid of a recipe: a relative path read beside the recipe file, and a recorded grid checked."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from atmospec.errors import ChecksumError

if TYPE_CHECKING:
    from atmospec.grids import ModelGrid
    from atmospec.grids.identity import GridIdentity

__all__ = ["grid_beside", "check_recorded_grid"]


def grid_beside(name: str, folder: str | os.PathLike[str]) -> str:
    """The grid a recipe in ``folder`` means by ``[grid] name``.

    A built-in grid name (``"dback24"``) and an absolute (or ``~``) path stay as they are; a relative
    path naming a file in the recipe's folder becomes that file's absolute path (so
    ``atmospec train --config sub/recipe.toml`` finds ``sub/mygrid.h5`` from any working
    folder). Any other name is left to :func:`atmospec.grids.load_grid` (a path from the
    working folder, or a grid converted into the cache).

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp()); _ = (d / "mygrid.h5").write_bytes(b"")
        >>> grid_beside("mygrid.h5", d) == str(d.resolve() / "mygrid.h5")
        True
        >>> grid_beside("dback24", d), grid_beside("mine", d)  # no such file beside the recipe
        ('dback24', 'mine')
    """
    from atmospec.grids import BUILTIN_GRIDS

    if name in BUILTIN_GRIDS or name.startswith("~") or Path(name).is_absolute():
        return name
    beside = Path(folder) / name
    return str(beside.resolve()) if beside.is_file() else name


def check_recorded_grid(grid: ModelGrid, recorded_sha256: str, model: str) -> GridIdentity:
    """The identity of ``grid`` (:func:`atmospec.grids.identity.grid_identity`); ChecksumError
    naming the file and both checksums when a model records another grid (``recorded_sha256``,
    the content sha256 written when ``model`` was trained; ``""``: nothing recorded, not
    checked).

    Example:
        >>> import tempfile
        >>> import numpy as np
        >>> from atmospec.grids import ModelGrid
        >>> d = Path(tempfile.mkdtemp()); wave = np.linspace(1.0, 2.0, 5)
        >>> with ModelGrid.create(d / "g.h5", wave, ("teff",), name="toy") as w:
        ...     w.add({"teff": 1000.0}, wave)
        >>> check_recorded_grid(ModelGrid(d / "g.h5"), "", "demo").name
        'toy'
        >>> check_recorded_grid(ModelGrid(d / "g.h5"), "0" * 64, "demo")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        atmospec.errors.ChecksumError: ...g.h5: grid 'toy' (content sha256 ...) is not the grid model 'demo' was trained on (content sha256 0000...); ...
    """
    from atmospec.grids.identity import grid_identity

    found = grid_identity(grid)
    if recorded_sha256 and found.sha256 != recorded_sha256:
        raise ChecksumError(
            f"{found.path}: grid {found.name!r} (content sha256 {found.sha256}) is not the grid "
            f"model {model!r} was trained on (content sha256 {recorded_sha256}); the file "
            "changed after training, so the test split rebuilt from it would not be the one "
            "the model was scored on: put the original grid back at that path, or retrain"
        )
    return found
