"""Learned prediction on observed spectra: predictor, routing, members, OOD, coverage, batch."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from atmospec.prediction.batch import BatchOptions, run_catalog
    from atmospec.prediction.predictor import Predictor, predict
    from atmospec.prediction.result import PredictionResult
    from atmospec.prediction.sources import Catalog

__all__ = ["BatchOptions", "Catalog", "PredictionResult", "Predictor", "predict", "run_catalog"]

_WHERE = {
    "BatchOptions": "batch",
    "run_catalog": "batch",
    "Predictor": "predictor",
    "predict": "predictor",
    "PredictionResult": "result",
    "Catalog": "sources",
}


def __getattr__(name: str) -> Any:
    # Lazy: importing atmospec.prediction does not pull in torch.
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'atmospec.prediction' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
