"""Detrenders: one contract (fit -> DepthSpectrum, diagnose -> figures), one method per module."""

from __future__ import annotations

from pathlib import Path

from atmospec.transit.detrenders.base import DepthSpectrum, Detrender

__all__ = ["DepthSpectrum", "Detrender", "make_detrender"]


def make_detrender(method: str, model: str | Path | None = None) -> Detrender:
    """The detrender named ``method`` (poly, pca, gp, cnn; cnn loads ``model``, or the shipped
    network when ``model`` is None).

    Example:
        >>> make_detrender("poly").name
        'poly'
    """
    if method == "poly":
        from atmospec.transit.detrenders.polynomial import PolynomialDetrender

        return PolynomialDetrender()
    if method == "pca":
        from atmospec.transit.detrenders.pca import PCADetrender

        return PCADetrender()
    if method == "gp":
        from atmospec.transit.detrenders.gp import GPDetrender

        return GPDetrender()
    if method == "cnn":
        from atmospec.transit.detrenders.cnn import CNNDetrender

        return CNNDetrender.pretrained() if model is None else CNNDetrender.load(model)
    raise ValueError(f"unknown method {method!r}; expected poly, pca, gp or cnn")
