"""NeuralEstimator: the shared machinery of the PyTorch estimators (ensembles, heads, losses)."""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from atmospec.training.preprocessing import Preprocessor

from .base import Estimator

if TYPE_CHECKING:
    import torch

__all__ = ["NeuralEstimator", "gaussian_nll"]

_MIN_SIGMA = 1e-4  # smallest predictive sigma in target units (1e-4 of the grid range)


def gaussian_nll(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean Gaussian negative log-likelihood of ``target`` under ``out = (mean, sigma)`` stacked.

    ``out`` has shape (n, 2, p): ``out[:, 0]`` the means, ``out[:, 1]`` the sigmas (> 0).
    The constant ``0.5 ln 2 pi`` is dropped.
    """
    mean, sigma = out[:, 0], out[:, 1]
    return (sigma.log() + 0.5 * ((target - mean) / sigma) ** 2).mean()


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
    After training, a probabilistic model rescales its sigmas per parameter so that the
    validation set has unit mean squared z-score (recorded as ``sigma_scale_``).
    """

    probabilistic: bool = True
    bounded: bool = True

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
        quiet: bool = True,
        device: str | None = None,
        checkpoint_dir: str | None = None,
    ) -> None:
        super().__init__()
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
        self.quiet = quiet
        self.device = device
        self.checkpoint_dir = checkpoint_dir
        self.members_: list[Any] = []
        self.preprocessor_: Preprocessor | None = None
        self.sigma_scale_: NDArray[np.float64] | None = None
        self.history_: list[dict[str, Any]] = []
        self.train_seconds_: float = 0.0
        self.epoch_callback: Any = None  # optional Trainer callback (e.g. Optuna pruning)
        self.resume_training = False  # continue from checkpoints in checkpoint_dir

    # -- subclass hooks ----------------------------------------------------------------
    @abstractmethod
    def _preprocessor(self) -> Preprocessor: ...

    @abstractmethod
    def _network(
        self, n_wave: int, n_channels: int, n_side: int, n_out: int
    ) -> torch.nn.Module: ...

    def _loss(self) -> Any:
        import torch

        return gaussian_nll if self.probabilistic else torch.nn.functional.mse_loss

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
            self.preprocessor_.target == "bounded",  # type: ignore[union-attr]
            self.probabilistic,
        )

    # -- data --------------------------------------------------------------------------
    def _tensors(self, X: NDArray[np.float64], sigma: NDArray[np.float64] | None) -> list[Any]:
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
    ) -> None:
        import time

        import torch

        from atmospec.training.trainer import Trainer

        pp = self._preprocessor()
        self.preprocessor_ = pp.fit(X, y, param_names=self.param_names_, bounds=self.bounds_)
        train = [*self._tensors(X, sigma), torch.from_numpy(pp.transform_targets(y))]
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
        self.members_, self.history_ = [], []
        start = time.perf_counter()
        budget = self.max_seconds / self.n_members if self.max_seconds else None
        cpu_budget = self.max_cpu_seconds / self.n_members if self.max_cpu_seconds else None
        for m in range(self.n_members):
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
                quiet=self.quiet,
                device=self.device,
                weight_decay=self.weight_decay,
                max_seconds=budget,
                max_cpu_seconds=cpu_budget,
                checkpoint_dir=ckpt,
                grad_clip=5.0,
                metrics_fn=metrics,
                callback=self.epoch_callback,
            )
            hist = trainer.fit(
                self._loader(train, True, self.seed + m),
                val_loader,
                resume=self.resume_training and ckpt is not None,
            )
            model.cpu().eval()
            self.members_.append(model)
            self.history_.append(hist.to_dict())
        self.train_seconds_ = time.perf_counter() - start
        self.sigma_scale_ = np.ones(len(self.param_names_))
        if self.probabilistic and validation is not None:
            self.calibrate(
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
        std_t = np.sqrt(var_t) * (self.sigma_scale_ if self.sigma_scale_ is not None else 1.0)
        return pp.inverse_targets(mean_t), pp.inverse_scale(std_t)

    def calibrate(self, X: Any, y: Any, sigma: Any = None) -> NDArray[np.float64]:
        """Rescale predictive sigmas so held-out z-scores have unit variance; returns the scales.

        The scale per parameter is ``sqrt(mean(((y - mean) / sigma)^2))`` on the given
        (validation) spectra, the maximum-likelihood factor for Gaussian errors.
        """
        self.sigma_scale_ = np.ones(len(self.param_names_))
        X = np.asarray(X, dtype=np.float64)
        mean, std = self._predict(X, None if sigma is None else np.asarray(sigma, dtype=np.float64))
        assert std is not None
        z = (np.asarray(y, dtype=np.float64) - mean) / std
        self.sigma_scale_ = np.sqrt(np.mean(z**2, axis=0))
        return self.sigma_scale_

    # -- state ---------------------------------------------------------------------------
    def _get_state(self) -> tuple[dict[str, Any], dict[str, NDArray[Any]]]:
        assert self.preprocessor_ is not None
        arrays: dict[str, NDArray[Any]] = {}
        for m, model in enumerate(self.members_):
            for k, v in model.state_dict().items():
                arrays[f"member{m}.{k}"] = v.detach().cpu().numpy()
        config = {
            "preprocessor": self.preprocessor_.to_dict(),
            "sigma_scale": None if self.sigma_scale_ is None else self.sigma_scale_.tolist(),
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
        model = self.members_[0] if self.members_ else None
        if model is None:
            raise ValueError("fit or load the estimator first")
        return sum(p.numel() for p in model.parameters())
