"""SpectrumCNN: the compact default estimator, mean and sigma per parameter, deep ensemble."""

from __future__ import annotations

from typing import Any

from atmospec.estimators.preprocessing import Preprocessor

from ._neural import NeuralEstimator

__all__ = ["SpectrumCNN", "compact_network"]


def compact_network(
    n_wave: int,
    n_channels: int,
    n_out: int,
    *,
    width: int = 32,
    hidden: int = 128,
    dropout: float = 0.0,
) -> Any:
    """A small, fast 1-D CNN: three strided conv layers (kernel 5/5/3, stride 2, batch norm,
    GELU) halve the resolution each time, then one hidden dense layer gives ``n_out`` outputs.

    Example:
        >>> net = compact_network(300, 2, 8)
        >>> 1e5 < sum(p.numel() for p in net.parameters()) < 5e5
        True
    """
    from torch import nn

    w1, w2, w3 = width // 2, width, (3 * width) // 2
    length = n_wave
    for _ in range(3):
        length = (length + 1) // 2
    return nn.Sequential(
        nn.Conv1d(n_channels, w1, 5, stride=2, padding=2),
        nn.BatchNorm1d(w1),
        nn.GELU(),
        nn.Conv1d(w1, w2, 5, stride=2, padding=2),
        nn.BatchNorm1d(w2),
        nn.GELU(),
        nn.Conv1d(w2, w3, 3, stride=2, padding=1),
        nn.BatchNorm1d(w3),
        nn.GELU(),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(w3 * length, hidden),
        nn.GELU(),
        nn.Linear(hidden, n_out),
    )


class SpectrumCNN(NeuralEstimator):
    """The default estimator: a compact CNN with a mean and a sigma per parameter.

    Reads two channels per pixel: the flux divided by its mean, and log10 of the relative
    uncertainty (so it knows the S/N and which pixels are masked). Means pass through a sigmoid
    scaled to the grid range (estimates cannot leave the grid); sigmas through a softplus;
    trained with the Gaussian negative log-likelihood (``nll_beta > 0``: the beta-NLL, which
    keeps hard spectra's weight in the means). ``n_members > 1`` trains a deep
    ensemble (different seeds; mixture mean and variance). Sigmas are finally rescaled on the
    validation set, per parameter and as a function of the input S/N (``calibrate``), so
    that the 68 / 95 % intervals are calibrated.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> wave = np.linspace(1.0, 2.0, 64); t = rng.uniform(0, 1, (200, 1))
        >>> X = 1 + t * np.sin(6 * wave); sig = np.full_like(X, 0.01)
        >>> est = SpectrumCNN(max_epochs=3, width=8, hidden=16)
        >>> est = est.fit(X + 0.01 * rng.normal(size=X.shape), t, sigma=sig, wavelength=wave,
        ...               param_names=["t"], bounds={"t": (0.0, 1.0)})
        >>> pred = est.predict(X[:5], sig[:5])
        >>> bool(((pred.mean >= 0) & (pred.mean <= 1)).all()), pred.std.shape  # inside bounds
        (True, (5, 1))
    """

    kind = "cnn"
    uses_sigma = True

    def __init__(
        self,
        *,
        width: int = 16,
        hidden: int = 64,
        dropout: float = 0.0,
        n_members: int = 1,
        lr: float = 3e-3,
        batch_size: int = 128,
        max_epochs: int = 20,
        patience: int = 5,
        weight_decay: float = 1e-4,
        seed: int = 0,
        num_threads: int | None = None,
        max_seconds: float | None = None,
        max_cpu_seconds: float | None = None,
        device: str | None = None,
        checkpoint_dir: str | None = None,
        scheduler: str = "plateau",
        nll_beta: float = 0.0,
    ) -> None:
        super().__init__(
            n_members=n_members,
            lr=lr,
            batch_size=batch_size,
            max_epochs=max_epochs,
            patience=patience,
            weight_decay=weight_decay,
            seed=seed,
            num_threads=num_threads,
            max_seconds=max_seconds,
            max_cpu_seconds=max_cpu_seconds,
            device=device,
            checkpoint_dir=checkpoint_dir,
            scheduler=scheduler,
            nll_beta=nll_beta,
        )
        self.width = width
        self.hidden = hidden
        self.dropout = dropout

    def _preprocessor(self) -> Preprocessor:
        return Preprocessor(normalize="mean", sigma_channel=True, target="bounded")

    def _network(self, n_wave: int, n_channels: int, n_side: int, n_out: int) -> Any:
        return compact_network(
            n_wave, n_channels, n_out, width=self.width, hidden=self.hidden, dropout=self.dropout
        )
