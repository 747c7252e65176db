"""SpectrumMLP: a multilayer perceptron with mean and sigma heads (a light alternative)."""

from __future__ import annotations

from typing import Any

from atmospec.estimators.preprocessing import Preprocessor

from ._neural import NeuralEstimator

__all__ = ["SpectrumMLP"]


class SpectrumMLP(NeuralEstimator):
    """Fully connected network on the normalised flux and log relative uncertainty.

    Same outputs, loss, bounds and calibration as :class:`~atmospec.estimators.cnn.SpectrumCNN`.

    Example:
        >>> SpectrumMLP(hidden=(64, 64)).hidden
        (64, 64)
    """

    kind = "mlp"
    uses_sigma = True

    def __init__(
        self,
        *,
        hidden: tuple[int, ...] = (256, 256),
        dropout: float = 0.0,
        n_members: int = 1,
        lr: float = 1e-3,
        batch_size: int = 128,
        max_epochs: int = 100,
        patience: int = 8,
        weight_decay: float = 1e-4,
        seed: int = 0,
        num_threads: int | None = None,
        max_seconds: float | None = None,
        max_cpu_seconds: float | None = None,
        device: str | None = None,
        checkpoint_dir: str | None = None,
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
        )
        self.hidden = hidden
        self.dropout = dropout

    def _preprocessor(self) -> Preprocessor:
        return Preprocessor(normalize="mean", sigma_channel=True, target="bounded")

    def _network(self, n_wave: int, n_channels: int, n_side: int, n_out: int) -> Any:
        from torch import nn

        layers: list[nn.Module] = [nn.Flatten()]
        width = n_wave * n_channels
        for h in map(int, self.hidden):
            layers += [nn.Linear(width, h), nn.GELU(), nn.Dropout(self.dropout)]
            width = h
        layers.append(nn.Linear(width, n_out))
        return nn.Sequential(*layers)
