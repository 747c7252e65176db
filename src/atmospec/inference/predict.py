"""Predict atmospheric parameters of observed spectra with a learned estimator, with intervals."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

from atmospec.errors import AtmospecError, ModelFileError, OutOfGridError
from atmospec.inference.coverage import CoveragePolicy, ModelInput
from atmospec.inference.members import EstimatorMember

if TYPE_CHECKING:
    import pandas as pd
    from astropy.table import Table
    from matplotlib.figure import Figure

    from atmospec.estimators.base import Estimator
    from atmospec.grids import ModelGrid
    from atmospec.inference.engine import Engine
    from atmospec.inference.members import Member
    from atmospec.inference.ood import OODDetector
    from atmospec.inference.selection import SelectionPolicy
    from atmospec.spectrum import Spectrum

__all__ = [
    "predict",
    "Predictor",
    "PredictionResult",
    "ObjectModel",
    "monte_carlo",
    "resolve_model",
    "QUANTILES",
    "RoutedInput",
]

FloatArray = NDArray[np.float64]

QUANTILES: dict[str, float] = {"median": 50.0, "p16": 16.0, "p84": 84.0, "p2.5": 2.5, "p97.5": 97.5}
"""Column suffix -> percentile of the predictive samples."""

SpectrumLike = "Spectrum | str | os.PathLike[str]"

INTERVALS_NOTE = (
    "predictive percentiles of Monte Carlo samples: noisy copies of the spectrum drawn from its "
    "flux errors go through the network (one ensemble member per copy); for sigma heads that "
    "already include measurement noise, each copy adds only the part of the predicted sigma "
    "the noise spread does not explain (law of total variance), so noise is counted once"
)

NPE_INTERVALS_NOTE = (
    "percentiles of joint posterior samples of the neural posterior estimator (a normalizing "
    "flow conditioned on the spectrum and its per-pixel sigma): measurement noise enters "
    "through the conditioning, once; correlations between parameters are kept"
)


# ----------------------------------------------------------------------------- models
def _state_digest(estimator: Estimator) -> str:
    h = hashlib.sha256()
    config, arrays = estimator._get_state()
    for key in sorted(arrays):
        h.update(key.encode())
        h.update(np.ascontiguousarray(arrays[key]).tobytes())
    if estimator.wavelength_ is not None:
        h.update(estimator.wavelength_.tobytes())
    return h.hexdigest()[:10]


def resolve_model(model: Any) -> tuple[Estimator, str]:
    """An estimator and its id from an Estimator, a saved model folder, or a registry name.

    The id is ``meta_["model_id"]`` when the model records one, else
    ``<kind>-<grid>-<sha256 of the weights, 10 hex>`` so that results name the exact weights.
    """
    from atmospec.estimators.base import Estimator, load_estimator

    if isinstance(model, Estimator):
        est = model
    elif isinstance(model, (str, os.PathLike)) and Path(model).exists():
        est = load_estimator(model)
    elif isinstance(model, str):
        est = _from_registry(model)
    else:
        raise TypeError(f"model must be an Estimator, a model folder or a name, not {model!r}")
    if not isinstance(est, Estimator):
        raise ModelFileError(
            f"model {model!r} is a {type(est).__name__}, not a learned estimator; use "
            "atmospec.inference.members.load_member or Predictor for it"
        )
    est._require_fitted()
    mid = est.meta_.get("model_id") or est.meta_.get("name")
    digest = _state_digest(est)
    if not mid:
        mid = f"{est.kind}-{est.meta_.get('grid') or 'nogrid'}"
    return est, f"{mid}-{digest}"


def _from_registry(name: str) -> Estimator:
    try:
        import atmospec.models as registry
    except ModuleNotFoundError as err:
        if err.name != "atmospec.models":
            raise
        raise ModelFileError(
            f"model {name!r}: this build has no registry of pretrained models "
            "(atmospec.models); pass a saved model folder or an Estimator instead"
        ) from None
    for attr in ("load_model", "load", "get_model"):
        loader = getattr(registry, attr, None)
        if callable(loader):
            est = loader(name)
            return est  # type: ignore[no-any-return]
    raise ModelFileError(f"model {name!r}: atmospec.models offers no loader function")


@functools.lru_cache(maxsize=4)
def _load_grid_cached(name: str) -> ModelGrid:
    from atmospec.grids import load_grid

    return load_grid(name).load()


def _resolve_grid(grid: ModelGrid | str | None, default: str) -> ModelGrid | None:
    if grid is None:
        grid = default
        if not grid:
            return None
    if isinstance(grid, str):
        return _load_grid_cached(grid)
    return grid


# ------------------------------------------------------------------------ Monte Carlo
def _spectrum_seed(seed: int, source: str) -> np.random.Generator:
    """A generator per (seed, source): a spectrum's draws do not depend on its batch."""
    return np.random.default_rng(spectrum_seed(seed, source))


def spectrum_seed(seed: int, source: str) -> tuple[int, int]:
    """The seed of one spectrum's draws: ``(seed, crc32(source))``."""
    return (int(seed), zlib.crc32(source.encode("utf-8")))


def monte_carlo(
    estimator: Estimator | Engine,
    flux: FloatArray,
    sigma: FloatArray,
    *,
    draws: int = 1000,
    rngs: Sequence[np.random.Generator] | None = None,
    seeds: Sequence[Sequence[int] | int] | None = None,
    max_rows: int = 65536,
    precision: Literal["float32", "bfloat16"] = "float32",
) -> tuple[NDArray[np.float32], FloatArray, FloatArray | None, NDArray[np.bool_]]:
    """Predictive samples combining measurement noise and model uncertainty.

    For each spectrum, ``draws`` noisy copies ``flux + sigma * N(0, 1)`` (masked bins of
    infinite sigma unchanged) go through the network (one ensemble member per copy, see
    :meth:`~atmospec.inference.engine.Engine.draws`). How the copies combine with the
    estimator's own sigma depends on what that sigma means (:func:`~atmospec.inference.
    engine.sigma_kind`), so that measurement noise is counted once:

    * ``"total"`` (sigma heads trained on noisy spectra and told the noise level: the sigma
      at the observed noise is already the whole predictive spread ``S``): by the law of total
      variance ``S^2 = Var_noise(mean) + E[Var(theta | noisy copy)]``, the spread ``V`` of the
      copies' means estimates the noise part, and each copy adds
      ``sqrt(max(S^2 - V, 0)) * N(0, 1)``. The samples then have variance ``S^2`` (or ``V``
      when the network reacts to noise more than its sigma says), with the shape (skew,
      bounds) the noise propagation gives.
    * ``"epistemic"`` (a sigma without measurement noise): each copy adds its member's
      ``sigma * N(0, 1)`` (noise and model uncertainty are independent and add).
    * ``"none"``: the copies' means alone.

    ``precision="bfloat16"`` runs the noisy copies through a bfloat16 network (faster; see
    :meth:`~atmospec.inference.engine.Engine.draws`). Samples are clipped to the grid bounds.
    At most ``max_rows`` network rows are in memory
    at a time. Each spectrum's draws come from its own seed (``seeds``, or integers drawn
    from ``rngs``), so they do not depend on the batch.

    Returns:
        ``(samples (n, draws, p) float32, point_mean (n, p), point_std (n, p) or None,
        at_bound (n, p))``, the last three for the observed spectra themselves.
    """
    from atmospec.estimators.base import BOUND_TOLERANCE
    from atmospec.inference.engine import Engine
    from atmospec.predictive_tails import standardized_draws

    engine = estimator if isinstance(estimator, Engine) else Engine(estimator)
    flux = np.atleast_2d(flux)
    sigma = np.atleast_2d(sigma)
    n = flux.shape[0]
    if seeds is None:
        if rngs is None:
            raise ValueError("monte_carlo needs seeds= (or rngs=), one per spectrum")
        seeds = [int(g.integers(2**63)) for g in rngs]
    p = len(engine.names)
    lo, hi = engine.lo, engine.hi
    samples = np.empty((n, draws, p), dtype=np.float32)
    point = np.empty((n, p))
    point_std: FloatArray | None = np.empty((n, p))
    kind = engine.kind
    per_call = max(1, max_rows // (draws + 1))
    for start in range(0, n, per_call):
        sl = slice(start, min(start + per_call, n))
        res = engine.draws(
            flux[sl], sigma[sl], n_draws=draws, seeds=list(seeds[sl]), precision=precision
        )
        point[sl] = res.point
        rngs_blk = [
            np.random.default_rng([*_as_list(seeds[i]), 1]) for i in range(sl.start, sl.stop)
        ]
        # The calibrated predictive: Gaussian, or Student-t where the model has heavy tails.
        zs = np.stack([standardized_draws(g, (draws, p), engine.tail_dof) for g in rngs_blk])
        # The engine returns the draws grouped by ensemble member: shuffle them so that any
        # subset of a spectrum's samples is a fair sample of the mixture.
        order = np.stack([g.permutation(draws) for g in rngs_blk])
        draw = np.take_along_axis(res.mean, order[:, :, None], axis=1)
        member_sigma = (
            None if res.sigma is None else np.take_along_axis(res.sigma, order[:, :, None], axis=1)
        )
        if res.point_std is None:
            point_std = None
        else:
            assert point_std is not None
            point_std[sl] = res.point_std
        if kind == "total" and res.point_std is not None:
            v_noise = draw.var(axis=1, dtype=np.float64)
            extra = np.sqrt(np.maximum(res.point_std**2 - v_noise, 0.0)).astype(np.float32)
            draw = draw + extra[:, None, :] * zs
        elif kind == "epistemic" and member_sigma is not None:
            draw = draw + member_sigma * zs
        samples[sl] = np.clip(draw, lo, hi)
    tol = BOUND_TOLERANCE * (hi - lo)
    at_bound = (point <= lo + tol) | (point >= hi - tol)
    return samples, point, point_std, at_bound


def _as_list(seed: Sequence[int] | int) -> list[int]:
    return [int(x) for x in seed] if isinstance(seed, Sequence) else [int(seed)]


# ------------------------------------------------------------------------- results
@dataclass
class ObjectModel:
    """The data of one object over the grid model interpolated at its prediction."""

    wavelength: FloatArray
    flux: FloatArray
    uncertainty: FloatArray
    model_flux: FloatArray
    chi2: float
    dof: int
    point: dict[str, float]
    grid: str
    flux_unit: str = ""

    @property
    def chi2_red(self) -> float:
        return self.chi2 / self.dof


@dataclass
class PredictionResult:
    """Predictions for one or more spectra: samples, percentiles, OOD score, model fit.

    Attributes:
        param_names: parameters, in the column order of ``samples``.
        sources: file path or library key of each spectrum; ``names`` short labels.
        samples: (n_spectra, draws, n_params) predictive samples (noise x model uncertainty).
        point, point_std: the estimator's mean and sigma for the observed spectra.
        at_bound: (n, p) True where the estimate presses on a grid bound.
        ood_score, ood_flag, ood_reason: out-of-distribution score (> 1 flags) and why.
        chi2_red, dof: the grid model at the median prediction against the data pixels
            (flux scale solved; dof = pixels - (parameters + 1)); NaN without a grid.
        fits: per object, the data over that model (for plots), or None.
        model_id: the predictor's id (kind, grid, hash of the weights; ``default:...`` for
            the default selection); ``row_model_ids`` the model that served each row.
        intervals: what the percentiles are (Monte Carlo or posterior samples).
    """

    param_names: tuple[str, ...]
    sources: list[str]
    names: list[str]
    samples: NDArray[np.float32]
    point: FloatArray
    point_std: FloatArray | None
    at_bound: NDArray[np.bool_]
    bounds: dict[str, tuple[float, float]]
    ood_score: FloatArray
    ood_flag: NDArray[np.bool_]
    ood_reason: list[str]
    chi2_red: FloatArray
    dof: NDArray[np.int64]
    fits: list[ObjectModel | None]
    inputs: list[ModelInput]
    model_id: str
    grid: str
    draws: int
    notes: list[list[str]] = field(default_factory=list)
    wall_time_s: float = 0.0
    provenance: dict[str, Any] = field(default_factory=dict)
    row_model_ids: list[str] = field(default_factory=list)
    intervals: str = INTERVALS_NOTE

    def row_model_id(self, i: int) -> str:
        """The model that served row ``i``."""
        return self.row_model_ids[i] if self.row_model_ids else self.model_id

    def __len__(self) -> int:
        return len(self.sources)

    def quantiles(self) -> dict[str, FloatArray]:
        """``"<param>_<suffix>"`` -> (n,) for every percentile of :data:`QUANTILES`."""
        q = np.percentile(self.samples, list(QUANTILES.values()), axis=1)  # (5, n, p)
        out: dict[str, FloatArray] = {}
        for j, p in enumerate(self.param_names):
            for k, suffix in enumerate(QUANTILES):
                out[f"{p}_{suffix}"] = q[k, :, j].astype(np.float64)
        return out

    def table(self) -> Table:
        """One row per spectrum: ``source``, ``<param>_median/_p16/_p84/_p2.5/_p97.5``,
        ``ood_score``, ``ood_flag``, ``chi2_red``, ``model_id``, then ``name``, ``dof``,
        ``ood_reason``, ``<param>_at_bound``, ``masked_fraction``, ``snr`` and ``notes``."""
        from astropy.table import Table

        from atmospec.grids import PARAMETERS

        cols: dict[str, Any] = {"source": list(self.sources)}
        cols.update(self.quantiles())
        cols["ood_score"] = self.ood_score
        cols["ood_flag"] = self.ood_flag
        cols["chi2_red"] = self.chi2_red
        cols["model_id"] = [self.row_model_id(i) for i in range(len(self))]
        cols["name"] = list(self.names)
        cols["dof"] = self.dof
        cols["ood_reason"] = list(self.ood_reason)
        for j, p in enumerate(self.param_names):
            cols[f"{p}_at_bound"] = self.at_bound[:, j]
        cols["masked_fraction"] = [m.masked_fraction for m in self.inputs]
        cols["snr"] = [m.snr for m in self.inputs]
        cols["notes"] = ["; ".join(n) for n in self.notes] if self.notes else [""] * len(self)
        table = Table(cols)
        for p in self.param_names:
            unit = PARAMETERS.get(p, ("", ""))[0]
            if unit == "K":  # dex units stay plain numbers (astropy dex quantities confuse CSV)
                for suffix in QUANTILES:
                    table[f"{p}_{suffix}"].unit = unit
        table.meta["model_id"] = self.model_id
        table.meta["grid"] = self.grid
        table.meta["draws"] = self.draws
        table.meta["bounds"] = {k: list(v) for k, v in self.bounds.items()}
        table.meta["intervals"] = self.intervals
        table.meta["chi2_rule"] = "grid model at the medians, flux scale solved; dof = N - (p + 1)"
        table.meta["provenance"] = self.provenance
        return table

    def samples_frame(self, i: int = 0) -> pd.DataFrame:
        """The samples of spectrum ``i`` as a DataFrame (one column per parameter)."""
        import pandas as pd

        return pd.DataFrame(self.samples[i].astype(np.float64), columns=list(self.param_names))

    def plot(self, i: int = 0) -> Figure:
        """Data of spectrum ``i`` over the grid model at its prediction, with residuals."""
        from atmospec.plots import plot_fit

        fit = self.fits[i]
        if fit is None:
            raise ValueError(
                f"{self.sources[i]}: no grid model for this prediction (no grid known for model "
                f"{self.model_id}, or the estimate lies in a hole of a sparse grid); pass grid="
            )
        label = ", ".join(f"{p}={v:.4g}" for p, v in fit.point.items())
        flag = "  [OUT OF DISTRIBUTION]" if self.ood_flag[i] else ""
        return plot_fit(
            fit.wavelength,
            fit.flux,
            fit.uncertainty,
            fit.model_flux,
            model_label=f"{fit.grid} at the median prediction: {label}",
            data_label=self.names[i],
            title=f"{self.names[i]}: chi2_red = {fit.chi2_red:.2f} (dof {fit.dof}), "
            f"ood_score = {self.ood_score[i]:.2f}{flag}",
            flux_unit=fit.flux_unit,
        )

    def corner(self, i: int = 0) -> Figure:
        """Corner plot of the predictive samples of spectrum ``i``."""
        from atmospec.plots import corner

        return corner(self.samples_frame(i))

    def to_dict(self, i: int) -> dict[str, Any]:
        """A JSON-ready record of spectrum ``i`` (no samples)."""
        row = {k: float(v[i]) for k, v in self.quantiles().items()}
        return {
            "source": self.sources[i],
            "name": self.names[i],
            "model_id": self.row_model_id(i),
            "grid": self.grid,
            "percentiles": row,
            "point": dict(zip(self.param_names, map(float, self.point[i]), strict=True)),
            "ood_score": float(self.ood_score[i]),
            "ood_flag": bool(self.ood_flag[i]),
            "ood_reason": self.ood_reason[i],
            "chi2_red": float(self.chi2_red[i]),
            "dof": int(self.dof[i]),
            "notes": self.notes[i] if self.notes else [],
        }

    def write(self, out: str | os.PathLike[str], *, plots: bool = True) -> list[Path]:
        """Write ``predictions.ecsv`` / ``.csv`` / ``run.json`` and per object
        ``objects/<name>_fit.png`` and ``objects/<name>_corner.png`` (all atomically)."""
        from atmospec._fileio import atomic_path, write_json

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        table = self.table()
        written = []
        with atomic_path(out / "predictions.ecsv") as tmp:
            table.write(tmp, format="ascii.ecsv", overwrite=True)
        written.append(out / "predictions.ecsv")
        with atomic_path(out / "predictions.csv") as tmp:
            table.to_pandas().to_csv(tmp, index=False)
        written.append(out / "predictions.csv")
        written.append(
            write_json(
                out / "run.json",
                {
                    "kind": "predict",
                    "model_id": self.model_id,
                    "grid": self.grid,
                    "draws": self.draws,
                    "n_spectra": len(self),
                    "wall_time_s": self.wall_time_s,
                    "objects": [self.to_dict(i) for i in range(len(self))],
                    "provenance": self.provenance,
                },
            )
        )
        if plots:
            written += write_object_figures(self, out / "objects")
        return written


def object_stem(source: str, name: str) -> str:
    """A file-name-safe stem for an object's figures (name plus a short hash of the source).

    Example:
        >>> object_stem("/data/HD 3651B.fits", "HD 3651B")[:9]
        'HD_3651B-'
    """
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:60] or "spectrum"
    return f"{safe}-{hashlib.sha1(source.encode('utf-8')).hexdigest()[:6]}"


def write_object_figures(result: PredictionResult, folder: Path) -> list[Path]:
    """The fit and corner PNGs of every object of ``result`` (atomic writes)."""
    from atmospec.plots import save_figure

    written = []
    for i in range(len(result)):
        stem = object_stem(result.sources[i], result.names[i])
        if result.fits[i] is not None:
            written.append(save_figure(result.plot(i), folder / f"{stem}_fit.png", dpi=90))
        written.append(save_figure(result.corner(i), folder / f"{stem}_corner.png", dpi=80))
    return written


# ------------------------------------------------------------------------ predictor
def _read(item: Any, policy: CoveragePolicy, **read_options: Any) -> Spectrum:
    """A Spectrum from a Spectrum or a file; ``read_options`` (wave_unit=, err_col= ...) go
    to :func:`atmospec.io.read`, which refuses options the file's format does not take."""
    from atmospec.spectrum import Spectrum

    if isinstance(item, Spectrum):
        return item
    if isinstance(item, (str, os.PathLike)):
        from atmospec.io import read

        path = Path(item)
        if not path.exists():
            from atmospec.errors import DataNotFoundError

            raise DataNotFoundError(f"{path}: no such spectrum file")
        # Files with NaN pixels are read with those pixels masked; the coverage policy then
        # decides (refuse names them; mask masks the model bins they leave empty).
        return read(path, invalid="mask", **read_options)
    raise TypeError(f"expected a Spectrum or a file path, got {type(item).__name__}")


def _point_mapping(grid: ModelGrid, names: tuple[str, ...], values: FloatArray) -> dict[str, float]:
    point = {p: float(v) for p, v in zip(names, values, strict=True) if p in grid.param_names}
    for p in getattr(grid, "categorical", ()) or ():
        if p in point:
            axis = np.asarray(grid.axes[p], dtype=np.float64)
            point[p] = float(axis[np.argmin(np.abs(axis - point[p]))])
    return point


@dataclass
class RoutedInput(ModelInput):
    """A :class:`ModelInput` that records which member of a Predictor serves it."""

    member: str = ""

    @classmethod
    def of(cls, inp: ModelInput, member: str) -> RoutedInput:
        fields = {k: getattr(inp, k) for k in inp.__dataclass_fields__}
        return cls(**fields, member=member)


_ROW_ARRAYS = ("samples", "point", "at_bound", "ood_score", "ood_flag", "chi2_red", "dof")
"""Per-row array fields of :class:`PredictionResult` (first axis: spectra); ``point_std``,
which may be None, is handled apart."""
_ROW_LISTS = ("sources", "names", "ood_reason", "fits", "inputs", "notes", "row_model_ids")
"""Per-row list fields of :class:`PredictionResult`."""


def _subset(res: PredictionResult, idx: Sequence[int]) -> PredictionResult:
    """The rows ``idx`` of a result."""
    ix = list(idx)
    rows: dict[str, Any] = {k: getattr(res, k)[ix] for k in _ROW_ARRAYS}
    rows.update({k: [getattr(res, k)[i] for i in ix] for k in _ROW_LISTS})
    rows["point_std"] = None if res.point_std is None else res.point_std[ix]
    return dataclasses.replace(res, **rows)


def _concat(parts: list[tuple[list[int], PredictionResult]], n: int) -> PredictionResult:
    """Rows of several results put back in their original order (``parts``: positions, rows)."""
    pos = [i for idx, _ in parts for i in idx]
    order = np.argsort(pos, kind="stable")
    assert sorted(pos) == list(range(n))
    results = [r for _, r in parts]
    rows: dict[str, Any] = {
        k: np.concatenate([getattr(r, k) for r in results])[order] for k in _ROW_ARRAYS
    }
    for k in _ROW_LISTS:
        flat = [x for r in results for x in getattr(r, k)]
        rows[k] = [flat[i] for i in order]
    p = len(results[0].param_names)
    stds = [np.full((len(r), p), np.nan) if r.point_std is None else r.point_std for r in results]
    rows["point_std"] = np.concatenate(stds)[order]
    notes = sorted({r.intervals for r in results})
    return dataclasses.replace(results[0], **rows, intervals=" | ".join(notes))


BUNDLE_FILE = "predictor.json"
"""The record of a Predictor saved with several members (see :meth:`Predictor.export_files`)."""


class Predictor:
    """Estimators with their grid and OOD detector, ready to predict many spectra.

    ``model="default"`` runs the selection policy of :data:`atmospec.models.DEFAULT_CHAIN`:
    the neural posterior estimator (``npe_dback24``) serves a spectrum when its shipped
    calibration passes and the spectrum is inside its domain (whole wavelength axis covered,
    S/N inside its trained range, not flagged out of distribution); otherwise the CNN
    (``dback24-spex``) serves it, and the row's ``model_id`` and notes say which and why
    (:class:`~atmospec.inference.selection.SelectionPolicy`). Any other model is used alone.

    Args:
        model: ``"default"``, a registry name (``"dback24-spex"``, ``"npe_dback24"``...), a
            saved model folder (a learned estimator or an NPE), an Estimator or an
            NPEstimator.
        grid: the model grid (or its name) for the chi-square and the model plot; default the
            grid the estimator records in its metadata.
        ood: True (calibrate on first use and cache under the data directory), False, an
            :class:`~atmospec.inference.ood.OODDetector` (single model), or a mapping
            ``{model_id: OODDetector}``.
        draws: samples per spectrum (Monte Carlo draws for a learned estimator, posterior
            draws for an NPE; >= 1,000 recommended).
        coverage: ``"refuse"`` or ``"mask"`` (see :func:`~atmospec.inference.coverage.prepare_input`).
        max_masked_fraction: passed to ``prepare_input``.
        assume_snr: passed to ``prepare_input``.
        seed: base seed; each spectrum's draws use ``(seed, crc32(source))``.
        max_rows: network rows held in memory at a time.
        num_threads: worker threads of the inference :class:`~atmospec.inference.engine.Engine`
            (default ``min(2, cpu count)``).
        precision: ``"float32"`` (default) or ``"bfloat16"`` for the noisy copies (about
            twice as fast on CPUs with bfloat16 instructions; percentiles move by < 1 % of the
            grid range).
    """

    def __init__(
        self,
        model: Any = "default",
        *,
        grid: ModelGrid | str | None = None,
        ood: bool | OODDetector | Mapping[str, OODDetector] = True,
        draws: int = 1000,
        coverage: CoveragePolicy = "refuse",
        max_masked_fraction: float = 0.5,
        assume_snr: float | None = None,
        seed: int = 0,
        max_rows: int = 65536,
        quiet: bool = True,
        num_threads: int | None = None,
        precision: Literal["float32", "bfloat16"] = "float32",
    ) -> None:
        from atmospec.inference.members import load_member

        if draws < 1:
            raise ValueError(f"draws must be >= 1, got {draws}")
        self.precision: Literal["float32", "bfloat16"] = precision
        self.draws = int(draws)
        self.coverage: CoveragePolicy = coverage
        self.max_masked_fraction = max_masked_fraction
        self.assume_snr = assume_snr
        self.seed = seed
        self.max_rows = max_rows
        self.quiet = quiet
        kw: dict[str, Any] = {"num_threads": num_threads, "precision": precision}
        kw["max_rows"] = max_rows
        self.policy: SelectionPolicy | None = None
        self.members: dict[str, Member] = {}
        if isinstance(model, str) and model == "default":
            from atmospec.models import DEFAULT_CHAIN

            self._set_chain(DEFAULT_CHAIN[0], DEFAULT_CHAIN[1], kw)
        elif isinstance(model, (str, os.PathLike)) and (Path(model) / BUNDLE_FILE).is_file():
            import json

            record = json.loads((Path(model) / BUNDLE_FILE).read_text(encoding="utf-8"))
            self._set_chain(
                str(Path(model) / record["primary"]), str(Path(model) / record["fallback"]), kw
            )
        else:
            member = load_member(model, **kw)
            self.members = {member.model_id: member}
        if self.policy is None:
            self.model_id = next(iter(self.members))
        else:
            self.model_id = "default:" + "+".join(self._chain_ids)
        self.grids = {mid: _resolve_grid(grid, m.grid_name) for mid, m in self.members.items()}
        self.detectors: dict[str, OODDetector | None] = {}
        self.ood_notes: dict[str, str] = {}
        for mid, m in self.members.items():
            if ood is True:
                self.detectors[mid] = self._detector(m)
            elif ood is False:
                self.detectors[mid] = None
            elif isinstance(ood, Mapping):
                self.detectors[mid] = ood.get(mid)
                if self.detectors[mid] is None:
                    self.ood_notes[mid] = f"no OOD score: no detector given for {mid}"
            else:
                self.detectors[mid] = ood

    # -- members -----------------------------------------------------------------------
    def _set_chain(self, primary: str, fallback: str, kw: dict[str, Any]) -> None:
        from atmospec.inference.members import NPEMember, load_member
        from atmospec.inference.selection import CalibrationStatus, SelectionPolicy

        back = load_member(fallback, **kw)
        problem = ""
        front: Member | None = None
        try:
            front = load_member(primary, **kw)
        except AtmospecError as err:
            problem = f"cannot be loaded ({err})"
        if front is not None and not isinstance(front, NPEMember):
            raise ModelFileError(f"{primary}: the first model of the chain must be an NPE")
        if front is not None and front.param_names != back.param_names:
            problem = f"its parameters {front.param_names} differ from {back.param_names}"
        if problem or front is None:
            status = CalibrationStatus(False, float("nan"), float("nan"), problem)
            name = Path(primary).name
        else:
            status = front.calibration
            name = front.name
        self.policy = SelectionPolicy(name, back.name, status)
        self._chain_ids = [back.model_id] if front is None else [front.model_id, back.model_id]
        if front is not None and self.policy.primary_usable:
            self.members = {front.model_id: front, back.model_id: back}
            self._primary: Member | None = front
        else:
            self.members = {back.model_id: back}
            self._primary = None
        self._fallback = back
        self._chain_members = {"primary": front, "fallback": back}

    @property
    def _only(self) -> Member:
        return next(iter(self.members.values()))

    @property
    def estimator(self) -> Any:
        """The estimator of the (last) member: the CNN of ``"default"``, else the model."""
        m = list(self.members.values())[-1]
        return m.estimator if isinstance(m, EstimatorMember) else m.npe

    @property
    def engine(self) -> Engine:
        """The inference engine of the learned estimator (not for an NPE alone)."""
        m = list(self.members.values())[-1]
        if not isinstance(m, EstimatorMember):
            raise AttributeError("an NPE predictor has no Monte Carlo engine")
        return m.engine

    @property
    def grid(self) -> ModelGrid | None:
        """The grid of the (last) member."""
        return list(self.grids.values())[-1]

    @property
    def detector(self) -> OODDetector | None:
        """The OOD detector of the (last) member."""
        return list(self.detectors.values())[-1]

    def _detector(self, member: Member) -> OODDetector | None:
        from atmospec.inference.ood import OODDetector, ood_cache_path

        grid = self.grids[member.model_id]
        if grid is None:
            self.ood_notes[member.model_id] = "no OOD score: the model records no grid (pass grid=)"
            return None
        path = ood_cache_path(member.model_id)
        if path.exists():
            try:
                det = OODDetector.load(path)
                if det.wavelength.shape == member.wavelength.shape:
                    return det
            except ModelFileError:
                pass
        if not self.quiet:
            print(
                f"calibrating the OOD score of {member.model_id} on synthetic {grid.name} "
                "spectra (once; cached)"
            )
        det = member.calibrate_ood(grid, self.quiet)
        det.save(path)
        return det

    def export_files(self) -> tuple[dict[str, bytes], dict[str, dict[str, Any]]]:
        """The files that rebuild this predictor elsewhere, and its OOD detectors as records.

        A single model gives its model folder's files; ``"default"`` gives a folder with one
        sub-folder per member and :data:`BUNDLE_FILE` (``Predictor(folder)`` rebuilds the
        same selection, from the same shipped calibration).
        """
        dets = {mid: det.to_dict() for mid, det in self.detectors.items() if det is not None}
        if self.policy is None:
            return self._only.files(), dets
        import json

        files: dict[str, bytes] = {}
        record = {"format": "atmospec-predictor", "primary": "primary", "fallback": "fallback"}
        for role, member in self._chain_members.items():
            if member is None:
                continue
            for name, blob in member.files().items():
                files[f"{role}/{name}"] = blob
        files[BUNDLE_FILE] = json.dumps(record).encode()
        return files, dets

    # -- preparing ---------------------------------------------------------------------
    def _prepare_for(self, member: Member, spectrum: Spectrum) -> ModelInput:
        return member.prepare(spectrum, self.coverage, self.max_masked_fraction, self.assume_snr)

    def prepare(self, spectrum: Spectrum) -> ModelInput:
        """The spectrum on the axis of the model that will serve it, under the coverage
        policy (with ``"default"``, the routing decision is made here and noted)."""
        from atmospec.errors import InvalidSpectrumError
        from atmospec.sanity import check_spectrum

        check_spectrum(spectrum)  # refused before routing: no member could answer it
        if self.policy is None:
            member = self._only
            inp = self._prepare_for(member, spectrum)
            problem = member.domain_problem(inp)
            if problem:
                raise InvalidSpectrumError(
                    f"{inp.source}: {problem}; it would be extrapolation. Use --model default "
                    "(falls back to the CNN for such spectra) or a learned estimator "
                    "(--model dback24-spex)"
                )
            return RoutedInput.of(inp, member.model_id)
        reason = self.policy.gate_problem()
        if not reason and self._primary is not None:
            try:
                inp = self._prepare_for(self._primary, spectrum)
                reason = self._primary.domain_problem(inp)
            except AtmospecError as err:
                reason = str(err)
            if not reason:
                routed = RoutedInput.of(inp, self._primary.model_id)
                routed.notes.append(self.policy.primary_note())
                return routed
        routed = RoutedInput.of(
            self._prepare_for(self._fallback, spectrum), self._fallback.model_id
        )
        routed.notes.append(self.policy.fallback_note(reason))
        return routed

    def _object_model(
        self, member: Member, inp: ModelInput, median: FloatArray
    ) -> ObjectModel | None:
        from atmospec.inference.chi2 import chi2_with_scale
        from atmospec.inference.fit import prepare
        from atmospec.transforms import bin_edges

        grid = self.grids[member.model_id]
        if grid is None:
            return None
        names = member.param_names
        point = _point_mapping(grid, names, median)
        spec = inp.spectrum
        assert spec is not None
        edges = bin_edges(member.wavelength)
        try:
            data = prepare(spec, grid, coverage="mask", wave_range=(edges[0], edges[-1]))
            native = grid.interpolate(point)
        except OutOfGridError:
            return None
        model = data.model(native)
        chi2, scale = chi2_with_scale(model, data.flux, data.uncertainty)
        return ObjectModel(
            wavelength=data.wavelength,
            flux=data.flux,
            uncertainty=data.uncertainty,
            model_flux=scale[0] * model,
            chi2=float(chi2[0]),
            dof=max(data.n_pix - (len(names) + 1), 1),
            point=point,
            grid=grid.name,
            flux_unit=data.flux_unit,
        )

    # -- predicting --------------------------------------------------------------------
    def predict(self, spectra: Any) -> PredictionResult:
        """Predict one spectrum or a list (Spectrum objects or file paths)."""
        from atmospec.inference.ood import grid_model_on_axis

        t0 = time.perf_counter()
        items = spectra if isinstance(spectra, (list, tuple)) else [spectra]
        inputs = [self.prepare(_read(s, self.coverage)) for s in items]
        return self.predict_inputs(
            inputs,
            t0=t0,
            provenance_record=self._provenance(),
            grid_model_fn=grid_model_on_axis,
        )

    def _provenance(self) -> dict[str, Any]:
        from atmospec._fileio import provenance

        return provenance(
            seed=self.seed,
            grid=self.grid.name if self.grid else None,
            job="atmospec predict",
            model_id=self.model_id,
            draws=self.draws,
            coverage=self.coverage,
            selection=None if self.policy is None else self.policy.to_dict(),
        )

    def _member_of(self, inp: ModelInput) -> str:
        mid = getattr(inp, "member", "")
        if mid in self.members:
            return str(mid)
        for m_id, m in self.members.items():  # a plain ModelInput: the member of its axis
            if m.wavelength.shape == inp.flux.shape:
                return m_id
        raise ValueError(f"{inp.source}: prepared for none of the models of this predictor")

    def predict_inputs(
        self,
        inputs: list[ModelInput],
        *,
        t0: float | None = None,
        provenance_record: dict[str, Any] | None = None,
        grid_model_fn: Any = None,
    ) -> PredictionResult:
        """Predict spectra already put on the model axis by :meth:`prepare`.

        With ``"default"``, spectra the NPE served but its OOD score flags (outside its grid
        or unlike its training spectra) are predicted again by the fallback, noted.
        """
        t0 = time.perf_counter() if t0 is None else t0
        groups: dict[str, list[int]] = {mid: [] for mid in self.members}
        for i, inp in enumerate(inputs):
            groups[self._member_of(inp)].append(i)
        parts: list[tuple[list[int], PredictionResult]] = []
        todo = list(inputs)
        if self.policy is not None and self._primary is not None:
            pid = self._primary.model_id
            idx = groups.pop(pid)
            if idx:
                res = self._run(self._primary, [todo[i] for i in idx], grid_model_fn)
                keep = [k for k in range(len(idx)) if not res.ood_flag[k]]
                if len(keep) < len(idx):
                    keep = self._reroute(res, idx, keep, todo, groups)
                if keep:
                    parts.append(([idx[k] for k in keep], _subset(res, keep)))
        for mid, idx in groups.items():
            if idx:
                parts.append(
                    (idx, self._run(self.members[mid], [todo[i] for i in idx], grid_model_fn))
                )
        if not parts:
            parts.append(([], self._run(self._only, [], grid_model_fn)))
        result = parts[0][1] if len(parts) == 1 else _concat(parts, len(inputs))
        result.model_id = self.model_id
        result.wall_time_s = time.perf_counter() - t0
        result.provenance = provenance_record or {}
        return result

    def _reroute(
        self,
        res: PredictionResult,
        idx: list[int],
        keep: list[int],
        todo: list[ModelInput],
        groups: dict[str, list[int]],
    ) -> list[int]:
        """Send NPE rows its OOD score flags to the fallback; returns the NPE rows kept."""
        assert self.policy is not None
        kept = list(keep)
        for k in range(len(idx)):
            if k in keep:
                continue
            i = idx[k]
            spec = todo[i].spectrum
            reason = (
                f"out-of-distribution for {self.policy.primary} (ood_score "
                f"{res.ood_score[k]:.2f} > 1: {res.ood_reason[k]}; outside its grid or unlike "
                "its training spectra)"
            )
            try:
                assert spec is not None
                new = RoutedInput.of(
                    self._prepare_for(self._fallback, spec), self._fallback.model_id
                )
            except AtmospecError as err:
                res.notes[k].append(f"{reason}; the fallback cannot take it either ({err})")
                kept.append(k)
                continue
            new.notes.append(self.policy.fallback_note(reason))
            todo[i] = new
            groups[self._fallback.model_id].append(i)
        groups[self._fallback.model_id].sort()
        return sorted(kept)

    def _run(
        self, member: Member, inputs: list[ModelInput], grid_model_fn: Any
    ) -> PredictionResult:
        """Predict ``inputs`` (all on ``member``'s axis) with one member."""
        from atmospec.inference.members import NPEMember
        from atmospec.inference.ood import grid_model_on_axis

        mid = member.model_id
        names = member.param_names
        n = len(inputs)
        flux = np.array([m.flux for m in inputs]).reshape(n, -1)
        sigma = np.array([m.sigma for m in inputs]).reshape(n, -1)
        seeds = [spectrum_seed(self.seed, m.source) for m in inputs]
        if n:
            samples, point, point_std, at_bound = member.draw(flux, sigma, seeds, self.draws)
        else:
            p = len(names)
            samples = np.zeros((0, self.draws, p), dtype=np.float32)
            point, point_std = np.zeros((0, p)), None
            at_bound = np.zeros((0, p), dtype=bool)
        median = np.median(samples, axis=1).astype(np.float64)
        fits = [self._object_model(member, m, median[i]) for i, m in enumerate(inputs)]
        chi2_red = np.array([f.chi2_red if f else np.nan for f in fits])
        dof = np.array([f.dof if f else 0 for f in fits], dtype=np.int64)
        notes = [list(m.notes) for m in inputs]
        detector = self.detectors.get(mid)
        grid = self.grids[mid]
        if detector is not None and grid is not None and n:
            fn = grid_model_fn or grid_model_on_axis
            gm = fn(grid, point, names, member.wavelength)
            raw = detector.raw_scores(flux, sigma, point, point_std, gm)
            score, flag, reasons = detector.score(raw)
        else:
            score = np.full(n, np.nan)
            flag = np.zeros(n, dtype=bool)
            reasons = [""] * n
            if self.ood_notes.get(mid):
                for nt in notes:
                    nt.append(self.ood_notes[mid])
        for i in range(n):
            hit = [p for j, p in enumerate(names) if at_bound[i, j]]
            if hit:
                notes[i].append(
                    "estimate presses the grid bound of "
                    + ", ".join(hit)
                    + " (the truth may lie beyond the grid: read it as a limit)"
                )
        return PredictionResult(
            param_names=tuple(names),
            sources=[m.source for m in inputs],
            names=[m.name for m in inputs],
            samples=samples,
            point=point,
            point_std=point_std,
            at_bound=at_bound,
            bounds=dict(member.bounds),
            ood_score=score,
            ood_flag=flag,
            ood_reason=reasons,
            chi2_red=chi2_red,
            dof=dof,
            fits=fits,
            inputs=inputs,
            model_id=mid,
            grid=grid.name if grid is not None else "",
            draws=self.draws,
            notes=notes,
            row_model_ids=[mid] * n,
            intervals=NPE_INTERVALS_NOTE if isinstance(member, NPEMember) else INTERVALS_NOTE,
        )


def predict(
    spectra: Any,
    model: Any = "default",
    *,
    grid: ModelGrid | str | None = None,
    draws: int = 1000,
    coverage: CoveragePolicy = "refuse",
    max_masked_fraction: float = 0.5,
    assume_snr: float | None = None,
    ood: bool | OODDetector = True,
    seed: int = 0,
    quiet: bool = True,
) -> PredictionResult:
    """Predict atmospheric parameters of observed spectra, with predictive intervals.

    Each spectrum is checked (units, errors, wavelength coverage under the ``coverage``
    policy: refuse, or mask; NaN never reaches the network), resampled onto the model's axis
    and normalised. ``draws`` noisy copies drawn from its flux errors go through the
    estimator in one batched call; each contributes one sample of the estimator's calibrated
    predictive (sigma heads, ensembles; Student-t where the model's held-out errors are
    heavy-tailed), so the percentiles combine measurement noise and model uncertainty. The
    grid model at the medians gives ``chi2_red`` and the plot; a calibrated score flags
    spectra unlike anything the model learned.

    Args:
        spectra: a Spectrum, a file path, or a list of them.
        model: an Estimator, a saved model folder, or a registry name.
        grid: the model grid; default the grid the model was trained on.
        draws: Monte Carlo draws per spectrum.
        coverage: ``"refuse"`` (default) or ``"mask"``.
        max_masked_fraction: with ``"mask"``, the largest fraction of the axis to mask.
        assume_snr: constant S/N to assume for spectra without errors.
        ood: compute the OOD score (calibrated once per model, cached), or a detector.
        seed: random seed (per spectrum: ``(seed, crc32(source))``).
        quiet: no messages.

    Returns:
        A :class:`PredictionResult`: ``.table()``, ``.samples``, ``.plot()``, ``.corner()``,
        ``.write(folder)``.

    Example:
        >>> import atmospec
        >>> result = atmospec.predict("HD3651B.fits")  # doctest: +SKIP
        >>> result.table()["teff_median", "teff_p16", "teff_p84", "ood_flag"]  # doctest: +SKIP
    """
    predictor = Predictor(
        model,
        grid=grid,
        ood=ood,
        draws=draws,
        coverage=coverage,
        max_masked_fraction=max_masked_fraction,
        assume_snr=assume_snr,
        seed=seed,
        quiet=quiet,
    )
    return predictor.predict(spectra)
