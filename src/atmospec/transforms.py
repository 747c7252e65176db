"""Observation transforms: flux-conserving resampling, convolution to R, coverage and noise."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Literal, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import sparse

from atmospec.errors import CoverageError, InvalidSpectrumError

__all__ = [
    "bin_edges",
    "resampling_matrix",
    "resample",
    "check_coverage",
    "convolve_to_resolution",
    "add_noise",
    "FWHM_TO_SIGMA",
]

FWHM_TO_SIGMA: float = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))
"""Factor turning a Gaussian FWHM into its standard deviation (1 / 2.3548...)."""

_CACHE_SIZE = 64
_MATRIX_CACHE: OrderedDict[bytes, tuple[sparse.csr_matrix, NDArray[np.bool_]]] = OrderedDict()


def bin_edges(centres: ArrayLike) -> NDArray[np.float64]:
    """Edges of the bins around wavelength ``centres`` (midpoints; ends extrapolated by half a step).

    This is the convention of ``spectres.make_bins`` (Carnall 2017).

    Example:
        >>> bin_edges([1.0, 2.0, 4.0])
        array([0.5, 1.5, 3. , 5. ])
    """
    c = np.asarray(centres, dtype=np.float64)
    if c.ndim != 1 or c.size < 2:
        raise InvalidSpectrumError(f"bin_edges: expected >= 2 wavelengths in 1-D, found {c.shape}")
    edges = np.empty(c.size + 1)
    edges[1:-1] = 0.5 * (c[1:] + c[:-1])
    edges[0] = c[0] - 0.5 * (c[1] - c[0])
    edges[-1] = c[-1] + 0.5 * (c[-1] - c[-2])
    return edges


def _check_edges(edges: NDArray[np.float64], what: str) -> None:
    if edges.ndim != 1 or edges.size < 2 or not np.all(np.isfinite(edges)):
        raise InvalidSpectrumError(f"{what}: bin edges must be a finite 1-D array of >= 2 values")
    if np.any(np.diff(edges) <= 0):
        i = int(np.argmax(np.diff(edges) <= 0))
        raise InvalidSpectrumError(
            f"{what}: wavelengths / bin edges must increase strictly (index {i}: "
            f"{edges[i]:g} -> {edges[i + 1]:g}); sort the spectrum and drop repeated wavelengths"
        )


def _edges_for(
    wave: ArrayLike, edges: ArrayLike | None, what: str
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    w = np.asarray(wave, dtype=np.float64)
    if w.ndim != 1:
        raise InvalidSpectrumError(f"{what}: wavelengths must be 1-D, found shape {w.shape}")
    if edges is None:
        _check_edges(w, what)
        e = bin_edges(w)
    else:
        e = np.asarray(edges, dtype=np.float64)
        _check_edges(e, what)
        if e.size != w.size + 1:
            raise InvalidSpectrumError(
                f"{what}: {e.size} bin edges given for {w.size} wavelengths (need {w.size + 1})"
            )
    return w, e


def _build_matrix(
    new_edges: NDArray[np.float64], old_edges: NDArray[np.float64]
) -> tuple[sparse.csr_matrix, NDArray[np.bool_]]:
    n_new = new_edges.size - 1
    n_old = old_edges.size - 1
    lo, hi = new_edges[:-1], new_edges[1:]
    covered = (lo >= old_edges[0]) & (hi <= old_edges[-1])
    # First old bin with upper edge > lo, last old bin with lower edge < hi (spectres' start/stop).
    start = np.searchsorted(old_edges, lo, side="right") - 1
    stop = np.searchsorted(old_edges, hi, side="left") - 1
    start = np.clip(start, 0, n_old - 1)
    stop = np.clip(stop, 0, n_old - 1)
    counts = np.where(covered, stop - start + 1, 0)
    rows = np.repeat(np.arange(n_new), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    cols = np.repeat(start, counts) + offsets
    overlap = np.minimum(old_edges[cols + 1], hi[rows]) - np.maximum(old_edges[cols], lo[rows])
    overlap = np.clip(overlap, 0.0, None)
    norm = np.bincount(rows, weights=overlap, minlength=n_new)
    weights = overlap / norm[rows]
    # rows are sorted and each (row, col) pair is unique: build the CSR arrays directly
    indptr = np.concatenate([[0], np.cumsum(counts)])
    mat = sparse.csr_matrix((weights, cols, indptr), shape=(n_new, n_old))
    return mat, covered


def resampling_matrix(
    new_wave: ArrayLike,
    wave: ArrayLike,
    *,
    new_edges: ArrayLike | None = None,
    old_edges: ArrayLike | None = None,
) -> tuple[sparse.csr_matrix, NDArray[np.bool_]]:
    """The sparse overlap-weight matrix W (n_new, n_old) of flux-conserving resampling.

    ``W[j, i]`` is the fraction of target bin ``j`` covered by source bin ``i`` (rows of covered
    bins sum to 1), so resampled flux is ``W @ flux`` and its variance ``W**2 @ unc**2``. Also
    returns ``covered`` (True where the target bin lies wholly inside the source range; rows of
    uncovered bins are empty). Matrices are cached per (source, target) pair, so resampling many
    spectra on the same axes costs one sparse product each.

    Example:
        >>> W, covered = resampling_matrix([1.5, 3.0], [1.0, 2.0, 3.0, 4.0])
        >>> W.toarray().round(3).tolist(), covered.tolist()
        ([[0.5, 0.5, 0.0, 0.0], [0.0, 0.167, 0.667, 0.167]], [True, True])
    """
    new_w, new_e = _edges_for(new_wave, new_edges, "target wavelengths")
    old_w, old_e = _edges_for(wave, old_edges, "source wavelengths")
    key = hashlib.blake2b(new_e.tobytes() + b"|" + old_e.tobytes(), digest_size=20).digest()
    hit = _MATRIX_CACHE.get(key)
    if hit is not None:
        _MATRIX_CACHE.move_to_end(key)
        return hit
    result = _build_matrix(new_e, old_e)
    _MATRIX_CACHE[key] = result
    if len(_MATRIX_CACHE) > _CACHE_SIZE:
        _MATRIX_CACHE.popitem(last=False)
    return result


def _uncovered_message(
    new_e: NDArray[np.float64], old_e: NDArray[np.float64], covered: NDArray[np.bool_]
) -> str:
    bad = np.flatnonzero(~covered)
    ranges = []
    # Group contiguous runs of uncovered bins into wavelength ranges.
    splits = np.flatnonzero(np.diff(bad) > 1) + 1
    for run in np.split(bad, splits):
        ranges.append(f"{new_e[run[0]]:.4f}-{new_e[run[-1] + 1]:.4f} um")
    return (
        f"{bad.size} of {covered.size} target bins ({', '.join(ranges)}) are not covered by the "
        f"source spectrum, which spans {old_e[0]:.4f}-{old_e[-1]:.4f} um; trim the target, or "
        "choose a policy: fill=<value> (e.g. fill=np.nan) or check_coverage(..., policy='mask')"
    )


@overload
def resample(
    new_wave: ArrayLike,
    wave: ArrayLike,
    flux: ArrayLike,
    unc: None = None,
    *,
    new_edges: ArrayLike | None = None,
    old_edges: ArrayLike | None = None,
    fill: float | None = None,
) -> NDArray[np.float64]: ...


@overload
def resample(
    new_wave: ArrayLike,
    wave: ArrayLike,
    flux: ArrayLike,
    unc: ArrayLike,
    *,
    new_edges: ArrayLike | None = None,
    old_edges: ArrayLike | None = None,
    fill: float | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]: ...


def resample(
    new_wave: ArrayLike,
    wave: ArrayLike,
    flux: ArrayLike,
    unc: ArrayLike | None = None,
    *,
    new_edges: ArrayLike | None = None,
    old_edges: ArrayLike | None = None,
    fill: float | None = None,
) -> NDArray[np.float64] | tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Resample flux densities onto new wavelength bins, conserving integrated flux.

    The algorithm of ``spectres`` (Carnall 2017, arXiv:1705.05165): each target bin receives the
    overlap-weighted mean of the source bins it covers; uncertainties are propagated as
    ``sqrt(sum (w_i sigma_i)^2) / sum w_i``. It is vectorised: ``flux`` may be one spectrum
    ``(n_wave,)`` or a batch ``(n_spec, n_wave)`` on the same axis, computed as one sparse
    matrix product (the matrix is cached, see :func:`resampling_matrix`).

    Args:
        new_wave: target bin centres (micron, increasing).
        wave: source wavelengths (same unit, increasing).
        flux: source flux densities, ``(..., n_wave)``.
        unc: source 1-sigma uncertainties (same shape as ``flux``), or None.
        new_edges: explicit target bin edges (``len(new_wave) + 1``); default midpoints.
        old_edges: explicit source bin edges; default midpoints.
        fill: value for target bins not fully covered by the source. ``None`` (default)
            raises :class:`~atmospec.errors.CoverageError` naming the uncovered range instead;
            NaN is never produced silently.

    Returns:
        The resampled flux ``(..., n_new)``, or ``(flux, unc)`` when ``unc`` is given.

    Example:
        >>> import numpy as np
        >>> wave = np.linspace(1.0, 2.0, 11)
        >>> resample([1.25, 1.5, 1.75], wave, 2.0 * np.ones(11))
        array([2., 2., 2.])
        >>> resample([0.5, 1.5], wave, np.ones(11))
        Traceback (most recent call last):
        ...
        atmospec.errors.CoverageError: 1 of 2 target bins (0.0000-1.0000 um) are not covered by the source spectrum, which spans 0.9500-2.0500 um; trim the target, or choose a policy: fill=<value> (e.g. fill=np.nan) or check_coverage(..., policy='mask')
    """
    mat, covered = resampling_matrix(new_wave, wave, new_edges=new_edges, old_edges=old_edges)
    f = np.asarray(flux, dtype=np.float64)
    n_old = mat.shape[1]
    if f.shape[-1] != n_old:
        raise InvalidSpectrumError(
            f"resample: flux has {f.shape[-1]} values along its last axis but the source "
            f"wavelength axis has {n_old}"
        )
    if not np.all(np.isfinite(f)):
        bad = ~np.isfinite(f)
        raise InvalidSpectrumError(
            f"resample: {int(bad.sum())} source flux value(s) are NaN or infinite; drop or mask "
            "those pixels first (e.g. Spectrum.good())"
        )
    if not covered.all() and fill is None:
        new_e = _edges_for(new_wave, new_edges, "target")[1]
        old_e = _edges_for(wave, old_edges, "source")[1]
        raise CoverageError(_uncovered_message(new_e, old_e, covered))
    lead = f.shape[:-1]
    f2 = f.reshape(-1, n_old)
    out = np.asarray((mat @ f2.T).T).reshape(*lead, mat.shape[0])
    out_unc = None
    if unc is not None:
        u = np.asarray(unc, dtype=np.float64)
        if u.shape != f.shape:
            raise InvalidSpectrumError(
                f"resample: uncertainty shape {u.shape} differs from flux shape {f.shape}"
            )
        mat2 = sparse.csr_matrix((mat.data**2, mat.indices, mat.indptr), shape=mat.shape)
        var = np.asarray((mat2 @ (u.reshape(-1, n_old) ** 2).T).T)
        out_unc = np.sqrt(var).reshape(*lead, mat.shape[0])
    if not covered.all():
        out[..., ~covered] = fill
        if out_unc is not None:
            out_unc[..., ~covered] = fill
    if out_unc is not None:
        return out, out_unc
    return out


def check_coverage(
    spectrum_wave: ArrayLike,
    target_wave: ArrayLike,
    policy: Literal["error", "mask"] = "error",
    *,
    spectrum_edges: ArrayLike | None = None,
    target_edges: ArrayLike | None = None,
    source: str = "spectrum",
) -> NDArray[np.bool_]:
    """Which target bins lie wholly inside the spectrum's wavelength coverage.

    With ``policy="error"`` any uncovered target bin raises
    :class:`~atmospec.errors.CoverageError` naming the uncovered range and ``source``; with
    ``policy="mask"`` the boolean array (True = covered, usable) is returned for the caller to
    mask the rest.

    Example:
        >>> import numpy as np
        >>> check_coverage(np.linspace(1, 2, 11), [0.9, 1.5, 1.7], policy="mask").tolist()
        [False, True, True]
    """
    if policy not in ("error", "mask"):
        raise ValueError(f"check_coverage(policy={policy!r}): expected 'error' or 'mask'")
    _, s_e = _edges_for(spectrum_wave, spectrum_edges, f"{source} wavelengths")
    _, t_e = _edges_for(target_wave, target_edges, "target wavelengths")
    covered = (t_e[:-1] >= s_e[0]) & (t_e[1:] <= s_e[-1])
    if policy == "error" and not covered.all():
        raise CoverageError(f"{source}: " + _uncovered_message(t_e, s_e, covered))
    return covered


def _interp_matrix(x_new: NDArray[np.float64], x_old: NDArray[np.float64]) -> sparse.csr_matrix:
    """Sparse linear-interpolation matrix from ``x_old`` samples to ``x_new`` (clamped at ends)."""
    x = np.clip(x_new, x_old[0], x_old[-1])
    j = np.clip(np.searchsorted(x_old, x, side="right") - 1, 0, x_old.size - 2)
    t = (x - x_old[j]) / (x_old[j + 1] - x_old[j])
    rows = np.repeat(np.arange(x.size), 2)
    cols = np.stack([j, j + 1], axis=1).ravel()
    vals = np.stack([1.0 - t, t], axis=1).ravel()
    return sparse.csr_matrix((vals, (rows, cols)), shape=(x.size, x_old.size))


def convolve_to_resolution(
    wave: ArrayLike,
    flux: ArrayLike,
    R_out: float | ArrayLike,
    R_in: float | ArrayLike | None = None,
    *,
    oversample: float = 1.5,
    truncate: float = 4.0,
) -> NDArray[np.float64]:
    """Smooth spectra with a Gaussian line-spread function to resolving power ``R_out``.

    The spectrum is interpolated onto a uniform log-wavelength grid, where a constant resolving
    power is a constant kernel width (``sigma_lnλ = FWHM_TO_SIGMA / R``). A wavelength-dependent
    ``R_out`` (array over ``wave``) gives a variable kernel. With ``R_in`` (the spectrum's own
    resolving power) the kernel is ``sqrt(1/R_out^2 - 1/R_in^2)`` so that the result has
    ``R_out``; ``R_out >= R_in`` is refused. Rows of the kernel are renormalised at the ends.
    The whole operation is one sparse matrix, applied to a batch ``(n_spec, n_wave)`` at once.

    Args:
        wave: wavelengths (increasing).
        flux: ``(n_wave,)`` or ``(n_spec, n_wave)``.
        R_out: target resolving power λ/Δλ(FWHM), scalar or per-pixel array.
        R_in: current resolving power, or None for an unresolved (infinite-R) input.
        oversample: log-grid pixels per kernel sigma (at least; finer native sampling is kept).
        truncate: kernel half-width in sigmas.

    Example:
        >>> import numpy as np
        >>> wave = np.linspace(1.0, 1.1, 2001)
        >>> line = np.exp(-0.5 * ((wave - 1.05) / 1e-5) ** 2)  # a narrow line
        >>> smooth = convolve_to_resolution(wave, line, 1000.0)
        >>> fwhm = np.ptp(wave[smooth > smooth.max() / 2])
        >>> bool(abs(fwhm - 1.05 / 1000) < 1e-4)  # FWHM = lambda / R
        True
    """
    w = np.asarray(wave, dtype=np.float64)
    _check_edges(w, "convolve_to_resolution wavelengths")
    f = np.asarray(flux, dtype=np.float64)
    if f.shape[-1] != w.size:
        raise InvalidSpectrumError(
            f"convolve_to_resolution: flux has {f.shape[-1]} values, wavelength {w.size}"
        )
    r_out = np.broadcast_to(np.asarray(R_out, dtype=np.float64), w.shape)
    if np.any(~np.isfinite(r_out) | (r_out <= 0)):
        raise ValueError("convolve_to_resolution: R_out must be finite and > 0")
    inv2 = 1.0 / r_out**2
    if R_in is not None:
        r_in = np.broadcast_to(np.asarray(R_in, dtype=np.float64), w.shape)
        if np.any(r_in <= r_out):
            i = int(np.argmax(r_in <= r_out))
            raise ValueError(
                f"convolve_to_resolution: R_out={r_out[i]:g} is not below R_in={r_in[i]:g} at "
                f"{w[i]:g} um; a Gaussian kernel can only lower the resolving power"
            )
        inv2 = inv2 - 1.0 / r_in**2
    sigma = np.sqrt(inv2) * FWHM_TO_SIGMA  # in ln(lambda)
    lnw = np.log(w)
    step = min(float(np.min(np.diff(lnw))), float(sigma.min()) / oversample)
    n_log = int(np.ceil((lnw[-1] - lnw[0]) / step * (1 - 1e-9))) + 1
    grid = np.linspace(lnw[0], lnw[-1], n_log)
    step = grid[1] - grid[0]
    to_log = _interp_matrix(grid, lnw)
    back = _interp_matrix(lnw, grid)
    sig_grid = np.interp(grid, lnw, sigma) / step  # in log-grid pixels
    half = np.ceil(truncate * sig_grid).astype(np.int64)
    counts = 2 * half + 1
    rows = np.repeat(np.arange(n_log), counts)
    offs = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    offs = offs - np.repeat(half, counts)
    cols = rows + offs
    keep = (cols >= 0) & (cols < n_log)
    rows, cols, offs = rows[keep], cols[keep], offs[keep]
    vals = np.exp(-0.5 * (offs / sig_grid[rows]) ** 2)
    vals /= np.bincount(rows, weights=vals, minlength=n_log)[rows]
    kernel = sparse.csr_matrix((vals, (rows, cols)), shape=(n_log, n_log))
    op = (back @ kernel @ to_log).tocsr()
    lead = f.shape[:-1]
    out = np.asarray((op @ f.reshape(-1, w.size).T).T)
    return out.reshape(*lead, w.size)


def add_noise(
    flux: ArrayLike,
    snr: float | ArrayLike | None = None,
    sigma: float | ArrayLike | None = None,
    *,
    rng: np.random.Generator | int | None = None,
    snr_reference: Literal["median", "pixel"] = "median",
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Add Gaussian noise at a signal-to-noise ratio or a per-pixel sigma.

    Give exactly one of ``snr`` and ``sigma``. With ``snr`` and ``snr_reference="median"`` each
    spectrum gets a constant ``sigma = median(|flux|) / snr`` (S/N quoted at the median flux, as
    for surveys); with ``"pixel"`` ``sigma = |flux| / snr`` pixel by pixel. ``rng`` is a
    ``numpy.random.Generator`` (or an int seed) and is required: no hidden global state.

    Returns:
        ``(noisy_flux, sigma)``, both shaped like ``flux``.

    Example:
        >>> import numpy as np
        >>> noisy, sig = add_noise(np.ones((2000,)), snr=50, rng=np.random.default_rng(0))
        >>> float(sig[0]), bool(abs(np.std(noisy - 1) / 0.02 - 1) < 0.1)
        (0.02, True)
    """
    if rng is None:
        raise ValueError("add_noise: pass rng=np.random.default_rng(seed) (explicit randomness)")
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    f = np.asarray(flux, dtype=np.float64)
    if (snr is None) == (sigma is None):
        raise ValueError("add_noise: give exactly one of snr= or sigma=")
    if snr is not None:
        s = np.asarray(snr, dtype=np.float64)
        if np.any(~np.isfinite(s) | (s <= 0)):
            raise ValueError(f"add_noise: snr must be finite and > 0, got {snr!r}")
        if snr_reference == "median":
            ref = np.median(np.abs(f), axis=-1, keepdims=True)
            if s.ndim == 1 and f.ndim == 2:
                s = s[:, None]
            sig = np.broadcast_to(ref / s, f.shape).copy()
        elif snr_reference == "pixel":
            sig = np.abs(f) / s
        else:
            raise ValueError(
                f"add_noise: snr_reference must be 'median' or 'pixel', got {snr_reference!r}"
            )
    else:
        sig = np.broadcast_to(np.asarray(sigma, dtype=np.float64), f.shape).copy()
        if np.any(~np.isfinite(sig) | (sig < 0)):
            raise ValueError("add_noise: sigma must be finite and >= 0")
    noisy = f + gen.standard_normal(f.shape) * sig
    return noisy, sig
