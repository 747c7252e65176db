"""The result of a prediction: samples, percentiles, OOD score, model fit; its table and files."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from atmospec.prediction.objectfit import ObjectModel

if TYPE_CHECKING:
    import pandas as pd
    from astropy.table import Table
    from matplotlib.figure import Figure

    from atmospec.prediction.coverage import ModelInput

__all__ = [
    "PredictionResult",
    "ObjectModel",
    "QUANTILES",
    "INTERVALS_NOTE",
    "NPE_INTERVALS_NOTE",
    "object_stem",
    "write_object_figures",
    "subset_rows",
    "concat_rows",
]

FloatArray = NDArray[np.float64]

QUANTILES: dict[str, float] = {"median": 50.0, "p16": 16.0, "p84": 84.0, "p2.5": 2.5, "p97.5": 97.5}
"""Column suffix -> percentile of the predictive samples."""

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


def interval_scope(meta: dict[str, Any], kind: str) -> str:
    """What a learned model's intervals hold of the model error real spectra carry, from its
    record: the model of mismatch its training spectra were given realisations of (a CNN's
    ``recipe``, an NPE's ``config``), or none.

    Example:
        >>> interval_scope({"recipe": {"discrepancy": "dback24-spex"}}, "cnn")[:54]
        "the model's training spectra carried model error (dbac"
        >>> interval_scope({"recipe": {}}, "cnn")[:52]
        "the model's training spectra were exact grid spectra"
    """
    from atmospec.training.discrepancy_augment import model_error_spec

    record = meta.get("config") if kind == "npe" else meta.get("recipe")
    spec = model_error_spec(record)
    if spec is None:
        return (
            "the model's training spectra were exact grid spectra: the intervals leave out model "
            "error, which on real spectra is larger than photon noise (the default model "
            "includes it)"
        )
    return (
        f"the model's training spectra carried model error ({spec[0]}, learned from real "
        "spectra), so the intervals include that grid's; not the spread between grids or the "
        "error they share (the default `predict`, with its grids, holds both)"
    )


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

    Example:
        >>> from atmospec.estimators.baselines import RandomForestEstimator
        >>> from atmospec.prediction.predictor import Predictor
        >>> from atmospec.spectrum import Spectrum
        >>> rng = np.random.default_rng(0)
        >>> wave = np.linspace(1.0, 2.0, 12); t = rng.uniform(0, 1, (60, 1))
        >>> rf = RandomForestEstimator(n_estimators=3).fit(1 + t * wave, t, wavelength=wave,
        ...                                                param_names=["t"])
        >>> spectra = [Spectrum(wave, 1 + a * wave, np.full(12, 0.02), name=n)
        ...            for a, n in ((0.2, "a"), (0.8, "b"))]
        >>> res = Predictor(rf, ood=False, draws=50).predict(spectra)  # no grid, no OOD
        >>> len(res), res.samples.shape, res.quantiles()["t_median"].round(1).tolist()
        (2, (2, 50, 1), [0.2, 0.8])
        >>> res.table().colnames[:4], res.to_dict(1)["name"]
        (['source', 't_median', 't_p16', 't_p84'], 'b')
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

    row_lists: ClassVar[tuple[str, ...]] = ()
    """Per-row list fields a subclass adds (kept in step by :func:`subset_rows`)."""

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
        ``ood_reason``, ``<param>_at_bound``, ``masked_fraction``, ``sampling_resolution`` (median
        lambda / dlambda of the pixels), ``low_resolution`` (below the model's resolution:
        sampled too coarsely, or so stated; see the notes), ``snr`` and ``notes``."""
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
        cols["sampling_resolution"] = [m.sampling_resolution for m in self.inputs]
        cols["low_resolution"] = [m.low_resolution for m in self.inputs]
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
    """The fit and corner PNGs of every object of ``result`` (atomic writes); no fit PNG
    for an object without a grid model (:attr:`PredictionResult.fits` None).

    Example:
        >>> import tempfile
        >>> from atmospec.estimators.baselines import RandomForestEstimator
        >>> from atmospec.prediction.predictor import Predictor
        >>> from atmospec.spectrum import Spectrum
        >>> rng = np.random.default_rng(0)
        >>> wave = np.linspace(1.0, 2.0, 12); t = rng.uniform(0, 1, (60, 1))
        >>> rf = RandomForestEstimator(n_estimators=3).fit(1 + t * wave, t, wavelength=wave,
        ...                                                param_names=["t"])
        >>> spectra = [Spectrum(wave, 1 + a * wave, np.full(12, 0.02), name=n)
        ...            for a, n in ((0.2, "a"), (0.8, "b"))]
        >>> res = Predictor(rf, ood=False, draws=50).predict(spectra)  # no grid, no OOD
        >>> [p.name for p in write_object_figures(res, Path(tempfile.mkdtemp()))]
        ['a-86f7e4_corner.png', 'b-e9d71f_corner.png']
    """
    from atmospec.plots import save_figure

    written = []
    for i in range(len(result)):
        stem = object_stem(result.sources[i], result.names[i])
        if result.fits[i] is not None:
            written.append(save_figure(result.plot(i), folder / f"{stem}_fit.png", dpi=90))
        written.append(save_figure(result.corner(i), folder / f"{stem}_corner.png", dpi=80))
    return written


_ROW_ARRAYS = ("samples", "point", "at_bound", "ood_score", "ood_flag", "chi2_red", "dof")
"""Per-row array fields of :class:`PredictionResult` (first axis: spectra); ``point_std``,
which may be None, is handled apart."""
_ROW_LISTS = ("sources", "names", "ood_reason", "fits", "inputs", "notes", "row_model_ids")
"""Per-row list fields of :class:`PredictionResult`."""


def subset_rows(res: PredictionResult, idx: Sequence[int]) -> PredictionResult:
    """The rows ``idx`` of a result.

    Example:
        >>> from atmospec.estimators.baselines import RandomForestEstimator
        >>> from atmospec.prediction.predictor import Predictor
        >>> from atmospec.spectrum import Spectrum
        >>> rng = np.random.default_rng(0)
        >>> wave = np.linspace(1.0, 2.0, 12); t = rng.uniform(0, 1, (60, 1))
        >>> rf = RandomForestEstimator(n_estimators=3).fit(1 + t * wave, t, wavelength=wave,
        ...                                                param_names=["t"])
        >>> spectra = [Spectrum(wave, 1 + a * wave, np.full(12, 0.02), name=n)
        ...            for a, n in ((0.2, "a"), (0.8, "b"))]
        >>> res = Predictor(rf, ood=False, draws=50).predict(spectra)  # no grid, no OOD
        >>> one = subset_rows(res, [1])
        >>> len(one), one.names, bool((one.samples == res.samples[1:]).all())
        (1, ['b'], True)
    """
    ix = list(idx)
    rows: dict[str, Any] = {k: getattr(res, k)[ix] for k in _ROW_ARRAYS}
    lists = _ROW_LISTS + type(res).row_lists
    rows.update({k: [getattr(res, k)[i] for i in ix] for k in lists})
    rows["point_std"] = None if res.point_std is None else res.point_std[ix]
    return dataclasses.replace(res, **rows)


def concat_rows(parts: list[tuple[list[int], PredictionResult]], n: int) -> PredictionResult:
    """Rows of several results put back in their original order (``parts``: positions, rows).

    Example:
        >>> from atmospec.estimators.baselines import RandomForestEstimator
        >>> from atmospec.prediction.predictor import Predictor
        >>> from atmospec.spectrum import Spectrum
        >>> rng = np.random.default_rng(0)
        >>> wave = np.linspace(1.0, 2.0, 12); t = rng.uniform(0, 1, (60, 1))
        >>> rf = RandomForestEstimator(n_estimators=3).fit(1 + t * wave, t, wavelength=wave,
        ...                                                param_names=["t"])
        >>> spectra = [Spectrum(wave, 1 + a * wave, np.full(12, 0.02), name=n)
        ...            for a, n in ((0.2, "a"), (0.8, "b"))]
        >>> res = Predictor(rf, ood=False, draws=50).predict(spectra)  # no grid, no OOD
        >>> parts = [([1], subset_rows(res, [1])), ([0], subset_rows(res, [0]))]
        >>> back = concat_rows(parts, 2)
        >>> back.names, bool((back.samples == res.samples).all())
        (['a', 'b'], True)
    """
    pos = [i for idx, _ in parts for i in idx]
    order = np.argsort(pos, kind="stable")
    assert sorted(pos) == list(range(n))
    results = [r for _, r in parts]
    rows: dict[str, Any] = {
        k: np.concatenate([getattr(r, k) for r in results])[order] for k in _ROW_ARRAYS
    }
    for k in _ROW_LISTS + type(results[0]).row_lists:
        flat = [x for r in results for x in getattr(r, k)]
        rows[k] = [flat[i] for i in order]
    p = len(results[0].param_names)
    stds = [np.full((len(r), p), np.nan) if r.point_std is None else r.point_std for r in results]
    rows["point_std"] = np.concatenate(stds)[order]
    notes = sorted({r.intervals for r in results})
    return dataclasses.replace(results[0], **rows, intervals=" | ".join(notes))
