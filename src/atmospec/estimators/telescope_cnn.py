"""TelescopeCNN: a faithful PyTorch reproduction of TelescopeML's CNN (the reference to beat)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from atmospec.estimators.preprocessing import Preprocessor

from ._neural import NeuralEstimator

if TYPE_CHECKING:
    import torch

__all__ = ["TelescopeCNN", "telescope_network", "TELESCOPE_N_PARAMETERS"]

# TelescopeML 0.0.5 (DeepTrainer) at 104 input pixels and 4 targets: 8,438,756 parameters.
TELESCOPE_N_PARAMETERS = 8_438_756


def telescope_network(n_wave: int = 104, n_out: int = 4, n_side: int = 2) -> torch.nn.Module:
    """TelescopeML's network: 2 conv blocks x 3 Conv1D, dense 256/1024/2304, concat side, dense
    128/512/1152/2048, one linear head per target.

    Filter counts follow TelescopeML's rule ``32 * (block + layer + 1)**2`` (32, 128, 288 then
    128, 288, 512; kernel 4, 'same' padding, ReLU, max-pool 3); dense widths ``256 * (i+1)**2``
    and ``128 * (i+1)**2``. The head outputs are concatenated in one (n, n_out) tensor.

    Example:
        >>> net = telescope_network(104, 4)
        >>> sum(p.numel() for p in net.parameters())
        8438756
    """
    import torch
    from torch import nn

    class TelescopeNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            convs: list[nn.Module] = []
            c_in, length = 1, n_wave
            for block in range(2):
                for layer in range(3):
                    c_out = 32 * (block + layer + 1) ** 2
                    # Keras 'same' padding for kernel 4: one zero on the left, two on the right.
                    convs += [nn.ConstantPad1d((1, 2), 0.0), nn.Conv1d(c_in, c_out, 4), nn.ReLU()]
                    c_in = c_out
                convs.append(nn.MaxPool1d(3))
                length //= 3
            self.conv = nn.Sequential(*convs)
            fc1: list[nn.Module] = []
            width = c_in * length
            for i in range(3):
                fc1 += [nn.Linear(width, 256 * (i + 1) ** 2), nn.ReLU()]
                width = 256 * (i + 1) ** 2
            self.fc1 = nn.Sequential(*fc1)
            fc2: list[nn.Module] = []
            width += n_side
            for i in range(4):
                fc2 += [nn.Linear(width, 128 * (i + 1) ** 2), nn.ReLU()]
                width = 128 * (i + 1) ** 2
            self.fc2 = nn.Sequential(*fc2)
            self.heads = nn.ModuleList([nn.Linear(width, 1) for _ in range(n_out)])
            self.n_side = n_side

        def forward(self, x: torch.Tensor, side: torch.Tensor | None = None) -> torch.Tensor:
            h = self.fc1(self.conv(x).flatten(1))
            if self.n_side:
                assert side is not None  # a network built with side inputs needs them
                h = torch.cat([h, side], dim=1)
            h = self.fc2(h)
            return torch.cat([head(h) for head in self.heads], dim=1)

    return TelescopeNet()


class TelescopeCNN(NeuralEstimator):
    """TelescopeML's CNN and training recipe, in PyTorch.

    Inputs: each spectrum z-scored on its own plus its raw min and max flux (column-
    standardised); targets column-standardised; Huber loss; Adam at lr 1.889e-4; batch 32.
    Point estimates only (TelescopeML's "uncertainties" came from re-noising the input).
    Differences from TelescopeML: Teff is learnt linearly (it used log10 Teff), the heads are the
    parameters of the grid at hand, and outputs are clipped to the grid bounds.

    Example:
        >>> est = TelescopeCNN(max_epochs=1)
        >>> est.lr, est.batch_size
        (0.0001889, 32)
    """

    kind = "telescope_cnn"
    probabilistic = False
    bounded = False

    def __init__(
        self,
        *,
        n_members: int = 1,
        lr: float = 1.889e-4,
        batch_size: int = 32,
        max_epochs: int = 200,
        patience: int = 20,
        weight_decay: float = 0.0,
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

    def _preprocessor(self) -> Preprocessor:
        return Preprocessor(normalize="zscore", side_features=True, target="standard")

    def _network(self, n_wave: int, n_channels: int, n_side: int, n_out: int) -> Any:
        return telescope_network(n_wave, n_out, n_side)

    def _loss(self) -> Any:
        import torch

        return torch.nn.HuberLoss()
