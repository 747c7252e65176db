"""Checks that a posterior covers a spectrum: parameters piled at the grid's edge, and misfit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

if TYPE_CHECKING:
    from atmospec.spectrum import Spectrum

__all__ = ["edge_warnings", "misfit_warning", "grid_of"]

EDGE_FRACTION = 0.02  # a draw within 2 % of the prior range of a bound counts as "at the edge"
EDGE_MASS = 0.5  # warn when more than half of the draws are at one edge


def edge_warnings(
    draws: ArrayLike,
    param_names: Sequence[str],
    bounds: Mapping[str, tuple[float, float]],
    grid: str | None = None,
) -> list[str]:
    """Warnings for parameters whose posterior piles up at a bound of the grid.

    A posterior with most of its mass at the edge of the prior box says the object probably
    lies outside the grid's parameters (an 800 K T dwarf fitted with a grid starting at
    900 K): its width then means nothing. An edge that is a physical end-member
    (:data:`~atmospec.grids.parameters.END_MEMBERS`: the cloud-free fsed = 10) is not warned of.

    Example:
        >>> d = np.column_stack([np.full(100, 900.0), np.linspace(4, 5, 100)])
        >>> edge_warnings(d, ["teff", "logg"], {"teff": (900, 2400), "logg": (3.5, 5.5)})[0][:35]
        'teff: 100% of the posterior lies at'
    """
    from atmospec.grids.parameters import END_MEMBERS

    d = np.asarray(draws, dtype=np.float64)
    out = []
    name = f"the {grid} grid" if grid else "the grid"
    for j, p in enumerate(param_names):
        lo, hi = bounds[p]
        tol = EDGE_FRACTION * (hi - lo)
        for side, value, at in (
            ("lower", lo, d[:, j] <= lo + tol),
            ("upper", hi, d[:, j] >= hi - tol),
        ):
            frac = float(np.mean(at))
            # an edge that is a physical end-member (cloud-free fsed = 10) is an answer
            if frac > EDGE_MASS and END_MEMBERS.get(p) != value:
                out.append(
                    f"{p}: {frac:.0%} of the posterior lies at the {side} edge of {name} "
                    f"({p} = {value:g}); the object is probably outside the grid's parameters "
                    "and the interval is not meaningful: use a grid that covers it"
                )
    return out


def grid_of(meta: Mapping[str, Any]) -> str | None:
    """The grid name recorded in a model's metadata (searched recursively), or None.

    Example:
        >>> grid_of({"seed": 0, "recipe": {"grid": "dback24"}}), grid_of({"seed": 0})
        ('dback24', None)
    """
    if isinstance(meta.get("grid"), str):
        return str(meta["grid"])
    for v in meta.values():
        if isinstance(v, Mapping):
            found = grid_of(v)
            if found:
                return found
    return None


def misfit_warning(spectrum: Spectrum, grid: str) -> str | None:
    """A warning when the grid's best fit misses ``spectrum`` beyond its discrepancy model.

    Runs the chi-square fit with the grid's shipped discrepancy model; returns None when the
    grid has none or the misfit score is under the calibrated threshold.

    Example:
        >>> from atmospec.spectrum import Spectrum
        >>> w = np.linspace(0.9, 2.4, 150)
        >>> f = np.exp(-(((w - 1.6) / 0.4) ** 2)) + 0.1  # a smooth bump: no brown dwarf
        >>> misfit_warning(Spectrum(w, f, 0.01 * f), "dback24")[:45]
        'misfit beyond the model-discrepancy allowance'
        >>> print(misfit_warning(Spectrum(w, f, 0.01 * f), "my_grid"))  # no model shipped
        None
    """
    from atmospec.discrepancy.model import available_discrepancy
    from atmospec.fitting.chi2 import fit_chi2

    if (grid, "spex-prism") not in available_discrepancy():
        return None
    from atmospec.discrepancy.route import misfit_sentence

    res = fit_chi2(spectrum, grid_obj(grid), discrepancy="auto")
    return misfit_sentence(res.discrepancy, grid)


def grid_obj(name: str) -> Any:
    from atmospec.grids import load_grid

    return load_grid(name)
