"""Train an NPE from a TOML config, calibrate it on a held-out simulation split, save both."""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path  # noqa: F401  # the examples below use it
from typing import Any

import numpy as np

from atmospec.errors import CoverageError, ModelInputError
from atmospec.posteriors.config import NPEConfig, check_config, read_config

__all__ = [
    "NPEConfig",
    "read_config",
    "train_npe",
    "calibrate_model",
    "test_split",
    "model_error_of",
    "add_model_error",
]

log = logging.getLogger(__name__)

#: Seed offsets: training, validation and test simulations never share a random stream.
_TRAIN, _VAL, _TEST = 0, 1, 2
#: Sub-stream of each split for its model-error realisations (as the training-set builder's).
_MODEL_ERROR = 4
_CHUNK = 16384


def _simulator(cfg: NPEConfig) -> Any:
    from atmospec.grids import load_grid
    from atmospec.posteriors.simulate import GridSimulator

    grid = load_grid(cfg.grid)
    w = np.asarray(grid.wavelength)
    lo, hi = cfg.wave_range
    axis = w[(w >= lo) & (w <= hi)]
    if axis.size < 2:
        raise CoverageError(
            f"NPE config {cfg.name!r}: grid {cfg.grid} has {axis.size} pixels in wave_range "
            f"{lo:g}-{hi:g} um (its axis spans {w.min():.3f}-{w.max():.3f} um)"
        )
    return GridSimulator(grid, axis)


def model_error_of(estimator: Any) -> tuple[Any, float] | None:
    """The model-discrepancy model (and amplitude) an NPE was trained with, from its record
    (None: trained with photon noise only).

    Example:
        >>> from atmospec.models import load_model
        >>> model, amplitude = model_error_of(load_model("npe_dback24", kind="npe"))
        >>> type(model).__name__, model.grid, amplitude
        ('DiscrepancyModel', 'dback24', 1.0)
        >>> from types import SimpleNamespace
        >>> model_error_of(SimpleNamespace(meta_={})) is None
        True
    """
    from atmospec.training.discrepancy_augment import model_error_from_config

    return model_error_from_config(getattr(estimator, "meta_", {}).get("config"))


def _model_error(name: str, amplitude: float) -> tuple[Any, float] | None:
    """``(discrepancy model, amplitude)`` of a config's ``discrepancy`` name (None: off)."""
    from atmospec.training.discrepancy_augment import model_error_from_config

    return model_error_from_config({"discrepancy": name, "discrepancy_amplitude": amplitude})


def add_model_error(
    flux: np.ndarray,
    theta: np.ndarray,
    simulator: Any,
    model_error: tuple[Any, float],
    rng: np.random.Generator,
) -> np.ndarray:
    """``flux`` plus one model-discrepancy realisation per spectrum, in place, in chunks.

    The realisations are those of the CNNs' training sets
    (:func:`atmospec.training.discrepancy_augment.discrepancy_realisations`), at each
    spectrum's Teff; ``model_error`` is ``(discrepancy model, amplitude)``.

    Example:
        >>> from types import SimpleNamespace
        >>> class Flat:  # a 10 % fractional floor, no modes
        ...     grid = "toy"
        ...     def fractional(self, teff, wavelength=None):
        ...         return np.full(len(wavelength), 0.1**2), np.zeros((len(wavelength), 0))
        >>> sim = SimpleNamespace(param_names=("teff",), wavelength=np.linspace(1.0, 2.0, 10))
        >>> flux = np.ones((1000, 10)); theta = np.full((1000, 1), 1500.0)
        >>> out = add_model_error(flux, theta, sim, (Flat(), 0.5), np.random.default_rng(0))
        >>> out is flux, round(float(flux.std()), 3)  # in place; 0.5 * 10 %
        (True, 0.05)
    """
    from atmospec.training.discrepancy_augment import discrepancy_realisations

    model, amplitude = model_error
    teff = theta[:, list(simulator.param_names).index("teff")]
    for i in range(0, flux.shape[0], _CHUNK):
        part = slice(i, i + _CHUNK)
        flux[part] += discrepancy_realisations(
            model, simulator.wavelength, flux[part], teff[part], rng, amplitude
        ).astype(flux.dtype)
    return flux


def _simulate(
    simulator: Any,
    n: int,
    seed: int,
    stream: int,
    model_error: tuple[Any, float] | None,
    dtype: Any = np.float64,
) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
    """``(theta, flux, rng)`` of one split: prior draws, their model spectra and, when given,
    model-error realisations from the split's own sub-stream."""
    rng = np.random.default_rng([seed, stream])
    theta = simulator.sample_prior(n, rng)
    flux = simulator.models(theta, dtype=dtype)
    if model_error is not None:
        drng = np.random.default_rng([seed, stream, _MODEL_ERROR])
        add_model_error(flux, theta, simulator, model_error, drng)
    return theta, flux, rng


def test_split(
    estimator: Any, simulator: Any, n: int, seed: int, *, model_error: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The held-out test split: ``(theta, noisy_flux, sigma)`` from the test seed stream.

    Parameters are fresh draws from the prior (uniform over the grid box, off-node almost
    surely), simulated through the interpolated grid and noised with the estimator's own
    noise model, from a random stream (``[seed, 2]``) that training (``[seed, 0]``) and
    validation (``[seed, 1]``) never use. An NPE trained with model-error realisations
    (:func:`model_error_of`) is tested on spectra that carry them too (its own simulator);
    ``model_error=False`` leaves them out (exact grid spectra: how much wider its intervals
    are where the grid is right). Parameters and noise do not depend on that choice.

    Example:
        >>> import tempfile
        >>> from atmospec.grids import ModelGrid
        >>> d = Path(tempfile.mkdtemp()); w = np.linspace(1.0, 2.0, 40)
        >>> with ModelGrid.create(d / "toy.h5", w, ("teff",), name="toy") as g:
        ...     g.add({"teff": 1000.0}, w**-1)
        ...     g.add({"teff": 2000.0}, w**-2)
        >>> from types import SimpleNamespace
        >>> from atmospec.posteriors.npe import NoiseModel
        >>> from atmospec.posteriors.simulate import GridSimulator
        >>> sim = GridSimulator(ModelGrid(d / "toy.h5"), np.linspace(1.1, 1.9, 10))
        >>> noise = NoiseModel(snr_range=(20.0, 20.0), tilt_range=(0.0, 0.0))
        >>> est = SimpleNamespace(noise=noise, meta_={})  # what test_split needs of an NPE
        >>> theta, noisy, sigma = test_split(est, sim, 3, seed=0)
        >>> theta.round(1).tolist(), noisy.shape, (np.median(noisy, 1) / sigma[:, 0]).round(1)
        ([[1080.8], [1402.4], [1601.3]], (3, 10), array([19.4, 19.4, 19.7]))
    """
    me = model_error_of(estimator) if model_error else None
    theta, flux, rng = _simulate(simulator, n, seed, _TEST, me)
    noisy, sigma = estimator.noise.draw(flux, rng)
    return theta, noisy, sigma


test_split.__test__ = False  # type: ignore[attr-defined]  # a data split, not a pytest test


def _describe(model_error: tuple[Any, float]) -> dict[str, Any] | None:
    from atmospec.training.discrepancy_augment import describe

    return describe(*model_error)


def _regions(theta: np.ndarray, snr: np.ndarray, names: tuple[str, ...], bounds: dict) -> dict:
    regions: dict[str, np.ndarray] = {}
    for j, p in enumerate(names):
        lo, hi = bounds[p]
        mid = 0.5 * (lo + hi)
        regions[f"{p} < {mid:g}"] = theta[:, j] < mid
        regions[f"{p} >= {mid:g}"] = theta[:, j] >= mid
    cuts = np.percentile(snr, [33.3, 66.7])
    regions[f"S/N < {cuts[0]:.0f}"] = snr < cuts[0]
    regions[f"S/N {cuts[0]:.0f}-{cuts[1]:.0f}"] = (snr >= cuts[0]) & (snr < cuts[1])
    regions[f"S/N >= {cuts[1]:.0f}"] = snr >= cuts[1]
    return regions


def calibrate_model(
    model: Any,
    *,
    n_tests: int | None = None,
    n_samples: int | None = None,
    seed: int | None = None,
    out: str | os.PathLike[str] | None = None,
    model_error: bool = True,
) -> Any:
    """Calibration report of a saved NPE (name or folder) on its held-out simulation split.

    The grid, wavelength range, noise model and model-error realisations are read from the
    model's record, so the test spectra come from the same simulator the model was trained
    for (``model_error=False``: without the realisations, see :func:`test_split`). Writes
    ``calibration.json`` and ``calibration.png`` into ``out`` when given.

    Example:
        >>> import tempfile
        >>> from atmospec.grids import ModelGrid
        >>> d = Path(tempfile.mkdtemp()); w = np.linspace(1.0, 2.0, 40)
        >>> with ModelGrid.create(d / "toy.h5", w, ("teff",), name="toy") as g:
        ...     g.add({"teff": 1000.0}, w**-1)
        ...     g.add({"teff": 2000.0}, w**-2)
        >>> cfg = NPEConfig(name="toy-npe", grid=str(d / "toy.h5"), wave_range=(1.1, 1.9),
        ...                 n_train=256, n_val=64,
        ...                 model={"n_features": 8, "width": 16, "depth": 1, "transforms": 1},
        ...                 training={"max_epochs": 2, "batch_size": 128, "num_threads": 1})
        >>> _ = train_npe(cfg, d / "npe", calibrate=False)
        >>> rep = calibrate_model(d / "npe", n_tests=40, n_samples=50)
        >>> rep.n_tests, rep.n_samples, rep.meta["model"], sorted(rep.regions)[-2:]
        (40, 50, 'toy-npe', ['teff < 1500', 'teff >= 1500'])
    """
    from atmospec.models import load_model
    from atmospec.posteriors.calibration import calibrate_estimator
    from atmospec.posteriors.npe import NPEstimator

    est = model if isinstance(model, NPEstimator) else load_model(model, kind="npe")
    info = est.meta_.get("config") or {}
    cfg = NPEConfig(
        **{k: v for k, v in info.items() if k in {f.name for f in dataclasses.fields(NPEConfig)}}
    )
    if isinstance(cfg.wave_range, list):
        cfg.wave_range = tuple(cfg.wave_range)
    n_tests = int(cfg.calibration.get("n_tests", 2000) if n_tests is None else n_tests)
    n_samples = int(cfg.calibration.get("n_samples", 1000) if n_samples is None else n_samples)
    if n_tests < 1 or n_samples < 1:
        raise ModelInputError(
            f"model {cfg.name}: calibration needs n_tests >= 1 and n_samples >= 1, got "
            f"{n_tests} and {n_samples}"
        )
    seed = cfg.seed if seed is None else int(seed)
    sim = _simulator(cfg)
    if est.wavelength_ is not None and not np.allclose(sim.wavelength, est.wavelength_):
        from atmospec.errors import IncompatibleModelError

        raise IncompatibleModelError(
            f"model {cfg.name}: its wavelength axis does not match grid {cfg.grid} in "
            f"{cfg.wave_range} um; was the grid file rebuilt differently?"
        )
    theta, noisy, sigma = test_split(est, sim, n_tests, seed, model_error=model_error)
    me = model_error_of(est) if model_error else None
    snr = np.median(noisy / sigma, axis=1)
    t0 = time.perf_counter()
    rep = calibrate_estimator(
        est,
        noisy,
        sigma,
        theta,
        n_samples=n_samples,
        seed=seed,
        regions=_regions(theta, snr, est.param_names_, est.bounds_),
        tolerance=float(cfg.calibration.get("tolerance", 0.03)),
        meta={
            "model": cfg.name,
            "grid": cfg.grid,
            "split": "held-out simulations (test seed stream), parameters uniform over the grid box",
            "snr_range": list(est.noise.snr_range),
            "seed": seed,
            "model_error": None if me is None else _describe(me),
        },
    )
    rep.meta["seconds"] = time.perf_counter() - t0
    weights = getattr(est, "record_", {}).get("weights_sha256")
    if weights:  # binds the record to these weights (read_calibration checks it)
        rep.meta["weights_sha256"] = weights
    if out is not None:
        rep.write(out)
    return rep


def train_npe(
    config: NPEConfig | str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    calibrate: bool = True,
) -> tuple[Any, Any]:
    """Train an NPE as the config says, calibrate it, and save model + report into ``out``.

    Returns ``(estimator, calibration_report or None)``. The model folder holds
    ``model.json`` (config, noise model, history, provenance, calibration summary),
    ``weights.safetensors``, ``calibration.json`` and ``calibration.png`` (the record names
    the weights it measured; with ``calibrate=False`` a record an earlier model left in
    ``out`` is removed, so that none speaks for these weights).

    Example:
        >>> import tempfile
        >>> from atmospec.grids import ModelGrid
        >>> d = Path(tempfile.mkdtemp()); w = np.linspace(1.0, 2.0, 40)
        >>> with ModelGrid.create(d / "toy.h5", w, ("teff",), name="toy") as g:
        ...     g.add({"teff": 1000.0}, w**-1)
        ...     g.add({"teff": 2000.0}, w**-2)
        >>> cfg = NPEConfig(name="toy-npe", grid=str(d / "toy.h5"), wave_range=(1.1, 1.9),
        ...                 n_train=256, n_val=64,
        ...                 model={"n_features": 8, "width": 16, "depth": 1, "transforms": 1},
        ...                 training={"max_epochs": 2, "batch_size": 128, "num_threads": 1})
        >>> est, rep = train_npe(cfg, d / "npe", calibrate=False)  # 2 epochs of 2 batches
        >>> sorted(p.name for p in (d / "npe").iterdir()), rep
        (['model.json', 'weights.safetensors'], None)
        >>> est.param_names_, est.bounds_, est.wavelength_.size, est.meta_["config"]["name"]
        (('teff',), {'teff': (1000.0, 2000.0)}, 32, 'toy-npe')
    """
    from atmospec._fileio import provenance
    from atmospec.posteriors.npe import NoiseModel, NPEstimator

    if isinstance(config, NPEConfig):
        cfg = config
        check_config(cfg, f"NPE config {cfg.name!r}")
    else:
        cfg = read_config(config)
    sim = _simulator(cfg)
    me = _model_error(cfg.discrepancy, cfg.discrepancy_amplitude)
    t0 = time.perf_counter()
    theta, flux, _ = _simulate(sim, cfg.n_train, cfg.seed, _TRAIN, me, np.float32)
    theta_v, flux_v, _ = _simulate(sim, cfg.n_val, cfg.seed, _VAL, me, np.float32)
    sim_seconds = time.perf_counter() - t0
    noise_fields: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v for k, v in cfg.noise.items()
    }
    noise = NoiseModel(**noise_fields)
    tr = dict(cfg.training)
    est = NPEstimator(sim.param_names, sim.bounds, noise=noise, seed=cfg.seed, **cfg.model, **tr)
    est.fit(flux, theta, wavelength=sim.wavelength, validation=(flux_v, theta_v))
    est.meta_["config"] = dataclasses.asdict(cfg)
    est.meta_["grid"] = cfg.grid
    est.meta_["model_error"] = None if me is None else _describe(me)
    est.meta_["simulation_seconds"] = sim_seconds
    est.meta_["provenance"] = provenance(
        seed=cfg.seed,
        grid=cfg.grid,
        model=cfg.name,
        kind="npe",
        training_spectra=cfg.n_train,
        training_seconds=est.history_.get("seconds", [0])[-1]
        if est.history_.get("seconds")
        else None,
    )
    rep = None
    if calibrate:
        rep = calibrate_model(est, seed=cfg.seed)
        est.meta_["calibration"] = {
            "passed": rep.passed,
            "max_coverage_error": rep.max_error,
            "coverage_hpd": rep.hpd,
            "n_tests": rep.n_tests,
        }
    if out is not None:
        from atmospec.posteriors.calibration import CALIBRATION_FILE
        from atmospec.serialization import read_record

        folder = est.save(out)
        if rep is not None:
            rep.meta["weights_sha256"] = read_record(folder)["weights_sha256"]
            rep.write(folder)
        else:  # a record left by an earlier model in this folder must not speak for this one
            for stale in (folder / CALIBRATION_FILE, folder / "calibration.png"):
                if stale.is_file():
                    stale.unlink()
                    log.info("%s: removed (it described the model trained there before)", stale)
    return est, rep
