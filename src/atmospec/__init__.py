"""atmospec: physics from spectra of brown dwarfs, exoplanets and stars."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("atmospec")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "Spectrum", "predict"]


def __getattr__(name: str) -> object:
    # Lazy access keeps `import atmospec` free of heavy imports.
    if name == "Spectrum":
        from atmospec.spectrum import Spectrum

        return Spectrum
    if name == "predict":
        from atmospec.prediction.predictor import predict

        return predict
    raise AttributeError(f"module 'atmospec' has no attribute {name!r}")
