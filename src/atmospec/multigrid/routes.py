"""The grids of a multi-grid prediction, how each answers, and when the primary NPE may serve."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

import numpy as np

__all__ = [
    "GridRoute",
    "DEFAULT_ROUTES",
    "NPE_MODEL_ERROR_RATIO",
    "model_error_ratio",
    "parse_routes",
]


@dataclass(frozen=True)
class GridRoute:
    """One grid of a multi-grid prediction and how it answers.

    ``model`` is a learned model for that grid (``"default"``: the default NPE/CNN chain; a
    registry name or a model folder), or None: chi-square over the grid's nodes with its
    model-error covariance. ``grid`` is a grid name or folder (:func:`atmospec.grids.load_grid`).
    ``discrepancy`` is a folder holding the grid's model of mismatch (written by
    ``atmospec discrepancy fit --grid GRID --out FOLDER``); None: the shipped one of a
    built-in grid, if any.

    Example:
        >>> GridRoute("btsettl08").describe()
        'btsettl08 (chi-square over the grid nodes)'
        >>> GridRoute("runs/mine.h5", discrepancy="runs/mine-mismatch").describe()
        'runs/mine.h5 (chi-square over the grid nodes, model of mismatch runs/mine-mismatch)'
    """

    grid: str
    model: str | None = None
    discrepancy: str | None = None

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
        if self.discrepancy is not None:
            how += f", model of mismatch {self.discrepancy}"
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

    ``GRID=FOLDER`` where the folder holds a model of mismatch (``discrepancy.json``, written
    by ``atmospec discrepancy fit``) makes the grid answer by chi-square over its nodes under
    that model; any other ``GRID=MODEL`` names a learned model.

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
        how = model.strip() or None
        if how is not None and (Path(how).expanduser() / "discrepancy.json").is_file():
            out.append(GridRoute(grid.strip(), None, discrepancy=how))
        else:
            out.append(GridRoute(grid.strip(), how))
    if not out:
        raise ValueError(f"no grid in {text!r}")
    return tuple(out)


NPE_MODEL_ERROR_RATIO = 0.3
"""The NPE (trained with photon noise only) serves a spectrum only when the primary grid's
model-error standard deviation is at most this fraction of the noise (median over pixels):
its variance then adds <= 9 % to the noise variance, its intervals <= 4.5 % too narrow."""


def model_error_ratio(disc: Any, wavelength: Any, flux: Any, sigma: Any) -> float:
    """Median over pixels of the model-error sd over the noise sd, at the Teff (of the
    discrepancy model's bins) where the model error is largest (conservative: the Teff is not
    known before the prediction).

    Example:
        >>> class Toy:
        ...     teff = np.array([1000.0])
        ...     def fractional(self, t, w):
        ...         return np.full(np.size(w), 0.05**2), np.zeros((np.size(w), 0))
        >>> model_error_ratio(Toy(), np.ones(3), np.ones(3), np.full(3, 0.1))
        0.5
    """
    f = np.abs(np.asarray(flux, dtype=np.float64))
    s = np.asarray(sigma, dtype=np.float64)
    good = np.isfinite(s) & (s > 0) & np.isfinite(f)
    worst = 0.0
    for t in np.atleast_1d(getattr(disc, "teff", [1500.0])):
        var, fac = disc.fractional(float(t), wavelength)
        sd = np.sqrt(var + np.sum(fac**2, axis=1)) * f
        worst = max(worst, float(np.median(sd[good] / s[good])))
    return round(worst, 6)
