"""NPEstimator: neural posterior estimation of grid parameters from a spectrum and its errors."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from atmospec.errors import (
    CoverageError,
    IncompatibleModelError,
    InvalidSpectrumError,
    ModelFileError,
)
from atmospec.estimators.base import BOUND_TOLERANCE, Estimator, Prediction

__all__ = ["NoiseModel", "NPEstimator", "DEFAULT_NOISE"]

log = logging.getLogger(__name__)

KIND = "npe"
_EPS = 1e-6
BOX_MAPS = ("logit", "probit")


@dataclasses.dataclass(frozen=True)
class NoiseModel:
    """How training spectra are made noisy, redrawn every epoch (noise-conditional training).

    Each training spectrum ``f`` gets a random overall scale ``a`` (log-uniform in
    ``scale_range``), an S/N at its median flux (log-uniform in ``snr_range``) and a
    smooth random error shape over the pixels, ``exp(q t)`` with ``t`` running from -1 to
    1 across the axis and ``q`` uniform in ``tilt_range``:
    ``sigma_i = (a median(f) / snr) * exp(q t_i) * (f_i / median(f)) ** p``. The noisy
    flux is ``a f + sigma * N(0, 1)``. The network sees the normalised flux *and* its
    sigma, so it serves any S/N inside ``snr_range``.

    Keep ``power_range = (0, 0)`` (the default): with ``p > 0`` the error bars are a
    function of the *noise-free* model flux and leak the answer to the network, which then
    is calibrated on such simulations but over-confident on real data and against the
    exact likelihood (whose errors carry no information).

    Example:
        >>> import numpy as np
        >>> nm = NoiseModel(snr_range=(20.0, 20.0), tilt_range=(0.0, 0.0))
        >>> noisy, sig = nm.draw(np.ones((2, 500)), np.random.default_rng(0))
        >>> bool(np.allclose(sig / np.median(noisy, axis=1, keepdims=True), 0.05, rtol=0.2))
        True
    """

    snr_range: tuple[float, float] = (5.0, 100.0)
    power_range: tuple[float, float] = (0.0, 0.0)
    tilt_range: tuple[float, float] = (-1.0, 1.0)
    scale_range: tuple[float, float] = (0.1, 10.0)
    floor: float = 0.05

    def draw(
        self, flux: NDArray[np.floating[Any]], rng: np.random.Generator
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Return ``(noisy_flux, sigma)`` for noise-free spectra ``flux`` of shape (n, n_pix)."""
        f = np.asarray(flux, dtype=np.float64)
        n = f.shape[0]
        med = np.median(np.abs(f), axis=1, keepdims=True)
        med = np.where(med > 0, med, 1.0)
        lo, hi = np.log(self.scale_range)
        a = np.exp(rng.uniform(lo, hi, (n, 1)))
        lo, hi = np.log(self.snr_range)
        snr = np.exp(rng.uniform(lo, hi, (n, 1)))
        p = rng.uniform(*self.power_range, (n, 1))
        q = rng.uniform(*self.tilt_range, (n, 1))
        t = np.linspace(-1.0, 1.0, f.shape[1])[None, :]
        shape = np.exp(q * t) * np.maximum(np.abs(f) / med, 1e-12) ** p
        shape = np.maximum(shape, self.floor * np.median(shape, axis=1, keepdims=True))
        sigma = a * med / snr * shape
        noisy = a * f + sigma * rng.standard_normal(f.shape)
        return noisy, sigma


DEFAULT_NOISE = NoiseModel()
"""The default training noise model of :class:`NPEstimator` (immutable, so safe to share)."""


class _Batches:
    """Re-iterable loader: fresh noise (and order) each pass unless ``fixed``."""

    def __init__(
        self,
        est: NPEstimator,
        flux: NDArray[np.float64],
        z: NDArray[np.float64],
        sigma: NDArray[np.float64] | None,
        batch_size: int,
        seed: int,
        fixed: bool,
    ) -> None:
        self.est, self.flux, self.z, self.sigma = est, flux, z, sigma
        self.batch_size, self.seed, self.fixed = batch_size, seed, fixed
        self.epoch = 0

    def __iter__(self) -> Iterator[tuple[Any, Any, Any]]:
        import torch

        rng = np.random.default_rng([self.seed, 0 if self.fixed else self.epoch])
        self.epoch += 1
        n = self.flux.shape[0]
        order = np.arange(n) if self.fixed else rng.permutation(n)
        for i in range(0, n, self.batch_size):
            idx = order[i : i + self.batch_size]
            if self.sigma is None:
                noisy, sig = self.est.noise.draw(self.flux[idx], rng)
            else:
                noisy, sig = self.flux[idx], self.sigma[idx]
            x, ls = self.est._inputs(noisy, sig)
            yield x, ls, torch.as_tensor(self.z[idx], dtype=torch.float32)


def _nll(q: Any, z: Any) -> Any:
    return -q.log_prob(z).mean()


class NPEstimator(Estimator):
    """Amortised posterior ``p(theta | spectrum, sigma)`` by a normalizing flow (NPE).

    Trained on noise-free model spectra (e.g. from the training-set builder or an
    interpolated grid) with noise redrawn every epoch from :class:`NoiseModel`; the
    per-pixel sigma is an input, so one model serves any S/N. Parameters live in a box
    (the grid bounds) and are mapped to the flow's space by a logit of their position in
    the box, so every sample lies inside the grid (no extrapolation). Spectra are
    normalised by their own mean flux (the estimator is scale-free; the flux scale, hence
    the radius, is solved analytically by :mod:`atmospec.posteriors.importance`).

    It follows the estimator contract of :class:`~atmospec.estimators.base.Estimator`:
    hyperparameters (the prior box included) are the ``__init__`` arguments, stored
    unchanged (``get_params`` / ``set_params``, ``sklearn.base.clone``); ``fit`` creates the
    learned state (``param_names_``, ``bounds_``, ``wavelength_``, ``meta_``, ``model_``...);
    ``predict`` gives the posterior mean and sd as a
    :class:`~atmospec.estimators.base.Prediction` and ``sample`` posterior draws.
    ``temperature_`` (1 after ``fit``) scales the flow's base distribution when sampling and
    in ``log_prob``; :func:`atmospec.posteriors.tempering.fit_temperature` chooses it on
    held-out simulations, and it is saved with the model.

    Args:
        param_names: parameter names, in column order of ``theta``.
        bounds: ``{name: (low, high)}`` prior box (uniform prior inside).
        noise: the training noise model.
        n_features: embedding size (flow context).
        width: embedding MLP width.
        depth: embedding residual blocks.
        n_components: the embedding first projects the standardised flux on this many
            whitened principal components of the (noisy) training inputs (0: no
            projection, the default). Cheaper, but on dback24 at S/N 3-30 the whitened
            noise-dominated components left the flow at the prior (validation loss equal to
            the prior entropy) while the raw inputs train at once: keep 0 unless checked.
        n_sigma_components: the same for the log sigma input.
        transforms: context-only (spline + affine) flow blocks.
        couplings: sample-dependent spline couplings (slower sampling; 0 = none).
        hidden: conditioner width of the couplings.
        bins: spline bins.
        lr: learning rate (AdamW).
        batch_size: spectra per gradient step.
        max_epochs: upper bound on epochs (also the length of the cosine schedule).
        patience: epochs without validation improvement before stopping.
        max_seconds: wall-time budget of the training (None: no limit).
        scheduler: learning-rate schedule of the Trainer (``"cosine"`` over ``max_epochs``,
            ``"plateau"`` or ``"none"``).
        weight_decay: AdamW weight decay.
        seed: seed of weights, noise and validation split.
        num_threads: torch CPU threads while training (None: unchanged).
        box_map: how a position ``u`` in the prior box maps to the flow's space: ``"logit"``
            (``log u - log(1 - u)``, the default) or ``"probit"`` (the standard-normal
            quantile of ``u``: the uniform prior becomes exactly the flow's ``N(0, 1)`` base,
            so a posterior that stays flat up to a bound, as for an undetected molecule, has
            the Gaussian tails the flow can represent; the logit's exponential tails it cannot).

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> theta = rng.uniform(0, 1, (64, 1))
        >>> flux = 1.0 + theta * np.linspace(-0.5, 0.5, 8)
        >>> est = NPEstimator(["a"], {"a": (0.0, 1.0)}, width=16, depth=1, n_features=8,
        ...                   hidden=16, transforms=2, max_epochs=2)
        >>> _ = est.fit(flux, theta)
        >>> est.sample(flux[0], np.full(8, 0.05), n=10, seed=1).shape
        (10, 1)
    """

    kind = KIND
    uses_sigma = True
    # Learned state beyond the contract's: declared for type checkers, created by fit / load.
    wavelength_: NDArray[np.float64] | None  # type: ignore[assignment]  # optional for an NPE
    model_: Any  # the PosteriorFlow
    record_: dict[str, Any]  # the saved record (load only)
    temperature_: float = 1.0  # latent temperature of the flow's base (see tempering.py)

    def __init__(
        self,
        param_names: Sequence[str],
        bounds: Mapping[str, tuple[float, float]],
        *,
        noise: NoiseModel = DEFAULT_NOISE,
        n_features: int = 64,
        width: int = 256,
        depth: int = 3,
        transforms: int = 3,
        couplings: int = 0,
        bins: int = 8,
        hidden: int = 64,
        n_components: int = 0,
        n_sigma_components: int = 0,
        lr: float = 1e-3,
        batch_size: int = 256,
        max_epochs: int = 200,
        patience: int = 20,
        max_seconds: float | None = None,
        scheduler: str = "cosine",
        weight_decay: float = 1e-5,
        seed: int = 0,
        num_threads: int | None = None,
        box_map: str = "logit",
    ) -> None:
        self.param_names = param_names
        self.bounds = bounds
        self.noise = noise
        self.n_features = n_features
        self.width = width
        self.depth = depth
        self.transforms = transforms
        self.couplings = couplings
        self.bins = bins
        self.hidden = hidden
        self.n_components = n_components
        self.n_sigma_components = n_sigma_components
        self.lr = lr
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.max_seconds = max_seconds
        self.scheduler = scheduler
        self.weight_decay = weight_decay
        self.seed = seed
        self.num_threads = num_threads
        self.box_map = box_map

    def _box(self) -> dict[str, tuple[float, float]]:
        """The prior box from the hyperparameters, checked."""
        names = [str(p) for p in self.param_names]
        missing = [p for p in names if p not in self.bounds]
        if missing:
            raise ValueError(f"bounds missing for parameters {missing}")
        box = {p: (float(self.bounds[p][0]), float(self.bounds[p][1])) for p in names}
        if self.box_map not in BOX_MAPS:
            raise ValueError(f"box_map must be one of {BOX_MAPS}, got {self.box_map!r}")
        for p, (lo, hi) in box.items():
            if not hi > lo:
                raise ValueError(f"bounds of {p!r} must have high > low, got {(lo, hi)}")
        return box

    # -- parameter space <-> flow space -------------------------------------------------
    @property
    def _lo_hi(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        box = self.bounds_ if hasattr(self, "bounds_") else self._box()
        lo = np.array([b[0] for b in box.values()])
        hi = np.array([b[1] for b in box.values()])
        return lo, hi

    @property
    def _probit(self) -> bool:
        return getattr(self, "box_map", "logit") == "probit"

    def to_z(self, theta: ArrayLike) -> NDArray[np.float64]:
        """Physical parameters -> flow space (logit or probit of the position inside the box)."""
        lo, hi = self._lo_hi
        u = np.clip((np.asarray(theta, dtype=np.float64) - lo) / (hi - lo), _EPS, 1 - _EPS)
        if self._probit:
            from scipy.special import ndtri

            return np.asarray(ndtri(u), dtype=np.float64)
        return np.log(u) - np.log1p(-u)

    def from_z(self, z: ArrayLike) -> NDArray[np.float64]:
        """Flow space -> physical parameters (always inside the box)."""
        lo, hi = self._lo_hi
        if self._probit:
            from scipy.special import ndtr

            u = ndtr(np.asarray(z, dtype=np.float64))
        else:
            u = 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))
        return lo + (hi - lo) * u

    def _log_jacobian(self, theta: NDArray[np.float64]) -> NDArray[np.float64]:
        """``log |dz/dtheta|`` summed over parameters."""
        lo, hi = self._lo_hi
        u = np.clip((theta - lo) / (hi - lo), _EPS, 1 - _EPS)
        if self._probit:  # dz/du = 1 / phi(z)
            z = self.to_z(theta)
            return np.sum(0.5 * z**2 + 0.5 * np.log(2 * np.pi) - np.log(hi - lo), axis=-1)
        return np.sum(-np.log(u) - np.log1p(-u) - np.log(hi - lo), axis=-1)

    # -- inputs --------------------------------------------------------------------------
    def _normalise(
        self, flux: NDArray[np.float64], sigma: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        c = np.mean(flux, axis=-1, keepdims=True)
        if np.any(~np.isfinite(c) | (c <= 0)):
            raise InvalidSpectrumError(
                "NPE input: a spectrum has a non-positive or non-finite mean flux; the estimator "
                "needs flux in physical (positive) units"
            )
        return flux / c, sigma / c

    def _inputs(self, flux: ArrayLike, sigma: ArrayLike) -> tuple[Any, Any]:
        import torch

        f = np.asarray(flux, dtype=np.float64)
        s = np.asarray(sigma, dtype=np.float64)
        if f.shape != s.shape:
            raise InvalidSpectrumError(f"flux shape {f.shape} and sigma shape {s.shape} differ")
        if not (np.isfinite(f).all() and np.isfinite(s).all()) or np.any(s <= 0):
            raise InvalidSpectrumError(
                "NPE input: flux and sigma must be finite and sigma > 0 in every pixel (mask or "
                "resample the spectrum first; NaN never goes into the network)"
            )
        xn, sn = self._normalise(f, s)
        x = (xn - self.x_mean_) / self.x_std_
        ls = (np.log(sn) - self.ls_mean_) / self.ls_std_
        return (
            torch.as_tensor(x, dtype=torch.float32),
            torch.as_tensor(ls, dtype=torch.float32),
        )

    def _build(self, n_pixels: int) -> Any:
        from atmospec.posteriors.flow import PosteriorFlow

        return PosteriorFlow(
            len(self.param_names_),
            n_pixels,
            n_features=self.n_features,
            width=self.width,
            depth=self.depth,
            transforms=self.transforms,
            couplings=self.couplings,
            bins=self.bins,
            hidden=self.hidden,
            n_components=self.n_components,
            n_sigma_components=self.n_sigma_components,
        )

    # -- training ------------------------------------------------------------------------
    def fit(  # type: ignore[override]  # the prior box is a hyperparameter here
        self,
        X: ArrayLike,
        y: ArrayLike,
        *,
        sigma: ArrayLike | None = None,
        wavelength: ArrayLike | None = None,
        val_fraction: float = 0.1,
        validation: tuple[ArrayLike, ArrayLike] | None = None,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        resume: bool = False,
    ) -> NPEstimator:
        """Train on spectra ``X`` (n, n_pix) with parameters ``y`` (n, n_params).

        With ``sigma=None`` the spectra are noise-free models and noise is drawn from
        ``noise`` every epoch; otherwise they are fixed noisy spectra with errors
        ``sigma``. ``validation`` is an optional ``(flux, theta)`` pair of held-out noise-free
        spectra (default: a random ``val_fraction`` of the input), noised once with a fixed seed.
        """
        import torch

        from atmospec.training.trainer import Trainer

        box = self._box()
        self.param_names_ = tuple(box)
        self.bounds_ = box
        self.meta_ = {}
        self.temperature_ = 1.0
        f = np.asarray(X)
        if f.dtype not in (np.float32, np.float64):
            f = f.astype(np.float64)
        th = np.asarray(y, dtype=np.float64)
        if f.ndim != 2 or th.ndim != 2 or th.shape != (f.shape[0], len(self.param_names_)):
            raise ValueError(
                f"fit expects X (n, n_pix) and y (n, {len(self.param_names_)}), got "
                f"{f.shape} and {th.shape}"
            )
        if not np.isfinite(f).all() or not np.isfinite(th).all():
            raise InvalidSpectrumError("fit: flux and theta must be finite (no NaN/inf)")
        lo, hi = self._lo_hi
        if np.any(th < lo - 1e-9) or np.any(th > hi + 1e-9):
            bad = [
                p
                for j, p in enumerate(self.param_names_)
                if np.any((th[:, j] < lo[j]) | (th[:, j] > hi[j]))
            ]
            raise ValueError(f"fit: theta outside the prior bounds for {bad}")
        s = None if sigma is None else np.asarray(sigma, dtype=np.float64)
        self.wavelength_ = None if wavelength is None else np.asarray(wavelength, dtype=np.float64)
        if self.wavelength_ is not None and self.wavelength_.shape != (f.shape[1],):
            raise ValueError("wavelength must have one value per pixel of flux")
        rng = np.random.default_rng(self.seed)
        if validation is None:
            perm = rng.permutation(f.shape[0])
            n_val = max(1, int(round(val_fraction * f.shape[0])))
            iv, it = perm[:n_val], perm[n_val:]
            fv, thv, sv = f[iv], th[iv], None if s is None else s[iv]
            f, th, s = f[it], th[it], None if s is None else s[it]
        else:
            fv = np.asarray(validation[0], dtype=np.float64)
            thv = np.asarray(validation[1], dtype=np.float64)
            sv = None
        # input standardisation from noise-free (or given) spectra
        if s is None:
            noisy, sig = self.noise.draw(
                f[: min(len(f), 4096)], np.random.default_rng(self.seed + 1)
            )
        else:
            noisy, sig = f, s
        xn, sn = self._normalise(noisy, sig)
        self.x_mean_ = xn.mean(axis=0)
        self.x_std_ = xn.std(axis=0) + 1e-3 * np.abs(self.x_mean_).mean()
        self.ls_mean_ = float(np.log(sn).mean())
        self.ls_std_ = float(np.log(sn).std() + 1e-6)
        self.n_pixels_ = f.shape[1]
        with torch.random.fork_rng():  # seeded weight init without touching global state
            torch.manual_seed(self.seed)
            self.model_ = self._build(self.n_pixels_)
        xs = (xn - self.x_mean_) / self.x_std_
        lss = (np.log(sn) - self.ls_mean_) / self.ls_std_
        self.model_.embedding.set_projection(
            torch.as_tensor(_whitened_pcs(xs, self.n_components), dtype=torch.float32),
            torch.as_tensor(_whitened_pcs(lss, self.n_sigma_components), dtype=torch.float32),
        )
        train = _Batches(self, f, self.to_z(th), s, self.batch_size, self.seed + 2, fixed=False)
        if sv is None:
            nv, sgv = self.noise.draw(fv, np.random.default_rng(self.seed + 3))
        else:
            nv, sgv = fv, sv
        val = _Batches(self, nv, self.to_z(thv), sgv, 1024, self.seed + 4, fixed=True)
        trainer = Trainer(
            self.model_,
            _nll,
            lr=self.lr,
            max_epochs=self.max_epochs,
            patience=self.patience,
            scheduler=self.scheduler,
            checkpoint_dir=checkpoint_dir,
            seed=self.seed,
            num_threads=self.num_threads,
            device="cpu",
            weight_decay=self.weight_decay,
            max_seconds=self.max_seconds,
            grad_clip=5.0,
        )
        hist = trainer.fit(train, val, resume=resume)
        self.model_.eval()
        self.history_ = hist.to_dict()
        self.n_train_ = int(f.shape[0])
        return self

    # -- inference -----------------------------------------------------------------------
    def _prepare(
        self, spectrum: Any, sigma: ArrayLike | None
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], bool]:
        """Accept a Spectrum, or flux (+ sigma) arrays; return 2-D flux, sigma and batch flag."""
        from atmospec.spectrum import Spectrum

        if isinstance(spectrum, Spectrum):
            if spectrum.uncertainty is None:
                raise InvalidSpectrumError(
                    f"{spectrum.name}: the NPE needs per-pixel uncertainties (sigma)"
                )
            from atmospec.grids import resolution_of
            from atmospec.io.flux_density import as_flux_lambda
            from atmospec.resolution import to_model_resolution

            spectrum, said = as_flux_lambda(spectrum)  # the grid's F_lambda; F_nu converted
            grid = getattr(self, "meta_", {}).get("grid")
            spectrum, smoothed = to_model_resolution(spectrum, resolution_of(grid))
            for note in said + smoothed:
                log.info("%s: %s", spectrum.source, note)
            flux = np.asarray(spectrum.flux, dtype=np.float64)
            sig = np.asarray(spectrum.uncertainty, dtype=np.float64)
            wave = np.asarray(spectrum.wavelength, dtype=np.float64)
            mw = getattr(self, "wavelength_", None)
            if mw is not None and (wave.shape != mw.shape or not np.allclose(wave, mw, rtol=1e-6)):
                from atmospec.transforms import resample

                good = ~np.asarray(spectrum.mask, dtype=bool)  # masked (e.g. NaN) pixels out
                if not good.all():
                    wave, flux, sig = wave[good], flux[good], sig[good]
                try:
                    flux, sig = resample(mw, wave, flux, sig)
                except CoverageError as err:
                    share = float(np.mean((mw >= wave[0]) & (mw <= wave[-1])))
                    raise CoverageError(
                        f"{spectrum.source}: the spectrum spans {wave[0]:.3f}-{wave[-1]:.3f} um "
                        f"but the NPE reads every bin of its axis ({mw[0]:.3f}-{mw[-1]:.3f} um): "
                        "trained on complete spectra, it takes none with bins missing. "
                        + (
                            "`atmospec predict --coverage mask` answers such a spectrum with "
                            "the CNN, which is told which bins are missing"
                            if share >= 0.5  # predict's default largest masked fraction
                            else f"It covers {share:.0%} of that axis, too little for the "
                            "learned models: `atmospec fit FILE --grid NAME` fits the pixels "
                            "there are"
                        )
                    ) from err
            return flux[None, :], sig[None, :], False
        if sigma is None:
            raise InvalidSpectrumError("give sigma (per-pixel uncertainties) with a flux array")
        f = np.asarray(spectrum, dtype=np.float64)
        s = np.broadcast_to(np.asarray(sigma, dtype=np.float64), f.shape)
        batch = f.ndim == 2
        f2, s2 = np.atleast_2d(f), np.atleast_2d(s)
        if f2.shape[1] != self.n_pixels_:
            raise IncompatibleModelError(
                f"this NPE was trained on {self.n_pixels_} pixels, got spectra with {f2.shape[1]}; "
                "resample them onto the model's wavelength axis (atmospec.transforms.resample)"
            )
        return f2, s2, batch

    def sample(  # also takes a Spectrum
        self,
        spectrum: Any,
        sigma: ArrayLike | None = None,
        n: int = 10_000,
        seed: int = 0,
        *,
        chunk: int = 64,
        temperature: float | None = None,
        degrade: bool = False,
    ) -> NDArray[np.float64]:
        """Posterior samples in physical units: ``(n, n_params)``, or ``(batch, n, n_params)``.

        ``spectrum`` is a :class:`atmospec.spectrum.Spectrum` (with uncertainties; resampled
        onto the model's wavelength axis when it differs), a flux array ``(n_pix,)`` or a
        batch ``(batch, n_pix)`` with ``sigma`` of the same shape. ``temperature``: the flow's
        latent temperature (default: the fitted ``temperature_``). ``degrade=True``: a
        spectrum whose S/N (median flux / median error on the model's axis) lies above the
        noise model's ``snr_range`` first gets noise that brings it just inside its top (one
        draw from ``seed``; :mod:`atmospec.posteriors.degrade`), so the posterior is the
        calibrated one of that noisier spectrum rather than an extrapolation (``atmospec
        posterior sample`` does this); the default reads every spectrum as it is, as
        :meth:`log_prob` does.
        """
        import torch

        self._require_fitted()
        tau = self.temperature_ if temperature is None else float(temperature)
        f, s, batch = self._prepare(spectrum, sigma)
        snr_range = getattr(self.noise, "snr_range", None)  # None: a noise model without one
        if degrade and snr_range is not None:
            from atmospec.posteriors.degrade import degrade_to_snr

            top = float(snr_range[1])
            f, s, factor = degrade_to_snr(f, s, top, np.random.default_rng([int(seed), 1]))
            if np.any(factor > 1.0):
                log.info(
                    "%d of %d spectra above S/N %g (the NPE's training range): noise added to "
                    "bring them to it",
                    int(np.sum(factor > 1.0)),
                    factor.size,
                    top,
                )
        out = np.empty((f.shape[0], n, len(self.param_names_)))
        gen = torch.Generator().manual_seed(int(seed))
        with torch.no_grad():
            for i in range(0, f.shape[0], chunk):
                x, ls = self._inputs(f[i : i + chunk], s[i : i + chunk])
                ctx = self.model_.context(x, ls)
                z = self.model_.sample(ctx, (n,), generator=gen, temperature=tau)  # (n, b, d)
                out[i : i + chunk] = self.from_z(z.permute(1, 0, 2).double().numpy())
        return out if batch else out[0]

    def predict(  # also takes a Spectrum
        self, X: Any, sigma: ArrayLike | None = None, *, n: int = 1000, seed: int = 0
    ) -> Prediction:
        """Posterior mean and sd from ``n`` draws per spectrum, as a
        :class:`~atmospec.estimators.base.Prediction`; ``at_bound`` where the posterior
        median presses on a grid bound. ``X`` is what :meth:`sample` takes."""
        draws = self.sample(X, sigma, n=n, seed=seed)
        draws = draws if draws.ndim == 3 else draws[None]
        mean, std = self._moments(draws)
        lo, hi = self._lo_hi
        median = np.median(draws, axis=1)
        tol = BOUND_TOLERANCE * (hi - lo)
        at_bound = (median <= lo + tol) | (median >= hi - tol)
        return Prediction(self.param_names_, mean, std, at_bound, dict(self.bounds_))

    @staticmethod
    def _moments(draws: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        return draws.mean(axis=1), draws.std(axis=1)

    def _predict(
        self, X: NDArray[np.float64], sigma: NDArray[np.float64] | None
    ) -> tuple[NDArray[np.float64], NDArray[np.float64] | None]:
        return self._moments(np.atleast_3d(self.sample(X, sigma, n=1000)))

    def log_prob(
        self,
        theta: ArrayLike,
        spectrum: Any,
        sigma: ArrayLike | None = None,
        *,
        temperature: float | None = None,
    ) -> NDArray[np.float64]:
        """``log q(theta | spectrum)`` in physical units (Jacobian of the box map included).

        ``theta`` is ``(m, n_params)`` for one spectrum, or ``(batch, m, n_params)``;
        ``temperature`` as in :meth:`sample` (the density :meth:`sample` draws from).
        """
        import torch

        self._require_fitted()
        tau = self.temperature_ if temperature is None else float(temperature)
        f, s, batch = self._prepare(spectrum, sigma)
        th = np.asarray(theta, dtype=np.float64)
        th3 = th if batch else th[None]
        if th3.ndim == 2:
            th3 = th3[:, None, :]
        lo, hi = self._lo_hi
        inside = np.all((th3 >= lo) & (th3 <= hi), axis=-1)
        z = torch.as_tensor(self.to_z(th3), dtype=torch.float32).permute(1, 0, 2)  # (m, b, d)
        with torch.no_grad():
            x, ls = self._inputs(f, s)
            lq = self.model_.log_prob(z, self.model_.context(x, ls), tau).double().numpy().T
        out = np.where(inside, lq + self._log_jacobian(th3), -np.inf)
        return out if batch else out[0]

    # -- persistence ---------------------------------------------------------------------
    def _hyper(self) -> dict[str, Any]:
        return {
            "n_features": self.n_features,
            "width": self.width,
            "depth": self.depth,
            "transforms": self.transforms,
            "couplings": self.couplings,
            "bins": self.bins,
            "hidden": self.hidden,
            "n_components": self.n_components,
            "n_sigma_components": self.n_sigma_components,
            "lr": self.lr,
            "batch_size": self.batch_size,
            "max_epochs": self.max_epochs,
            "patience": self.patience,
            "max_seconds": self.max_seconds,
            "scheduler": self.scheduler,
            "weight_decay": self.weight_decay,
            "seed": self.seed,
            "box_map": self.box_map,
        }

    def save(self, path: str | os.PathLike[str], **extra: Any) -> Path:
        """Write the model folder (``model.json`` + ``weights.safetensors``); exact round trip."""
        from atmospec._fileio import provenance
        from atmospec.serialization import save_arrays

        self._require_fitted()
        arrays: dict[str, NDArray[Any]] = {
            f"net.{k}": v.detach().cpu().numpy() for k, v in self.model_.state_dict().items()
        }
        arrays["x_mean"] = self.x_mean_
        arrays["x_std"] = self.x_std_
        if self.wavelength_ is not None:
            arrays["wavelength"] = self.wavelength_
        record: dict[str, Any] = {
            "kind": KIND,
            "param_names": list(self.param_names_),
            "bounds": {p: list(b) for p, b in self.bounds_.items()},
            "noise": dataclasses.asdict(self.noise),
            "hyper": self._hyper(),
            "n_pixels": self.n_pixels_,
            "ls_mean": self.ls_mean_,
            "ls_std": self.ls_std_,
            "temperature": self.temperature_,
            "history": getattr(self, "history_", {}),
            "meta": self.meta_,
            "provenance": self.meta_.get("provenance")
            or provenance(seed=self.seed, grid=self.meta_.get("grid")),
        }
        record.update(extra)
        return save_arrays(path, record, arrays)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> NPEstimator:
        """Read a model folder written by :meth:`save` (checksummed; never executes code).

        Raises:
            ModelFileError: a missing, modified or truncated file (named), or not an NPE.
        """
        from atmospec.serialization import load_arrays

        record, arrays = load_arrays(path)
        if record.get("kind") != KIND:
            raise ModelFileError(f"{path}: not an NPE model (kind={record.get('kind')!r})")
        return cls._from_record(record, arrays, path)

    @classmethod
    def _from_record(
        cls, record: dict[str, Any], arrays: dict[str, NDArray[Any]], path: Any
    ) -> NPEstimator:
        import torch

        try:
            hyper = dict(record["hyper"])
            noise_fields: dict[str, Any] = {
                k: tuple(v) if isinstance(v, list) else v for k, v in record["noise"].items()
            }
            noise = NoiseModel(**noise_fields)
            est = cls(
                tuple(record["param_names"]),
                {p: tuple(b) for p, b in record["bounds"].items()},
                noise=noise,
                **hyper,
            )
            box = est._box()
            est.param_names_ = tuple(box)
            est.bounds_ = box
            est.n_pixels_ = int(record["n_pixels"])
            est.ls_mean_ = float(record["ls_mean"])
            est.ls_std_ = float(record["ls_std"])
            est.temperature_ = float(record.get("temperature", 1.0))
            if not est.temperature_ > 0:
                raise ValueError(f"temperature must be positive, got {est.temperature_}")
            est.x_mean_ = arrays["x_mean"]
            est.x_std_ = arrays["x_std"]
            est.wavelength_ = arrays.get("wavelength")
            est.history_ = record.get("history", {})
            est.meta_ = dict(record.get("meta", {}))
            est.record_ = record
            est.model_ = est._build(est.n_pixels_)
            state = {
                k[4:]: torch.from_numpy(v.copy()) for k, v in arrays.items() if k.startswith("net.")
            }
            est.model_.load_state_dict(state)
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise ModelFileError(f"{path}: inconsistent NPE model record ({err})") from None
        est.model_.eval()
        return est


def _whitened_pcs(x: NDArray[np.float64], k: int) -> NDArray[np.float64]:
    """``(n_pix, k)`` principal axes of ``x`` scaled so the projected scores have unit variance."""
    if k <= 0:
        return np.zeros((x.shape[1], 0))
    xc = x - x.mean(axis=0)
    _, sv, vt = np.linalg.svd(xc, full_matrices=False)
    k = min(k, vt.shape[0])
    sd = sv[:k] / np.sqrt(max(len(x) - 1, 1))
    return vt[:k].T / np.maximum(sd, 1e-12)
