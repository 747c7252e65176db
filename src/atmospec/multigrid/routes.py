"""The grids of a multi-grid prediction and how each answers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePath

__all__ = ["GridRoute", "DEFAULT_ROUTES", "parse_routes"]


@dataclass(frozen=True)
class GridRoute:
    """One grid of a multi-grid prediction and how it answers.

    ``model`` is a learned model for that grid (``"default"``: the default NPE/CNN chain; a
    registry name or a model folder), or None: chi-square over the grid's nodes with its
    model-error covariance. ``grid`` is a grid name or folder (:func:`atmospec.grids.load_grid`).

    Example:
        >>> GridRoute("btsettl08").describe()
        'btsettl08 (chi-square over the grid nodes)'
    """

    grid: str
    model: str | None = None

    @property
    def label(self) -> str:
        """The grid's name in table columns: a registry name as it is, a grid file or folder
        by its stem, any character other than a letter, digit, ``_``, ``+`` or ``-`` made
        ``_`` (a column named after a path would carry slashes into every output format).

        Example:
            >>> GridRoute("btsettl08").label, GridRoute("/data/grids/my grid.h5").label
            ('btsettl08', 'my_grid')
        """
        text = self.grid
        if "/" in text or "\\" in text or text.lower().endswith((".h5", ".hdf5")):
            text = PurePath(text.replace("\\", "/").rstrip("/")).stem
        return re.sub(r"[^A-Za-z0-9_+-]", "_", text) or "grid"

    def describe(self) -> str:
        how = "chi-square over the grid nodes" if self.model is None else f"model {self.model}"
        return f"{self.grid} ({how})"


DEFAULT_ROUTES: tuple[GridRoute, ...] = (
    GridRoute("dback24", "default"),
    GridRoute("burrows06", "burrows06-spex"),
    GridRoute("btsettl08", None),
)
"""What ``atmospec predict --model default`` asks: Sonora Diamondback (the default NPE/CNN,
900-2400 K), Burrows et al. 2006 (its CNN, 700-2000 K) and BT-Settl 2008 (chi-square,
500-3500 K). The first grid is the primary one (its flags name it)."""


def parse_routes(text: str | None) -> tuple[GridRoute, ...]:
    """Routes from ``"dback24=default,burrows06=burrows06-spex,btsettl08"`` (None: defaults).

    Example:
        >>> [r.describe() for r in parse_routes("dback24=default,btsettl08")]
        ['dback24 (model default)', 'btsettl08 (chi-square over the grid nodes)']
    """
    if text is None:
        return DEFAULT_ROUTES
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        grid, _, model = part.partition("=")
        out.append(GridRoute(grid.strip(), model.strip() or None))
    if not out:
        raise ValueError(f"no grid in {text!r}")
    return tuple(out)
