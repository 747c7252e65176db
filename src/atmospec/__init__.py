"""atmospec: physics from spectra of brown dwarfs, exoplanets and stars.

The names most work needs, importable from the top (each loads on first use, so
``import atmospec`` stays fast):

Example:
    >>> import atmospec
    >>> spec = atmospec.Spectrum([1.0, 1.5, 2.0], [1.0, 2.0, 1.0], name="demo")
    >>> spec.resample([1.25, 1.75]).flux.round(2).tolist()
    [1.5, 1.5]
    >>> issubclass(atmospec.CoverageError, atmospec.AtmospecError)
    True
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("atmospec")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

if TYPE_CHECKING:
    from atmospec.discrepancy import DiscrepancyModel, load_discrepancy
    from atmospec.errors import (
        AtmospecError,
        ChecksumError,
        CoverageError,
        DataNotFoundError,
        FileFormatError,
        IncompatibleModelError,
        InvalidSpectrumError,
        MissingDependencyError,
        ModelFileError,
        ModelInputError,
        NotFittedError,
        OutOfGridError,
        UnitError,
    )
    from atmospec.fitting import FitResult, fit
    from atmospec.grids import ModelGrid, load_grid
    from atmospec.io import read
    from atmospec.models import load_model
    from atmospec.prediction.predictor import Predictor, predict
    from atmospec.prediction.result import PredictionResult
    from atmospec.spectrum import Spectrum

_WHERE: dict[str, str] = {
    "read": "atmospec.io",
    "Spectrum": "atmospec.spectrum",
    "load_grid": "atmospec.grids",
    "ModelGrid": "atmospec.grids",
    "load_model": "atmospec.models",
    "fit": "atmospec.fitting",
    "FitResult": "atmospec.fitting",
    "load_discrepancy": "atmospec.discrepancy",
    "DiscrepancyModel": "atmospec.discrepancy",
    "predict": "atmospec.prediction.predictor",
    "Predictor": "atmospec.prediction.predictor",
    "PredictionResult": "atmospec.prediction.result",
    "AtmospecError": "atmospec.errors",
    "DataNotFoundError": "atmospec.errors",
    "ChecksumError": "atmospec.errors",
    "InvalidSpectrumError": "atmospec.errors",
    "FileFormatError": "atmospec.errors",
    "UnitError": "atmospec.errors",
    "CoverageError": "atmospec.errors",
    "OutOfGridError": "atmospec.errors",
    "ModelFileError": "atmospec.errors",
    "IncompatibleModelError": "atmospec.errors",
    "ModelInputError": "atmospec.errors",
    "MissingDependencyError": "atmospec.errors",
    "NotFittedError": "atmospec.errors",
}

__all__ = [
    "__version__",
    "read",
    "Spectrum",
    "load_grid",
    "ModelGrid",
    "load_model",
    "fit",
    "FitResult",
    "load_discrepancy",
    "DiscrepancyModel",
    "predict",
    "Predictor",
    "PredictionResult",
    "AtmospecError",
    "DataNotFoundError",
    "ChecksumError",
    "InvalidSpectrumError",
    "FileFormatError",
    "UnitError",
    "CoverageError",
    "OutOfGridError",
    "ModelFileError",
    "IncompatibleModelError",
    "ModelInputError",
    "MissingDependencyError",
    "NotFittedError",
]


def __getattr__(name: str) -> Any:
    # Lazy access keeps `import atmospec` free of heavy imports (torch, astropy tables...).
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'atmospec' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
