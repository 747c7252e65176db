"""Whether a fit's answer lies at the edge of its grid (a limit, not a value), and the
warnings a fit carries.

A grid fitted to an object beyond its range answers with its outermost nodes, and the
interval (the nodes' cells, or a posterior against the prior's wall) is then as narrow as
any other: HD 3651B (785 K from its luminosity) fitted with Diamondback, which starts at
900 K, gives 925 +17/-18 K. Such an answer is read as a limit, and the fit says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from atmospec.grids.parameters import END_MEMBERS

if TYPE_CHECKING:
    from atmospec.fitting.result import FitResult
    from atmospec.grids import ModelGrid

__all__ = ["edge_cells", "edge_cells_hit", "edge_cell_warnings", "fit_warnings"]

EDGE_MASS = 0.5
"""Warn when more than this share of the posterior lies in a grid's edge cell."""


def edge_cells(nodes: ArrayLike) -> tuple[tuple[float, float], tuple[float, float]]:
    """The lower and upper edge cells of a grid axis: from each end node half-way to its
    neighbour (the part of parameter space that end node stands for).

    Example:
        >>> edge_cells([900.0, 1000.0, 1100.0])
        ((900.0, 950.0), (1050.0, 1100.0))
    """
    v = np.unique(np.asarray(nodes, dtype=np.float64))
    if v.size < 2:
        raise ValueError("an axis needs at least two nodes to have edge cells")
    return (float(v[0]), float((v[0] + v[1]) / 2)), (float((v[-2] + v[-1]) / 2), float(v[-1]))


def edge_cells_hit(
    samples: Mapping[str, ArrayLike],
    axes: Mapping[str, ArrayLike],
    params: Sequence[str],
) -> list[tuple[str, str, float, float, float]]:
    """The parameters with more than :data:`EDGE_MASS` of their samples in an edge cell of
    the grid (:func:`edge_cells`): ``(param, side, share, cell_from, cell_to)``, except at an
    edge that is a physical end-member (:data:`~atmospec.grids.parameters.END_MEMBERS`:
    Diamondback's cloud-free fsed = 10 is an answer for a T dwarf, not a limit).

    Example:
        >>> s = {"teff": np.linspace(900.0, 940.0, 50), "fsed": np.full(50, 10.0)}
        >>> axes = {"teff": [900.0, 1000.0, 1100.0], "fsed": [8.0, 10.0]}
        >>> edge_cells_hit(s, axes, ["teff", "fsed"])
        [('teff', 'lower', 1.0, 900.0, 950.0)]
    """
    out = []
    for p in params:
        nodes = np.unique(np.asarray(axes[p], dtype=np.float64))
        if p not in samples or nodes.size < 2:
            continue
        s = np.asarray(samples[p], dtype=np.float64)
        s = s[np.isfinite(s)]
        if not s.size:
            continue
        (lo, lo_cell), (hi_cell, hi) = edge_cells(nodes)
        for side, edge, inside, cell in (
            ("lower", lo, s <= lo_cell, (lo, lo_cell)),
            ("upper", hi, s >= hi_cell, (hi_cell, hi)),
        ):
            share = float(np.mean(inside))
            if share > EDGE_MASS and END_MEMBERS.get(p) != edge:
                out.append((p, side, share, *cell))
    return out


def edge_cell_warnings(
    samples: Mapping[str, ArrayLike],
    axes: Mapping[str, ArrayLike],
    params: Sequence[str],
    grid: str,
) -> tuple[list[str], list[str]]:
    """Warnings and notes for a fit's parameters piled in an edge cell of its grid
    (:func:`edge_cells_hit`).

    Teff at an edge is a warning: the grids' ranges are set in Teff, and an answer in the end
    cell is what a grid gives for an object beyond it (HD 3651B, 785 K, with Diamondback from
    900 K). Other parameters at an edge are notes: the grids put most real field dwarfs at an
    edge of [M/H] or log g (with Diamondback 45 and 43 of 60 field L0-T4 dwarfs at [M/H] +0.5
    and log g 5.5; none at a Teff edge), where a warning would tell a user nothing, but the
    value is still a limit.

    Example:
        >>> s = {"teff": np.linspace(900.0, 940.0, 50), "mh": np.full(50, 0.5)}
        >>> axes = {"teff": [900.0, 1000.0, 1100.0], "mh": [-0.5, 0.0, 0.5]}
        >>> warn, notes = edge_cell_warnings(s, axes, ["teff", "mh"], "dback24")
        >>> warn[0][:62]
        'teff: 100% of the posterior lies in the lower edge cell of the'
        >>> notes[0][:55]
        'mh: 100% of the posterior lies in the upper edge cell ('
    """
    warnings, notes = [], []
    for p, side, share, a, b in edge_cells_hit(samples, axes, params):
        edge = a if side == "lower" else b
        said = f"{p}: {share:.0%} of the posterior lies in the {side} edge cell"
        if p == "teff":
            warnings.append(
                f"{said} of the {grid} grid ({a:g} to {b:g} K, its last node {edge:g} K): "
                "the object may lie beyond the grid's range, and the interval is then a "
                "limit, not a measurement; fit a grid that reaches past it (atmospec grids "
                "lists them; atmospec predict answers with every built-in grid)"
            )
        else:
            notes.append(
                f"{said} ({a:g} to {b:g}, the {grid} grid's last node {edge:g}): read it as "
                "a limit, not a value"
            )
    return warnings, notes


def fit_warnings(result: FitResult, grid: ModelGrid) -> None:
    """What makes a fit's answer doubtful, added to its ``warnings`` (and ``notes``):
    :func:`edge_cell_warnings` from its posterior samples where it has them, else from its
    best node (a photon-noise chi-square fit: a best node at the end of an axis); and a
    flagged misfit (:func:`atmospec.discrepancy.route.misfit_sentence`).

    Example:
        >>> from types import SimpleNamespace as NS
        >>> misfit = {"misfit_score": 4.2, "misfit_threshold": 3.1, "misfit_flagged": True,
        ...           "misfit_false_alarm_rate": 0.05}
        >>> res = NS(samples=None, best={"teff": 900.0, "logg": 5.0}, fitted=["teff", "logg"],
        ...          warnings=[], notes=[], discrepancy=misfit)
        >>> fit_warnings(res, NS(name="toy", axes={"teff": [900.0, 1000.0], "logg": [4.5, 5.5]}))
        >>> [w[:40] for w in res.warnings]
        ['teff: 100% of the posterior lies in the ', 'misfit beyond the model-discrepancy allo']
    """
    if result.samples is not None:
        samples = {p: result.samples[p].to_numpy() for p in result.fitted if p in result.samples}
    else:
        samples = {p: np.array([v]) for p, v in result.best.items() if p in result.fitted}
    warnings, notes = edge_cell_warnings(samples, grid.axes, result.fitted, grid.name)
    result.warnings.extend(warnings)
    result.notes.extend(notes)
    # and residuals beyond the grid's model of mismatch (a misfit flagged)
    from atmospec.discrepancy.route import misfit_sentence

    misfit = misfit_sentence(result.discrepancy, grid.name)
    if misfit:
        result.warnings.append(misfit)
