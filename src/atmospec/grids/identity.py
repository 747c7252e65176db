"""Grid identity: a grid's name, file and a sha256 of its content (what a model was trained on)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from atmospec.grids.grid import ModelGrid

__all__ = ["GridIdentity", "grid_identity"]

#: Digests already computed in this process, per grid file and its (inode, size, mtime).
_DIGESTS: dict[tuple[Path, int, int, int], str] = {}


@dataclass(frozen=True)
class GridIdentity:
    """Which grid a model was trained on.

    Attributes:
        name: the grid's own name (its metadata, e.g. ``"dback24"``), whatever the file is called.
        path: the file it was read from.
        sha256: sha256 of the grid's content: parameter names and node values, wavelengths,
            flux unit and every flux value (as float64). Unlike the sha256 of the file (its
            ``.sha256`` sidecar), it stays the same when the same grid is converted again
            (the file records when it was written), and changes when any spectrum does.
    """

    name: str
    path: str
    sha256: str


def grid_identity(grid: ModelGrid) -> GridIdentity:
    """The identity of an open grid (its content is read once per file and process).

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp()); wave = np.linspace(1.0, 2.0, 5)
        >>> for folder in ("a", "b"):  # the same grid written twice, at different times
        ...     with ModelGrid.create(d / folder / "g.h5", wave, ("teff",), name="toy") as w:
        ...         w.add({"teff": 1000.0}, wave)
        >>> a, b = (grid_identity(ModelGrid(d / f / "g.h5")) for f in ("a", "b"))
        >>> a.name, a.sha256 == b.sha256, len(a.sha256)
        ('toy', True, 64)
    """
    path = Path(grid.path).resolve()
    st = path.stat()
    key = (path, st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        h = hashlib.sha256()
        head = {"param_names": list(grid.param_names), "flux_unit": grid.flux_unit}
        h.update(json.dumps(head, sort_keys=True).encode("utf-8"))
        h.update(np.ascontiguousarray(grid.params.to_numpy(), dtype="<f8").tobytes())
        h.update(np.ascontiguousarray(grid.wavelength, dtype="<f8").tobytes())
        for _, flux in grid.iter_batches(1024):
            h.update(np.ascontiguousarray(flux, dtype="<f8").tobytes())
        _DIGESTS[key] = h.hexdigest()
    return GridIdentity(grid.name, str(grid.path), _DIGESTS[key])
