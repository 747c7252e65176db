"""Finding grids by name: built-in grids converted on first use, user grids in the cache."""

from __future__ import annotations

import importlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import h5py

from atmospec.errors import DataNotFoundError
from atmospec.grids.grid import ModelGrid
from atmospec.grids.store import META_ATTR

__all__ = ["BUILTIN_GRIDS", "grids_dir", "grid_path", "load_grid", "list_grids", "resolution_of"]

logger = logging.getLogger(__name__)

#: Grids converted from the embedded splat data on first use: name -> loader module.
BUILTIN_GRIDS: dict[str, str] = {
    "dback24": "atmospec.grids.loaders.dback24",
    "btsettl08": "atmospec.grids.loaders.btsettl08",
    "burrows06": "atmospec.grids.loaders.burrows06",
}


def resolution_of(name: str | None) -> float | None:
    """The resolving power of the spectra in grid ``name``: a built-in grid's are SpeX prism
    spectra (:data:`atmospec.resolution.SPEX_PRISM_R`); any other grid's is unknown (None),
    and nothing is smoothed to it.

    Example:
        >>> resolution_of("dback24"), resolution_of("my_grid")
        (120.0, None)
    """
    from atmospec.resolution import SPEX_PRISM_R

    return SPEX_PRISM_R if name in BUILTIN_GRIDS else None


def grids_dir() -> Path:
    """Folder of converted grids: ``data_dir()/grids``.

    Example:
        >>> from atmospec.data import data_dir
        >>> grids_dir().name, grids_dir().parent == data_dir()
        ('grids', True)
    """
    from atmospec.data import data_dir

    return data_dir() / "grids"


def grid_path(name: str) -> Path:
    """Where the grid called ``name`` is (or will be) stored.

    Example:
        >>> grid_path("mine").name, grid_path("mine").parent == grids_dir()
        ('mine.h5', True)
    """
    return grids_dir() / f"{name}.h5"


def _builder_of(path: Path) -> str | None:
    try:
        with h5py.File(path, "r") as h5:
            return str(json.loads(h5.attrs[META_ATTR]).get("builder", ""))
    except (OSError, KeyError, ValueError):
        return None


def load_grid(name: str | os.PathLike[str], *, rebuild: bool = False) -> ModelGrid:
    """Open a model grid by name (``"dback24"``, ``"btsettl08"``, ``"burrows06"``) or path.

    A built-in grid is converted from the fetched splat files into
    ``data_dir()/grids/<name>.h5`` on first use (a few seconds), atomically; later calls
    open that file lazily. A cached file written by an older loader (or without its sha256
    sidecar) is rebuilt; one that fails its sha256 raises ChecksumError. Any other
    name is looked up as ``data_dir()/grids/<name>.h5`` (where the loaders for user files
    write by default), and an existing path is opened directly.

    Args:
        name: grid name or path of a grid ``.h5`` file.
        rebuild: convert again even if a cached file exists.

    Raises:
        DataNotFoundError: unknown name, or the splat data is not fetched (the message names
            the command to run).

    Example:
        >>> grid = load_grid("dback24")  # doctest: +SKIP
        >>> len(grid), grid.param_names  # doctest: +SKIP
        (1440, ('teff', 'logg', 'mh', 'fsed'))
    """
    key = str(name)
    if key in BUILTIN_GRIDS:
        module = importlib.import_module(BUILTIN_GRIDS[key])
        path = grid_path(key)
        from atmospec._fileio import checksum_path, verify_checksum

        if (
            rebuild
            or not path.is_file()
            or not checksum_path(path).is_file()  # converted before checksums were written
            or _builder_of(path) != module.BUILDER
        ):
            logger.info("converting the %s grid from the fetched splat files into %s", key, path)
            module.build(path)
        verify_checksum(  # remembered: ModelGrid does not hash the file again
            path,
            fix=f"this is atmospec's cached copy of {key}: run `atmospec grids --rebuild` (or "
            "delete the file) to convert it again from the fetched data",
        )
        return ModelGrid(path)
    candidate = Path(key).expanduser()
    if candidate.is_file():
        return ModelGrid(candidate)
    if grid_path(key).is_file():
        return ModelGrid(grid_path(key))
    known = sorted(set(BUILTIN_GRIDS) | {p.stem for p in _user_grids()})
    raise DataNotFoundError(
        f"no grid called {key!r}: known grids are {known}; give a path to a grid .h5 file or "
        "convert your files first (see atmospec.grids.loaders)"
    )


def _user_grids() -> list[Path]:
    folder = grids_dir()
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.h5") if p.stem not in BUILTIN_GRIDS)


def list_grids(*, include_user: bool = True) -> list[dict[str, Any]]:
    """One summary per grid (see :meth:`ModelGrid.summary`): built-in ones first.

    Built-in grids are converted if needed; when the splat data is absent they are listed
    with ``available: False`` and the command to run.

    Example:
        >>> import os, tempfile
        >>> old = os.environ.get("ATMOSPEC_DATA_DIR")
        >>> os.environ["ATMOSPEC_DATA_DIR"] = tempfile.mkdtemp()  # empty cache: no splat data
        >>> with ModelGrid.create(grid_path("mine"), [1.0, 2.0], ("teff",), name="mine") as w:
        ...     w.add({"teff": 1000.0}, [1.0, 2.0])
        >>> [(g["name"], g["available"]) for g in list_grids()]
        [('dback24', False), ('btsettl08', False), ('burrows06', False), ('mine', True)]
        >>> list_grids()[0]["error"].rsplit(". ", 1)[1]
        'Run `atmospec data fetch splat` (or `atmospec data fetch` for all) first.'
        >>> del os.environ["ATMOSPEC_DATA_DIR"]
        >>> if old is not None:
        ...     os.environ["ATMOSPEC_DATA_DIR"] = old
    """
    out: list[dict[str, Any]] = []
    for name in BUILTIN_GRIDS:
        try:
            grid = load_grid(name)
        except DataNotFoundError as err:
            out.append({"name": name, "available": False, "error": str(err)})
            continue
        out.append({"available": True, **grid.summary()})
        grid.close()
    if include_user:
        for path in _user_grids():
            try:
                grid = ModelGrid(path)
            except Exception as err:  # a broken user file must not hide the others
                out.append({"name": path.stem, "available": False, "error": str(err)})
                continue
            out.append({"available": True, **grid.summary()})
    return out
