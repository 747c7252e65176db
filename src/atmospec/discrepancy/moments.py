"""The floor and correlated modes of a Teff bin, from the fractional residuals of its spectra."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from atmospec.discrepancy.model import DiscrepancyModel

__all__ = ["CLIP", "residual_rows", "moments"]

FloatArray = NDArray[np.float64]

CLIP = 2.0
"""Fractional residuals are winsorised at +-200 % before the moments."""


class _Fit(Protocol):
    """A library spectrum fitted by a grid node (``LibraryFit``): data, error and model."""

    wavelength: FloatArray
    flux: FloatArray
    error: FloatArray
    model: FloatArray


def residual_rows(
    fits: Sequence[_Fit], axis: FloatArray, model: DiscrepancyModel
) -> tuple[FloatArray, FloatArray]:
    """Fractional residuals and fractional noise variances on ``axis`` (NaN where absent),
    one row per fit: ``(d - m) / m'`` and ``(sigma / m')^2`` with ``m'`` the model's reference
    flux (:meth:`~atmospec.discrepancy.model.DiscrepancyModel.reference`).

    Example:
        >>> from types import SimpleNamespace as NS
        >>> from atmospec.discrepancy.model import DiscrepancyModel
        >>> ref = DiscrepancyModel([1.0, 2.0], [1000.0], [[0.1, 0.1]], [[[0.0, 0.0]]], "toy")
        >>> f = NS(wavelength=np.array([1.0, 1.5, 2.0]), flux=np.array([1.1, 1.0, 0.9]),
        ...        model=np.ones(3), error=np.full(3, 0.05))
        >>> res, var = residual_rows([f], np.array([0.5, 1.25, 1.75]), ref)
        >>> res.round(3).tolist(), var.round(4).tolist()  # 0.5 um lies outside the spectrum
        ([[nan, 0.05, -0.05]], [[nan, 0.0025, 0.0025]])
    """
    n = len(fits)
    res = np.full((n, axis.size), np.nan)
    var = np.full((n, axis.size), np.nan)
    for i, f in enumerate(fits):
        w, m = f.wavelength, model.reference(f.model)
        r = np.clip((f.flux - f.model) / m, -CLIP, CLIP)
        v = (f.error / m) ** 2
        inside = (axis >= w[0]) & (axis <= w[-1])
        res[i, inside] = np.interp(axis[inside], w, r)
        var[i, inside] = np.interp(axis[inside], w, v)
    return res, var


def moments(res: FloatArray, var: FloatArray, n_modes: int) -> tuple[FloatArray, FloatArray]:
    """Floor (n_wave,) and modes (n_modes, n_wave) from fractional residual rows: the
    leading eigenvectors of their uncentred second moment less the photon-noise variance
    (scaled by the square root of their eigenvalue), and the diagonal they leave (at least
    0.5 %).

    Example:
        >>> r = np.array([[0.1, 0.1, 0.1], [-0.1, -0.1, -0.1]] * 3)  # one shared 10 % mode
        >>> floor, modes = moments(r, np.zeros_like(r), n_modes=1)
        >>> np.abs(modes).round(3).tolist(), floor.round(3).tolist()
        ([[0.1, 0.1, 0.1]], [0.005, 0.005, 0.005])
    """
    have = np.isfinite(res)
    r0 = np.where(have, res, 0.0)
    cnt = have.T.astype(np.float64) @ have.astype(np.float64)
    second = (r0.T @ r0) / np.maximum(cnt, 1.0)
    noise = np.nanmedian(np.where(have, var, np.nan), axis=0)
    noise = np.where(np.isfinite(noise), noise, 0.0)
    frac = second - np.diag(noise)
    sparse = np.diag(cnt) < 5
    frac[sparse, :] = 0.0
    frac[:, sparse] = 0.0
    vals, vecs = np.linalg.eigh(0.5 * (frac + frac.T))
    order = np.argsort(vals)[::-1][:n_modes]
    vals = np.clip(vals[order], 0.0, None)
    modes = (vecs[:, order] * np.sqrt(vals)[None, :]).T
    floor2 = np.diag(frac) - np.sum(modes**2, axis=0)
    floor2 = np.where(sparse, np.nan, floor2)
    # pixels seen by too few spectra take their neighbours' floor
    good = np.isfinite(floor2)
    floor2 = np.interp(np.arange(floor2.size), np.flatnonzero(good), floor2[good])
    floor = np.sqrt(np.clip(floor2, 0.005**2, None))
    return floor, modes
