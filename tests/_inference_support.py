"""Shared by the inference tests: a tiny estimator trained on the Diamondback grid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

AXIS = "spex-prism"  # TelescopeML's 104-bin SpeX prism axis, 0.897-2.512 um


def train_tiny(tmp: Path) -> dict[str, Any]:
    """Train a small MLP (sigma heads) on 2,000 noisy dback24 spectra; calibrate its OOD score.

    Saved under ``tmp`` and reloaded by later test modules of the same session.
    """
    import torch

    from atmospec.estimators.base import load_estimator
    from atmospec.prediction.ood import OODDetector

    if (tmp / "done").exists():
        from atmospec.grids import load_grid

        return {
            "estimator": load_estimator(tmp / "model"),
            "grid": load_grid("dback24").load(),
            "detector": OODDetector.load(tmp / "ood.json"),
        }

    from atmospec.estimators.mlp import SpectrumMLP
    from atmospec.grids import load_grid
    from atmospec.prediction.ood_calibration import calibrate_ood
    from atmospec.training.builder import build_training_set

    torch.set_num_threads(1)
    grid = load_grid("dback24").load()
    train = build_training_set(grid, tmp / "train.h5", n_samples=2000, axis=AXIS, seed=1)
    val = build_training_set(grid, tmp / "val.h5", n_samples=500, axis=AXIS, seed=2)
    X, y, s = train.arrays()
    Xv, yv, sv = val.arrays()
    est = SpectrumMLP(hidden=(96, 96), max_epochs=25, patience=5, num_threads=1, seed=0)
    est.fit(X, y, sigma=s, validation=(Xv, yv, sv), **train.fit_kwargs())
    est.meta_["grid"] = "dback24"
    train.close()
    val.close()
    detector = calibrate_ood(est, grid, n_samples=1200, seed=7)
    est.save(tmp / "model")
    detector.save(tmp / "ood.json")
    (tmp / "done").write_text("ok")
    return {"estimator": est, "grid": grid, "detector": detector}


def synthetic_spectrum(
    grid: Any, point: dict[str, float], snr: float, seed: int, name: str = "synthetic"
) -> Any:
    """A grid spectrum interpolated at ``point`` on the SpeX prism axis with Gaussian noise."""
    from atmospec.spectrum import Spectrum
    from atmospec.training.builder import target_axis
    from atmospec.transforms import resample

    wave = target_axis(AXIS)
    flux = resample(wave, grid.wavelength, grid.interpolate(point))
    flux = flux / np.median(flux)
    sigma = np.full(wave.size, 1.0 / snr)
    noisy = flux + sigma * np.random.default_rng(seed).standard_normal(wave.size)
    return Spectrum(wave, noisy, sigma, name=name, meta={"source": name})


@pytest.fixture(scope="module")
def tiny(splat_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The tiny model, its grid and OOD detector (trained once per test session and worker)."""
    root = tmp_path_factory.getbasetemp() / "tiny-model"
    root.mkdir(exist_ok=True)
    return train_tiny(root)
