"""Out-of-distribution score: is a spectrum unlike anything the estimator learned?"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from atmospec.errors import ModelFileError

if TYPE_CHECKING:
    from atmospec.estimators.base import Estimator
    from atmospec.grids import ModelGrid

__all__ = [
    "fit_detector",
    "OODDetector",
    "COMPONENTS",
    "calibrate_ood",
    "grid_model_on_axis",
    "ood_cache_path",
]

log = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]

COMPONENTS: tuple[str, ...] = ("pca_distance", "pca_residual", "grid_chi2", "bound_pressure")
"""The four raw scores, each turned into a tail probability against in-grid synthetic spectra:

* ``pca_distance``: Mahalanobis distance of the spectrum's coefficients in the principal
  components of the training-like spectra (input-PCA space): far from every spectrum the
  model learned.
* ``pca_residual``: reduced chi-square of what those components cannot reproduce (noise plus a
  systematic floor): a shape the grid never produces.
* ``grid_chi2``: reduced chi-square of the grid model interpolated at the estimate (flux scale
  solved, same floor): no grid spectrum near the estimate fits.
* ``bound_pressure``: the largest probability mass, over parameters, that the estimator's
  Gaussian puts beyond a grid bound: the estimate leans on the edge of the grid.
"""

_FORMAT = "atmospec-ood-detector"
_VERSION = 1


def _weighted_pca_fit(
    flux: FloatArray, sigma: FloatArray, comps: FloatArray, mean: FloatArray, floor: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Coefficients, residuals and weights of each spectrum on the components (masked bins of
    infinite sigma get zero weight)."""
    w = 1.0 / (sigma**2 + (floor * np.abs(flux)) ** 2)
    w = np.where(np.isfinite(sigma), w, 0.0)
    d = flux - mean
    a_mat = np.einsum("kw,nw,jw->nkj", comps, w, comps)
    b_vec = np.einsum("kw,nw->nk", comps, w * d)
    a_mat += 1e-9 * np.eye(comps.shape[0])[None]
    coef = np.linalg.solve(a_mat, b_vec[..., None])[..., 0]
    resid = d - coef @ comps
    return coef, resid, w


def grid_model_on_axis(
    grid: ModelGrid, points: FloatArray, param_names: tuple[str, ...], wavelength: FloatArray
) -> FloatArray:
    """Grid spectra interpolated at ``points`` (n, p in ``param_names``) on ``wavelength``.

    Categorical parameters are rounded to the nearest allowed value, tied parameters filled;
    rows outside a sparse grid's populated hull are NaN.
    """
    from atmospec.transforms import resampling_matrix

    pts = np.atleast_2d(np.asarray(points, dtype=np.float64))
    full = np.full((pts.shape[0], len(grid.param_names)), np.nan)
    for j, p in enumerate(param_names):
        if p in grid.param_names:
            full[:, grid.param_names.index(p)] = pts[:, j]
    for p in getattr(grid, "categorical", ()) or ():
        c = grid.param_names.index(p)
        axis = np.asarray(grid.axes[p], dtype=np.float64)
        full[:, c] = axis[np.argmin(np.abs(full[:, c, None] - axis[None, :]), axis=1)]
    out = np.full((pts.shape[0], wavelength.size), np.nan)
    if np.isnan(full).any():
        # Tied parameters (BT-Settl alpha) are filled by the grid from a mapping, one by one.
        rows = []
        for r in full:
            point = {
                p: float(v) for p, v in zip(grid.param_names, r, strict=True) if np.isfinite(v)
            }
            rows.append(point)
        inside = np.array([bool(grid.contains(pt)[0]) for pt in rows])
        native = [grid.interpolate(pt) if ok else None for pt, ok in zip(rows, inside, strict=True)]
        native_arr = np.array([n for n in native if n is not None])
    else:
        inside = np.asarray(grid.contains(full), dtype=bool)
        native_arr = grid.interpolate(full[inside]) if inside.any() else np.zeros((0, 1))
    if inside.any():
        mat, _ = resampling_matrix(wavelength, grid.wavelength)
        out[inside] = np.asarray((mat @ np.atleast_2d(native_arr).T).T)
    return out


def _grid_chi2(
    flux: FloatArray, sigma: FloatArray, model: FloatArray, floor: float, n_par: int
) -> FloatArray:
    """Reduced chi-square per row with the flux scale solved, a relative floor, masked bins out."""
    var = sigma**2 + (floor * np.abs(flux)) ** 2
    w = np.where(np.isfinite(sigma), 1.0 / var, 0.0)
    m = np.nan_to_num(model, nan=0.0)
    a = np.sum(w * m * m, axis=1)
    s = np.sum(w * m * flux, axis=1) / np.where(a > 0, a, 1.0)
    chi2 = np.sum(w * (flux - s[:, None] * m) ** 2, axis=1)
    dof = np.maximum(np.sum(w > 0, axis=1) - n_par - 1, 1)
    out = chi2 / dof
    return np.where(np.isnan(model).any(axis=1), np.nan, out)


def _bound_pressure(
    mean: FloatArray,
    std: FloatArray | None,
    bounds: Mapping[str, tuple[float, float]],
    names: tuple[str, ...],
    skip: tuple[str, ...] = (),
) -> FloatArray:
    from scipy.stats import norm

    if std is None:
        return np.zeros(mean.shape[0])
    lo = np.array([bounds[p][0] for p in names])
    hi = np.array([bounds[p][1] for p in names])
    s = np.maximum(std, 1e-12)
    mass = norm.cdf((lo - mean) / s) + norm.sf((hi - mean) / s)
    keep = np.array([p not in skip for p in names])
    return mass[:, keep].max(axis=1) if keep.any() else np.zeros(mean.shape[0])


@dataclass
class OODDetector:
    """A calibrated out-of-distribution score for one estimator on one grid.

    Each of the :data:`COMPONENTS` is converted into a tail probability ``p`` against the
    same score on held-out in-grid synthetic spectra (the reference set); the combined score is
    ``max(-log10 p)`` divided by ``threshold``, the value exceeded by ``1 - level`` of those
    reference spectra. ``ood_score > 1`` raises the flag; ``false_alarm`` is the flag rate
    measured on a further held-out in-grid set (target <= 5 %).

    Build one with :func:`calibrate_ood`; save and load it as JSON (no pickle).
    """

    wavelength: FloatArray
    param_names: tuple[str, ...]
    bounds: dict[str, tuple[float, float]]
    mean: FloatArray
    components: FloatArray
    variances: FloatArray
    floor: float
    reference: dict[str, FloatArray]
    threshold: float
    level: float
    false_alarm: float
    grid: str = ""
    categorical: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    # -- raw scores --------------------------------------------------------------------
    def raw_scores(
        self,
        flux: ArrayLike,
        sigma: ArrayLike,
        mean: ArrayLike,
        std: ArrayLike | None,
        grid_model: ArrayLike | None = None,
    ) -> dict[str, FloatArray]:
        """The raw component scores of spectra on the model axis.

        Args:
            flux: (n, n_wave) flux (any scale).
            sigma: (n, n_wave) 1-sigma errors (inf = masked bin).
            mean: (n, p) the estimator's predictive mean.
            std: (n, p) the estimator's predictive sigma (None for point estimators).
            grid_model: (n, n_wave) grid spectra at the estimates on this axis (NaN rows when
                not computable); None leaves ``grid_chi2`` out (NaN).
        """
        f = np.atleast_2d(np.asarray(flux, dtype=np.float64))
        s = np.atleast_2d(np.asarray(sigma, dtype=np.float64))
        good = np.isfinite(s)
        med = np.array([np.median(row[g]) for row, g in zip(f, good, strict=True)])[:, None]
        fn, sn = f / med, s / med
        coef, resid, w = _weighted_pca_fit(fn, sn, self.components, self.mean, self.floor)
        k = self.components.shape[0]
        dof = np.maximum(good.sum(axis=1) - k, 1)
        out = {
            "pca_distance": np.sqrt(np.sum(coef**2 / self.variances, axis=1)),
            "pca_residual": np.sum(w * resid**2, axis=1) / dof,
            "grid_chi2": np.full(f.shape[0], np.nan),
            "bound_pressure": _bound_pressure(
                np.atleast_2d(np.asarray(mean, dtype=np.float64)),
                None if std is None else np.atleast_2d(np.asarray(std, dtype=np.float64)),
                self.bounds,
                self.param_names,
                self.categorical,
            ),
        }
        if grid_model is not None:
            out["grid_chi2"] = _grid_chi2(
                fn,
                sn,
                np.atleast_2d(np.asarray(grid_model, dtype=np.float64)) / med,
                self.floor,
                len(self.param_names),
            )
        return out

    def tail_log10(self, raw: Mapping[str, FloatArray]) -> FloatArray:
        """(n, 4) ``-log10`` tail probabilities of each component (0 where not computable)."""
        cols = []
        for name in COMPONENTS:
            ref = self.reference[name]
            x = np.asarray(raw[name], dtype=np.float64)
            n_above = ref.size - np.searchsorted(ref, x, side="left")
            p = (n_above + 1.0) / (ref.size + 1.0)
            cols.append(np.where(np.isfinite(x), -np.log10(p), 0.0))
        return np.stack(cols, axis=1)

    def score(
        self, raw: Mapping[str, FloatArray]
    ) -> tuple[FloatArray, NDArray[np.bool_], list[str]]:
        """``(ood_score, ood_flag, reasons)``: score > 1 flags; reasons name the components."""
        t = self.tail_log10(raw)
        score = t.max(axis=1) / self.threshold
        flag = score > 1.0
        reasons = []
        for row, fl in zip(t, flag, strict=True):
            if not fl:
                reasons.append("")
                continue
            hits = [COMPONENTS[j] for j in np.flatnonzero(row > self.threshold)]
            reasons.append(",".join(hits))
        return score, flag, reasons

    # -- persistence -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "wavelength": self.wavelength.tolist(),
            "param_names": list(self.param_names),
            "bounds": {k: list(v) for k, v in self.bounds.items()},
            "mean": self.mean.tolist(),
            "components": self.components.tolist(),
            "variances": self.variances.tolist(),
            "floor": self.floor,
            "reference": {k: v.tolist() for k, v in self.reference.items()},
            "threshold": self.threshold,
            "level": self.level,
            "false_alarm": self.false_alarm,
            "grid": self.grid,
            "categorical": list(self.categorical),
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> OODDetector:
        if d.get("format") != _FORMAT or d.get("version") != _VERSION:
            raise ModelFileError("not an atmospec OOD detector record (format/version)")
        try:
            return cls(
                wavelength=np.asarray(d["wavelength"], dtype=np.float64),
                param_names=tuple(d["param_names"]),
                bounds={k: (float(v[0]), float(v[1])) for k, v in d["bounds"].items()},
                mean=np.asarray(d["mean"], dtype=np.float64),
                components=np.asarray(d["components"], dtype=np.float64),
                variances=np.asarray(d["variances"], dtype=np.float64),
                floor=float(d["floor"]),
                reference={k: np.asarray(v, dtype=np.float64) for k, v in d["reference"].items()},
                threshold=float(d["threshold"]),
                level=float(d["level"]),
                false_alarm=float(d["false_alarm"]),
                grid=str(d.get("grid", "")),
                categorical=tuple(d.get("categorical", ())),
                meta=dict(d.get("meta", {})),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ModelFileError(f"OOD detector record is incomplete ({err})") from None

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the detector as JSON, atomically."""
        from atmospec._fileio import write_json

        return write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> OODDetector:
        """Read a detector written by :meth:`save`."""
        import json

        try:
            record = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ModelFileError(f"{path}: unreadable OOD detector ({err})") from None
        return cls.from_dict(record)


def ood_cache_path(model_id: str) -> Path:
    """Where the OOD calibration of a model is cached (under the atmospec data directory)."""
    from atmospec.data import data_dir

    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in model_id)
    return data_dir() / "ood" / f"{safe}.json"


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
    threshold (exceeded by ``1 - level`` of them), 20 % are held out to measure the false
    alarm rate. ``floor`` is the relative systematic error added in quadrature in the
    residual and chi-square scores.

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
    estimate and spread (a network's mean and sigma, or a posterior's mean and sd)."""
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
    det.reference = {c: np.sort(v[np.isfinite(v)]) for c, v in raw_b.items()}
    combined = det.tail_log10(raw_b).max(axis=1)
    det.threshold = float(np.quantile(combined, level))
    _, flag_c, _ = det.score(raw_for(part_c))
    det.false_alarm = float(flag_c.mean())
    det.meta = {
        **meta,
        "n_pca_fit": int(n_a),
        "n_reference": int(n_b - n_a),
        "n_held_out": int(part_c.size),
    }
    return det
