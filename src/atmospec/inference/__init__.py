"""Inference on observed spectra: classic grid fitting (chi-square, nested sampling)."""

from __future__ import annotations

from typing import Any

# Imported eagerly so that the name ``fit`` is the function, not the submodule of that name.
from atmospec.inference.fit import FitResult, fit

__all__ = ["FitResult", "fit", "fit_chi2", "fit_nested"]

_LAZY = {
    "fit_chi2": "atmospec.inference.chi2",
    "fit_nested": "atmospec.inference.nested",
}


def __getattr__(name: str) -> Any:
    # Lazy: importing atmospec.inference does not pull in dynesty.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'atmospec.inference' has no attribute {name!r}")
