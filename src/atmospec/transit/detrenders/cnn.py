"""CNNDetrender: 1D and 2D convolutional networks, trained on the simulator, predicting depth
and sigma per wavelength from light curves divided by the white light curve."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from atmospec._fileio import provenance
from atmospec.errors import IncompatibleModelError, ModelFileError
from atmospec.transit.detrenders.base import DepthSpectrum, Detrender
from atmospec.transit.observation import TransitObservation

if TYPE_CHECKING:
    import torch

    from atmospec.transit.detrenders.common_mode import CommonModeFit

__all__ = ["CNNConfig", "CNNFeatures", "CNNDetrender", "cnn_features"]

KIND = "transit_cnn"  # the record kind (atmospec.models, atmospec.serialization)

_SCALE = 1e3  # inputs and targets in units of 1000 ppm


@dataclass
class CNNFeatures:
    """Network inputs of one planet: ``x`` is ``(n_wl, 4, n_time)`` (channel / white light
    curve, white-light transit shape, white-light systematics, wavelength / 4 um);
    ``white_depth`` and ``white_sigma`` the common-mode (GP) white-light depth and its sigma.

    Example:
        >>> from atmospec.transit.lightcurve import TransitGeometry, TransitModel
        >>> t = np.linspace(0.0, 6.0, 80)
        >>> f = TransitModel(t, TransitGeometry(3.0, 3.0, 10.0, 90.0))(0.1, 0.3, 0.2)
        >>> flux = 1e4 * f[:, None] * (1 + np.random.default_rng(0).normal(0, 1e-4, (80, 3)))
        >>> obs = TransitObservation("1", t, np.array([0.7, 2.0, 3.0]), flux, np.ones((80, 3)),
        ...     np.zeros((80, 3)), star={"P": 3.0, "sma": 10.0, "i": 90.0})
        >>> feat = cnn_features(obs)
        >>> feat.x.shape, (4 * feat.x[:, 3, 0]).round(2), round(feat.white_depth, 4)
        ((3, 4, 80), array([0.7, 2. , 3. ], dtype=float32), 0.01)
    """

    x: NDArray[np.float32]
    white_depth: float
    white_sigma: float
    transit: NDArray[np.float64]
    baseline: NDArray[np.float64]


def cnn_features(obs: TransitObservation, common_mode: CommonModeFit | None = None) -> CNNFeatures:
    """Features of :class:`CNNDetrender`.

    The white-light depth and its sigma come from the joint GP + transit fit of the white
    light curve (:func:`~atmospec.transit.detrenders.common_mode.fit_common_mode`); the
    network sees each channel divided by the white light curve (common-mode systematics
    cancel, the relative depth remains), the white-light transit shape, and the fitted
    white-light systematics (whose wavelength-dependent remainder it may learn to remove).
    A ``common_mode`` fit of ``obs`` already made (e.g. by the GP detrender) is reused.

    Example:
        >>> from atmospec.transit.lightcurve import TransitGeometry, TransitModel
        >>> t = np.linspace(0.0, 6.0, 80)
        >>> f = TransitModel(t, TransitGeometry(3.0, 3.0, 10.0, 90.0))(0.1, 0.3, 0.2)
        >>> flux = 1e4 * f[:, None] * (1 + np.random.default_rng(0).normal(0, 1e-4, (80, 3)))
        >>> obs = TransitObservation("1", t, np.array([0.7, 2.0, 3.0]), flux, np.ones((80, 3)),
        ...     np.zeros((80, 3)), star={"P": 3.0, "sma": 10.0, "i": 90.0})
        >>> from atmospec.transit.detrenders.common_mode import fit_common_mode
        >>> cm = fit_common_mode(obs)
        >>> feat = cnn_features(obs, cm)   # reuses the fit instead of repeating it
        >>> feat.white_depth == cm.depth, feat.x.dtype.name, float(feat.x[:, 1].max())
        (True, 'float32', 1.0)
    """
    from atmospec.transit.detrenders.common_mode import fit_common_mode

    norm = obs.normalized()
    cm = common_mode if common_mode is not None else fit_common_mode(obs)
    T = cm.transit
    wn = norm.flux[:, 1:].mean(axis=1)
    wn = wn / np.median(wn)
    syst = np.sum(list(cm.systematics.values()), axis=0) if cm.systematics else 0.0 * T
    shape = (1.0 - T) / max(float((1.0 - T).max()), 1e-9)
    out = shape < 1e-6
    ratio = norm.flux / wn[:, None]
    ref = np.median(ratio[out], axis=0) if out.sum() >= 3 else np.median(ratio, axis=0)
    x = np.empty((obs.n_wavelength, 4, obs.n_time), dtype=np.float32)
    x[:, 0] = ((ratio / ref - 1.0) * _SCALE).T
    x[:, 1] = shape[None]
    x[:, 2] = (syst * _SCALE)[None]
    x[:, 3] = (obs.wavelength / 4.0)[:, None]
    return CNNFeatures(x, cm.depth, cm.depth_sigma, T, wn / T)


@dataclass(frozen=True)
class CNNConfig:
    """Network and training settings (saved next to the weights).

    ``arch2d`` picks the 2D network: 2 (default) has the 1D network's three convolutions and
    pooling with kernels spanning 3 wavelength bins; 1 is the earlier two-layer network
    (models saved without this field are of that kind).

    Example:
        >>> config = CNNConfig(kind="2d", width=8, epochs=3)
        >>> CNNDetrender(config).name, config.arch2d, config.batch_size
        ('cnn2d', 2, 256)
    """

    kind: str = "1d"
    width: int = 32
    epochs: int = 40
    batch_size: int = 256
    lr: float = 2e-3
    seed: int = 0
    val_fraction: float = 0.1
    arch2d: int = 2


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
        return _Net2D(w, config.arch2d)
    raise ValueError(f"unknown CNN kind {config.kind!r}; expected '1d' or '2d'")


def _net2d_class() -> type:
    from torch import nn

    class Net2D(nn.Module):
        """Convolutions over (wavelength, time); a shared head per wavelength row.

        ``arch`` 2 mirrors the 1D network (three convolutions, a max-pool in time) with
        kernels 3 bins wide in wavelength, so it can do what the 1D network does and use the
        neighbouring channels too; ``arch`` 1 is the earlier two-layer network.
        """

        def __init__(self, w: int, arch: int = 2) -> None:
            super().__init__()
            if arch == 1:
                self.body = nn.Sequential(
                    nn.Conv2d(4, w // 2, (3, 5), padding=(1, 2)),
                    nn.ReLU(),
                    nn.Conv2d(w // 2, w, (3, 5), padding=(1, 2)),
                    nn.ReLU(),
                    nn.AdaptiveAvgPool2d((None, 8)),
                )
                out = w
            elif arch == 2:
                self.body = nn.Sequential(
                    nn.Conv2d(4, w, (3, 5), padding=(1, 2)),
                    nn.ReLU(),
                    nn.Conv2d(w, w, (3, 5), padding=(1, 2)),
                    nn.ReLU(),
                    nn.MaxPool2d((1, 2)),
                    nn.Conv2d(w, 2 * w, (3, 5), padding=(1, 2)),
                    nn.ReLU(),
                    nn.AdaptiveAvgPool2d((None, 8)),
                )
                out = 2 * w
            else:
                raise ValueError(f"unknown 2D CNN architecture {arch}; expected 1 or 2")
            self.head = nn.Sequential(nn.Linear(8 * out, 64), nn.ReLU(), nn.Linear(64, 2))

        def forward(self, x: Any) -> Any:  # x: (B, 4, n_wl, n_t)
            h = self.body(x)  # (B, c, n_wl, 8)
            h = h.permute(0, 2, 1, 3).flatten(2)  # (B, n_wl, 8 c)
            return self.head(h)  # (B, n_wl, 2)

    return Net2D


def _Net2D(w: int, arch: int = 2) -> Any:  # noqa: N802 - a factory standing in for the class
    return _net2d_class()(w, arch)


class CNNDetrender(Detrender):
    """A convolutional network that predicts, per wavelength, the depth relative to the
    white-light depth and its sigma (trained with the Gaussian negative log-likelihood).

    The white-light depth and its sigma come from the common-mode GP fit; the network's
    sigma head learns each bin's own (relative) error. Training minimises each planet's
    multivariate Gaussian NLL, covariance ``diag(sigma_net^2) + (b sigma_white)^2`` (the
    white-light error is shared by all bins), with the scale ``b`` (``white_scale_``) learnt
    too; the reported sigma is ``sqrt(sigma_net^2 + (b sigma_white)^2)``.

    ``kind="1d"`` sees one channel at a time; ``kind="2d"`` sees the whole
    (wavelength x time) image and can use neighbouring channels. Train with :meth:`train` on
    simulated planets (see :func:`atmospec.transit.simulator.simulate_planet`), then
    :meth:`fit` like any detrender; :meth:`save` / :meth:`load` keep the weights in
    safetensors with a JSON config and provenance.

    Example:
        >>> from atmospec.transit.lightcurve import TransitGeometry, TransitModel
        >>> t = np.linspace(0.0, 6.0, 80)
        >>> f = TransitModel(t, TransitGeometry(3.0, 3.0, 10.0, 90.0))(0.1, 0.3, 0.2)
        >>> flux = 1e4 * f[:, None] * (1 + np.random.default_rng(0).normal(0, 1e-4, (80, 3)))
        >>> obs = TransitObservation("1", t, np.array([0.7, 2.0, 3.0]), flux, np.ones((80, 3)),
        ...     np.zeros((80, 3)), star={"P": 3.0, "sma": 10.0, "i": 90.0})
        >>> feat = cnn_features(obs)
        >>> det = CNNDetrender(CNNConfig(epochs=1, width=4))   # one tiny training step
        >>> _ = det.train_features([feat] * 4, [np.full(3, 0.01)] * 4)
        >>> import tempfile; from pathlib import Path
        >>> det = CNNDetrender.load(det.save(Path(tempfile.mkdtemp()) / "cnn"))
        >>> spec = det.fit(obs, feat)
        >>> det.name, spec.depth.shape, spec.depth.round(2), spec.sigma.round(3)
        ('cnn1d', (3,), array([0.01, 0.01, 0.01]), array([0.001, 0.001, 0.001]))
    """

    name = "cnn"

    def __init__(self, config: CNNConfig | None = None) -> None:
        self.config = config or CNNConfig()
        self.name = f"cnn{self.config.kind}"
        self.net_: Any = None
        self.white_scale_ = 1.0

    # --- training ---------------------------------------------------------------------------
    def train(
        self,
        observations: Sequence[TransitObservation],
        depths: Sequence[NDArray[np.float64]],
    ) -> dict[str, float]:
        """Train on observations with known depths; returns the final validation loss."""
        feats = [cnn_features(o) for o in observations]
        return self.train_features(feats, depths)

    def train_features(
        self,
        feats: Sequence[CNNFeatures],
        depths: Sequence[NDArray[np.float64]],
    ) -> dict[str, float]:
        """Train from precomputed :func:`cnn_features` (lets several networks share them).
        An epoch bar shows unless the ``atmospec`` logger is set above INFO."""
        import torch
        from tqdm.auto import trange

        from atmospec._logging import progress_enabled

        c = self.config
        gen = torch.Generator().manual_seed(c.seed)
        torch.manual_seed(c.seed)  # weight initialisation (the global torch generator)
        net = _build(c)
        X = np.stack([f.x for f in feats])  # (P, n_wl, 4, n_t)
        Y = np.stack(
            [(np.asarray(d) - f.white_depth) * _SCALE for f, d in zip(feats, depths, strict=True)]
        )
        S = np.array([f.white_sigma * _SCALE for f in feats], dtype=np.float32)
        n_val = max(1, int(round(c.val_fraction * len(feats))))
        perm = torch.randperm(len(feats), generator=gen).numpy()
        val, tr = perm[:n_val], perm[n_val:]

        def pack(idx: NDArray[np.int64]) -> tuple[Any, Any, Any]:
            return (
                torch.from_numpy(X[idx]),
                torch.from_numpy(Y[idx].astype(np.float32)),
                torch.from_numpy(S[idx]),
            )

        xt, yt, st = pack(tr)
        xv, yv, sv = pack(val)
        # the white-light sigma's scale is learnt with the network: the bins of a planet share
        # its error, so the loss is the planet's multivariate Gaussian NLL (rank-1 covariance)
        ln_b = torch.zeros((), requires_grad=True)
        opt = torch.optim.Adam([*net.parameters(), ln_b], lr=c.lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, c.epochs)
        bs = max(2, c.batch_size // X.shape[1])  # planets per batch
        best, best_state = np.inf, None
        for _ in trange(c.epochs, desc=f"training {self.name}", disable=not progress_enabled()):
            net.train()
            order = torch.randperm(xt.shape[0], generator=gen)
            for i in range(0, xt.shape[0], bs):
                idx = order[i : i + bs]
                out = _forward(net, c.kind, xt[idx])
                loss = _planet_nll(out, yt[idx], st[idx] * torch.exp(ln_b))
                opt.zero_grad()
                loss.backward()
                opt.step()
            sched.step()
            net.eval()
            with torch.no_grad():
                v = float(_planet_nll(_forward(net, c.kind, xv), yv, sv * torch.exp(ln_b)))
            if v < best:
                best = v
                best_state = {k: t.detach().clone() for k, t in net.state_dict().items()}
                self.white_scale_ = float(torch.exp(ln_b.detach()))
        if best_state is not None:
            net.load_state_dict(best_state)
        self.net_ = net
        self.n_train_ = len(tr)
        return {"val_nll": best, "white_sigma_scale": self.white_scale_}

    # --- inference ----------------------------------------------------------------------------
    def fit(
        self, observation: TransitObservation, features: CNNFeatures | None = None
    ) -> DepthSpectrum:
        """Predict the depth spectrum (``features`` of ``observation`` may be passed in)."""
        import torch

        if self.net_ is None:
            raise IncompatibleModelError(
                f"{self.name}: the network is untrained; call train(...) or CNNDetrender.load()"
            )
        self.check_transit(observation)
        f = features if features is not None else cnn_features(observation)
        self.net_.eval()
        with torch.no_grad():
            out = _forward(self.net_, self.config.kind, torch.from_numpy(f.x[None]))[0].numpy()
        if not np.all(np.isfinite(out)):
            raise ModelFileError(
                f"{self.name}: the network returned non-finite values for planet "
                f"{observation.planet_id} (corrupted weights?)"
            )
        depth = f.white_depth + out[:, 0] / _SCALE
        own = np.exp(np.clip(out[:, 1], -10, 5)) / _SCALE
        white_sigma = self.white_scale_ * f.white_sigma
        sigma = np.hypot(own, white_sigma)
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
                meta={
                    "sigma_relative": own,
                    "white_depth": f.white_depth,
                    "white_depth_sigma": white_sigma,
                },
            )
        )
        return self.spectrum_

    # --- persistence --------------------------------------------------------------------------
    def save(self, folder: str | Path, **extra: Any) -> Path:
        """Write the model folder (:mod:`atmospec.serialization`: ``weights.safetensors`` and a
        checksummed ``model.json`` with config, sigma model and provenance)."""
        from atmospec.serialization import save_arrays

        if self.net_ is None:
            raise ModelFileError(f"{self.name}: nothing to save, the network is untrained")
        arrays = {
            f"net.{k}": v.detach().cpu().contiguous().numpy()
            for k, v in self.net_.state_dict().items()
        }
        record = {
            "kind": KIND,
            "config": asdict(self.config),
            "sigma_model": [self.sigma_scale, self.sigma_shared_scale, self.sigma_floor],
            "white_sigma_scale": self.white_scale_,
            "provenance": provenance(seed=self.config.seed, **extra),
        }
        return save_arrays(folder, record, arrays)

    @classmethod
    def pretrained(cls, kind: str = "1d") -> CNNDetrender:
        """The shipped network of ``kind`` "1d" or "2d" (trained and sigma-calibrated on
        simulated planets only), from the model registry (:func:`atmospec.models.load_model`
        names ``"transit-cnn1d"`` and ``"transit-cnn2d"``).

        Raises:
            ModelFileError: this installation has no shipped model of that kind.
        """
        from atmospec.models import load_model

        det: CNNDetrender = load_model(f"transit-cnn{kind}", kind=KIND)
        return det

    @classmethod
    def load(cls, folder: str | Path) -> CNNDetrender:
        """Load a network written by :meth:`save` (both files verified by sha256; no pickle).

        Raises:
            ModelFileError: a missing, modified or truncated file (named), or another model.
        """
        import torch

        from atmospec.serialization import load_arrays

        meta, arrays = load_arrays(folder)
        if meta.get("kind") != KIND:
            raise ModelFileError(
                f"{folder}: not an atmospec transit CNN (kind={meta.get('kind')!r})"
            )
        try:
            # 2D models saved before ``arch2d`` existed are of the first architecture
            self = cls(CNNConfig(**{"arch2d": 1, **meta["config"]}))
            net = _build(self.config)
            net.load_state_dict(
                {k[4:]: torch.from_numpy(v.copy()) for k, v in arrays.items() if k[:4] == "net."}
            )
        except (KeyError, TypeError, RuntimeError, ValueError) as err:
            raise ModelFileError(f"{folder}: unreadable CNN model ({err})") from None
        self.net_ = net
        self.white_scale_ = float(meta.get("white_sigma_scale", 1.0))
        if "sigma_model" in meta:
            self.set_sigma_model(*(float(v) for v in meta["sigma_model"]))
        return self


def _forward(net: Any, kind: str, x: Any) -> Any:
    """Network outputs ``(B, n_wl, 2)`` for planets ``x`` of shape ``(B, n_wl, 4, n_t)``."""
    b, n_wl = x.shape[0], x.shape[1]
    if kind == "1d":
        return net(x.reshape(b * n_wl, *x.shape[2:])).reshape(b, n_wl, 2)
    return net(x.permute(0, 2, 1, 3).contiguous())


def _planet_nll(out: Any, y: Any, s_white: Any) -> Any:
    """Multivariate Gaussian NLL per bin of planets whose bins share one error: mean
    ``out[..., 0]``, covariance ``diag(exp(2 out[..., 1])) + s_white^2 11^T`` (per planet).

    With ``D`` the diagonal and ``c^2 = s_white^2``: ``ln det = sum ln d + ln(1 + c^2 sum 1/d)``
    and ``e^T C^-1 e = sum e^2/d - c^2 (sum e/d)^2 / (1 + c^2 sum 1/d)`` (Sherman-Morrison).
    """
    import torch

    mu, ln_s = out[..., 0], torch.clamp(out[..., 1], -10.0, 5.0)
    e = y - mu
    inv = torch.exp(-2 * ln_s)
    c2 = (s_white**2)[:, None]
    a = 1.0 + c2[:, 0] * inv.sum(dim=1)
    logdet = (2 * ln_s).sum(dim=1) + torch.log(a)
    quad = (e**2 * inv).sum(dim=1) - c2[:, 0] * (e * inv).sum(dim=1) ** 2 / a
    return (0.5 * (logdet + quad) / y.shape[1]).mean()
