"""Detrenders: one contract (fit -> DepthSpectrum, diagnose -> figures), one method per module."""

from __future__ import annotations

from pathlib import Path

from atmospec.transit.detrenders.base import DepthSpectrum, Detrender

__all__ = ["METHODS", "DepthSpectrum", "Detrender", "make_detrender"]


#: Method names accepted by :func:`make_detrender` (``cnn`` is ``cnn1d``).
METHODS = ("poly", "pca", "gp", "cnn1d", "cnn2d", "cnn")


def make_detrender(method: str, model: str | Path | None = None) -> Detrender:
    """The detrender named ``method``: ``poly``, ``pca``, ``gp``, ``cnn1d`` or ``cnn2d``
    (``cnn`` is ``cnn1d``). The CNNs load ``model`` (a folder written by
    :meth:`~atmospec.transit.detrenders.cnn.CNNDetrender.save`), or the network of that kind
    shipped with atmospec when ``model`` is None.

    Raises:
        ValueError: an unknown method, or a ``model`` given for a method that loads none.
        IncompatibleModelError: ``model`` is a CNN of the other kind.

    Example:
        >>> make_detrender("poly").name
        'poly'
    """
    if model is not None and method not in ("cnn", "cnn1d", "cnn2d"):
        raise ValueError(
            f"model {model}: a trained CNN is loaded only by the cnn1d and cnn2d methods; "
            f"{method!r} fits each planet on its own and would ignore it"
        )
    if method == "poly":
        from atmospec.transit.detrenders.polynomial import PolynomialDetrender

        return PolynomialDetrender()
    if method == "pca":
        from atmospec.transit.detrenders.pca import PCADetrender

        return PCADetrender()
    if method == "gp":
        from atmospec.transit.detrenders.gp import GPDetrender

        return GPDetrender()
    if method in ("cnn", "cnn1d", "cnn2d"):
        from atmospec.errors import IncompatibleModelError
        from atmospec.transit.detrenders.cnn import CNNDetrender

        kind = "2d" if method == "cnn2d" else "1d"
        if model is None:
            return CNNDetrender.pretrained(kind)
        det = CNNDetrender.load(model)
        if method != "cnn" and det.config.kind != kind:
            raise IncompatibleModelError(
                f"{model}: a {det.config.kind} CNN, but --method {method} asks for a {kind} one"
            )
        return det
    raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
