"""Chi-square fitting over every grid node with the flux scale solved analytically."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from atmospec.fitting.data import (
    FitData,
    dilution_factor,
    fitted_parameters,
    prepare,
    radius_at_distance,
)
from atmospec.fitting.result import FitResult

if TYPE_CHECKING:
    from atmospec.discrepancy.route import DiscrepancyOption
    from atmospec.grids import ModelGrid
    from atmospec.spectrum import Spectrum

__all__ = ["fit_chi2", "chi2_with_scale", "inflated_sigma"]

log = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]

_IN_MEMORY_LIMIT = 50_000_000  # resampled grid values kept in RAM (400 MB); else stream


def chi2_with_scale(
    models: FloatArray, data: FloatArray, sigma: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Chi-square of each model row with its best flux scale, solved by linear least squares.

    For data d, errors sigma and model m the scale minimising chi2 is
    ``s = sum(d m / sigma^2) / sum(m^2 / sigma^2)``; returns ``(chi2, s)`` per row.

    Example:
        >>> import numpy as np
        >>> m = np.array([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]])
        >>> chi2, s = chi2_with_scale(m, 2 * m[0], np.ones(3))
        >>> chi2.round(3).tolist(), s.round(3).tolist()
        ([0.0, 8.0], [2.0, 4.0])
    """
    m = np.atleast_2d(models)
    w = 1.0 / sigma**2
    a = (m * m) @ w
    b = m @ (data * w)
    s = b / a
    resid = (data[None, :] - s[:, None] * m) / sigma[None, :]
    return np.einsum("ij,ij->i", resid, resid), s


def inflated_sigma(sigma: FloatArray, flux: FloatArray, fraction: float) -> FloatArray:
    """Errors with a constant systematic floor added in quadrature.

    The floor is ``fraction`` times the median absolute flux of the fitted pixels, so
    ``fraction = 0.02`` adds 2 % of a typical flux value to every pixel (the additive
    "error inflation" term of Line et al. 2015, ApJ 807, 183, in units of the median flux).

    Example:
        >>> inflated_sigma(np.array([3.0, 3.0]), np.array([100.0, 100.0]), 0.04).tolist()
        [5.0, 5.0]
    """
    floor = fraction * float(np.median(np.abs(flux)))
    return np.sqrt(sigma**2 + floor**2)


def _batches(data: FitData, grid: ModelGrid, batch_size: int) -> Callable[[], Iterator[FloatArray]]:
    """A factory of iterators over the grid resampled onto the data (cached when small)."""
    n = len(grid)
    if n * data.n_pix <= _IN_MEMORY_LIMIT:
        from tqdm.auto import tqdm

        parts = []
        bar = tqdm(
            total=n,
            desc=f"resampling {grid.name}",
            unit="spec",
            disable=not log.isEnabledFor(logging.INFO),
        )
        for _, flux in grid.iter_batches(batch_size):
            parts.append(data.model(flux))
            bar.update(len(flux))
        bar.close()
        cached = np.vstack(parts)
        return lambda: iter([cached])

    def stream() -> Iterator[FloatArray]:
        for _, flux in grid.iter_batches(batch_size):
            yield data.model(flux)

    return stream


def _all_chi2(
    batches: Callable[[], Iterator[FloatArray]], data: FitData, sigma: FloatArray
) -> tuple[FloatArray, FloatArray]:
    chi2, scale = [], []
    for m in batches():
        c, s = chi2_with_scale(m, data.flux, sigma)
        chi2.append(c)
        scale.append(s)
    return np.concatenate(chi2), np.concatenate(scale)


def fit_chi2(
    spectrum: Spectrum,
    grid: ModelGrid,
    *,
    inflate_errors: float | Literal["auto"] | None = None,
    distance_pc: float | None = None,
    coverage: Literal["mask", "error"] = "mask",
    wave_range: tuple[float, float] | None = None,
    batch_size: int = 512,
    discrepancy: DiscrepancyOption = "auto",
) -> FitResult:
    """Chi-square of the spectrum against every grid node; the best node is the fit.

    The grid is resampled once onto the data pixels (flux-conserving, vectorised), the flux
    scale of each node is solved analytically (linear least squares), and the node with the
    smallest chi-square wins. Library spectra are normalised while grids hold surface fluxes:
    the scale absorbs that (and equals ``(R/d)^2`` for flux-calibrated data).

    Degrees of freedom: ``dof = n_pix - n_fitted`` with ``n_fitted`` = the grid parameters
    that take more than one value (and are not tied to another) + 1 for the scale, + 1 when
    the error inflation is fitted (``inflate_errors="auto"``).

    Args:
        spectrum: the observed spectrum (uncertainties required).
        grid: the model grid.
        inflate_errors: None; a fraction f: errors become ``sqrt(sigma^2 + (f F)^2)`` with F
            the median |flux| (a systematic floor, :func:`inflated_sigma`); or ``"auto"``:
            the f that makes the best chi2_red equal 1.
        distance_pc: distance in parsec; with flux-calibrated data gives the radius.
        coverage: ``"mask"`` drops data pixels outside the grid's wavelength range (counted in
            the result's notes); ``"error"`` refuses them.
        wave_range: fit only this wavelength interval (micron).
        batch_size: grid spectra read per batch.
        discrepancy: ``"auto"`` (default) adds the grid's shipped model-discrepancy covariance
            (:mod:`atmospec.discrepancy`) when it has one; a
            :class:`~atmospec.discrepancy.DiscrepancyModel`; or None for photon noise only.
            With it, nodes are ranked by ``-2 log L = r^T C^-1 r + log det C``, ``samples``
            hold the node posterior spread over grid cells (intervals that include model
            error) and ``discrepancy`` records the model and the misfit score.

    Returns:
        A :class:`~atmospec.fitting.result.FitResult` with ``nodes`` (all nodes, sorted by chi2,
        or by ``neg2_loglike`` with the discrepancy).

    Example:
        >>> import pathlib, tempfile
        >>> from atmospec.grids import ModelGrid
        >>> from atmospec.spectrum import Spectrum
        >>> path, w = pathlib.Path(tempfile.mkdtemp()) / "toy.h5", np.linspace(1.0, 2.0, 40)
        >>> with ModelGrid.create(path, w, ("teff",), name="toy") as g:
        ...     for t in (1000.0, 1500.0, 2000.0):
        ...         g.add({"teff": t}, (w / 1.5) ** (t / 500.0))  # steeper when hotter
        >>> grid, x = ModelGrid(path), w[5:35]
        >>> spec = Spectrum(x, 2 * (x / 1.5) ** 3, 0.02 * (x / 1.5) ** 3)  # 2 x the 1500 K node
        >>> res = fit_chi2(spec, grid)  # no model of mismatch is shipped for "toy"
        >>> res.best, round(res.scale, 6), res.n_pix, res.n_fitted, res.dof
        ({'teff': 1500.0}, 2.0, 30, 2, 28)
        >>> res.nodes["teff"].tolist(), res.nodes["chi2_red"].round(1).tolist()  # best first
        ([1500.0, 2000.0, 1000.0], [0.0, 229.5, 242.0])
    """
    from atmospec._fileio import provenance

    t0 = time.perf_counter()
    data = prepare(spectrum, grid, coverage=coverage, wave_range=wave_range)
    fitted = fitted_parameters(grid)
    batches = _batches(data, grid, batch_size)
    n_fitted = len(fitted) + 1
    notes: list[str] = [*data.notes, *data.left_out(grid.name)]
    from atmospec.discrepancy.route import discrepancy_nodes, misfit_record, resolve_discrepancy

    disc = resolve_discrepancy(discrepancy, grid, data, notes)

    fraction = 0.0
    inflation_fitted = False
    if inflate_errors == "auto":
        inflation_fitted = True
        n_fitted += 1
        fraction = _auto_fraction(batches, data, data.n_pix - n_fitted)
        if disc is not None:  # the best node is the one the model of mismatch ranks first

            def ranked_best(sig: FloatArray) -> int:
                return int(discrepancy_nodes(batches, data, sig, grid.params, fitted, disc)["best"])

            fraction = _ranked_fraction(
                lambda i: data.model(grid.flux(i)),
                ranked_best,
                data,
                data.n_pix - n_fitted,
                fraction,
            )
    elif inflate_errors is not None:
        fraction = float(inflate_errors)
        if not np.isfinite(fraction) or fraction < 0:
            raise ValueError(f"inflate_errors must be >= 0, 'auto' or None, got {inflate_errors}")
        if fraction > 0:
            notes.append(f"errors inflated by a systematic floor f = {fraction:g} x median |flux|")
    dof = data.n_pix - n_fitted
    if dof <= 0:
        raise ValueError(f"{data.source}: {data.n_pix} pixels cannot constrain {n_fitted} params")
    sigma = inflated_sigma(data.uncertainty, data.flux, fraction)
    chi2, scale = _all_chi2(batches, data, sigma)
    if fraction > 0:
        raw, _ = _all_chi2(batches, data, data.uncertainty)
    else:
        raw = chi2
    best = _best_node(chi2, scale, data.source, grid.name)
    disc_nodes = None
    if disc is not None:
        disc_nodes = discrepancy_nodes(batches, data, sigma, grid.params, fitted, disc)
        best = disc_nodes["best"]
        scale = disc_nodes["scale"]
    model = scale[best] * data.model(grid.flux(best))
    params = grid.params.iloc[best]
    best_params = {p: float(params[p]) for p in grid.param_names}
    nodes = grid.params.copy()
    nodes["chi2"] = chi2
    nodes["chi2_red"] = chi2 / dof
    nodes["scale"] = scale
    if fraction > 0:
        nodes["chi2_uninflated"] = raw
    disc_record = None
    if disc_nodes is not None and disc is not None:
        for col in ("neg2_loglike", "weight"):
            nodes[col] = disc_nodes[col]
        nodes["chi2_discrepancy"] = disc_nodes["chi2"]
        disc_record = misfit_record(disc, data, sigma, model, float(best_params["teff"]), n_fitted)
    if inflation_fitted:
        red = float(chi2[best]) / dof
        if fraction == 0.0:
            why = f"(none needed: chi2_red {red:.3g} <= 1 at the best node without one)"
        elif abs(red - 1.0) < 1e-3:
            why = "(best chi2_red = 1 by construction)"
        else:
            why = (
                f"(chi2_red {red:.3g} at the best node: the node the model of mismatch ranks "
                "first changed with the floor without settling on one)"
            )
        notes.append(
            f"errors inflated by a fitted systematic floor f = {fraction:.4g} x median |flux| {why}"
        )
    nodes = nodes.sort_values("chi2" if disc_nodes is None else "neg2_loglike", kind="stable")
    factor = dilution_factor(data, grid, distance_pc, notes)
    radius = None
    if factor is not None and distance_pc is not None:
        radius = float(radius_at_distance(float(scale[best]) * factor, distance_pc))
    result = FitResult(
        method="chi2",
        grid=grid.name,
        source=data.source,
        param_names=tuple(grid.param_names),
        fitted=fitted,
        best=best_params,
        chi2=float(chi2[best]),
        dof=dof,
        n_pix=data.n_pix,
        n_fitted=n_fitted,
        scale=float(scale[best]),
        wavelength=data.wavelength,
        flux=data.flux,
        uncertainty=sigma,
        model_flux=model,
        inflation=fraction,
        inflation_fitted=inflation_fitted,
        distance_pc=distance_pc,
        radius_rjup=radius,
        nodes=pd.DataFrame(nodes).reset_index(drop=True),
        wall_time_s=time.perf_counter() - t0,
        flux_unit=data.flux_unit,
        grid_flux_unit=grid.flux_unit,
        credit=grid.credit,
        notes=notes,
        provenance=provenance(grid=grid.name, method="chi2", source=data.source),
    )
    if disc_nodes is not None:
        result.samples = disc_nodes["samples"]
        result.discrepancy = disc_record
    from atmospec.fitting.edges import fit_warnings

    fit_warnings(result, grid)
    return result


def _best_node(chi2: FloatArray, scale: FloatArray, source: str, grid: str) -> int:
    """The index of the smallest chi2; a fit that cannot tell nodes apart raises.

    The sanity gates refuse most such spectra earlier; this is the last line: a NaN chi2 or a
    chi2 equal at every node would otherwise report the grid's first node as "the fit".
    """
    from atmospec.errors import InvalidSpectrumError

    finite = np.isfinite(chi2)
    if not finite.any():
        raise InvalidSpectrumError(
            f"{source}: chi2 is not finite at any {grid} node (overflow in the flux or "
            "errors?); no fit is reported"
        )
    if chi2.size > 1 and np.ptp(chi2[finite]) <= 1e-12 * max(1.0, float(np.abs(chi2).max())):
        raise InvalidSpectrumError(
            f"{source}: chi2 is the same at every {grid} node: the data do not distinguish "
            "the models (zero or constant flux?); no fit is reported"
        )
    best = int(np.nanargmin(np.where(finite, chi2, np.inf)))
    if not scale[best] > 0:
        raise InvalidSpectrumError(
            f"{source}: the best-fitting flux scale is {scale[best]:.3g} (<= 0): the data are "
            "anti-correlated with every model; is the flux sign flipped?"
        )
    return best


def _ranked_fraction(
    model_of: Callable[[int], FloatArray],
    best_of: Callable[[FloatArray], int],
    data: FitData,
    dof: int,
    start: float,
    max_rounds: int = 10,
) -> float:
    """The floor f that makes chi2_red = 1 at the node ``best_of`` ranks first under the errors
    inflated by f (with a model of mismatch that node need not have the smallest chi2, so the
    f of :func:`_auto_fraction` leaves it above 1): alternately the ranking at f and the f of
    that node, from ``start``, until the node stays the same (else the last f)."""
    fraction = start
    node = best_of(inflated_sigma(data.uncertainty, data.flux, fraction))
    for _ in range(max_rounds):
        model = model_of(node)
        fraction = _auto_fraction(_single(model), data, dof)
        again = best_of(inflated_sigma(data.uncertainty, data.flux, fraction))
        if again == node:
            break
        node = again
    return fraction


def _single(model: FloatArray) -> Callable[[], Iterator[FloatArray]]:
    """A batch factory over one model row (for :func:`_auto_fraction` at one node)."""
    return lambda: iter([model[None, :]])


def _auto_fraction(batches: Callable[[], Iterator[FloatArray]], data: FitData, dof: int) -> float:
    """The fractional systematic f >= 0 for which the smallest chi2 / dof over nodes is 1."""
    from scipy.optimize import brentq

    def excess(f: float) -> float:
        c, _ = _all_chi2(batches, data, inflated_sigma(data.uncertainty, data.flux, f))
        return float(c.min()) / dof - 1.0

    if excess(0.0) <= 0:
        return 0.0
    hi = 0.01
    while excess(hi) > 0:
        hi *= 4
        if hi > 100:
            raise ValueError(f"{data.source}: no error inflation up to 100x flux gives chi2_red=1")
    return float(brentq(excess, 0.0, hi, xtol=1e-6, rtol=1e-6))
