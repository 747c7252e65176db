"""Learned prediction on observed spectra: predictor, routing, members, OOD, coverage, batch."""

from __future__ import annotations

from typing import Any

__all__ = ["PredictionResult", "Predictor", "predict"]


def __getattr__(name: str) -> Any:
    # Lazy: importing atmospec.prediction does not pull in torch.
    if name in __all__:
        from atmospec.prediction import predictor

        return getattr(predictor, name)
    raise AttributeError(f"module 'atmospec.prediction' has no attribute {name!r}")
