"""Calibrated posteriors by simulation-based inference: NPE, calibration, importance, comparison."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "NPEstimator",
    "NoiseModel",
    "PosteriorFlow",
    "GridSimulator",
    "calibration_report",
    "calibrate_estimator",
    "CalibrationReport",
    "fit_temperature",
    "importance_correct",
    "grid_likelihood",
    "ImportanceResult",
    "compare",
    "jsd_bits",
    "train_npe",
    "calibrate_model",
]

_WHERE = {
    "NPEstimator": "npe",
    "NoiseModel": "npe",
    "PosteriorFlow": "flow",
    "GridSimulator": "simulate",
    "calibration_report": "calibration",
    "calibrate_estimator": "calibration",
    "CalibrationReport": "calibration",
    "fit_temperature": "tempering",
    "importance_correct": "importance",
    "grid_likelihood": "importance",
    "ImportanceResult": "importance",
    "compare": "compare",
    "jsd_bits": "compare",
    "train_npe": "pipeline",
    "calibrate_model": "pipeline",
}


def __getattr__(name: str) -> Any:
    # Lazy: importing atmospec.posteriors does not import torch.
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
