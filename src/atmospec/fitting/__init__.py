"""Classic grid fitting of observed spectra: chi-square and nested sampling."""

from __future__ import annotations

from typing import Any

# Imported eagerly so that the name ``fit`` is the function, not the submodule of that name.
from atmospec.fitting.fit import FitResult, fit

__all__ = ["FitResult", "fit", "fit_chi2", "fit_nested"]

_LAZY = {
    "fit_chi2": "atmospec.fitting.chi2",
    "fit_nested": "atmospec.fitting.nested",
}


def __getattr__(name: str) -> Any:
    # Lazy: importing atmospec.fitting does not pull in dynesty.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'atmospec.fitting' has no attribute {name!r}")
