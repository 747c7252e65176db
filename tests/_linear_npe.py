"""A linear-Gaussian toy for NPE tests: its exact posterior is known in closed form.

Two zero-mean design columns (a slope and a curvature), mixed so the posterior is
correlated. Columns have zero mean across pixels, so normalising a spectrum by its mean flux
(what the NPE does) discards no information about theta (mean flux = 1 + noise); the exact
posterior is Gaussian with a width proportional to the noise.
"""

from __future__ import annotations

import numpy as np

from atmospec.posteriors.npe import NoiseModel, NPEstimator

N_PIX = 16
_W = np.linspace(-1.0, 1.0, N_PIX)
_A0 = np.stack([0.2 * _W, 0.2 * (1.5 * _W**2 - 0.5)], axis=1)
_A0 -= _A0.mean(axis=0)
A = _A0 @ np.array([[1.0, 0.6], [0.0, 1.0]])
BOX = {"a": (-3.0, 3.0), "b": (-3.0, 3.0)}
NOISE = NoiseModel(snr_range=(10.0, 40.0), tilt_range=(0.0, 0.0), scale_range=(1.0, 1.0))


def linear_model(theta: np.ndarray) -> np.ndarray:
    """Noise-free spectra ``1 + A theta`` for parameters ``(n, 2)``."""
    return 1.0 + np.atleast_2d(theta) @ A.T


def train_linear_npe() -> NPEstimator:
    """A small NPE (one coupling, 4000 simulations, seed 0) trained on the toy, on one thread."""
    import torch

    torch.set_num_threads(1)
    theta = np.random.default_rng(0).uniform(-3.0, 3.0, (4000, 2))
    est = NPEstimator(
        ["a", "b"],
        BOX,
        noise=NOISE,
        width=64,
        depth=1,
        n_features=16,
        transforms=1,
        max_epochs=40,
        patience=10,
        batch_size=64,
        lr=3e-3,
        seed=0,
    )
    return est.fit(linear_model(theta), theta)
