"""NeuralEstimator: the shared machinery of the PyTorch estimators (ensembles, heads, losses)."""

from __future__ import annotations

import functools
import warnings
from abc import abstractmethod
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from atmospec.estimators.preprocessing import Preprocessor
from atmospec.predictive_tails import dof_array

from .base import Estimator

if TYPE_CHECKING:
    import torch

__all__ = ["NeuralEstimator", "gaussian_nll"]

_MIN_SIGMA = 1e-4  # smallest predictive sigma in target units (1e-4 of the grid range)


def gaussian_nll(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean Gaussian negative log-likelihood of ``target`` under ``out = (mean, sigma)`` stacked.

    ``out`` has shape (n, 2, p): ``out[:, 0]`` the means, ``out[:, 1]`` the sigmas (> 0).
    The constant ``0.5 ln 2 pi`` is dropped.

    Example:
        >>> import torch
        >>> out = torch.tensor([[[0.0], [1.0]]]); y = torch.tensor([[2.0]])  # 2 sigma off
        >>> float(gaussian_nll(out, y))  # ln 1 + 0.5 * 2**2
        2.0
    """
    mean, sigma = out[:, 0], out[:, 1]
    return (sigma.log() + 0.5 * ((target - mean) / sigma) ** 2).mean()


def beta_nll(out: torch.Tensor, target: torch.Tensor, beta: float) -> torch.Tensor:
    """Gaussian NLL with each term weighted by ``sigma ** (2 beta)`` held constant in the
    gradient (beta-NLL, Seitzer et al. 2022, ICLR): with ``beta > 0`` spectra with large sigma
    are no longer down-weighted in the fit of the means (``beta = 1``: the means get the MSE
    gradient), while the sigmas keep their maximum-likelihood meaning. ``beta = 0`` is the NLL.

    Example:
        >>> import torch
        >>> out = torch.tensor([[[0.0], [2.0]]]); y = torch.tensor([[0.3]])
        >>> bool(torch.isclose(beta_nll(out, y, 0.0), gaussian_nll(out, y)))
        True
    """
    mean, sigma = out[:, 0], out[:, 1]
    nll = sigma.log() + 0.5 * ((target - mean) / sigma) ** 2
    return (nll * sigma.detach() ** (2.0 * beta)).mean()


class _Head:
    """Turns raw network outputs into (mean, sigma) in target units."""

    @staticmethod
    def apply(raw: torch.Tensor, n_params: int, bounded: bool, probabilistic: bool) -> torch.Tensor:
        import torch.nn.functional as F

        if not probabilistic:
            return raw.sigmoid() if bounded else raw
        u, v = raw[:, :n_params], raw[:, n_params:]
        mean = u.sigmoid() if bounded else u
        sigma = F.softplus(v) + _MIN_SIGMA
        return torch_stack(mean, sigma)


def torch_stack(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    import torch

    return torch.stack([a, b], dim=1)


class _Wrapped:
    """A network plus its output head as one module (built lazily to keep imports light)."""

    @staticmethod
    def make(net: torch.nn.Module, n_params: int, bounded: bool, probabilistic: bool) -> Any:
        import torch

        class Wrapped(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.net = net

            def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
                return _Head.apply(self.net(*inputs), n_params, bounded, probabilistic)

        return Wrapped()


class NeuralEstimator(Estimator):
    """Base of the torch estimators: preprocessing, Trainer, deep ensembles, sigma calibration.

    Subclasses define the preprocessing defaults, ``probabilistic`` (mean + sigma heads trained
    with Gaussian NLL, else point outputs trained with ``loss``) and ``_network``.
    After training, a probabilistic model recalibrates its sigmas on the validation set, per
    parameter and as a function of the input S/N (see :meth:`calibrate_sigma`).

    Example:
        >>> import torch
        >>> class Linear(NeuralEstimator):  # the smallest subclass: one linear layer
        ...     kind = "linear"
        ...     def _preprocessor(self):
        ...         return Preprocessor(target="bounded")
        ...     def _network(self, n_wave, n_channels, n_side, n_out):
        ...         layer = torch.nn.Linear(n_channels * n_wave, n_out)
        ...         return torch.nn.Sequential(torch.nn.Flatten(), layer)
        >>> rng = np.random.default_rng(0)
        >>> wave = np.linspace(1.0, 2.0, 8); t = rng.uniform(0, 1, (64, 1)); X = 1 + t * wave
        >>> est = Linear(max_epochs=2, batch_size=32).fit(X, t, wavelength=wave,
        ...                                               param_names=["t"], bounds={"t": (0, 1)})
        >>> est.n_parameters(), len(est.history_[0]["train_loss"])  # 8 inputs -> mean, sigma
        (18, 2)
        >>> pred = est.predict(X[:3])
        >>> pred.std.shape, bool(((pred.mean >= 0) & (pred.mean <= 1)).all())
        ((3, 1), True)
    """

    probabilistic: bool = True
    bounded: bool = True
    # Run-time switches, not hyperparameters (set on the instance before fit when needed):
    epoch_callback: Any = None  # optional Trainer callback (e.g. Optuna pruning)
    resume_training: bool = False  # continue from checkpoints in checkpoint_dir
    # Learned state: declared here for type checkers, created only by fit / load.
    members_: list[Any]  # the trained networks (a deep ensemble when n_members > 1)
    preprocessor_: Preprocessor
    sigma_scale_: NDArray[np.float64] | None  # sigma scale at the reference S/N
    sigma_snr_slope_: NDArray[np.float64] | None  # d ln(scale) / d ln(S/N)
    sigma_snr_ref_: float  # reference S/N of sigma_scale_
    sigma_snr_range_: tuple[float, float]  # S/N range of the calibration set (clipped to)
    sigma_tail_dof_: NDArray[np.float64] | None  # Student-t dof per parameter (inf: Gaussian)
    history_: list[dict[str, Any]]
    train_seconds_: float

    def __init__(
        self,
        *,
        n_members: int = 1,
        lr: float = 1e-3,
        batch_size: int = 128,
        max_epochs: int = 100,
        patience: int = 10,
        weight_decay: float = 0.0,
        seed: int = 0,
        num_threads: int | None = None,
        max_seconds: float | None = None,
        max_cpu_seconds: float | None = None,
        device: str | None = None,
        checkpoint_dir: str | None = None,
        scheduler: str = "plateau",
        nll_beta: float = 0.0,
    ) -> None:
        self.n_members = n_members
        self.lr = lr
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.weight_decay = weight_decay
        self.seed = seed
        self.num_threads = num_threads
        self.max_seconds = max_seconds
        self.max_cpu_seconds = max_cpu_seconds
        self.device = device
        self.checkpoint_dir = checkpoint_dir
        self.scheduler = scheduler
        self.nll_beta = nll_beta

    # -- subclass hooks ----------------------------------------------------------------
    @abstractmethod
    def _preprocessor(self) -> Preprocessor: ...

    @abstractmethod
    def _network(
        self, n_wave: int, n_channels: int, n_side: int, n_out: int
    ) -> torch.nn.Module: ...

    def _loss(self) -> Any:
        import torch

        if not self.probabilistic:
            return torch.nn.functional.mse_loss
        if self.nll_beta:
            return functools.partial(beta_nll, beta=float(self.nll_beta))
        return gaussian_nll

    def _shape(self) -> dict[str, int]:
        assert self.wavelength_ is not None and self.preprocessor_ is not None
        pp = self.preprocessor_
        p = len(self.param_names_)
        return {
            "n_wave": int(self.wavelength_.size),
            "n_channels": pp.n_channels,
            "n_side": 2 if pp.side_features else 0,
            "n_out": 2 * p if self.probabilistic else p,
        }

    def _build(self) -> Any:
        net = self._network(**self._shape())
        return _Wrapped.make(
            net,
            len(self.param_names_),
            self.preprocessor_.target == "bounded",
            self.probabilistic,
        )

    # -- data --------------------------------------------------------------------------
    def _tensors(
        self, X: NDArray[np.floating[Any]], sigma: NDArray[np.float64] | None
    ) -> list[Any]:
        import torch

        assert self.preprocessor_ is not None
        d = self.preprocessor_.transform(X, sigma if self.preprocessor_.sigma_channel else None)
        out = [torch.from_numpy(d["x"])]
        if "side" in d:
            out.append(torch.from_numpy(d["side"]))
        return out

    def _loader(self, tensors: list[Any], shuffle: bool, seed: int) -> Any:
        import torch
        from torch.utils.data import DataLoader, TensorDataset

        gen = torch.Generator().manual_seed(seed)
        return DataLoader(
            TensorDataset(*tensors), batch_size=self.batch_size, shuffle=shuffle, generator=gen
        )

    # -- fit / predict -----------------------------------------------------------------
    def _fit(
        self,
        X: NDArray[np.float64],
        y: NDArray[np.float64],
        sigma: NDArray[np.float64] | None,
        validation: tuple[Any, ...] | None,
        *,
        clean: NDArray[np.float64] | None = None,
    ) -> None:
        import time

        import torch

        from atmospec.training.trainer import Trainer

        pp = self._preprocessor()
        self.preprocessor_ = pp.fit(X, y, param_names=self.param_names_, bounds=self.bounds_)
        targets = torch.from_numpy(pp.transform_targets(y))
        train = [*self._tensors(X, sigma), targets] if clean is None else []
        val_loader = None
        metrics = None
        if validation is not None:
            Xv, yv = np.asarray(validation[0]), np.asarray(validation[1])
            sv = (
                np.asarray(validation[2])
                if len(validation) > 2 and validation[2] is not None
                else None
            )
            val = [*self._tensors(Xv, sv), torch.from_numpy(pp.transform_targets(yv))]
            val_loader = self._loader(val, shuffle=False, seed=0)
            metrics = self._rmse_tracker(val[:-1], yv)
        self.members_ = []
        self.history_ = []
        start = time.perf_counter()
        budget = self.max_seconds / self.n_members if self.max_seconds else None
        cpu_budget = self.max_cpu_seconds / self.n_members if self.max_cpu_seconds else None
        for m in range(self.n_members):
            with torch.random.fork_rng(devices=[]):  # seeded weights, global RNG untouched
                torch.manual_seed(self.seed + 1000 * m)
                model = self._build()
            ckpt = None if self.checkpoint_dir is None else f"{self.checkpoint_dir}/member{m}"
            trainer = Trainer(
                model,
                self._loss(),
                lr=self.lr,
                max_epochs=self.max_epochs,
                patience=self.patience,
                seed=self.seed + 1000 * m,
                num_threads=self.num_threads,
                device=self.device,
                weight_decay=self.weight_decay,
                max_seconds=budget,
                max_cpu_seconds=cpu_budget,
                checkpoint_dir=ckpt,
                grad_clip=5.0,
                scheduler=self.scheduler,
                metrics_fn=metrics,
                val_loss_fn=gaussian_nll if self.probabilistic else None,
                callback=self.epoch_callback,
            )
            if clean is None:
                loader: Any = self._loader(train, True, self.seed + m)
            else:
                assert sigma is not None
                loader = _FreshNoise(self, clean, sigma, targets, self.seed + m)
            hist = trainer.fit(
                loader,
                val_loader,
                resume=self.resume_training and ckpt is not None,
            )
            model.cpu().eval()
            self.members_.append(model)
            self.history_.append(hist.to_dict())
        self.train_seconds_ = time.perf_counter() - start
        self.sigma_scale_ = np.ones(len(self.param_names_))
        self.sigma_snr_slope_ = None
        self.sigma_snr_ref_ = 1.0
        self.sigma_snr_range_ = (1.0, 1.0)
        self.sigma_tail_dof_ = None
        if self.probabilistic and validation is not None:
            self.calibrate_sigma(
                validation[0], validation[1], validation[2] if len(validation) > 2 else None
            )

    def _rmse_tracker(self, inputs: list[Any], y: NDArray[np.float64]) -> Any:
        """A Trainer ``metrics_fn``: validation RMSE per parameter (physical units) per epoch."""
        pp = self.preprocessor_
        assert pp is not None

        def metrics(model: Any) -> dict[str, float]:
            dev = next(model.parameters()).device
            parts = []
            for i in range(0, inputs[0].shape[0], 1024):
                batch = [t[i : i + 1024].to(dev) for t in inputs]
                parts.append(model(*batch).double().cpu().numpy())
            out = np.concatenate(parts)
            mean = pp.inverse_targets(out[:, 0] if self.probabilistic else out)
            rmse = np.sqrt(np.mean((mean - y) ** 2, axis=0))
            return {f"rmse_{p}": float(r) for p, r in zip(self.param_names_, rmse, strict=True)}

        return metrics

    def _raw(
        self, X: NDArray[np.float64], sigma: NDArray[np.float64] | None
    ) -> NDArray[np.float64]:
        """Member outputs in target units: (members, n, 2, p) or (members, n, p)."""
        import torch

        tensors = self._tensors(X, sigma)
        outs = []
        for model in self.members_:
            model.eval()
            parts = []
            with torch.no_grad():
                for i in range(0, tensors[0].shape[0], 1024):
                    parts.append(model(*[t[i : i + 1024] for t in tensors]).double().numpy())
            outs.append(np.concatenate(parts))
        return np.stack(outs)

    def _predict(
        self, X: NDArray[np.float64], sigma: NDArray[np.float64] | None
    ) -> tuple[NDArray[np.float64], NDArray[np.float64] | None]:
        assert self.preprocessor_ is not None
        raw = self._raw(X, sigma)
        pp = self.preprocessor_
        if not self.probabilistic:
            mean_t = raw.mean(axis=0)
            std = pp.inverse_scale(raw.std(axis=0)) if len(self.members_) > 1 else None
            return pp.inverse_targets(mean_t), std
        means, sigmas = raw[:, :, 0], raw[:, :, 1]
        mean_t = means.mean(axis=0)
        var_t = (sigmas**2).mean(axis=0) + means.var(axis=0)  # mixture of the members
        std_t = np.sqrt(var_t) * self.sigma_scale_for(X, sigma)
        return pp.inverse_targets(mean_t), pp.inverse_scale(std_t)

    def input_snr(self, X: Any, sigma: Any) -> NDArray[np.float64]:
        """Median S/N per spectrum in the 1.20-1.30 um window (the whole axis if it misses it),
        as the training-set builder quotes it; NaN where ``sigma`` is None or unusable."""
        from atmospec.training.systematics import SNR_WINDOW

        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        if sigma is None:
            return np.full(X.shape[0], np.nan)
        s = np.broadcast_to(np.asarray(sigma, dtype=np.float64), X.shape)
        wave = self.wavelength_
        cols = slice(None)
        if wave is not None and wave.size == X.shape[1]:
            win = (wave >= SNR_WINDOW[0]) & (wave <= SNR_WINDOW[1])
            if win.any():
                cols = win  # type: ignore[assignment]
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.abs(X[:, cols]) / s[:, cols]
        r[~np.isfinite(r) | (r <= 0)] = np.nan
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows give NaN
            return np.nanmedian(r, axis=1)

    def sigma_scale_for(self, X: Any, sigma: Any) -> NDArray[np.float64]:
        """Calibration factors (n, p) for the sigmas of these spectra (see :meth:`calibrate_sigma`):
        ``sigma_scale_ * (S/N / sigma_snr_ref_) ** sigma_snr_slope_``, the S/N clipped to the
        range of the calibration set; the constant ``sigma_scale_`` when the S/N is unknown."""
        p = len(self.param_names_)
        n = np.atleast_2d(np.asarray(X)).shape[0]
        base = self.sigma_scale_ if self.sigma_scale_ is not None else np.ones(p)
        out = np.broadcast_to(base, (n, p)).astype(np.float64)
        if self.sigma_snr_slope_ is None or not np.any(self.sigma_snr_slope_):
            return out
        snr = self.input_snr(X, sigma)
        lo, hi = self.sigma_snr_range_
        snr = np.where(np.isfinite(snr), np.clip(snr, lo, hi), self.sigma_snr_ref_)
        return out * (snr[:, None] / self.sigma_snr_ref_) ** self.sigma_snr_slope_[None, :]

    def calibrate_sigma(self, X: Any, y: Any, sigma: Any = None) -> NDArray[np.float64]:
        """Recalibrate the predictive sigmas and tails on held-out (validation) spectra.

        Per parameter, the calibrated sigma is ``s(S/N) * sigma`` with
        ``ln s = ln s0 + b ln(S/N / S/N_ref)`` (``S/N_ref``: the median input S/N, see
        :meth:`input_snr`). The S/N dependence ``b`` is the slope of a linear quantile
        regression of ``ln |z|`` on ``ln S/N`` at the 68.27 % level (robust: a few spectra
        several sigma off, where the grid bends, do not tilt it); ``s0`` then makes sigma the
        RMS error: ``s0 = sqrt(mean(z^2 (S/N / S/N_ref)^(-2b)))``. Without S/N information or
        with fewer than 200 spectra, ``b = 0`` and ``s0 = sqrt(mean(z^2))``.
        Held-out errors have heavier tails than a Gaussian: ``sigma_tail_dof_`` holds, per
        parameter, the Student-t degrees of freedom that match the ratio of the 95 % and
        68.27 % quantiles of the calibrated errors (``inf`` when not heavier than Gaussian;
        :mod:`atmospec.predictive_tails`), so wide intervals are wide enough while
        ``mean ± sigma`` stays the nominal 68.27 % interval (conservative when tails are heavy:
        held-out grid slices can be harder than the validation slices). Returns ``s0`` per
        parameter (``sigma_scale_``); ``sigma_snr_slope_`` holds ``b``. Never fit this on the
        test spectra.
        """
        from atmospec.predictive_tails import fit_tail_dof

        p = len(self.param_names_)
        self.sigma_scale_, self.sigma_snr_slope_ = np.ones(p), None
        self.sigma_tail_dof_ = None
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        sig = None if sigma is None else np.asarray(sigma, dtype=np.float64)
        mean, std = self._predict(X, sig)
        assert std is not None
        z2 = ((y - mean) / std) ** 2
        snr = self.input_snr(X, sig)
        ok = np.isfinite(snr)
        if ok.sum() < 200:
            self.sigma_scale_ = np.sqrt(np.maximum(np.mean(z2, axis=0), 1e-24))
            return self.sigma_scale_
        ls = np.log(snr[ok])
        ref = float(np.median(ls))
        x = ls - ref
        slope = np.array([_snr_slope(x, z2[ok, i]) for i in range(p)])
        detrended = z2[ok] * np.exp(-2.0 * np.outer(x, slope))
        self.sigma_scale_ = np.sqrt(np.maximum(np.mean(detrended, axis=0), 1e-24))
        self.sigma_snr_slope_ = slope
        self.sigma_snr_ref_ = float(np.exp(ref))
        self.sigma_snr_range_ = (float(np.exp(ls.min())), float(np.exp(ls.max())))
        z = np.sqrt(z2) / self.sigma_scale_for(X, sig)
        self.sigma_tail_dof_ = fit_tail_dof(z)
        return self.sigma_scale_

    def calibration_record(self) -> dict[str, Any]:
        """The fitted sigma calibration as plain JSON (method, numbers), for model records.

        Example:
            >>> from atmospec.estimators import SpectrumCNN
            >>> est = SpectrumCNN(); est.sigma_scale_ = np.array([0.9])
            >>> est.sigma_tail_dof_ = np.array([np.inf])
            >>> rec = est.calibration_record(); rec["sigma_scale"], rec["sigma_tail_dof"]
            ([0.9], [None])
        """
        from atmospec.predictive_tails import dof_list

        slope = getattr(self, "sigma_snr_slope_", None)  # absent: no S/N dependence
        return {
            "method": (
                "per-parameter sigma scale s(S/N) = s0 (S/N / S/N_ref)^b on the validation "
                "split: b from a 68.27 % quantile regression of ln|z| on ln S/N, s0 making "
                "sigma the RMS error; Student-t tails (dof) from the 95 % / 68.27 % quantile "
                "ratio of the calibrated errors (None: Gaussian)"
            ),
            "sigma_scale": None if self.sigma_scale_ is None else self.sigma_scale_.tolist(),
            "sigma_snr_slope": None if slope is None else slope.tolist(),
            "sigma_snr_ref": getattr(self, "sigma_snr_ref_", 1.0),
            "sigma_snr_range": list(getattr(self, "sigma_snr_range_", (1.0, 1.0))),
            "sigma_tail_dof": dof_list(self.sigma_tail_dof_),
        }

    # -- state ---------------------------------------------------------------------------
    def _get_state(self) -> tuple[dict[str, Any], dict[str, NDArray[Any]]]:
        assert self.preprocessor_ is not None
        arrays: dict[str, NDArray[Any]] = {}
        for m, model in enumerate(self.members_):
            for k, v in model.state_dict().items():
                arrays[f"member{m}.{k}"] = v.detach().cpu().numpy()
        calibration = {k: v for k, v in self.calibration_record().items() if k != "method"}
        config = {
            "preprocessor": self.preprocessor_.to_dict(),
            **calibration,
            "n_trained_members": len(self.members_),
            "history": self.history_,
            "train_seconds": self.train_seconds_,
        }
        return config, arrays

    def _set_state(self, config: dict[str, Any], arrays: dict[str, NDArray[Any]]) -> None:
        import torch

        self.preprocessor_ = Preprocessor.from_dict(config["preprocessor"])
        scale = config.get("sigma_scale")
        self.sigma_scale_ = None if scale is None else np.asarray(scale, dtype=np.float64)
        slope = config.get("sigma_snr_slope")  # absent in models saved before S/N calibration
        self.sigma_snr_slope_ = None if slope is None else np.asarray(slope, dtype=np.float64)
        self.sigma_snr_ref_ = float(config.get("sigma_snr_ref", 1.0))
        lo, hi = config.get("sigma_snr_range", (1.0, 1.0))
        self.sigma_snr_range_ = (float(lo), float(hi))
        self.sigma_tail_dof_ = dof_array(config.get("sigma_tail_dof"))  # absent: Gaussian
        self.history_ = list(config.get("history", []))
        self.train_seconds_ = float(config.get("train_seconds", 0.0))
        self.members_ = []
        for m in range(int(config["n_trained_members"])):
            model = self._build()
            prefix = f"member{m}."
            state = {
                k[len(prefix) :]: torch.from_numpy(np.array(v))
                for k, v in arrays.items()
                if k.startswith(prefix)
            }
            model.load_state_dict(state, strict=True)
            model.eval()
            self.members_.append(model)

    def n_parameters(self) -> int:
        """Trainable parameters of one member network."""
        self._require_fitted()
        model = self.members_[0]
        return sum(p.numel() for p in model.parameters())


class _FreshNoise:
    """Training batches with new Gaussian noise every epoch: ``clean + sigma * N(0, 1)``.

    The draw of epoch ``e`` comes from the seed ``[seed, e]`` (set by the Trainer through
    ``set_epoch``), so a resumed run sees the same noise as an uninterrupted one. Masked
    pixels (NaN clean flux, infinite sigma) stay masked.
    """

    def __init__(
        self,
        est: NeuralEstimator,
        clean: NDArray[np.float64],
        sigma: NDArray[np.float64],
        targets: Any,
        seed: int,
    ) -> None:
        self.est, self.targets = est, targets
        self.seed, self.epoch = seed, 0
        finite = np.isfinite(sigma)
        self.sigma = sigma  # the input channel (inf where masked)
        self.noise_sigma = np.where(finite, sigma, 0.0).astype(np.float32)
        self.clean = np.where(finite, clean, np.nan).astype(np.float32)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        """Batches per epoch (what a per-batch learning-rate schedule needs)."""
        return -(-len(self.clean) // self.est.batch_size)

    def __iter__(self) -> Any:
        rng = np.random.default_rng([self.seed, self.epoch])
        noisy = rng.standard_normal(self.clean.shape, dtype=np.float32)
        noisy *= self.noise_sigma
        noisy += self.clean  # NaN (masked) stays NaN
        tensors = [*self.est._tensors(noisy, self.sigma), self.targets]
        return iter(self.est._loader(tensors, True, self.seed * 100_003 + self.epoch))


def _snr_slope(x: NDArray[np.float64], z2: NDArray[np.float64]) -> float:
    """Slope ``b`` of the 68.27 % quantile of ``|z|`` against ``x = ln(S/N / S/N_ref)``:
    linear quantile regression of ``ln |z|`` (scikit-learn's ``QuantileRegressor``, no penalty).

    Example:
        >>> rng = np.random.default_rng(1); x = rng.uniform(-1, 1, 4000)
        >>> z = rng.normal(size=x.size) * np.exp(0.3 - 0.5 * x)  # sigma falls as S/N grows
        >>> round(_snr_slope(x, z**2), 1)  # +- 0.03 statistical error
        -0.5
    """
    from sklearn.linear_model import QuantileRegressor

    from atmospec.predictive_tails import ONE_SIGMA

    logz = 0.5 * np.log(np.maximum(z2, 1e-24))
    reg = QuantileRegressor(quantile=ONE_SIGMA, alpha=0.0, solver="highs")
    reg.fit(x[:, None], logz)
    return float(reg.coef_[0])
