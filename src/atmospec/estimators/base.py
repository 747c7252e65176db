"""The estimator contract every learned model follows: fit / predict / sample / save / load.

scikit-learn's conventions: hyperparameters are the ``__init__`` arguments, stored unchanged
(``get_params`` / ``set_params``, so ``sklearn.base.clone`` works); learned state lives in
attributes ending in ``_`` that only ``fit`` (or ``load``) creates; using an estimator before
that raises :class:`~atmospec.errors.NotFittedError`. Estimates never leave the training
grid's bounds and the wavelength axis is checked on every prediction. The CNNs, MLP, tree
baselines and the neural posterior estimator (:class:`~atmospec.posteriors.npe.NPEstimator`)
all derive from :class:`Estimator`.
"""

from __future__ import annotations

import importlib
import inspect
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from atmospec.errors import IncompatibleModelError, ModelFileError, NotFittedError

if TYPE_CHECKING:
    import pandas as pd

    from atmospec.spectrum import Spectrum

__all__ = ["Estimator", "Prediction", "load_estimator", "ESTIMATOR_KINDS"]

# kind -> module defining it; imported lazily by load_estimator.
ESTIMATOR_KINDS: dict[str, str] = {
    "telescope_cnn": "atmospec.estimators.telescope_cnn",
    "cnn": "atmospec.estimators.cnn",
    "mlp": "atmospec.estimators.mlp",
    "random_forest": "atmospec.estimators.baselines",
    "gradient_boosting": "atmospec.estimators.baselines",
    "npe": "atmospec.posteriors.npe",
}
# Constructor parameters of models saved by older versions that no longer exist; dropped on
# load ("quiet": progress now follows the atmospec logger's level).
_RETIRED_PARAMS = frozenset({"quiet"})
BOUND_TOLERANCE = 0.01  # an estimate within 1 % of the range from a grid edge "presses" on it


@dataclass
class Prediction:
    """Estimates for a batch of spectra.

    Attributes:
        param_names: parameter order of the columns.
        mean: (n, p) point estimates, inside the grid bounds.
        std: (n, p) predictive standard deviations, or None for point estimators.
        at_bound: (n, p) True where the estimate presses against a grid bound (the truth
            may lie outside the grid: treat the value as a limit).
        bounds: parameter -> (low, high) of the training grid.
        tail_dof: (p,) Student-t degrees of freedom of each parameter's predictive
            distribution (``inf``: Gaussian), or None (all Gaussian). ``mean ± std`` is the
            68.27 % interval either way; wider levels are wider for heavy tails
            (:mod:`atmospec.predictive_tails`).

    Example:
        >>> p = Prediction(("teff",), np.array([[1000.0]]), np.array([[50.0]]),
        ...                np.array([[False]]), {"teff": (900.0, 2400.0)})
        >>> lo, hi = p.interval(0.68); (round(float(lo[0, 0])), round(float(hi[0, 0])))
        (950, 1050)
    """

    param_names: tuple[str, ...]
    mean: NDArray[np.float64]
    std: NDArray[np.float64] | None
    at_bound: NDArray[np.bool_]
    bounds: dict[str, tuple[float, float]]
    tail_dof: NDArray[np.float64] | None = None

    def interval(self, level: float = 0.68) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Central predictive interval at ``level`` (e.g. 0.68, 0.95), clipped to bounds:
        Gaussian, or Student-t per parameter when ``tail_dof`` is set."""
        if self.std is None:
            raise ValueError("this estimator gives point estimates only (no predictive sigma)")
        from atmospec.predictive_tails import tail_factor

        k = tail_factor(level, self.tail_dof, n=len(self.param_names))
        lo = np.array([self.bounds[p][0] for p in self.param_names])
        hi = np.array([self.bounds[p][1] for p in self.param_names])
        return np.clip(self.mean - k * self.std, lo, hi), np.clip(self.mean + k * self.std, lo, hi)

    def to_frame(self) -> pd.DataFrame:
        """One row per spectrum: ``<param>``, ``<param>_std``, ``<param>_at_bound``."""
        import pandas as pd

        cols: dict[str, Any] = {}
        for i, p in enumerate(self.param_names):
            cols[p] = self.mean[:, i]
            if self.std is not None:
                cols[f"{p}_std"] = self.std[:, i]
            cols[f"{p}_at_bound"] = self.at_bound[:, i]
        return pd.DataFrame(cols)


class Estimator(ABC):
    """Base of all estimators: sklearn-like ``fit`` / ``predict`` / ``sample`` plus safe
    ``save`` / ``load``.

    Hyperparameters are the ``__init__`` arguments (``get_params`` / ``set_params``);
    ``__init__`` only stores them. Learned state lives in attributes ending in ``_``, created
    by ``fit`` (or ``load``): ``wavelength_`` (the axis the model reads), ``param_names_``,
    ``bounds_`` (grid ranges; predictions never leave them) and ``meta_`` (free-form record:
    grid name, evaluation, provenance). Subclasses implement ``_fit``, ``_predict``,
    ``_get_state`` and ``_set_state`` (or override ``fit`` / ``save`` / ``load`` whole, as the
    NPE does).

    Example:
        >>> from sklearn.base import clone
        >>> from atmospec.estimators.baselines import RandomForestEstimator
        >>> rf = RandomForestEstimator(n_estimators=5)
        >>> clone(rf.set_params(max_depth=3)).get_params()["max_depth"]
        3
        >>> hasattr(rf, "wavelength_")  # nothing learned before fit
        False
    """

    kind: ClassVar[str] = ""
    uses_sigma: ClassVar[bool] = False
    # Learned state: declared here for type checkers, created only by fit / load.
    wavelength_: NDArray[np.float64]
    param_names_: tuple[str, ...]
    bounds_: dict[str, tuple[float, float]]
    meta_: dict[str, Any]

    # -- hyperparameters ---------------------------------------------------------------
    @classmethod
    def _hyperparameter_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [
            n
            for n, p in sig.parameters.items()
            if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The ``__init__`` arguments of this estimator (``deep``: also ``name__sub`` entries
        of hyperparameters that are estimators themselves)."""
        out: dict[str, Any] = {}
        for name in self._hyperparameter_names():
            value = getattr(self, name)
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                out.update({f"{name}__{k}": v for k, v in value.get_params().items()})
            out[name] = value
        return out

    def set_params(self, **params: Any) -> Estimator:
        """Set hyperparameters (``name=value`` or nested ``name__sub=value``); returns self.

        Raises:
            ValueError: a name that is not an ``__init__`` argument (the valid ones are listed).
        """
        valid = self._hyperparameter_names()
        nested: dict[str, dict[str, Any]] = {}
        for key, value in params.items():
            name, _, sub = key.partition("__")
            if name not in valid:
                raise ValueError(
                    f"{type(self).__name__} has no hyperparameter {name!r}; valid: {valid}"
                )
            if sub:
                nested.setdefault(name, {})[sub] = value
            else:
                setattr(self, name, value)
        for name, sub_params in nested.items():
            getattr(self, name).set_params(**sub_params)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params(deep=False).items())
        return f"{type(self).__name__}({args})"

    # -- contract ------------------------------------------------------------------------
    def fit(
        self,
        X: ArrayLike,
        y: ArrayLike,
        *,
        wavelength: ArrayLike,
        param_names: Sequence[str],
        sigma: ArrayLike | None = None,
        bounds: Mapping[str, tuple[float, float]] | None = None,
        validation: tuple[Any, ...] | None = None,
        clean: ArrayLike | None = None,
    ) -> Estimator:
        """Learn parameters ``y`` (n, p) from fluxes ``X`` (n, n_wave) on ``wavelength``.

        Args:
            X: fluxes (any scale; every spectrum is normalised on its own).
            y: parameters in physical units, columns in ``param_names`` order.
            wavelength: the axis of ``X`` (µm); recorded, and checked on every prediction.
            param_names: parameter names.
            sigma: per-pixel 1-sigma uncertainties of ``X`` (needed by models that read them).
            bounds: parameter -> (low, high) of the grid; default: range of ``y``.
            validation: ``(X_val, y_val)`` or ``(X_val, y_val, sigma_val)`` for early stopping.
            clean: the noise-free fluxes behind ``X`` (same shape; ``TrainingSet.clean()``).
                Neural estimators then draw fresh Gaussian noise with ``sigma``
                every epoch instead of reusing the one realisation in ``X`` (same S/N and error
                shape per spectrum, a new draw each time); others ignore it.
        Returns:
            self
        """
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        wave = np.asarray(wavelength, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != wave.size:
            raise ValueError(
                f"X must have shape (n, {wave.size}) to match wavelength, found {X.shape}"
            )
        if y.shape != (X.shape[0], len(param_names)):
            raise ValueError(
                f"y must have shape ({X.shape[0]}, {len(param_names)}), found {y.shape}"
            )
        if self.uses_sigma and sigma is None:
            raise ValueError(f"{type(self).__name__} needs per-pixel uncertainties: pass sigma=")
        self.wavelength_ = wave
        self.param_names_ = tuple(param_names)
        self.meta_ = {}
        if bounds is None:
            bounds = {
                p: (float(y[:, i].min()), float(y[:, i].max())) for i, p in enumerate(param_names)
            }
        self.bounds_ = {p: (float(bounds[p][0]), float(bounds[p][1])) for p in self.param_names_}
        sig = None if sigma is None else np.asarray(sigma, dtype=np.float64)
        noise_free = None
        if clean is not None:
            noise_free = np.asarray(clean, dtype=np.float64)
            if noise_free.shape != X.shape or sig is None:
                raise ValueError(
                    f"clean must have the shape of X {X.shape} (found {noise_free.shape}) and "
                    "needs sigma= to draw noise from"
                )
        self._fit(X, y, sig, validation, clean=noise_free)
        return self

    def predict(self, X: ArrayLike, sigma: ArrayLike | None = None) -> Prediction:
        """Estimate parameters for fluxes ``X`` (n, n_wave) on the training axis."""
        self._require_fitted()
        assert self.wavelength_ is not None
        X = np.array(X, dtype=np.float64, ndmin=2)
        if X.shape[1] != self.wavelength_.size:
            raise IncompatibleModelError(
                f"{type(self).__name__} reads {self.wavelength_.size} pixels "
                f"({self.wavelength_[0]:.4g}-{self.wavelength_[-1]:.4g} um) but X has "
                f"{X.shape[1]}; resample the spectra onto model.wavelength_ first"
            )
        if self.uses_sigma and sigma is None:
            raise ValueError(
                f"{type(self).__name__} reads per-pixel uncertainties: pass sigma= "
                "(a spectrum without uncertainties cannot be used with this model)"
            )
        sig = None if sigma is None else np.array(sigma, dtype=np.float64, ndmin=2)
        mean, std = self._predict(X, sig)
        lo = np.array([self.bounds_[p][0] for p in self.param_names_])
        hi = np.array([self.bounds_[p][1] for p in self.param_names_])
        mean = np.clip(mean, lo, hi)
        tol = BOUND_TOLERANCE * (hi - lo)
        at_bound = (mean <= lo + tol) | (mean >= hi - tol)
        dof = getattr(self, "sigma_tail_dof_", None) if std is not None else None
        return Prediction(self.param_names_, mean, std, at_bound, dict(self.bounds_), dof)

    def predict_spectrum(self, spectrum: Spectrum | Sequence[Spectrum]) -> Prediction:
        """Predict for Spectrum object(s) on exactly the training axis (masked pixels filled)."""
        specs = [spectrum] if not isinstance(spectrum, Sequence) else list(spectrum)
        rows, sigs = [], []
        for s in specs:
            self.check_wavelength(s.wavelength, source=s.name or "spectrum")
            f = np.where(s.mask, np.nan, s.flux)
            rows.append(f)
            if s.uncertainty is not None:
                sigs.append(np.where(s.mask, np.inf, s.uncertainty))
        sigma = np.array(sigs) if len(sigs) == len(rows) else None
        return self.predict(np.array(rows), sigma)

    def check_wavelength(self, wavelength: ArrayLike, *, source: str = "spectrum") -> None:
        """Raise IncompatibleModelError unless ``wavelength`` is the model's training axis."""
        self._require_fitted()
        assert self.wavelength_ is not None
        w = np.asarray(wavelength, dtype=np.float64)
        mine = self.wavelength_
        if w.shape != mine.shape or not np.allclose(w, mine, rtol=1e-6, atol=0.0):
            raise IncompatibleModelError(
                f"{source}: wavelength axis ({w.size} pixels, {w.min():.4g}-{w.max():.4g} um) is "
                f"not the axis this model was trained on ({mine.size} pixels, {mine[0]:.4g}-"
                f"{mine[-1]:.4g} um); resample the spectrum onto model.wavelength_ "
                "(atmospec.transforms.resample) or use a model trained for this instrument"
            )

    def _require_fitted(self) -> None:
        """Raise :class:`~atmospec.errors.NotFittedError` before ``fit`` / ``load``."""
        if not hasattr(self, "param_names_"):
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet: call fit() or load() first"
            )

    def sample(
        self, X: ArrayLike, sigma: ArrayLike | None = None, n: int = 1000, seed: int = 0
    ) -> NDArray[np.float64]:
        """Draws from the predictive distribution: ``(n, p)`` for one spectrum ``(n_wave,)``,
        ``(batch, n, p)`` for a batch.

        The distribution of each parameter is the one :meth:`predict` describes (Gaussian, or
        Student-t where ``tail_dof`` says so) truncated to the grid bounds, drawn by inverse
        CDF so no draw leaves the grid. The NPE overrides this with posterior draws.

        Raises:
            ValueError: a point estimator (no predictive sigma) has nothing to sample.
        """
        from scipy import stats

        x = np.asarray(X, dtype=np.float64)
        batch = x.ndim == 2
        pred = self.predict(x, sigma)
        if pred.std is None:
            raise ValueError(
                f"{type(self).__name__} gives point estimates only (no predictive sigma): "
                "nothing to sample"
            )
        dof = np.full(len(pred.param_names), np.inf) if pred.tail_dof is None else pred.tail_dof
        lo = np.array([pred.bounds[p][0] for p in pred.param_names])
        hi = np.array([pred.bounds[p][1] for p in pred.param_names])
        rng = np.random.default_rng(seed)
        out = np.empty((pred.mean.shape[0], n, len(pred.param_names)))
        for j, d in enumerate(dof):
            dist = stats.norm if not np.isfinite(d) else stats.t(float(d))
            std = np.maximum(pred.std[:, j : j + 1], 1e-300)
            a = dist.cdf((lo[j] - pred.mean[:, j : j + 1]) / std)
            b = dist.cdf((hi[j] - pred.mean[:, j : j + 1]) / std)
            u = a + (b - a) * rng.uniform(size=(pred.mean.shape[0], n))
            draw = pred.mean[:, j : j + 1] + std * dist.ppf(u)
            out[:, :, j] = np.clip(draw, lo[j], hi[j])
        return out if batch else out[0]

    # -- persistence -------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str], **provenance_extra: Any) -> Path:
        """Write the model folder (``model.json`` + ``weights.safetensors``); returns it."""
        from atmospec._fileio import provenance
        from atmospec.serialization import save_arrays

        self._require_fitted()
        assert self.wavelength_ is not None
        config, arrays = self._get_state()
        arrays = {f"w.{k}": v for k, v in arrays.items()}
        arrays["meta.wavelength"] = self.wavelength_
        meta = dict(self.meta_)
        meta.setdefault(
            "provenance",
            provenance(seed=getattr(self, "seed", None), grid=meta.get("grid"), **provenance_extra),
        )
        record = {
            "kind": self.kind,
            "params": self.get_params(deep=False),
            "param_names": list(self.param_names_),
            "bounds": {k: list(v) for k, v in self.bounds_.items()},
            "state": config,
            "meta": meta,
        }
        return save_arrays(path, record, arrays)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Estimator:
        """Load any saved estimator (the ``kind`` in its record picks the class)."""
        return load_estimator(path)

    @classmethod
    def _from_record(
        cls, record: dict[str, Any], arrays: dict[str, NDArray[Any]], path: Any
    ) -> Estimator:
        """Rebuild a fitted estimator from its verified record and arrays."""
        try:
            params = {k: v for k, v in record["params"].items() if k not in _RETIRED_PARAMS}
            est = cls(**params)
            est.wavelength_ = np.asarray(arrays.pop("meta.wavelength"), dtype=np.float64)
            est.param_names_ = tuple(record["param_names"])
            est.bounds_ = {k: (float(v[0]), float(v[1])) for k, v in record["bounds"].items()}
            est.meta_ = dict(record.get("meta", {}))
            est._set_state(
                record["state"], {k[2:]: v for k, v in arrays.items() if k.startswith("w.")}
            )
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise ModelFileError(
                f"{path}: model record is inconsistent with its weights ({err})"
            ) from None
        return est

    def _fit(
        self,
        X: NDArray[np.float64],
        y: NDArray[np.float64],
        sigma: NDArray[np.float64] | None,
        validation: tuple[Any, ...] | None,
        *,
        clean: NDArray[np.float64] | None = None,
    ) -> None:
        raise NotImplementedError

    @abstractmethod
    def _predict(
        self, X: NDArray[np.float64], sigma: NDArray[np.float64] | None
    ) -> tuple[NDArray[np.float64], NDArray[np.float64] | None]: ...

    def _get_state(self) -> tuple[dict[str, Any], dict[str, NDArray[Any]]]:
        raise NotImplementedError

    def _set_state(self, config: dict[str, Any], arrays: dict[str, NDArray[Any]]) -> None:
        raise NotImplementedError


def load_estimator(path: str | os.PathLike[str]) -> Estimator:
    """Load a model folder written by :meth:`Estimator.save` (verified; never executes code).

    The record's ``kind`` picks the class (any of :data:`ESTIMATOR_KINDS`, the NPE included).

    Raises:
        ModelFileError: truncated, tampered or unknown model file (the message names the file).

    Example:
        >>> import tempfile
        >>> from atmospec.estimators.baselines import RandomForestEstimator
        >>> wave = np.linspace(1.0, 2.0, 8); t = np.linspace(0, 1, 20)[:, None]; X = 1 + t * wave
        >>> rf = RandomForestEstimator(n_estimators=3).fit(X, t, wavelength=wave, param_names=["t"])
        >>> path = rf.save(Path(tempfile.mkdtemp()) / "rf")
        >>> sorted(f.name for f in path.iterdir())
        ['model.json', 'weights.safetensors']
        >>> back = load_estimator(path)
        >>> type(back).__name__, back.param_names_
        ('RandomForestEstimator', ('t',))
        >>> bool((back.predict(X).mean == rf.predict(X).mean).all())
        True
    """
    from atmospec.serialization import load_arrays

    record, arrays = load_arrays(path)
    kind = record.get("kind")
    if kind not in ESTIMATOR_KINDS:
        raise ModelFileError(
            f"{path}: unknown estimator kind {kind!r} (known: {sorted(ESTIMATOR_KINDS)})"
        )
    module = importlib.import_module(ESTIMATOR_KINDS[kind])
    klass = next(
        c
        for c in vars(module).values()
        if isinstance(c, type) and issubclass(c, Estimator) and c.kind == kind
    )
    return klass._from_record(record, arrays, path)
