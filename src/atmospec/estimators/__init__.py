"""Estimators under one contract: TelescopeCNN, the default CNN, MLP and tree baselines."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "Estimator",
    "Prediction",
    "Preprocessor",
    "load_estimator",
    "TelescopeCNN",
    "SpectrumCNN",
    "SpectrumMLP",
    "RandomForestEstimator",
    "GradientBoostingEstimator",
]

_WHERE = {
    "Estimator": "base",
    "Prediction": "base",
    "Preprocessor": "preprocessing",
    "load_estimator": "base",
    "TelescopeCNN": "telescope_cnn",
    "SpectrumCNN": "cnn",
    "SpectrumMLP": "mlp",
    "RandomForestEstimator": "baselines",
    "GradientBoostingEstimator": "baselines",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
