"""Loaders that convert model-grid files of one family each into an atmospec HDF5 grid."""

from __future__ import annotations

__all__: list[str] = []
