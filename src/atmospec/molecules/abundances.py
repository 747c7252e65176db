"""Amortised posterior of a transmission retrieval: an NPE for one binning, cached by its digest.

Design. Any binning is served by training, for the requested bins and error bars, a small
neural posterior estimator (:class:`~atmospec.posteriors.npe.NPEstimator`, the project's flow)
on planets drawn from the retrieval prior and simulated with the same forward model and
binning as the likelihood (:class:`~atmospec.molecules.retrieval.Retrieval`): the forward
model costs ~1.5 ms per planet on one core, so 20,000 planets take about 30 s and training a
few minutes. The input is the noisy depth with each instrument's error-weighted mean removed
(free offsets, exactly what the marginalised likelihood sees), in units of the error bars.
The trained model is saved with :mod:`atmospec.serialization` (``weights.safetensors`` plus
a sealed ``model.json`` recording the digest, seed, prior and versions) in a cache folder named
by the digest of the bins, errors, prior, gravity, stellar radius and opacities, so a second
request for the same binning loads it in a second. Once trained it answers any spectrum on
those bins in milliseconds.

Calibration. Trained by maximum likelihood on fixed noisy spectra, the flow's marginals were
calibrated but its joint posterior too narrow (HPD regions of WASP-39b's and WASP-80b's bins
held the truth in 47 and 42 % of held-out simulations at 68 %). Noise is now redrawn every
epoch (:class:`ResidualNoise`), and after training a latent temperature ``tau`` (the
flow's base drawn from ``N(0, tau^2 I)``, :mod:`atmospec.posteriors.tempering`) is chosen on
a calibration set of fresh simulations (:func:`calibrate`, its own seed stream, never the
training planets and never the coverage test) and saved with the model; the record
(``meta_["calibration"]``: ``tau``, set size, seed, coverage before and after) goes into
``retrieval.json``. Coverage is measured on a third set (:func:`coverage`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from atmospec.errors import ModelFileError, OutOfGridError
from atmospec.molecules.retrieval import Retrieval
from atmospec.posteriors.npe import NPEstimator

__all__ = [
    "KIND",
    "TransitNPE",
    "ResidualNoise",
    "train_abundance_npe",
    "calibrate",
    "is_calibrated",
    "UNCALIBRATED",
    "load_or_train",
    "coverage",
    "cache_dir",
]

KIND = "transit_retrieval_npe"
log = logging.getLogger(__name__)

OOD_FACTOR = 3.0
"""A spectrum whose standardised input power exceeds this multiple of the 99.9th percentile
of the training spectra is refused as outside the prior."""


@dataclass(frozen=True)
class ResidualNoise:
    """Training noise of the retrieval NPE: Gaussian noise of the observed error bars, then each
    instrument's error-weighted mean removed (the offset-free residual the likelihood reads).

    It has the ``draw(flux, rng) -> (noisy, sigma)`` contract of
    :class:`~atmospec.posteriors.npe.NoiseModel`, so the estimator redraws it every epoch.

    Example:
        >>> nz = ResidualNoise((1.0, 1.0, 2.0), (0, 0, 1))
        >>> noisy, sig = nz.draw(np.zeros((2, 3)), np.random.default_rng(0))
        >>> bool(abs(noisy[0, :2].sum()) < 1e-12 and noisy[0, 2] == 0.0), sig[0].tolist()
        (True, [1.0, 1.0, 2.0])
    """

    error: tuple[float, ...]
    instrument: tuple[int, ...]

    @classmethod
    def of(cls, retrieval: Retrieval) -> ResidualNoise:
        """The noise of ``retrieval``'s spectrum."""
        return cls(
            tuple(float(e) for e in retrieval.spec.error), tuple(int(i) for i in retrieval.ids)
        )

    def draw(
        self, flux: NDArray[np.floating[Any]], rng: np.random.Generator
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        err = np.asarray(self.error)
        ids = np.asarray(self.instrument)
        noisy = np.asarray(flux, dtype=np.float64) + err * rng.standard_normal(np.shape(flux))
        onehot = np.eye(int(ids.max()) + 1)[ids]
        w = 1.0 / err**2
        means = (noisy * w) @ onehot / (w @ onehot)
        return noisy - means[:, ids], np.broadcast_to(err, noisy.shape).copy()


class TransitNPE(NPEstimator):
    """An :class:`NPEstimator` reading offset-free residuals in units of the error bars.

    The residuals of a transmission spectrum average to zero per instrument, so the
    brown-dwarf estimator's division by the mean flux is replaced by a division by the
    (fixed) error bars; everything else (flow, training, sampling, saving) is inherited.

    Example:
        >>> from atmospec.molecules.forward import TransmissionModel
        >>> from atmospec.molecules.opacity import OpacityTable
        >>> from atmospec.molecules.spectrum import TransmissionSpectrum
        >>> lam, c = np.linspace(1.0, 2.0, 5), np.linspace(1.1, 1.9, 8)
        >>> grey = OpacityTable("H2O", lam, np.array([1000.0]), np.array([1.0, 1e7]),
        ...                     np.full((1, 2, 5), 1e-27))
        >>> spec = TransmissionSpectrum(c, np.full(8, 0.05), np.full(8, 0.012), np.full(8, 1e-4),
        ...                             np.full(8, "x"), "toy")
        >>> sim = TransmissionModel(lam, [grey], n_levels=20)
        >>> r = Retrieval.build(spec, sim, molecules=("H2O",))
        >>> toy = {"n": 64, "max_epochs": 1, "n_calibration": 0,   # a toy: one epoch, 64 planets
        ...        "hyper": {"width": 16, "n_features": 8, "transforms": 1}}
        >>> est = train_abundance_npe(r, **toy)
        >>> a = est.sample(r.data_residual, r.spec.error, n=5, seed=0)
        >>> b = est.sample(3 * r.data_residual, 3 * r.spec.error, n=5, seed=0)
        >>> a.shape, bool(np.allclose(a, b))   # it reads residuals in units of the error bars
        ((5, 5), True)
        >>> import tempfile
        >>> again = TransitNPE.load(est.save(Path(tempfile.mkdtemp()) / "npe"))
        >>> type(again).__name__, again.noise == est.noise   # with its training noise
        ('TransitNPE', True)
    """

    def _normalise(
        self, flux: NDArray[np.float64], sigma: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        return flux / sigma, sigma / np.median(sigma, axis=-1, keepdims=True)

    def save(self, path: str | os.PathLike[str], **extra: Any) -> Path:
        return super().save(path, **{**extra, "kind": KIND})

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TransitNPE:
        from atmospec.serialization import load_arrays

        record, arrays = load_arrays(path)
        if record.get("kind") != KIND:
            raise ModelFileError(
                f"{path}: not a transit retrieval NPE (kind={record.get('kind')!r})"
            )
        noise = record.get("noise", {})
        if "error" in noise:  # the residual noise it was trained with, rebuilt after loading
            est = cls._from_record({**record, "noise": {}}, arrays, path)
            try:
                est.noise = ResidualNoise(  # type: ignore[assignment]
                    tuple(float(e) for e in noise["error"]),
                    tuple(int(i) for i in noise["instrument"]),
                )
            except (KeyError, TypeError, ValueError) as err:
                raise ModelFileError(f"{path}: unreadable training noise ({err})") from None
            est.record_ = record
        else:
            est = cls._from_record(record, arrays, path)
        assert isinstance(est, TransitNPE)
        return est

    def input_power(self, residual: ArrayLike, error: ArrayLike) -> NDArray[np.float64]:
        """Mean square of the standardised network input per spectrum (an out-of-prior score)."""
        x, _ = self._inputs(residual, np.broadcast_to(error, np.shape(residual)))
        return np.asarray((x.double() ** 2).mean(-1).numpy())


def cache_dir() -> Path:
    """Where trained retrieval NPEs are kept (``data_dir()/molecules/retrieval``).

    Example:
        >>> from atmospec.data import data_dir
        >>> cache_dir().relative_to(data_dir()).as_posix()
        'molecules/retrieval'
    """
    from atmospec.data import data_dir

    return data_dir() / "molecules" / "retrieval"


def train_abundance_npe(
    retrieval: Retrieval,
    *,
    n: int = 20_000,
    noise_draws: int = 2,
    seed: int = 0,
    max_minutes: float = 8.0,
    max_epochs: int = 40,
    hyper: dict[str, Any] | None = None,
    n_calibration: int = 1000,
) -> TransitNPE:
    """Simulate ``n`` planets from the prior on ``retrieval``'s bins and train the NPE.

    Each planet appears ``noise_draws`` times per epoch, each time with fresh Gaussian noise of
    the observed error bars (:class:`ResidualNoise`: a network shown the same noisy spectra
    every epoch learns their noise and becomes over-confident on new ones). Then its latent
    temperature is fitted on ``n_calibration`` further planets (:func:`calibrate`; 0 leaves
    it at 1, uncalibrated, and records so: :data:`UNCALIBRATED`).

    Example:
        >>> est = train_abundance_npe(retrieval, n=2000, max_minutes=1)   # doctest: +SKIP
    """
    import torch

    from atmospec._fileio import provenance

    t0 = time.perf_counter()
    theta, depth, _ = retrieval.simulate(n, seed=seed)
    sim_s = time.perf_counter() - t0
    log.info("simulated %d planets on %d bins in %.0f s", n, len(retrieval.spec), sim_s)
    noise = ResidualNoise.of(retrieval)
    n_val = max(1, n // 10)  # held-out planets (noised once, fixed seed) for early stopping
    settings = {
        "n_features": 64,
        "width": 256,
        "depth": 2,
        "transforms": 4,
        "bins": 8,
        "lr": 1e-3,
        "batch_size": 256,
        # the uniform prior is exactly the flow's N(0, 1) base: a posterior flat down to a
        # bound (an undetected molecule) keeps Gaussian tails in the flow's space
        "box_map": "probit",
        **(hyper or {}),
    }
    threads = torch.get_num_threads()
    est = TransitNPE(
        retrieval.param_names,
        retrieval.bounds,
        max_epochs=max_epochs,
        patience=10,
        max_seconds=60.0 * max_minutes,
        seed=seed,
        num_threads=1,
        noise=noise,  # type: ignore[arg-type]  # same draw() contract as NoiseModel
        **settings,
    )
    est.fit(
        np.repeat(depth[n_val:], noise_draws, axis=0),
        np.repeat(theta[n_val:], noise_draws, axis=0),
        validation=(depth[:n_val], theta[:n_val]),
        wavelength=None,
    )
    torch.set_num_threads(threads)
    noisy, _ = noise.draw(depth[:4096], np.random.default_rng([seed, 2]))
    power = est.input_power(noisy, retrieval.spec.error)
    est.meta_ = {
        "digest": retrieval.digest(),
        "spectrum": retrieval.spec.name,
        "molecules": list(retrieval.molecules),
        "gravity": retrieval.gravity,
        "star_radius_rsun": retrieval.star_radius_rsun,
        "n_simulated": n,
        "noise_draws": noise_draws,
        "training": {"max_epochs": max_epochs, "max_minutes": max_minutes, **settings},
        "epochs_trained": len(est.history_.get("train_loss", [])),
        "simulate_seconds": sim_s,
        "train_seconds": time.perf_counter() - t0 - sim_s,
        "input_power_q999": float(np.quantile(power, 0.999)),
        "assumptions": retrieval.assumptions,
        "provenance": provenance(seed=seed, digest=retrieval.digest()),
    }
    if n_calibration > 0:
        calibrate(est, retrieval, n=n_calibration, seed=seed)
    else:
        est.meta_["calibration"] = dict(UNCALIBRATED)
    return est


UNCALIBRATED: dict[str, Any] = {
    "calibrated": False,
    "method": "none: trained with n_calibration=0, the latent temperature left at 1 "
    "(intervals may be too narrow)",
    "temperature": 1.0,
    "n_calibration": 0,
    "seed": None,
}
"""The calibration record of an NPE trained without a calibration set, on purpose."""


def is_calibrated(meta: Mapping[str, Any]) -> bool | None:
    """Whether an NPE's record ``meta`` (its ``meta_``) says its latent temperature was fitted
    (:func:`calibrate`): True, False (trained with ``n_calibration=0`` on purpose), or None
    (saved before calibration existed).

    Example:
        >>> is_calibrated({"calibration": UNCALIBRATED}), is_calibrated({})
        (False, None)
    """
    record = meta.get("calibration")
    if record is None:
        return None
    return bool(record.get("calibrated", True))  # calibrate() wrote no such key at first


def calibration_seed(seed: int) -> int:
    """The simulation seed of the calibration set for training seed ``seed``: a stream of its
    own (``SeedSequence([seed, 1])``), disjoint from the training planets (``seed``) and from
    the coverage tests (:func:`coverage`)."""
    return int(np.random.SeedSequence([seed, 1]).generate_state(1)[0])


def calibrate(
    est: TransitNPE, retrieval: Retrieval, *, n: int = 1000, seed: int = 0, n_samples: int = 200
) -> dict[str, Any]:
    """Fit the latent temperature of ``est`` on ``n`` fresh simulations and set it.

    The planets are drawn from the retrieval prior with :func:`calibration_seed` (never the
    training stream); ``est.temperature_`` is set and ``est.meta_["calibration"]`` records the
    temperature, the set size, its seed and the coverage before and after. Returns that record.

    Example:
        >>> calibrate(est, retrieval, n=1000)["temperature"]   # doctest: +SKIP
        1.35
    """
    from atmospec.posteriors.tempering import fit_temperature

    t0 = time.perf_counter()
    sim_seed = calibration_seed(seed)
    theta, _, noisy = retrieval.simulate(n, seed=sim_seed)
    err = np.broadcast_to(retrieval.spec.error, noisy.shape)
    fit = fit_temperature(est, noisy, err, theta, n_samples=n_samples, seed=sim_seed)
    est.temperature_ = fit.temperature
    # "seed": the calibration set's simulation seed (also that of the draws and TARP points)
    record = {"calibrated": True, **fit.to_dict(), "seconds": round(time.perf_counter() - t0, 1)}
    est.meta_["calibration"] = record
    log.info(
        "latent temperature %.2f from %d calibration planets (worst coverage error %.3f -> %.3f)",
        fit.temperature,
        n,
        record["worst_error_untempered"],
        record["worst_error_tempered"],
    )
    return record


def load_or_train(
    retrieval: Retrieval,
    *,
    folder: str | os.PathLike[str] | None = None,
    retrain: bool = False,
    **train: Any,
) -> TransitNPE:
    """The NPE for ``retrieval``'s binning: loaded from the cache if its digest matches,
    otherwise trained and saved there (atomically, sealed).

    The cached NPE is returned as its record says it was trained: one trained with
    ``n_calibration=0`` stays uncalibrated (``meta_["calibration"]["calibrated"]`` is False;
    ``retrain=True`` trains a calibrated one). Only an NPE saved before calibration existed
    (no calibration record at all) is calibrated first (on ``n_calibration`` planets, 1000
    unless given; :func:`calibrate`) and saved again.

    Example:
        >>> import tempfile
        >>> from atmospec.molecules.forward import TransmissionModel
        >>> from atmospec.molecules.opacity import OpacityTable
        >>> from atmospec.molecules.spectrum import TransmissionSpectrum
        >>> lam, c = np.linspace(1.0, 2.0, 5), np.linspace(1.1, 1.9, 8)
        >>> grey = OpacityTable("H2O", lam, np.array([1000.0]), np.array([1.0, 1e7]),
        ...                     np.full((1, 2, 5), 1e-27))
        >>> spec = TransmissionSpectrum(c, np.full(8, 0.05), np.full(8, 0.012), np.full(8, 1e-4),
        ...                             np.full(8, "x"), "toy")
        >>> sim = TransmissionModel(lam, [grey], n_levels=20)
        >>> r = Retrieval.build(spec, sim, molecules=("H2O",))
        >>> toy = {"n": 64, "max_epochs": 1, "n_calibration": 0,   # a toy: one epoch, 64 planets
        ...        "hyper": {"width": 16, "n_features": 8, "transforms": 1}}
        >>> folder = Path(tempfile.mkdtemp())
        >>> est = load_or_train(r, folder=folder, **toy)   # trained, saved under the digest
        >>> [f.name for f in folder.iterdir()] == [r.digest()]
        True
        >>> again = load_or_train(r, folder=folder, n=10)   # cached: as trained, uncalibrated
        >>> again.meta_["n_simulated"], again.meta_["calibration"]["calibrated"], again.temperature_
        (64, False, 1.0)
    """
    root = Path(folder) if folder is not None else cache_dir()
    path = root / retrieval.digest()
    if path.exists() and not retrain:
        try:
            est = TransitNPE.load(path)
            if est.meta_.get("digest") == retrieval.digest():
                log.info("loaded the retrieval NPE for these bins from %s", path)
                wanted = train.get("n_calibration", 1000)
                status = is_calibrated(est.meta_)
                if status is None and wanted > 0:
                    log.info("calibrating the cached NPE (saved before calibration existed)")
                    calibrate(est, retrieval, n=wanted, seed=est.seed)
                    est.save(path)
                elif status is False and wanted > 0:
                    log.warning(
                        "%s: this NPE was trained without calibration (n_calibration=0) and is "
                        "used uncalibrated, as recorded; retrain=True trains a calibrated one",
                        path,
                    )
                return est
        except ModelFileError as err:
            log.warning("retraining: %s", err)
    est = train_abundance_npe(retrieval, **train)
    root.mkdir(parents=True, exist_ok=True)
    est.save(path)
    log.info("saved the retrieval NPE to %s", path)
    return est


def check_input(est: TransitNPE, retrieval: Retrieval) -> float:
    """Refuse a spectrum whose offset-free residuals lie far outside every training spectrum.

    Returns the spectrum's input power (see :meth:`TransitNPE.input_power`).

    Raises:
        OutOfGridError: naming the spectrum, its score and the threshold.
    """
    power = float(est.input_power(retrieval.data_residual[None], retrieval.spec.error)[0])
    limit = OOD_FACTOR * float(est.meta_["input_power_q999"])
    if power > limit:
        raise OutOfGridError(
            f"{retrieval.spec.name}: its features are larger than any planet in the retrieval "
            f"prior produces (input power {power:.3g} > {limit:.3g}); check the depth unit, "
            "offsets between files, or gravity / stellar radius"
        )
    return power


def coverage(
    est: TransitNPE,
    retrieval: Retrieval,
    *,
    n_tests: int = 1000,
    n_samples: int = 500,
    seed: int = 12345,
    temperature: float | None = None,
) -> Any:
    """Coverage on ``n_tests`` fresh simulations (never seen in training): a
    :class:`~atmospec.posteriors.calibration.CalibrationReport` with SBC ranks (marginal
    central intervals), HPD expected coverage and TARP, at the usual levels and at 0.68.
    ``temperature``: the latent temperature to test (default: the estimator's own).

    Example:
        >>> from atmospec.molecules.forward import TransmissionModel
        >>> from atmospec.molecules.opacity import OpacityTable
        >>> from atmospec.molecules.spectrum import TransmissionSpectrum
        >>> lam, c = np.linspace(1.0, 2.0, 5), np.linspace(1.1, 1.9, 8)
        >>> grey = OpacityTable("H2O", lam, np.array([1000.0]), np.array([1.0, 1e7]),
        ...                     np.full((1, 2, 5), 1e-27))
        >>> spec = TransmissionSpectrum(c, np.full(8, 0.05), np.full(8, 0.012), np.full(8, 1e-4),
        ...                             np.full(8, "x"), "toy")
        >>> sim = TransmissionModel(lam, [grey], n_levels=20)
        >>> r = Retrieval.build(spec, sim, molecules=("H2O",))
        >>> toy = {"n": 64, "max_epochs": 1, "n_calibration": 0,   # a toy: one epoch, 64 planets
        ...        "hyper": {"width": 16, "n_features": 8, "transforms": 1}}
        >>> rep = coverage(train_abundance_npe(r, **toy), r, n_tests=20, n_samples=20)
        >>> type(rep).__name__, rep.n_tests, 0.68 in rep.levels, rep.meta["temperature"]
        ('CalibrationReport', 20, True, 1.0)
        >>> sorted(rep.meta["sbc_rank_uniformity_p"])   # one p-value per parameter
        ['log_H2O', 'log_haze', 'log_p_cloud_bar', 'radius_rjup', 'temperature']
    """
    from scipy.stats import chisquare

    from atmospec.posteriors.calibration import LEVELS, calibration_report, sbc_ranks

    sim_seed, draw_seed, tarp_seed = np.random.SeedSequence(seed).generate_state(3)
    theta, _, noisy = retrieval.simulate(n_tests, seed=int(sim_seed))
    err = np.broadcast_to(retrieval.spec.error, noisy.shape)
    tau = est.temperature_ if temperature is None else float(temperature)
    draws = est.sample(noisy, err, n=n_samples, seed=int(draw_seed), temperature=tau)
    lq = est.log_prob(draws, noisy, err, temperature=tau)
    lt = est.log_prob(theta[:, None, :], noisy, err, temperature=tau)[:, 0]
    levels = tuple(sorted({*LEVELS, 0.68}))
    # SBC rank uniformity: chi-square of 10-bin rank histograms, one p-value per parameter
    ranks = sbc_ranks(draws, theta)
    edges = np.linspace(0, n_samples + 1, 11)
    uniform_p = {
        p: float(chisquare(np.histogram(ranks[:, j], edges)[0]).pvalue)
        for j, p in enumerate(retrieval.param_names)
    }
    return calibration_report(
        draws,
        theta,
        lq,
        lt,
        retrieval.param_names,
        low=retrieval.low,
        high=retrieval.high,
        levels=levels,
        seed=int(tarp_seed),  # TARP's reference points: never the simulation's own stream
        meta={
            "digest": retrieval.digest(),
            "seed": seed,
            "n_tests": n_tests,
            "temperature": tau,
            "sbc_rank_uniformity_p": uniform_p,
        },
    )
