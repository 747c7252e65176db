"""The error hierarchy: every error atmospec raises on purpose derives from AtmospecError."""

from __future__ import annotations

__all__ = [
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


class AtmospecError(Exception):
    """Base class of all errors raised by atmospec."""


class DataNotFoundError(AtmospecError, FileNotFoundError):
    """Embedded data (or a file the user named) is absent; the message names the command to run."""


class ChecksumError(AtmospecError):
    """A downloaded distribution or saved file does not match its recorded sha256."""


class InvalidSpectrumError(AtmospecError, ValueError):
    """A spectrum breaks a rule: unsorted or repeated wavelengths, NaN or non-positive values."""


class FileFormatError(AtmospecError, ValueError):
    """A file cannot be read: unknown layout, corrupt content, missing columns."""


class UnitError(AtmospecError, ValueError):
    """A quantity has units that cannot be converted to what was expected."""


class CoverageError(AtmospecError, ValueError):
    """A spectrum does not cover the wavelength range a model or target grid needs."""


class OutOfGridError(AtmospecError, ValueError):
    """A parameter point lies outside a model grid's hull; atmospec never extrapolates silently."""


class ModelFileError(AtmospecError):
    """A saved model is truncated, tampered with, or of an unknown format."""


class IncompatibleModelError(AtmospecError, ValueError):
    """A model was applied to data it was not trained for (e.g. another wavelength axis)."""


class ModelInputError(AtmospecError, ValueError):
    """Physical model inputs are invalid (negative temperature, unbound atmosphere, bad prior)."""


class MissingDependencyError(AtmospecError, ImportError):
    """An optional dependency is not installed; the message names the extra that installs it."""


class NotFittedError(AtmospecError, ValueError, AttributeError):
    """An estimator was used before ``fit`` (or ``load``): it has no learned state yet.

    Derives from ``ValueError`` and ``AttributeError`` like scikit-learn's own
    ``NotFittedError``, so code written for scikit-learn catches it too.
    """
