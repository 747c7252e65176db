"""Each grid of a multi-grid prediction made ready: its parameters checked, its model of
mismatch found and checked, and what its answer cannot say written down."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from atmospec.errors import AtmospecError, DataNotFoundError, IncompatibleModelError

from .estimate import COMMON_PARAMS

if TYPE_CHECKING:
    from atmospec.grids import ModelGrid

    from .estimate import GridEstimate
    from .routes import GridRoute

__all__ = [
    "answer_notes",
    "check_parameters",
    "check_given",
    "route_discrepancy",
    "unmeasured_notes",
]

log = logging.getLogger(__name__)


def _values(grid: Any, name: str) -> np.ndarray:
    return np.unique(np.asarray(grid.params[name], dtype=np.float64))


def check_parameters(route: GridRoute, grid: ModelGrid) -> None:
    """Refuse a grid that does not vary ``teff``: which grids cover an object is decided by
    Teff, and models of mismatch depend on it. A grid without ``logg`` or ``mh`` (or with a
    single value of either) may join; :func:`unmeasured_notes` says what it leaves out.

    Example:
        >>> import pandas as pd
        >>> from types import SimpleNamespace as NS
        >>> from atmospec.multigrid.routes import GridRoute
        >>> flat = NS(name="flat", param_names=("logg", "mh"),
        ...           params=pd.DataFrame({"logg": [4.0, 5.0], "mh": [0.0, 0.0]}))
        >>> check_parameters(GridRoute("runs/flat.h5"), flat)
        Traceback (most recent call last):
        ...
        atmospec.errors.IncompatibleModelError: runs/flat.h5: grid 'flat' has no teff axis...
    """
    names = tuple(grid.param_names)
    if "teff" in names and _values(grid, "teff").size >= 2:
        return
    what = "no teff axis" if "teff" not in names else "a single teff value"
    raise IncompatibleModelError(
        f"{route.grid}: grid {grid.name!r} has {what} (parameters {', '.join(names)}): a "
        "multi-grid prediction decides which grids cover an object by their Teff range and "
        "combines teff, logg and mh, so every grid it asks must vary teff"
    )


def _how_fixed(grid: Any, name: str) -> str:
    if name not in grid.param_names:
        return "not a parameter"
    v = _values(grid, name)
    return f"fixed at {v[0]:g}" if v.size == 1 else ""


def unmeasured_notes(
    estimates: Mapping[str, GridEstimate],
    weights: Mapping[str, float],
    grids: Mapping[str, Any],
    params: Sequence[str] = COMMON_PARAMS,
) -> list[str]:
    """Notes for the common parameters that grids in the combination do not vary (absent
    from a user grid, or a single value such as a solar-metallicity grid): the combined value
    then comes from the other grids alone, or, when no grid in it varies the parameter, is
    not measured at all (NaN).

    Example:
        >>> import pandas as pd
        >>> from types import SimpleNamespace as NS
        >>> est = lambda names: NS(param_names=names)
        >>> solar = NS(param_names=("teff", "logg", "mh"),
        ...            params=pd.DataFrame({"teff": [900.0, 1000.0], "logg": [5.0, 5.0],
        ...                                 "mh": [0.0, 0.0]}))
        >>> notes = unmeasured_notes({"a": est(("teff", "logg", "mh")), "s": est(("teff",))},
        ...                          {"a": 0.5, "s": 0.5}, {"a": solar, "s": solar})
        >>> notes[0]
        'logg: s does not vary it (fixed at 5): the combined logg comes from a alone'
        >>> unmeasured_notes({"s": est(("teff",))}, {"s": 1.0}, {"s": solar})[1][:45]
        'mh: no grid that answered varies it (s: fixed'
    """
    used = [g for g, w in weights.items() if w > 0 and g in estimates]
    out = []
    for p in params:
        lacking = [g for g in used if p not in estimates[g].param_names]
        if not lacking:
            continue
        how = ", ".join(f"{g}: {_how_fixed(grids[g], p)}" for g in lacking)
        if len(lacking) == len(used):
            out.append(
                f"{p}: no grid that answered varies it ({how}): the combined {p} is not "
                "measured (NaN)"
            )
            continue
        others = ", ".join(g for g in used if g not in lacking)
        fixed = "; ".join(f"{g} does not vary it ({_how_fixed(grids[g], p)})" for g in lacking)
        out.append(f"{p}: {fixed}: the combined {p} comes from {others} alone")
    return out


def route_discrepancy(route: GridRoute, grid: ModelGrid) -> tuple[Any, str]:
    """The model of mismatch ``route``'s grid answers with (None: none), and the note its
    rows get (``""``: none).

    A folder named by the route (``--grids GRID=FOLDER``) is read and checked against the
    grid (:func:`~atmospec.discrepancy.route.check_learned_for`: its name and, where the
    model records it, its content); a built-in grid gets its shipped model; any other grid
    none, with a note that says how to learn and give one.

    Example:
        >>> from types import SimpleNamespace as NS
        >>> from atmospec.multigrid.routes import GridRoute
        >>> model, note = route_discrepancy(GridRoute("runs/mine.h5"), NS(name="mine"))
        >>> model, note[:54]
        (None, 'runs/mine.h5: no model-error covariance (no model of m')
    """
    from atmospec.discrepancy import DiscrepancyModel, available_discrepancy, load_discrepancy
    from atmospec.discrepancy.route import check_learned_for

    if route.discrepancy is not None:
        model = DiscrepancyModel.load(route.discrepancy)
        check_learned_for(model, grid)
        n = model.meta.get("selection", {}).get("n_spectra_fit")
        learned = f" on {n} SpeX library spectra" if n else ""
        return model, (
            f"{route.grid}: model of mismatch from {route.discrepancy} (learned for grid "
            f"{model.grid}{learned})"
        )
    if route.grid not in {g for g, _ in available_discrepancy()}:
        # a grid given by its path is never looked up among the shipped models by that path
        return None, (
            f"{route.grid}: no model-error covariance (no model of mismatch for this grid: its "
            "chi-square has a fitted error floor and no misfit score; learn one with "
            f"`atmospec discrepancy fit --grid {route.grid} --out FOLDER` and give it as "
            f"`--grids ...,{route.grid}=FOLDER`)"
        )
    try:
        model = load_discrepancy(route.grid)
    except (DataNotFoundError, AtmospecError) as err:
        note = f"{route.grid}: no model-error covariance ({err})"
        log.info("%s", note)
        return None, note
    check_learned_for(model, grid)
    return model, ""


def check_given(grid_key: str, model: Any, grid: ModelGrid) -> None:
    """Refuse a model of mismatch given for ``grid_key`` (``discrepancy=`` of the predictor)
    that was learned for another grid; objects other than a
    :class:`~atmospec.discrepancy.DiscrepancyModel` are used as given.

    Example:
        >>> from types import SimpleNamespace as NS
        >>> check_given("mine.h5", None, NS(name="mine"))  # None: no model for that grid
    """
    from atmospec.discrepancy import DiscrepancyModel
    from atmospec.discrepancy.route import check_learned_for

    if isinstance(model, DiscrepancyModel):
        try:
            check_learned_for(model, grid)
        except AtmospecError as err:
            raise type(err)(f"discrepancy[{grid_key!r}]: {err}") from None


def answer_notes(
    estimates: Mapping[str, GridEstimate], weights: Mapping[str, float], said: Sequence[str]
) -> list[str]:
    """The notes of the grids' own answers that the combination used (a grid without a model
    of mismatch answering with a fitted error floor, a learned model that could not take the
    spectrum), each once and less those already ``said``: they explain the answer a user
    reads, so they reach its row.

    Example:
        >>> from types import SimpleNamespace as NS
        >>> est = {"a": NS(notes=["a: errors inflated by a fitted floor f = 0.05"]),
        ...        "b": NS(notes=["b: its model could not take the spectrum; chi-square"])}
        >>> answer_notes(est, {"a": 0.5, "b": 0.0}, said=[])
        ['a: errors inflated by a fitted floor f = 0.05']
    """
    seen = set(said)
    out: list[str] = []
    for g, est in estimates.items():
        if not weights.get(g):
            continue
        for n in est.notes:
            if n not in seen:
                seen.add(n)
                out.append(n)
    return out
