"""Calibrating an out-of-distribution score on in-grid synthetic spectra.

:func:`calibrate_ood` draws the reference spectra of a learned estimator from its grid;
:func:`fit_detector` turns any set of in-domain spectra (an NPE's, drawn with its own noise
model, see :func:`atmospec.prediction.members.calibrate_npe_ood`) into an
:class:`~atmospec.prediction.ood.OODDetector` whose threshold depends on S/N
(:func:`snr_thresholds`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from atmospec.prediction.ood import COMPONENTS, OODDetector, grid_model_on_axis

if TYPE_CHECKING:
    from atmospec.estimators.base import Estimator
    from atmospec.grids import ModelGrid

__all__ = ["calibrate_ood", "fit_detector", "snr_thresholds", "SNR_NEIGHBOURS"]

FloatArray = NDArray[np.float64]


def calibrate_ood(
    estimator: Estimator,
    grid: ModelGrid,
    *,
    n_samples: int = 3000,
    n_components: int = 12,
    floor: float = 0.02,
    level: float = 0.96,
    seed: int = 12345,
) -> OODDetector:
    """Calibrate the OOD score of ``estimator`` on fresh in-grid synthetic spectra of ``grid``.

    ``n_samples`` spectra are drawn with the training-set builder (nodes and off-node points,
    S/N 10-300 with real SpeX error shapes, the default systematics) on the estimator's axis.
    40 % fit the principal components, 40 % form the reference distributions and set the
    threshold at each S/N (exceeded by ``1 - level`` of those of that S/N,
    :func:`snr_thresholds`), 20 % are held out to measure the false alarm rate. ``floor`` is the
    relative systematic error added in quadrature in the residual and chi-square scores.

    Example:
        >>> det = calibrate_ood(estimator, grid)  # doctest: +SKIP
        >>> det.false_alarm <= 0.05  # doctest: +SKIP
        True
    """
    import tempfile

    from atmospec._fileio import provenance
    from atmospec.training.builder import build_training_set

    estimator._require_fitted()
    wave = np.asarray(estimator.wavelength_, dtype=np.float64)
    names = tuple(estimator.param_names_)
    with tempfile.TemporaryDirectory() as tmp:
        ts = build_training_set(
            grid,
            Path(tmp) / "ood.h5",
            n_samples=n_samples,
            axis=wave,
            seed=seed,
            bounds=estimator.bounds_,
        )
        X, _, S = ts.arrays()
        ts.close()
    rng = np.random.default_rng(seed)
    bad = ~np.isfinite(X)
    X = np.where(bad, 0.0, X)
    S = np.where(bad | ~np.isfinite(S), np.inf, S)
    if bad.any():
        from atmospec.estimators.preprocessing import fill_masked

        X, _ = fill_masked(np.where(bad, np.nan, X))
    med = np.array([np.median(r[np.isfinite(s)]) for r, s in zip(X, S, strict=True)])[:, None]

    from atmospec.prediction.engine import Engine

    engine = Engine(estimator)
    return fit_detector(
        X,
        S,
        med,
        lambda x, s: engine.predict(x, s),
        grid=grid,
        wavelength=wave,
        param_names=names,
        bounds=dict(estimator.bounds_),
        rng=rng,
        n_components=n_components,
        floor=floor,
        level=level,
        meta={"n_samples": n_samples, "provenance": provenance(seed=seed, grid=grid.name)},
    )


def fit_detector(
    X: FloatArray,
    S: FloatArray,
    med: FloatArray,
    estimate: Callable[[FloatArray, FloatArray], tuple[FloatArray, FloatArray | None]],
    *,
    grid: ModelGrid,
    wavelength: FloatArray,
    param_names: tuple[str, ...],
    bounds: dict[str, tuple[float, float]],
    rng: np.random.Generator,
    n_components: int,
    floor: float,
    level: float,
    meta: dict[str, Any],
) -> OODDetector:
    """Fit an :class:`OODDetector` on in-distribution spectra ``X`` (errors ``S``, per-row
    normalisation ``med``): a random 40 % fit the principal components, 40 % form the
    reference distributions and set the threshold (exceeded by ``1 - level`` of them), 20 %
    measure the false-alarm rate. ``estimate(X, S) -> (mean, std)`` is the estimator's point
    estimate and spread (a network's mean and sigma, or a posterior's mean and sd).

    Example:
        >>> import pathlib, tempfile
        >>> from atmospec.grids import ModelGrid
        >>> path, wave = pathlib.Path(tempfile.mkdtemp()) / "toy.h5", np.linspace(1.0, 2.0, 5)
        >>> with ModelGrid.create(path, wave, ("teff",), name="toy") as w:
        ...     for t in (1000.0, 2000.0):
        ...         w.add({"teff": t}, 2.0 ** ((t / 1000.0 - 1.0) * (wave - 1.0)))
        >>> rng = np.random.default_rng(0)
        >>> clean = 2.0 ** ((rng.uniform(1.0, 2.0, (500, 1)) - 1.0) * (wave - 1.0))
        >>> S = clean / rng.uniform(20, 200, (500, 1))  # in-grid spectra at S/N 20-200
        >>> X = clean + S * rng.standard_normal(clean.shape)
        >>> def estimate(x, s):  # teff from the flux ratio of the ends; no sigma
        ...     return np.clip(1000.0 + 1000.0 * np.log2(x[:, -1:] / x[:, :1]), 1000, 2000), None
        >>> det = fit_detector(X, S, np.median(X, axis=1, keepdims=True), estimate,
        ...                    grid=ModelGrid(path), wavelength=wave, param_names=("teff",),
        ...                    bounds={"teff": (1000.0, 2000.0)}, rng=rng, n_components=2,
        ...                    floor=0.01, level=0.96, meta={})
        >>> det.components.shape, det.meta["n_reference"], bool(det.false_alarm < 0.15)
        ((2, 5), 200, True)
        >>> bump = (2.0 ** (0.5 * (wave - 1.0)) * [1.0, 1.0, 1.3, 1.0, 1.0])[None]  # no grid shape
        >>> raw = det.raw_scores(bump, bump / 100, *estimate(bump, None))  # S/N 100
        >>> score, flag, reasons = det.score(raw)
        >>> flag.tolist(), reasons
        ([True], ['pca_distance,pca_residual'])
    """
    order = rng.permutation(X.shape[0])
    n_a, n_b = int(0.4 * X.shape[0]), int(0.8 * X.shape[0])
    part_a, part_b, part_c = order[:n_a], order[n_a:n_b], order[n_b:]
    xa = X[part_a] / med[part_a]
    mu = xa.mean(axis=0)
    _, sv, vt = np.linalg.svd(xa - mu, full_matrices=False)
    k = min(n_components, vt.shape[0])
    det = OODDetector(
        wavelength=wavelength,
        param_names=param_names,
        bounds=bounds,
        mean=mu,
        components=vt[:k],
        variances=sv[:k] ** 2 / (xa.shape[0] - 1),
        floor=floor,
        reference={c: np.zeros(1) for c in COMPONENTS},
        threshold=1.0,
        level=level,
        false_alarm=float("nan"),
        grid=grid.name,
        categorical=tuple(p for p in (getattr(grid, "categorical", ()) or ()) if p in param_names),
    )

    def raw_for(idx: NDArray[np.int64]) -> dict[str, FloatArray]:
        mean, std = estimate(X[idx], S[idx])
        model = grid_model_on_axis(grid, mean, param_names, wavelength)
        return det.raw_scores(X[idx], S[idx], mean, std, model)

    raw_b = raw_for(part_b)
    det.reference = {c: np.sort(raw_b[c][np.isfinite(raw_b[c])]) for c in COMPONENTS}
    combined = det.tail_log10(raw_b).max(axis=1)
    det.threshold = float(np.quantile(combined, level))
    det.snr_knots, det.snr_threshold = snr_thresholds(raw_b["snr"], combined, level)
    raw_c = raw_for(part_c)
    _, flag_c, _ = det.score(raw_c)
    det.false_alarm = float(flag_c.mean())
    det.meta = {
        **meta,
        "n_pca_fit": int(n_a),
        "n_reference": int(n_b - n_a),
        "n_held_out": int(part_c.size),
        "false_alarm_by_snr": _rate_by_snr(raw_c["snr"], flag_c),
    }
    return det


SNR_NEIGHBOURS = 0.1
"""The fraction of the reference spectra nearest in log S/N that set the threshold at a knot."""
SNR_MIN_NEIGHBOURS = 200
"""...and at least this many: the 96 % quantile of 200 scores leaves eight above it, whose
count alone scatters by +-2.8 (binomial), a threshold good to about +-1.4 % in false-alarm
rate; with fewer reference spectra the threshold tends to one over all S/N."""


def snr_thresholds(
    snr: ArrayLike, combined: ArrayLike, level: float, n_knots: int = 12
) -> tuple[FloatArray, FloatArray]:
    """``(knots, thresholds)``: the ``level`` quantile of the reference spectra's combined
    score ``max(-log10 p)`` as a function of log10 S/N.

    The knots sit at the centres of ``n_knots`` equal-count ranges of the references' log S/N;
    at each the quantile is taken over the :data:`SNR_NEIGHBOURS` fraction of references
    nearest in log S/N (at least :data:`SNR_MIN_NEIGHBOURS`): wide enough that the ``1 - level``
    tail holds a few dozen spectra, narrow enough to follow the rise of model error against
    noise. With fewer than twice that many references, one knot: one threshold for every S/N.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> snr = 10 ** rng.uniform(0.5, 2.5, 4000)
        >>> score = rng.exponential(1.0, 4000) * (1 + np.log10(snr))  # grows with S/N
        >>> knots, thr = snr_thresholds(snr, score, 0.96)
        >>> bool(np.all(np.diff(knots) > 0)), bool(thr[-1] > 2 * thr[0])
        (True, True)
    """
    log_s = np.log10(np.clip(np.asarray(snr, dtype=np.float64), 1e-3, None))
    c = np.asarray(combined, dtype=np.float64)
    ok = np.isfinite(log_s) & np.isfinite(c)
    log_s, c = log_s[ok], c[ok]
    if not log_s.size:
        return np.zeros(0), np.zeros(0)
    if log_s.size < 2 * SNR_MIN_NEIGHBOURS:  # too few to tell S/N apart: one threshold
        return np.array([np.median(log_s)]), np.array([np.quantile(c, level)])
    k = min(log_s.size, max(SNR_MIN_NEIGHBOURS, int(SNR_NEIGHBOURS * log_s.size)))
    centres = (np.arange(n_knots) + 0.5) / n_knots
    knots = np.unique(np.quantile(log_s, np.r_[0.0, centres, 1.0]))
    thr = np.empty(knots.size)
    for i, x in enumerate(knots):
        near = np.argsort(np.abs(log_s - x), kind="stable")[:k]
        thr[i] = np.quantile(c[near], level)
    return knots, thr


def _rate_by_snr(snr: FloatArray, flag: NDArray[np.bool_], n_bins: int = 4) -> list[dict[str, Any]]:
    """The flag rate in ``n_bins`` equal-count S/N ranges (for the detector's record)."""
    order = np.argsort(snr, kind="stable")
    out = []
    for part in np.array_split(order, n_bins):
        if part.size:
            out.append(
                {
                    "snr_min": float(snr[part].min()),
                    "snr_max": float(snr[part].max()),
                    "n": int(part.size),
                    "false_alarm": float(flag[part].mean()),
                }
            )
    return out
