"""The estimators a Predictor can run: a learned point/sigma estimator (CNN) or an NPE."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

from atmospec.errors import ModelFileError

if TYPE_CHECKING:
    from atmospec.estimators.base import Estimator
    from atmospec.grids import ModelGrid
    from atmospec.posteriors.calibration import CalibrationStatus
    from atmospec.posteriors.npe import NPEstimator
    from atmospec.prediction.coverage import CoveragePolicy, ModelInput
    from atmospec.prediction.ood import OODDetector
    from atmospec.prediction.routing import NPEDomain
    from atmospec.spectrum import Spectrum

__all__ = [
    "EstimatorMember",
    "NPEMember",
    "Member",
    "load_member",
    "calibrate_npe_ood",
    "npe_ood_model_error",
    "npe_digest",
    "resolve_model",
    "trained_min_resolution",
]

FloatArray = NDArray[np.float64]
Draws = tuple[NDArray[np.float32], FloatArray, "FloatArray | None", NDArray[np.bool_]]


def _folder_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def trained_min_resolution(meta: dict[str, Any], grid: str | None) -> float | None:
    """The lowest resolving power of the spectra a model was trained on, from its record.

    A built-in grid's models describe SpeX prism spectra, R 75 and up
    (:data:`atmospec.resolution.SPEX_PRISM_MIN_R`); a recipe whose resolution systematic
    blurs every training spectrum (``resolution_fraction`` 1) by an extra Gaussian of
    resolving power ``extra_R_range`` was trained down to
    ``1 / sqrt(1 / R_grid^2 + 1 / min(extra_R_range)^2)``. None: unknown (a user grid).

    Example:
        >>> trained_min_resolution({}, "dback24")
        75.0
        >>> recipe = {"systematics": {"extra_R_range": [25.6, 96.1], "resolution_fraction": 1.0}}
        >>> round(trained_min_resolution({"recipe": recipe}, "dback24"), 1)
        25.0
    """
    from atmospec.grids import resolution_of
    from atmospec.resolution import SPEX_PRISM_MIN_R

    r_grid = resolution_of(grid)
    if r_grid is None:
        return None
    sys_cfg = (meta.get("recipe") or {}).get("systematics") or {}
    extra = sys_cfg.get("extra_R_range")
    if extra and float(sys_cfg.get("resolution_fraction", 0.0)) >= 1.0:
        return float(1.0 / np.sqrt(1.0 / r_grid**2 + 1.0 / float(min(extra)) ** 2))
    return SPEX_PRISM_MIN_R


class _AxisMember:
    """What both members share: a model id, and from the estimator contract the parameter
    names, grid bounds and the wavelength axis spectra are put on."""

    model_id: str
    wavelength: FloatArray
    grid_name: str

    def _adopt(self, model: Estimator, model_id: str, name: str) -> None:
        self.model_id = model_id
        self.name = name or model_id
        self.param_names: tuple[str, ...] = tuple(model.param_names_)
        self.bounds: dict[str, tuple[float, float]] = dict(model.bounds_)
        self.wavelength = np.asarray(model.wavelength_, dtype=np.float64)
        self.meta: dict[str, Any] = dict(getattr(model, "meta_", None) or {})

    def prepare(
        self,
        spectrum: Spectrum,
        policy: CoveragePolicy,
        max_masked_fraction: float,
        assume_snr: float | None,
    ) -> ModelInput:
        """The spectrum on this member's axis under a coverage policy, noted when its S/N lies
        below the range a learned estimator's recipe trained it at (an NPE's S/N domain is
        its routing's to judge; its record holds no recipe)."""
        from atmospec.grids import resolution_of
        from atmospec.prediction.coverage import prepare_input
        from atmospec.prediction.routing import below_trained_snr

        inp = prepare_input(
            spectrum,
            self.wavelength,
            policy=policy,
            max_masked_fraction=max_masked_fraction,
            assume_snr=assume_snr,
            model=f"model {self.model_id}",
            min_resolution=trained_min_resolution(self.meta, self.grid_name),
            model_resolution=resolution_of(self.grid_name),
        )
        note = below_trained_snr(self.meta, self.name, inp.flux, inp.sigma)
        inp.notes.extend([note] if note else [])
        return inp

    @property
    def ood_key(self) -> str:
        """The name of this member's cached OOD detector (its model id)."""
        return self.model_id

    def detector_is_current(self, det: OODDetector) -> bool:
        """Whether a cached detector still serves this member (any of its own: yes)."""
        return True


class EstimatorMember(_AxisMember):
    """A learned estimator (CNN, MLP... with sigma heads or ensembles) behind a Predictor.

    Intervals are Monte Carlo over the flux errors (:func:`~atmospec.prediction.predictor.
    monte_carlo`).
    """

    kind = "estimator"

    def __init__(
        self,
        estimator: Estimator,
        model_id: str,
        *,
        name: str = "",
        num_threads: int | None = None,
        precision: Literal["float32", "bfloat16"] = "float32",
        max_rows: int = 65536,
    ) -> None:
        from atmospec.prediction.engine import Engine

        self.estimator = estimator
        self._adopt(estimator, model_id, name)
        self.engine = Engine(estimator, num_threads=num_threads)
        self.precision: Literal["float32", "bfloat16"] = precision
        self.max_rows = max_rows
        self.grid_name: str = str(estimator.meta_.get("grid") or "")

    def domain_problem(self, inp: ModelInput) -> str:
        """Every spectrum the coverage policy lets through is in this estimator's domain."""
        return ""

    def draw(self, flux: FloatArray, sigma: FloatArray, seeds: Sequence[Any], draws: int) -> Draws:
        """``(samples (n, draws, p), point (n, p), point_std (n, p) or None, at_bound)``."""
        from atmospec.prediction.sampling import monte_carlo

        return monte_carlo(
            self.engine,
            flux,
            sigma,
            draws=draws,
            seeds=seeds,
            max_rows=self.max_rows,
            precision=self.precision,
        )

    def calibrate_ood(self, grid: ModelGrid) -> OODDetector:
        from atmospec.prediction.ood_calibration import calibrate_ood

        return calibrate_ood(self.estimator, grid)

    def files(self) -> dict[str, bytes]:
        """The model folder's files (name -> bytes), to ship to other processes."""
        import tempfile

        with tempfile.TemporaryDirectory(prefix="atmospec-model-") as tmp:
            folder = self.estimator.save(Path(tmp) / "model")
            return _folder_files(Path(folder))


def npe_digest(npe: NPEstimator) -> str:
    """10 hex digits of sha256 over an NPE's weights, input scalings and axis
    (:func:`atmospec.serialization.weights_digest`)."""
    from atmospec.serialization import weights_digest

    weights = {k: v.detach().cpu().numpy() for k, v in npe.model_.state_dict().items()}
    extra = [npe.x_mean_, npe.x_std_, np.array([npe.ls_mean_, npe.ls_std_])]
    if npe.wavelength_ is not None:
        extra.append(npe.wavelength_)
    return weights_digest(weights, *(np.asarray(a, dtype=np.float64) for a in extra))


class NPEMember(_AxisMember):
    """A neural posterior estimator behind a Predictor: samples are posterior draws.

    Each spectrum's ``draws`` samples come from the flow conditioned on the spectrum and its
    per-pixel sigma, seeded per spectrum (so they do not depend on the batch). The posterior
    already accounts for the measurement noise: the spectrum is not perturbed again.
    Spectra outside the NPE's trained domain (masked bins, S/N outside its noise model's
    range) are refused by :meth:`domain_problem`.
    """

    kind = "npe"

    def __init__(
        self,
        npe: NPEstimator,
        model_id: str,
        *,
        name: str = "",
        folder: str | os.PathLike[str] | None = None,
        chunk: int = 64,
    ) -> None:
        from atmospec.posteriors.calibration import read_calibration
        from atmospec.prediction.routing import NPEDomain

        if getattr(npe, "wavelength_", None) is None:
            raise ModelFileError(
                f"NPE {model_id}: the model records no wavelength axis, so observed spectra "
                "cannot be put on it (train it with fit(..., wavelength=...))"
            )
        self.npe = npe
        self._adopt(npe, model_id, name)
        self.folder = None if folder is None else Path(folder)
        self.chunk = chunk
        self.domain: NPEDomain = NPEDomain.of(npe, self.name)
        self.grid_name: str = self.domain.grid
        self.calibration: CalibrationStatus = read_calibration(self.folder)

    def domain_problem(self, inp: ModelInput) -> str:
        """Why the NPE must not take this spectrum ('' when it may)."""
        return self.domain.input_problem(inp)

    def draw(self, flux: FloatArray, sigma: FloatArray, seeds: Sequence[Any], draws: int) -> Draws:
        """Posterior samples ``(n, draws, p)``, their mean and sd, and bound pressure."""
        from atmospec.estimators.base import BOUND_TOLERANCE

        n, p = flux.shape[0], len(self.param_names)
        samples = np.empty((n, draws, p), dtype=np.float32)
        for i in range(n):
            # One torch seed per spectrum, drawn from its (seed, crc32(source)) stream.
            torch_seed = int(np.random.default_rng(seeds[i]).integers(2**62))
            samples[i] = self.npe.sample(flux[i], sigma[i], n=draws, seed=torch_seed)
        point = samples.mean(axis=1, dtype=np.float64)
        point_std = samples.std(axis=1, dtype=np.float64)
        lo = np.array([self.bounds[q][0] for q in self.param_names])
        hi = np.array([self.bounds[q][1] for q in self.param_names])
        median = np.median(samples, axis=1)
        tol = BOUND_TOLERANCE * (hi - lo)
        at_bound = (median <= lo + tol) | (median >= hi - tol)
        return samples, point, point_std, at_bound

    def calibrate_ood(self, grid: ModelGrid) -> OODDetector:
        return calibrate_npe_ood(self.npe, grid)

    @property
    def ood_key(self) -> str:
        """The name of this NPE's cached OOD detector: its id, plus the model error its
        reference spectra carry (a detector calibrated without it keeps its own file)."""
        error = npe_ood_model_error(self.npe)
        return self.model_id + (f".model-error-{error}" if error else "")

    def detector_is_current(self, det: OODDetector) -> bool:
        """Whether a cached detector's reference spectra carry this NPE's model error."""
        return det.meta.get("model_error", "") == npe_ood_model_error(self.npe)

    def files(self) -> dict[str, bytes]:
        """The model folder's files (with ``calibration.json`` when shipped)."""
        import tempfile

        if self.folder is not None and (self.folder / "model.json").is_file():
            return _folder_files(self.folder)
        with tempfile.TemporaryDirectory(prefix="atmospec-npe-") as tmp:
            folder = self.npe.save(Path(tmp) / "model")
            return _folder_files(Path(folder))


Member = EstimatorMember | NPEMember


def load_member(
    model: Any,
    *,
    name: str = "",
    num_threads: int | None = None,
    precision: Literal["float32", "bfloat16"] = "float32",
    max_rows: int = 65536,
) -> Member:
    """A member from an Estimator, an NPEstimator, a model folder or a registry name.

    ``name`` is how notes name the model (default: its registry name or folder name).
    """
    from atmospec.estimators.base import load_estimator
    from atmospec.posteriors.npe import NPEstimator

    folder: Path | None = None
    given, name = name, ""
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if path.exists():
            folder = path
        else:
            from atmospec.models import ALIASES, model_path

            folder = model_path(str(model))
            name = ALIASES.get(str(model), str(model))
        model = load_estimator(folder)  # one loader for every kind, the NPE included
    name = given or name
    if isinstance(model, NPEstimator):
        npe = model
        base = (
            npe.meta_.get("model_id")
            or npe.meta_.get("config", {}).get("name")
            or name
            or (folder.name if folder is not None else "npe")
        )
        mid = f"{base}-{npe_digest(npe)}"
        return NPEMember(npe, mid, name=name or str(base), folder=folder)
    est, mid = resolve_model(model)
    return EstimatorMember(
        est, mid, name=name, num_threads=num_threads, precision=precision, max_rows=max_rows
    )


def npe_ood_model_error(npe: NPEstimator) -> str:
    """The model error an NPE's OOD reference spectra carry: its training's ``discrepancy``
    name, the first ten hex digits of that model's weights sha256 (the reference spectra are
    drawn from the model as it is now, so a relearned model of mismatch makes a cached
    detector stale) and the amplitude; ``""`` for photon noise only. A cached detector
    calibrated with another is calibrated again."""
    from atmospec.discrepancy import model_digest
    from atmospec.errors import AtmospecError
    from atmospec.training.discrepancy_augment import model_error_spec, resolve_discrepancy

    spec = model_error_spec(getattr(npe, "meta_", {}).get("config"))
    if spec is None:
        return ""
    name, amplitude = spec
    try:
        digest = model_digest(resolve_discrepancy(name))
    except (AtmospecError, OSError):
        digest = ""  # the model cannot be read: calibrating the detector will say why
    return f"{name}@{digest}x{amplitude:g}" if digest else f"{name}x{amplitude:g}"


def calibrate_npe_ood(
    npe: NPEstimator,
    grid: ModelGrid,
    *,
    n_samples: int = 10000,
    n_components: int = 12,
    floor: float = 0.02,
    level: float = 0.96,
    n_posterior: int = 256,
    seed: int = 12345,
) -> OODDetector:
    """Calibrate the OOD score of an NPE on in-grid synthetic spectra inside its noise domain.

    The same detector as :func:`~atmospec.prediction.ood_calibration.calibrate_ood`
    (principal-component distance and residual, grid chi-square at the estimate, bound
    pressure), on the NPE's own axis, with the posterior mean and sd in place of a network's mean and sigma. The
    spectra come from the training-set builder (nodes and off-node points, the default
    calibration systematics) made noise-free, carrying one realisation of the model error the
    NPE was trained with (its recorded ``discrepancy``; none for an NPE trained with photon
    noise only), then noised with the NPE's own :class:`~atmospec.posteriors.npe.NoiseModel`,
    so the reference is the population the NPE serves: real spectra differ from the grid by
    that model error, and a score calibrated without it flags them for it. 40 % fit the
    components, 40 % set the threshold at each S/N (exceeded by ``1 - level`` of those of that
    S/N), 20 % measure the false-alarm rate. ``n_samples`` is larger than for a learned
    estimator: the noise model draws few spectra near the top of its S/N range (about 3 % of
    them at S/N 28-30), where model error stands out most against the noise, and where
    ``posterior sample`` brings every spectrum of higher S/N.

    Example:
        >>> det = calibrate_npe_ood(npe, grid)  # doctest: +SKIP
        >>> det.false_alarm <= 0.05  # doctest: +SKIP
        True
    """
    import tempfile

    from atmospec._fileio import provenance
    from atmospec.prediction.ood_calibration import fit_detector
    from atmospec.training import discrepancy_augment
    from atmospec.training.builder import build_training_set

    wave = np.asarray(npe.wavelength_, dtype=np.float64)
    names = tuple(npe.param_names_)
    model_error = discrepancy_augment.model_error_from_config(
        getattr(npe, "meta_", {}).get("config")
    )
    with tempfile.TemporaryDirectory() as tmp:
        ts = build_training_set(
            grid,
            Path(tmp) / "ood.h5",
            n_samples=n_samples,
            axis=wave,
            snr=(1e5, 1e5),  # noise-free for practical purposes; the NPE's noise comes next
            seed=seed,
            bounds=npe.bounds_,
            discrepancy=None if model_error is None else model_error[0],
            discrepancy_amplitude=1.0 if model_error is None else model_error[1],
        )
        clean, _, _ = ts.arrays()
        ts.close()
    clean = np.asarray(clean, dtype=np.float64)
    keep = np.isfinite(clean).all(axis=1) & (clean.mean(axis=1) > 0)
    clean = clean[keep]
    rng = np.random.default_rng(seed)
    X, S = npe.noise.draw(clean, rng)

    def estimate(x: FloatArray, s: FloatArray) -> tuple[FloatArray, FloatArray]:
        post = npe.sample(x, s, n=n_posterior, seed=seed)
        return post.mean(axis=1), post.std(axis=1)

    return fit_detector(
        X,
        S,
        np.median(X, axis=1, keepdims=True),
        estimate,
        grid=grid,
        wavelength=wave,
        param_names=names,
        bounds=dict(npe.bounds_),
        rng=rng,
        n_components=n_components,
        floor=floor,
        level=level,
        meta={
            "estimator": "npe",
            "model_error": npe_ood_model_error(npe),
            "n_samples": int(X.shape[0]),
            "snr_range": list(npe.noise.snr_range),
            "provenance": provenance(seed=seed, grid=grid.name),
        },
    )


# ----------------------------------------------------------------------------- models
def _state_digest(estimator: Estimator) -> str:
    """10 hex digits of sha256 over an estimator's saved arrays and its wavelength axis
    (:func:`atmospec.serialization.weights_digest`)."""
    from atmospec.serialization import weights_digest

    _, arrays = estimator._get_state()
    axis = () if estimator.wavelength_ is None else (estimator.wavelength_,)
    return weights_digest(arrays, *axis)


def resolve_model(model: Any) -> tuple[Estimator, str]:
    """An estimator and its id from an Estimator, a saved model folder, or a registry name.

    The id is ``meta_["model_id"]`` when the model records one, else
    ``<kind>-<grid>-<sha256 of the weights, 10 hex>`` so that results name the exact weights.

    Example:
        >>> resolve_model("t-dwarf")[1][:15]  # the shipped model's id and weights hash
        'burrows06-spex-'
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
    if not isinstance(est, Estimator) or est.kind == "npe":
        raise ModelFileError(
            f"model {model!r} is a {type(est).__name__}, not a point/sigma estimator; use "
            "atmospec.prediction.members.load_member or Predictor for it"
        )
    est._require_fitted()
    mid = est.meta_.get("model_id") or est.meta_.get("name")
    digest = _state_digest(est)
    if not mid:
        mid = f"{est.kind}-{est.meta_.get('grid') or 'nogrid'}"
    return est, f"{mid}-{digest}"


def _from_registry(name: str) -> Estimator:
    from atmospec.estimators.base import Estimator
    from atmospec.models import load_model

    est = load_model(name)
    if not isinstance(est, Estimator):
        raise ModelFileError(f"model {name!r} is a {type(est).__name__}, not an estimator")
    return est
