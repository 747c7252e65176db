"""Hooks that put a grid's discrepancy model into the classic fits (chi-square, nested)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

from atmospec.discrepancy.likelihood import node_samples, node_weights, scan_nodes
from atmospec.discrepancy.model import DiscrepancyModel, LowRankCovariance

if TYPE_CHECKING:
    import pandas as pd

    from atmospec.fitting.data import FitData
    from atmospec.grids import ModelGrid

__all__ = [
    "DiscrepancyOption",
    "resolve_discrepancy",
    "discrepancy_nodes",
    "discrepancy_loglike",
    "misfit_record",
    "covered_share",
    "misfit_sentence",
    "shipped_model",
    "check_learned_for",
]

log = logging.getLogger(__name__)
FloatArray = NDArray[np.float64]
DiscrepancyOption = DiscrepancyModel | Literal["auto"] | None


def resolve_discrepancy(
    option: DiscrepancyOption, grid: ModelGrid, data: FitData, notes: list[str]
) -> DiscrepancyModel | None:
    """The discrepancy model to use: ``"auto"`` = the shipped one of the grid, if any.

    A model learned for another grid is refused (its modes describe that grid's errors).

    Example:
        >>> from types import SimpleNamespace as NS
        >>> data, notes = NS(wavelength=np.linspace(0.8, 2.4, 300)), []
        >>> resolve_discrepancy("auto", NS(name="dback24"), data, notes).instrument
        'spex-prism'
        >>> notes[-1][:40]
        'model discrepancy dback24/spex-prism v1 '
        >>> resolve_discrepancy("auto", NS(name="my_grid"), data, notes), notes[-1][:38]
        (None, 'no model-discrepancy model for my_grid')
        >>> resolve_discrepancy(shipped_model("dback24"), NS(name="btsettl08"), data, notes)
        Traceback (most recent call last):
        ...
        atmospec.errors.IncompatibleModelError: discrepancy model of grid 'dback24' cannot...
    """
    from atmospec.errors import DataNotFoundError

    if option is None:
        notes.append(
            "model discrepancy off (discrepancy=None, CLI --no-discrepancy): the likelihood has "
            "no model-error covariance, so unless an error floor is fitted (--inflate-errors, "
            "--sys-floor) the intervals hold photon noise only, far narrower than how far "
            "grids miss real spectra"
        )
        # the fit still rests on the bands the pixels cover
        try:
            _share_note(shipped_model(grid.name).wavelength, data, grid.name, notes, "")
        except DataNotFoundError:
            pass  # no range the grid's spectra were judged on
        return None
    if isinstance(option, str):
        if option != "auto":
            raise ValueError(f"discrepancy={option!r}: expected 'auto', None or a model")
        try:
            model = shipped_model(grid.name)
        except DataNotFoundError:
            notes.append(
                f"no model-discrepancy model for {grid.name}: errors are photon noise only "
                "(intervals ignore model error)"
            )
            return None
    else:
        model = option
    check_learned_for(model, grid)
    lo, hi = float(model.wavelength[0]), float(model.wavelength[-1])
    outside = (data.wavelength < lo - 0.02) | (data.wavelength > hi + 0.02)
    if outside.any():
        notes.append(
            f"{int(outside.sum())} pixels lie outside the discrepancy model's {lo:.2f}-{hi:.2f} "
            "um; they take its value at the nearest end"
        )
    _share_note(
        model.wavelength, data, model.grid, notes, ", and the misfit threshold was set on whole "
        "spectra",
    )  # fmt: skip
    notes.append(
        f"model discrepancy {model.grid}/{model.instrument} v{model.version} added to the "
        "covariance (fractional floor + correlated modes learned from real library spectra): "
        f"the intervals hold {model.grid}'s own model error, not the spread between grids or "
        "the error they share (`atmospec predict` combines grids and corrects for that error "
        "with labelled objects)"
    )
    return model


def check_learned_for(model: DiscrepancyModel, grid: ModelGrid) -> None:
    """Refuse a model of mismatch learned for another grid: its floor and modes describe that
    grid's errors. The grid is known by its name and, where the model records one (models
    learned since it was recorded, :func:`~atmospec.discrepancy.learn.fit_discrepancy`), by
    the sha256 of its content (:func:`~atmospec.grids.identity.grid_identity`): a grid whose
    spectra changed after the model was learned is refused too.

    Raises:
        IncompatibleModelError: the model names another grid.
        ChecksumError: the grid's content is not the content the model was learned on.

    Example:
        >>> from types import SimpleNamespace as NS
        >>> check_learned_for(shipped_model("dback24"), NS(name="dback24"))  # no sha256 recorded
        >>> check_learned_for(shipped_model("dback24"), NS(name="btsettl08", path="b.h5"))
        Traceback (most recent call last):
        ...
        atmospec.errors.IncompatibleModelError: discrepancy model of grid 'dback24' cannot...
    """
    from atmospec.errors import ChecksumError, IncompatibleModelError

    where = model.meta.get("path") or "given as an object"
    if model.grid != grid.name:
        raise IncompatibleModelError(
            f"discrepancy model of grid {model.grid!r} cannot be used with grid {grid.name!r} "
            f"({getattr(grid, 'path', grid.name)}; model {where}): its floor and modes describe "
            f"the errors of {model.grid!r}; {_relearn(grid)}"
        )
    recorded = model.meta.get("grid_sha256")
    if not recorded:
        return
    from atmospec.grids.identity import grid_identity

    now = grid_identity(grid).sha256
    if now != recorded:
        raise ChecksumError(
            f"{grid.path}: the content of grid {grid.name!r} (sha256 {now}) is not what its "
            f"model of mismatch {where} was learned on (sha256 {recorded}): the grid changed "
            f"since; {_relearn(grid)}"
        )


def _relearn(grid: ModelGrid) -> str:
    """How to learn a model of mismatch for ``grid`` (a built-in one by name, any other by
    its file)."""
    from atmospec.grids import BUILTIN_GRIDS

    name = grid.name if grid.name in BUILTIN_GRIDS else getattr(grid, "path", grid.name)
    return f"learn one for it with `atmospec discrepancy fit --grid {name} --out FOLDER`"


def _share_note(axis: FloatArray, data: FitData, grid: str, notes: list[str], tail: str) -> None:
    """The note for fitted pixels that cover less than half of the range the grid's model of
    mismatch was learned on (one band of a SpeX spectrum, say)."""
    share, band = covered_share(axis, data.wavelength)
    if share < 0.5:
        lo, hi = float(axis[0]), float(axis[-1])
        notes.append(
            f"the fitted pixels ({band}) cover {share:.0%} of the {lo:.2f}-{hi:.2f} um "
            f"that the {grid} model of mismatch was learned on: the parameters rest on "
            f"that part of the spectrum alone{tail}"
        )


def covered_share(axis: FloatArray, pixels: FloatArray) -> tuple[float, str]:
    """The share of ``axis`` (a model's wavelengths) that the sorted ``pixels`` sample (an
    axis point counts when a pixel lies within two median pixel spacings of it), and the
    pixels' wavelength runs as text (a run breaks where the spacing exceeds three medians).

    Example:
        >>> axis = np.linspace(0.7, 2.5, 181)
        >>> share, band = covered_share(axis, np.linspace(1.1, 1.34, 60))
        >>> round(share, 2), band
        (0.14, '1.10-1.34 um')
    """
    px = np.asarray(pixels, dtype=np.float64)
    ax = np.asarray(axis, dtype=np.float64)
    if px.size < 2:
        return 0.0, ""
    step = float(np.median(np.diff(px)))
    pos = np.clip(np.searchsorted(px, ax), 1, px.size - 1)
    near = np.minimum(np.abs(ax - px[pos - 1]), np.abs(px[pos] - ax))
    breaks = np.flatnonzero(np.diff(px) > 3 * step)
    starts, ends = np.r_[0, breaks + 1], np.r_[breaks, px.size - 1]
    band = ", ".join(f"{px[a]:.2f}-{px[b]:.2f} um" for a, b in zip(starts, ends, strict=True))
    return float(np.mean(near <= 2 * step)), band


_CACHE: dict[str, DiscrepancyModel] = {}


def shipped_model(grid: str) -> DiscrepancyModel:
    """The shipped model of mismatch of ``grid``, read (and checksum-verified) once per
    process; :class:`~atmospec.errors.DataNotFoundError` when none is shipped.

    Example:
        >>> shipped_model("dback24").grid
        'dback24'
    """
    from atmospec.discrepancy.model import load_discrepancy

    if grid not in _CACHE:
        _CACHE[grid] = load_discrepancy(grid)
    return _CACHE[grid]


def discrepancy_nodes(
    batches: Callable[[], Iterator[FloatArray]],
    data: FitData,
    sigma: FloatArray,
    params: pd.DataFrame,
    fitted: list[str],
    model: DiscrepancyModel,
    *,
    seed: int = 0,
    n_samples: int = 4000,
) -> dict[str, Any]:
    """Chi-square, log-determinant, scale and posterior weight of every node, and samples.

    Returns a dict with arrays ``chi2`` (r^T C^-1 r), ``logdet``, ``scale``, ``neg2_loglike``,
    ``weight`` (per node, grid order, from ``-2 log L / temperature``), ``best`` (index) and
    ``samples`` (node posterior spread over grid cells, see
    :func:`~atmospec.discrepancy.likelihood.node_samples`).

    Example:
        >>> import pandas as pd
        >>> from types import SimpleNamespace as NS
        >>> w = np.linspace(1.0, 2.0, 4)
        >>> d = DiscrepancyModel(w, [1000.0], np.full((1, 4), 0.1), np.zeros((1, 1, 4)), "toy")
        >>> models = np.array([[1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0]])  # flat, rising
        >>> nodes = pd.DataFrame({"teff": [1000.0, 1000.0], "logg": [4.0, 5.0]})
        >>> out = discrepancy_nodes(lambda: iter([models]), NS(flux=2 * models[0], wavelength=w),
        ...                         np.full(4, 0.1), nodes, ["logg"], d)
        >>> out["best"], out["weight"].round(3).tolist(), out["scale"].round(3).tolist()
        (0, [1.0, 0.0], [2.0, 0.888])
        >>> bool(out["samples"]["logg"].between(4.0, 4.5).all())  # the 4.0 node's cell
        True
    """
    teff = params["teff"].to_numpy(dtype=np.float64)
    chi2, logdet, scale = [], [], []
    start = 0
    for m in batches():
        c, ld, s = scan_nodes(
            m, data.flux, sigma, teff[start : start + len(m)], model, data.wavelength
        )
        chi2.append(c)
        logdet.append(ld)
        scale.append(s)
        start += len(m)
    chi2_a, logdet_a, scale_a = map(np.concatenate, (chi2, logdet, scale))
    neg2 = chi2_a + logdet_a
    weight = node_weights(neg2 / model.temperature)
    best = int(np.argmin(neg2))
    samples = node_samples(params, weight, fitted, n=n_samples, seed=seed)
    return {
        "chi2": chi2_a,
        "logdet": logdet_a,
        "scale": scale_a,
        "neg2_loglike": neg2,
        "weight": weight,
        "best": best,
        "samples": samples,
    }


def misfit_record(
    model: DiscrepancyModel,
    data: FitData,
    sigma: FloatArray,
    best_model: FloatArray,
    teff: float,
    n_fitted: int,
) -> dict[str, Any]:
    """The misfit score of the best fit and the model's description, for results.

    Example:
        >>> from types import SimpleNamespace as NS
        >>> w = np.linspace(1.0, 2.0, 4)
        >>> d = DiscrepancyModel(w, [1000.0], np.full((1, 4), 0.1), np.zeros((1, 1, 4)), "toy",
        ...                      misfit_threshold=1.5)
        >>> data = NS(flux=np.full(4, 1.2), wavelength=w)
        >>> rec = misfit_record(d, data, np.full(4, 0.1), np.ones(4), 1000.0, n_fitted=2)
        >>> rec["grid"], round(rec["misfit_score"], 6), rec["misfit_flagged"]
        ('toy', 4.0, True)
    """
    mis = model.misfit(
        data.flux, sigma, best_model, teff, wavelength=data.wavelength, n_fitted=n_fitted
    )
    return {
        **model.describe(),
        "misfit_score": mis.score,
        "misfit_threshold": mis.threshold,
        "misfit_false_alarm_rate": mis.false_alarm_rate,
        "misfit_flagged": mis.flagged,
    }


def misfit_sentence(record: Mapping[str, Any] | None, grid: str) -> str | None:
    """The warning for a fit whose misfit record (:func:`atmospec.discrepancy.route.misfit_record`)
    is flagged, else None.

    Example:
        >>> rec = {"misfit_score": 4.2, "misfit_threshold": 3.14, "misfit_flagged": True,
        ...        "misfit_false_alarm_rate": 0.05}
        >>> misfit_sentence(rec, "dback24")[:60]
        'misfit beyond the model-discrepancy allowance: score 4.20 > '
    """
    if record is None or not record.get("misfit_flagged"):
        return None
    return (
        f"misfit beyond the model-discrepancy allowance: score {record['misfit_score']:.2f} > "
        f"{record['misfit_threshold']:.2f} (exceeded by "
        f"{record['misfit_false_alarm_rate']:.0%} of real field dwarfs); {grid} does not "
        "describe this spectrum"
    )


def discrepancy_loglike(
    model: DiscrepancyModel,
    m: FloatArray,
    data: FloatArray,
    sigma: FloatArray,
    teff: float,
    wavelength: FloatArray,
    log_s_max: float,
) -> float:
    """log L with the flux scale marginalised (uniform prior on [0, s_max]) under noise +
    discrepancy, divided by the model's temperature (a power posterior, see
    :mod:`atmospec.discrepancy.temperature`); the covariance is built at the generalised
    least-squares scale.

    Example:
        >>> w, m, sigma = np.linspace(1.0, 2.0, 4), np.ones(4), np.full(4, 0.1)
        >>> d = DiscrepancyModel(w, [1000.0], np.full((1, 4), 0.1), np.zeros((1, 1, 4)), "toy")
        >>> wiggle = np.array([0.3, -0.3, 0.3, -0.3])
        >>> ll = [discrepancy_loglike(d, m, 2 * m + e, sigma, 1000.0, w, 0.0) for e in (0, wiggle)]
        >>> round(ll[0], 3), round(ll[0] - ll[1], 3)
        (1.044, 3.6)
        >>> d.temperature = 2.0  # a power posterior: log L halved
        >>> round(discrepancy_loglike(d, m, 2 * m + wiggle, sigma, 1000.0, w, 0.0), 3)
        -1.278
    """
    noise = sigma**2
    s = float(m @ (data / noise)) / float(m @ (m / noise))
    cov: LowRankCovariance | None = None
    for _ in range(2):
        cov = model.low_rank(s * m, teff, wavelength=wavelength, error=sigma)
        cm = cov.solve(m)
        s = float(cm @ data) / float(cm @ m)
    assert cov is not None
    a = float(m @ cov.solve(m))
    r = data - s * m
    loglike = (
        -0.5 * cov.quad(r)
        - 0.5 * cov.logdet()
        - 0.5 * data.size * np.log(2 * np.pi)
        + 0.5 * np.log(2 * np.pi / a)
    )
    return float(loglike / model.temperature - log_s_max)
