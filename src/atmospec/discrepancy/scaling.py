"""The Teff bins of a learned discrepancy model: their edges and modes, their scale, and the
scores of library fits under the model."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from atmospec.discrepancy.model import DiscrepancyModel
from atmospec.discrepancy.temperature import LibraryFit, grid_pull_std

if TYPE_CHECKING:
    from atmospec.grids import ModelGrid

__all__ = ["teff_bins", "bin_modes", "calibrate_bin", "by_bin", "dof_scores", "whitened_scores"]

FloatArray = NDArray[np.float64]
SPECTRA_PER_MODE = 8  # a bin learns one correlated mode per this many spectra (see bin_modes)
MIN_MODES = 2  # a bin must hold enough spectra for this many modes, or it is merged


def teff_bins(
    teffs: FloatArray, candidates: tuple[float, ...], min_per_bin: int | None = None
) -> FloatArray:
    """Inner Teff bin edges: ``candidates`` merged until every bin holds enough spectra.

    Fixed physical edges (T dwarfs, late L, mid L, early L, late M) rather than quantiles:
    the library holds many more L than T dwarfs, and quantile bins would leave the T dwarfs
    inside an L-dwarf bin. A bin with fewer than ``min_per_bin`` spectra (default: enough for
    ``MIN_MODES`` modes, see :func:`bin_modes`) is merged with its smaller neighbour.

    Example:
        >>> teff_bins(np.r_[np.full(50, 1000.0), np.full(5, 1500.0), np.full(60, 2000.0)],
        ...            (1200.0, 1800.0)).tolist()
        [1800.0]
    """
    least = MIN_MODES * SPECTRA_PER_MODE if min_per_bin is None else min_per_bin
    edges = [float(e) for e in candidates]
    while edges:
        counts = np.bincount(np.searchsorted(edges, teffs), minlength=len(edges) + 1)
        worst = int(np.argmin(counts))
        if counts[worst] >= least:
            break
        # drop the edge between the smallest bin and its smaller neighbour
        if worst == 0:
            drop = 0
        elif worst == len(edges):
            drop = len(edges) - 1
        else:
            drop = worst - 1 if counts[worst - 1] <= counts[worst + 1] else worst
        edges.pop(drop)
    return np.asarray(edges, dtype=np.float64)


def bin_modes(n_spectra: int, n_modes: int) -> int:
    """Correlated modes a bin of ``n_spectra`` learns: one per ``SPECTRA_PER_MODE``, at most
    ``n_modes``.

    A mode is an eigenvector of the bin's residual second moment; from few spectra the
    trailing eigenvectors are sampling noise that fits the fit half's own residuals (they
    span them) and not new objects'. One mode per eight spectra was chosen on the held-out
    half of the library (Burrows 2006, seed 0: five per mode gave whitened variance 1.47 and
    repeat pulls 0.55, eight 1.43 and 0.68; see the record's ``evaluation.by_teff_bin``); the
    variance of the dropped modes stays in the diagonal floor.

    Example:
        >>> bin_modes(20, 6), bin_modes(400, 6)
        (2, 6)
    """
    return min(n_modes, n_spectra // SPECTRA_PER_MODE)


def _per_fit(
    fits: list[LibraryFit], model: DiscrepancyModel, reduce: Callable[[Any, FloatArray], float]
) -> FloatArray:
    """``reduce(covariance, residual)`` of each fit under noise + discrepancy."""
    out = []
    for f in fits:
        cov = model.low_rank(f.model, f.teff, wavelength=f.wavelength, error=f.error)
        out.append(reduce(cov, f.flux - f.model))
    return np.asarray(out)


def whitened_scores(fits: list[LibraryFit], model: DiscrepancyModel) -> FloatArray:
    """Chi-square per pixel of each fit under noise + discrepancy.

    Example:
        >>> w, m, wiggle = np.linspace(1.0, 2.0, 4), np.ones(4), np.array([1.0, -1.0, 1.0, -1.0])
        >>> d = DiscrepancyModel(w, [1000.0], np.full((1, 4), 0.1), np.zeros((1, 1, 4)), "toy")
        >>> mk = lambda off: LibraryFit("k", 1, w, m + off * wiggle, np.zeros(4), m, 1000.0, {},
        ...                             np.zeros(1), 2)
        >>> whitened_scores([mk(0.1), mk(0.2)], d).round(6).tolist()  # (residual / 10 %)^2
        [1.0, 4.0]
    """
    return _per_fit(fits, model, lambda cov, r: cov.quad(r) / r.size)


_CHI2_1_MEDIAN = 0.4549364231195724  # median of a chi-square with one degree of freedom


def _pixel_medians(fits: list[LibraryFit], model: DiscrepancyModel) -> FloatArray:
    """Median over pixels of the squared whitened residual of each fit (0.455 when the
    covariance is right; unmoved by the few pixels no covariance of this form describes)."""
    return _per_fit(fits, model, lambda cov, r: float(np.median(cov.whiten(r) ** 2)))


def _set_scale(
    model: DiscrepancyModel,
    b: int,
    floor0: FloatArray,
    modes0: FloatArray,
    a: float,
    scale_modes: bool,
) -> None:
    """Bin ``b``'s covariance at factor ``a`` on ``floor0`` (and on ``modes0`` with
    ``scale_modes``; otherwise the modes stay ``modes0``)."""
    model.floor[b] = floor0 * np.sqrt(a)
    model.modes[b] = modes0 * np.sqrt(a) if scale_modes else modes0


def _scale_root(
    fits: list[LibraryFit],
    model: DiscrepancyModel,
    b: int,
    excess_of: Callable[[list[LibraryFit], DiscrepancyModel], float],
    scale_modes: bool = True,
) -> float | None:
    """Factor ``a`` on bin ``b``'s covariance (floor and, with ``scale_modes``, modes times
    sqrt a, from their values on entry; left at the last one tried) where
    ``excess_of(fits, model)`` crosses zero, in ``e^-6``-``e^6``: 1 when it is negative already
    at the low end, None when no factor brings it down."""
    from scipy.optimize import brentq

    floor0, modes0 = model.floor[b].copy(), model.modes[b].copy()

    def excess(log_a: float) -> float:
        _set_scale(model, b, floor0, modes0, float(np.exp(log_a)), scale_modes)
        return excess_of(fits, model)

    lo, hi = -6.0, 6.0
    if excess(lo) < 0:
        return 1.0
    if excess(hi) > 0:
        return None
    return float(np.exp(brentq(excess, lo, hi, xtol=1e-3)))


def calibrate_bin(
    fits: list[LibraryFit], model: DiscrepancyModel, b: int, *, scale_modes: bool = True
) -> float:
    """Factor on bin ``b``'s fractional covariance giving median chi2/pixel = 1 for its fits.

    Where no factor reaches it (a few pixels, late-T dwarfs' optical and 1.9 um band, where
    the data/model ratio exceeds the +-200 % the moments are clipped at, dominate), the
    factor giving a median squared whitened residual of 0.455 (that of a unit Gaussian) over
    each fit's pixels, in the median fit (``e^6`` if none does).

    ``scale_modes=False`` scales the floor alone and keeps the modes at the variance of the
    residuals' principal components. With the whole covariance scaled (the shipped models),
    the L-dwarf bins' factors of 0.2-0.6 shrink the modes too, and real residuals project on
    them with a mean z^2 of 3-6 per mode instead of 1; with the floor alone it is about 2
    (BT-Settl), for the same held-out whitened variance and false alarms.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> w, m, err = np.linspace(1.0, 2.0, 20), np.ones(20), np.full(20, 1e-3)
        >>> fits = [LibraryFit(str(i), i, w, m + 0.05 * rng.standard_normal(20), err, m, 1500.0,
        ...                    {}, np.zeros(1), 1) for i in range(10)]  # 5 % model error
        >>> model = DiscrepancyModel(w, [1500.0], np.full((1, 20), 0.1), np.zeros((1, 1, 20)), "")
        >>> a = calibrate_bin(fits, model, 0)  # a floor of 10 % is too wide
        >>> round(a, 3), round(float(model.floor[0, 0]), 3), round(float(np.median(
        ...     whitened_scores(fits, model))), 3)
        (0.217, 0.047, 1.0)
    """
    floor0, modes0 = model.floor[b].copy(), model.modes[b].copy()
    a = _scale_root(
        fits,
        model,
        b,
        lambda f, m: float(np.median(whitened_scores(f, m))) - 1.0,
        scale_modes,
    )
    if a is None:
        _set_scale(model, b, floor0, modes0, 1.0, scale_modes)
        a = _scale_root(
            fits,
            model,
            b,
            lambda f, m: float(np.median(_pixel_medians(f, m))) / _CHI2_1_MEDIAN - 1.0,
            scale_modes,
        )
    if a is None:
        a = float(np.exp(6.0))
    _set_scale(model, b, floor0, modes0, a, scale_modes)
    return a


def by_bin(
    fits: list[LibraryFit], scores: FloatArray, model: DiscrepancyModel, grid: ModelGrid
) -> list[dict[str, Any]]:
    """Evaluation numbers per Teff bin (spectra assigned to the nearest bin centre).

    Example:
        >>> import pandas as pd
        >>> from types import SimpleNamespace as NS
        >>> w, m, wiggle = np.linspace(1.0, 2.0, 4), np.ones(4), np.array([1.0, -1.0, 1.0, -1.0])
        >>> d = DiscrepancyModel(w, [1000.0, 2000.0], np.full((2, 4), 0.1), np.zeros((2, 1, 4)),
        ...                      "toy", misfit_threshold=3.0)
        >>> mk = lambda src, off, t: LibraryFit("k", src, w, m + off * wiggle, np.zeros(4), m, t,
        ...                                     {}, np.array([0.0, t / 10 - 100]), 2)
        >>> fits = [mk(1, 0.1, 1000.0), mk(1, 0.2, 1100.0), mk(2, 0.1, 2000.0)]
        >>> grid = NS(params=pd.DataFrame({"teff": [1000.0, 2000.0]}))  # its nodes
        >>> rows = by_bin(fits, dof_scores(fits, d), d, grid)
        >>> [(r["teff_centre"], r["n_spectra"], r["false_alarm_rate"]) for r in rows]
        [(1000.0, 2, 0.5), (2000.0, 1, 0.0)]
        >>> round(rows[0]["whitened_variance_mean"], 3), rows[1]["repeat_pull_std"]
        (2.5, None)
    """
    labels = np.array([int(np.argmin(np.abs(model.teff - f.teff))) for f in fits])
    white = whitened_scores(fits, model)
    out = []
    for b, centre in enumerate(model.teff):
        inside = np.flatnonzero(labels == b)
        members = [fits[i] for i in inside]
        out.append(
            {
                "teff_centre": float(centre),
                "n_spectra": int(inside.size),
                "whitened_variance_mean": float(np.mean(white[inside])) if inside.size else None,
                "whitened_variance_median": float(np.median(white[inside]))
                if inside.size
                else None,
                "false_alarm_rate": float(np.mean(scores[inside] > model.misfit_threshold))
                if inside.size
                else None,
                "repeat_pull_std": grid_pull_std(members, grid, model.temperature),
            }
        )
    return out


def dof_scores(fits: list[LibraryFit], model: DiscrepancyModel) -> FloatArray:
    """Misfit score (chi-square per degree of freedom) of each fit under the model.

    Example:
        >>> w, m, wiggle = np.linspace(1.0, 2.0, 4), np.ones(4), np.array([1.0, -1.0, 1.0, -1.0])
        >>> d = DiscrepancyModel(w, [1000.0], np.full((1, 4), 0.1), np.zeros((1, 1, 4)), "toy")
        >>> mk = lambda off: LibraryFit("k", 1, w, m + off * wiggle, np.zeros(4), m, 1000.0, {},
        ...                             np.zeros(1), 2)
        >>> dof_scores([mk(0.1), mk(0.2)], d).round(6).tolist()  # chi2 / (4 pixels - 2)
        [2.0, 8.0]
    """
    return np.asarray(
        [
            model.misfit(
                f.flux, f.error, f.model, f.teff, wavelength=f.wavelength, n_fitted=f.n_fitted
            ).score
            for f in fits
        ]
    )
