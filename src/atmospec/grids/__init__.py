"""Model-spectrum grids: out-of-core HDF5 storage, loaders, interpolation and checks."""

from __future__ import annotations

from atmospec.errors import OutOfGridError
from atmospec.grids.grid import ModelGrid
from atmospec.grids.identity import GridIdentity, grid_identity
from atmospec.grids.parameters import PARAMETERS, describe
from atmospec.grids.registry import BUILTIN_GRIDS, grid_path, list_grids, load_grid, resolution_of
from atmospec.grids.store import GridWriter

__all__ = [
    "PARAMETERS",
    "describe",
    "ModelGrid",
    "GridWriter",
    "GridIdentity",
    "grid_identity",
    "load_grid",
    "list_grids",
    "grid_path",
    "BUILTIN_GRIDS",
    "resolution_of",
    "OutOfGridError",
]
