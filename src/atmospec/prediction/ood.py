"""Out-of-distribution score: is a spectrum unlike anything the estimator learned?"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from atmospec.errors import ModelFileError
from atmospec.posteriors.degrade import noise_snr_rows

if TYPE_CHECKING:
    from atmospec.grids import ModelGrid

__all__ = [
    "OODDetector",
    "COMPONENTS",
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
_VERSION = 2  # 2: the threshold depends on S/N (1: one threshold, still read)


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
    rows outside the grid (its bounds, or a sparse grid's populated hull) are NaN.

    Example:
        >>> import pathlib, tempfile
        >>> from atmospec.grids import ModelGrid
        >>> path, wave = pathlib.Path(tempfile.mkdtemp()) / "toy.h5", np.linspace(1.0, 2.0, 5)
        >>> with ModelGrid.create(path, wave, ("teff",), name="toy") as w:
        ...     for t in (1000.0, 2000.0):
        ...         w.add({"teff": t}, np.full(5, t))
        >>> points = [[1000.0], [1500.0], [3000.0]]  # the last outside the grid
        >>> out = grid_model_on_axis(ModelGrid(path), points, ("teff",), np.array([1.25, 1.75]))
        >>> out.round(1).tolist()  # interpolation is linear in log flux
        [[1000.0, 1000.0], [1414.2, 1414.2], [nan, nan]]
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
    ``max(-log10 p)`` divided by the threshold exceeded by ``1 - level`` of the reference
    spectra *of the same S/N*. ``ood_score > 1`` raises the flag; ``false_alarm`` is the flag
    rate measured on a further held-out in-grid set (target <= 5 %), and
    ``meta["false_alarm_by_snr"]`` the same per S/N range.

    Why a threshold per S/N: model error (the mismatch the references carry) grows against
    the noise as S/N rises, so the residual and grid chi-square scores of in-domain spectra
    grow with it. One threshold over all S/N then flags the in-domain spectra of high S/N far
    more often than ``1 - level`` (an NPE trained with model error: 2-4 % below S/N 20,
    13-18 % at S/N 20-30) and those of low S/N less. ``snr_knots`` (log10 S/N) and
    ``snr_threshold`` give the threshold at each S/N (linear in log S/N between the knots,
    constant beyond them); a record without them (format version 1) uses ``threshold``
    everywhere.

    Build one with :func:`~atmospec.prediction.ood_calibration.calibrate_ood`; save and load
    it as JSON (no pickle).

    Example:
        >>> ref = {k: np.linspace(0.0, 1.0, 99) for k in COMPONENTS}  # in-grid raw scores
        >>> det = OODDetector(np.arange(4.0), ("t",), {"t": (0.0, 1.0)}, np.ones(4),
        ...                   np.array([[0.5, 0.5, -0.5, -0.5]]), np.array([0.01]), 0.0, ref,
        ...                   threshold=1.5, level=0.96, false_alarm=0.04)
        >>> flux = np.array([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 3.0, 3.0]])
        >>> raw = det.raw_scores(flux, np.full((2, 4), 0.1), [[0.5], [0.5]], [[0.1], [0.1]])
        >>> raw["pca_distance"].round(3).tolist()
        [0.0, 10.0]
        >>> score, flag, reasons = det.score(raw)
        >>> score.round(3).tolist(), flag.tolist(), reasons
        ([0.003, 1.333], [False, True], ['', 'pca_distance'])
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
    snr_knots: FloatArray = field(default_factory=lambda: np.zeros(0))
    snr_threshold: FloatArray = field(default_factory=lambda: np.zeros(0))

    @property
    def snr_conditional(self) -> bool:
        """Whether the threshold depends on S/N (calibrated by this version of atmospec)."""
        return bool(self.snr_knots.size)

    def threshold_at(self, snr: ArrayLike) -> FloatArray:
        """The threshold on ``max(-log10 p)`` at each S/N (``threshold`` where not known).

        Example:
            >>> det = OODDetector(np.zeros(1), ("t",), {}, np.zeros(1), np.zeros((0, 1)),
            ...     np.zeros(0), 0.02, {}, 2.0, 0.96, 0.04,
            ...     snr_knots=np.log10([10.0, 100.0]), snr_threshold=np.array([2.0, 3.0]))
            >>> det.threshold_at([5.0, 31.6, 300.0]).round(2).tolist()
            [2.0, 2.5, 3.0]
        """
        s = np.atleast_1d(np.asarray(snr, dtype=np.float64))
        if not self.snr_conditional:
            return np.full(s.shape, self.threshold)
        log_s = np.log10(np.clip(np.where(np.isfinite(s), s, 1.0), 1e-3, None))
        return np.interp(log_s, self.snr_knots, self.snr_threshold)

    # -- raw scores --------------------------------------------------------------------
    def raw_scores(
        self,
        flux: ArrayLike,
        sigma: ArrayLike,
        mean: ArrayLike,
        std: ArrayLike | None,
        grid_model: ArrayLike | None = None,
    ) -> dict[str, FloatArray]:
        """The raw component scores of spectra on the model axis, and their S/N (``"snr"``,
        :func:`~atmospec.posteriors.degrade.noise_snr_rows` over the unmasked bins), which
        :meth:`score` reads its threshold at.

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
            "snr": noise_snr_rows(f, s),
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
        """``(ood_score, ood_flag, reasons)``: score > 1 flags; reasons name the components.

        The threshold is read at ``raw["snr"]`` (the constant ``threshold`` without it)."""
        t = self.tail_log10(raw)
        snr = raw.get("snr")
        thr = self.threshold_at(snr) if snr is not None else np.full(t.shape[0], self.threshold)
        score = t.max(axis=1) / thr
        flag = score > 1.0
        reasons = []
        for row, fl, th in zip(t, flag, thr, strict=True):
            if not fl:
                reasons.append("")
                continue
            hits = [COMPONENTS[j] for j in np.flatnonzero(row > th)]
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
            "snr_knots": self.snr_knots.tolist(),
            "snr_threshold": self.snr_threshold.tolist(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> OODDetector:
        if d.get("format") != _FORMAT or d.get("version") not in (1, _VERSION):
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
                snr_knots=np.asarray(d.get("snr_knots", []), dtype=np.float64),
                snr_threshold=np.asarray(d.get("snr_threshold", []), dtype=np.float64),
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
    """Where the OOD calibration of a model is cached (under the atmospec data directory).

    Example:
        >>> path = ood_cache_path("cnn/dback24 v2")
        >>> path.parent.name, path.name
        ('ood', 'cnn_dback24_v2.json')
    """
    from atmospec.data import data_dir

    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in model_id)
    return data_dir() / "ood" / f"{safe}.json"
