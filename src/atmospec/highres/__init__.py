"""High-resolution spectra as interpretable, differentiable line-by-line models (blasé-like)."""

from __future__ import annotations

__all__ = [
    "LineEmulator",
    "LineList",
    "ExtrinsicModel",
    "TelluricModel",
    "FitResult",
    "clone",
    "find_lines",
    "fit_spectrum",
    "voigt_profile",
]


def __getattr__(name: str) -> object:
    # lazy: importing atmospec.highres must not import torch
    import importlib

    where = {
        "LineEmulator": "emulator",
        "clone": "emulator",
        "LineList": "linefinder",
        "find_lines": "linefinder",
        "ExtrinsicModel": "extrinsic",
        "TelluricModel": "telluric",
        "FitResult": "fit",
        "fit_spectrum": "fit",
        "voigt_profile": "voigt",
    }
    if name not in where:
        raise AttributeError(name)
    return getattr(importlib.import_module(f"atmospec.highres.{where[name]}"), name)
