"""Training sets, splits, systematics, the Trainer and tuning (the estimators' preprocessing
is :mod:`atmospec.estimators.preprocessing`)."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "Trainer",
    "TrainingHistory",
    "TrainingSet",
    "build_training_set",
    "Systematics",
    "grid_aware_split",
    "random_split",
    "tune",
]

_WHERE = {
    "Trainer": "trainer",
    "TrainingHistory": "trainer",
    "TrainingSet": "builder",
    "build_training_set": "builder",
    "Systematics": "systematics",
    "grid_aware_split": "splits",
    "random_split": "splits",
    "tune": "tuning",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
