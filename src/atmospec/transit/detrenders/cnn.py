"""CNNDetrender: 1D and 2D convolutional networks, trained on the simulator, predicting depth
and sigma per wavelength from light curves divided by the white light curve."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from atmospec._fileio import atomic_path, provenance, write_json
from atmospec.errors import IncompatibleModelError, ModelFileError
from atmospec.transit.detrenders._core import (
    channel_models,
    fit_white,
    linear_solve,
    regressors,
)
from atmospec.transit.detrenders.base import DepthSpectrum, Detrender
from atmospec.transit.observation import TransitObservation

if TYPE_CHECKING:
    import torch

__all__ = ["CNNConfig", "CNNFeatures", "CNNDetrender", "cnn_features"]

_SCALE = 1e3  # inputs and targets in units of 1000 ppm


@dataclass
class CNNFeatures:
    """Network inputs of one planet: ``x`` is ``(n_wl, 4, n_time)`` (ratio curve, transit
    shape, white-light residual, wavelength / 4 um); ``white_depth`` the white-light depth."""

    x: NDArray[np.float32]
    white_depth: float
    transit: NDArray[np.float64]
    baseline: NDArray[np.float64]


def cnn_features(obs: TransitObservation) -> CNNFeatures:
    """Features of :class:`CNNDetrender`: each channel divided by the AIRS-CH0 white light curve
    (common-mode systematics cancel), with the white-light transit shape as a second input."""
    norm = obs.normalized()
    R = regressors(norm, 2, centroid=True)
    white = fit_white(norm, R)
    T = channel_models(norm, white.geometry)[1](white.rp, white.u1, white.u2)
    wn = norm.white / np.median(norm.white)
    a = linear_solve(R * T[:, None], wn)
    base = R @ a
    depth_w = white.rp**2
    shape = (1.0 - T) / max(float((1.0 - T).max()), 1e-9)
    out = shape < 1e-6
    ratio = norm.flux / wn[:, None]
    ref = np.median(ratio[out], axis=0) if out.sum() >= 3 else np.median(ratio, axis=0)
    x = np.empty((obs.n_wavelength, 4, obs.n_time), dtype=np.float32)
    x[:, 0] = ((ratio / ref - 1.0) * _SCALE).T
    x[:, 1] = shape[None]
    x[:, 2] = ((wn / (base * T) - 1.0) * _SCALE)[None]
    x[:, 3] = (obs.wavelength / 4.0)[:, None]
    return CNNFeatures(x, float(depth_w), T, base)


@dataclass(frozen=True)
class CNNConfig:
    """Network and training settings (saved next to the weights)."""

    kind: str = "1d"
    width: int = 32
    epochs: int = 40
    batch_size: int = 256
    lr: float = 2e-3
    seed: int = 0
    val_fraction: float = 0.1


def _build(config: CNNConfig) -> torch.nn.Module:
    from torch import nn

    w = config.width
    if config.kind == "1d":
        return nn.Sequential(
            nn.Conv1d(4, w, 5, padding=2),
            nn.ReLU(),
            nn.Conv1d(w, w, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool1d(2),
            nn.Conv1d(w, 2 * w, 5, padding=2),
            nn.ReLU(),
            nn.AdaptiveAvgPool1d(8),
            nn.Flatten(),
            nn.Linear(16 * w, 64),
            nn.ReLU(),
            nn.Linear(64, 2),
        )
    if config.kind == "2d":
        return _Net2D(w)
    raise ValueError(f"unknown CNN kind {config.kind!r}; expected '1d' or '2d'")


def _net2d_class() -> type:
    from torch import nn

    class Net2D(nn.Module):
        """Convolutions over (wavelength, time); a shared head per wavelength row."""

        def __init__(self, w: int) -> None:
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(4, w // 2, (3, 5), padding=(1, 2)),
                nn.ReLU(),
                nn.Conv2d(w // 2, w, (3, 5), padding=(1, 2)),
                nn.ReLU(),
                nn.AdaptiveAvgPool2d((None, 8)),
            )
            self.head = nn.Sequential(nn.Linear(8 * w, 64), nn.ReLU(), nn.Linear(64, 2))

        def forward(self, x: Any) -> Any:  # x: (B, 4, n_wl, n_t)
            h = self.body(x)  # (B, w, n_wl, 8)
            h = h.permute(0, 2, 1, 3).flatten(2)  # (B, n_wl, 8 w)
            return self.head(h)  # (B, n_wl, 2)

    return Net2D


def _Net2D(w: int) -> Any:  # noqa: N802 - a factory standing in for the class
    return _net2d_class()(w)


class CNNDetrender(Detrender):
    """A convolutional network that predicts, per wavelength, the depth relative to the
    white-light depth and its sigma (trained with the Gaussian negative log-likelihood).

    ``kind="1d"`` sees one channel at a time; ``kind="2d"`` sees the whole
    (wavelength x time) image and can use neighbouring channels. Train with :meth:`train` on
    simulated planets (see :func:`atmospec.transit.simulator.simulate_planet`), then
    :meth:`fit` like any detrender; :meth:`save` / :meth:`load` keep the weights in
    safetensors with a JSON config and provenance.
    """

    name = "cnn"

    def __init__(self, config: CNNConfig | None = None) -> None:
        self.config = config or CNNConfig()
        self.name = f"cnn{self.config.kind}"
        self.net_: Any = None

    # --- training ---------------------------------------------------------------------------
    def train(
        self,
        observations: Sequence[TransitObservation],
        depths: Sequence[NDArray[np.float64]],
        *,
        progress: bool = False,
    ) -> dict[str, float]:
        """Train on observations with known depths; returns the final validation loss."""
        feats = [cnn_features(o) for o in observations]
        return self.train_features(feats, depths, progress=progress)

    def train_features(
        self,
        feats: Sequence[CNNFeatures],
        depths: Sequence[NDArray[np.float64]],
        *,
        progress: bool = False,
    ) -> dict[str, float]:
        """Train from precomputed :func:`cnn_features` (lets several networks share them)."""
        import torch
        from tqdm.auto import trange

        c = self.config
        gen = torch.Generator().manual_seed(c.seed)
        torch.manual_seed(c.seed)  # weight initialisation (the global torch generator)
        net = _build(c)
        X = np.stack([f.x for f in feats])  # (P, n_wl, 4, n_t)
        Y = np.stack(
            [(np.asarray(d) - f.white_depth) * _SCALE for f, d in zip(feats, depths, strict=True)]
        )
        n_val = max(1, int(round(c.val_fraction * len(feats))))
        perm = torch.randperm(len(feats), generator=gen).numpy()
        val, tr = perm[:n_val], perm[n_val:]
        if c.kind == "1d":

            def pack(idx: NDArray[np.int64]) -> tuple[Any, Any]:
                return (
                    torch.from_numpy(X[idx].reshape(-1, *X.shape[2:])),
                    torch.from_numpy(Y[idx].reshape(-1).astype(np.float32)),
                )
        else:

            def pack(idx: NDArray[np.int64]) -> tuple[Any, Any]:
                return (
                    torch.from_numpy(np.ascontiguousarray(X[idx].transpose(0, 2, 1, 3))),
                    torch.from_numpy(Y[idx].astype(np.float32)),
                )

        xt, yt = pack(tr)
        xv, yv = pack(val)
        opt = torch.optim.Adam(net.parameters(), lr=c.lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, c.epochs)
        bs = c.batch_size if c.kind == "1d" else max(4, c.batch_size // 32)
        best, best_state = np.inf, None
        for _ in trange(c.epochs, desc=f"training {self.name}", disable=not progress):
            net.train()
            order = torch.randperm(xt.shape[0], generator=gen)
            for i in range(0, xt.shape[0], bs):
                idx = order[i : i + bs]
                loss = _nll(net(xt[idx]), yt[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
            sched.step()
            net.eval()
            with torch.no_grad():
                v = float(_nll(net(xv), yv))
            if v < best:
                best = v
                best_state = {k: t.detach().clone() for k, t in net.state_dict().items()}
        if best_state is not None:
            net.load_state_dict(best_state)
        self.net_ = net
        self.n_train_ = len(tr)
        return {"val_nll": best}

    # --- inference ----------------------------------------------------------------------------
    def fit(self, observation: TransitObservation) -> DepthSpectrum:
        import torch

        if self.net_ is None:
            raise IncompatibleModelError(
                f"{self.name}: the network is untrained; call train(...) or CNNDetrender.load()"
            )
        f = cnn_features(observation)
        self.net_.eval()
        with torch.no_grad():
            if self.config.kind == "1d":
                out = self.net_(torch.from_numpy(f.x)).numpy()
            else:
                out = self.net_(torch.from_numpy(f.x.transpose(1, 0, 2)[None].copy()))[0].numpy()
        depth = f.white_depth + out[:, 0] / _SCALE
        sigma = np.exp(np.clip(out[:, 1], -20, 5)) / _SCALE
        self.observation_ = observation
        shape = 1.0 - f.transit
        frac = depth / max(f.white_depth, 1e-12)
        self.transit_ = 1.0 - shape[:, None] * frac[None]
        self.model_ = self.transit_ * f.baseline[:, None]
        self.spectrum_ = self._scaled(
            DepthSpectrum(
                observation.wavelength.copy(),
                depth,
                sigma,
                planet_id=observation.planet_id,
                method=self.name,
            )
        )
        return self.spectrum_

    # --- persistence --------------------------------------------------------------------------
    def save(self, folder: str | Path, **extra: Any) -> Path:
        """Write ``weights.safetensors`` and ``config.json`` (config + provenance) to ``folder``."""
        from safetensors.torch import save_file

        if self.net_ is None:
            raise ModelFileError(f"{self.name}: nothing to save, the network is untrained")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / "weights.safetensors") as tmp:
            save_file({k: v.contiguous() for k, v in self.net_.state_dict().items()}, str(tmp))
        write_json(
            folder / "config.json",
            {
                "format": "atmospec.transit.cnn/1",
                "config": asdict(self.config),
                "provenance": provenance(seed=self.config.seed, **extra),
            },
        )
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> CNNDetrender:
        """Load a network written by :meth:`save` (weights only, no pickle)."""
        from safetensors.torch import load_file

        folder = Path(folder)
        for name in ("config.json", "weights.safetensors"):
            if not (folder / name).exists():
                raise ModelFileError(f"{folder}: missing {name} (not a saved transit CNN)")
        try:
            meta = json.loads((folder / "config.json").read_text())
            if meta.get("format") != "atmospec.transit.cnn/1":
                raise ModelFileError(f"{folder / 'config.json'}: not an atmospec transit CNN")
            self = cls(CNNConfig(**meta["config"]))
            net = _build(self.config)
            net.load_state_dict(load_file(str(folder / "weights.safetensors")))
        except (KeyError, RuntimeError, ValueError) as err:
            raise ModelFileError(f"{folder}: unreadable CNN model ({err})") from err
        self.net_ = net
        return self


def _nll(out: Any, y: Any) -> Any:
    """Gaussian negative log-likelihood of y under (mu, ln sigma) = out[..., 0], out[..., 1]."""
    import torch

    mu, ln_s = out[..., 0], torch.clamp(out[..., 1], -10.0, 5.0)
    return (ln_s + 0.5 * ((y - mu) * torch.exp(-ln_s)) ** 2).mean()
