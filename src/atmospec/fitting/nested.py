"""Bayesian grid fitting by static nested sampling (dynesty) over the interpolated grid."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from atmospec.errors import OutOfGridError
from atmospec.fitting.chi2 import chi2_with_scale, fit_chi2, inflated_sigma
from atmospec.fitting.data import (
    FitData,
    dilution_factor,
    fitted_parameters,
    prepare,
    radius_at_distance,
)
from atmospec.fitting.result import FitResult

if TYPE_CHECKING:
    from atmospec.discrepancy import DiscrepancyModel
    from atmospec.discrepancy.route import DiscrepancyOption
    from atmospec.grids import ModelGrid
    from atmospec.spectrum import Spectrum

__all__ = ["fit_nested", "GridLikelihood"]

log = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]

_LOG_TINY = -1e300  # log-likelihood outside the populated grid (zero likelihood)
_INFLATION_RANGE = (-4.0, 1.0)  # log10 of the systematic floor / median flux, uniform prior


class GridLikelihood:
    """log L(theta) of a spectrum given grid parameters, the flux scale marginalised analytically.

    The model at ``theta`` is the grid interpolated there (linear in log flux, on the grid's
    own wavelengths) and then resampled onto the data pixels. With data d, errors sigma and
    model m, the scale s has a uniform prior on [0, s_max] and the Gaussian likelihood
    integrates over s in closed form:
    ``log L = -chi2_min/2 - sum log sigma - N/2 log 2 pi + 1/2 log(2 pi / A) - log s_max``,
    ``A = sum m^2 / sigma^2`` (the truncation at 0 and s_max is negligible when s is well
    measured). With ``inflate`` the last parameter is ``log10 f`` and the errors become
    ``sqrt(sigma^2 + (f median|d|)^2)`` (see :func:`~atmospec.fitting.chi2.inflated_sigma`).

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
        >>> like = GridLikelihood(prepare(spec, grid), grid, ["teff"], {}, 4.0, inflate=False)
        >>> [round(like(np.array([t])), 1) for t in (1500.0, 1400.0)]
        [84.7, -51.4]
        >>> like(np.array([2500.0]))  # outside the grid: zero likelihood
        -1e+300
    """

    def __init__(
        self,
        data: FitData,
        grid: ModelGrid,
        free: list[str],
        fixed: Mapping[str, float],
        s_max: float,
        inflate: bool,
        discrepancy: DiscrepancyModel | None = None,
    ) -> None:
        self.data = data
        self.discrepancy = discrepancy
        self.grid = grid
        self.free = free
        self.fixed = dict(fixed)
        self.log_s_max = float(np.log(s_max))
        self.inflate = inflate
        flux = grid.flux(slice(None))
        self.log_flux = np.log(np.maximum(flux, np.finfo(np.float64).tiny))
        self._cols = [grid.param_names.index(p) for p in free]
        self._template = np.array(
            [self.fixed.get(p, np.nan) for p in grid.param_names], dtype=np.float64
        )
        self.n_calls = 0

    def point(self, theta: FloatArray) -> FloatArray:
        """The full grid-parameter vector for the free values ``theta``."""
        x = self._template.copy()
        x[self._cols] = theta[: len(self.free)]
        return x

    def model(self, theta: FloatArray) -> FloatArray:
        """The unscaled model on the data pixels (raises OutOfGridError outside the grid)."""
        rows, w = self.grid.weights(self.point(theta)[None, :])
        native = np.exp(w[0] @ self.log_flux[rows[0]])
        return self.data.model(native)

    def models(self, thetas: FloatArray, chunk: int = 256) -> FloatArray:
        """Unscaled models (n, n_pix) for many points at once (vectorised in chunks)."""
        out = np.empty((len(thetas), self.data.n_pix))
        for start in range(0, len(thetas), chunk):
            block = thetas[start : start + chunk]
            x = np.tile(self._template, (len(block), 1))
            x[:, self._cols] = block[:, : len(self.free)]
            rows, w = self.grid.weights(x)
            native = np.exp(np.einsum("nk,nkw->nw", w, self.log_flux[rows]))
            out[start : start + chunk] = self.data.model(native)
        return out

    def sigma(self, theta: FloatArray) -> FloatArray:
        if not self.inflate:
            return self.data.uncertainty
        return inflated_sigma(self.data.uncertainty, self.data.flux, 10.0 ** theta[-1])

    def __call__(self, theta: FloatArray) -> float:
        self.n_calls += 1
        try:
            m = self.model(theta)
        except OutOfGridError:
            return _LOG_TINY
        sig = self.sigma(theta)
        if self.discrepancy is not None:
            from atmospec.discrepancy.route import discrepancy_loglike

            teff = float(self.point(theta)[self.grid.param_names.index("teff")])
            return discrepancy_loglike(
                self.discrepancy,
                m,
                self.data.flux,
                sig,
                teff,
                self.data.wavelength,
                self.log_s_max,
            )
        w = 1.0 / sig**2
        a = float(m * m @ w)
        chi2, _ = chi2_with_scale(m, self.data.flux, sig)
        n = self.data.n_pix
        return float(
            -0.5 * chi2[0]
            - np.sum(np.log(sig))
            - 0.5 * n * np.log(2 * np.pi)
            + 0.5 * np.log(2 * np.pi / a)
            - self.log_s_max
        )


def fit_nested(
    spectrum: Spectrum,
    grid: ModelGrid,
    *,
    nlive: int = 250,
    dlogz: float = 0.5,
    inflate_errors: bool = False,
    fixed: Mapping[str, float] | None = None,
    bounds: Mapping[str, tuple[float, float]] | None = None,
    distance_pc: float | None = None,
    coverage: Literal["mask", "error"] = "mask",
    wave_range: tuple[float, float] | None = None,
    seed: int = 0,
    maxcall: int | None = None,
    n_samples: int = 4000,
    discrepancy: DiscrepancyOption = "auto",
) -> FitResult:
    """Posterior of the grid parameters by static nested sampling (dynesty).

    Priors are uniform over the grid's range of every free parameter (points inside the box
    but outside a sparse grid's populated hull get zero likelihood, i.e. the prior is the box
    truncated to the hull). Categorical parameters (Burrows 2006 ``cloudy``) are never
    interpolated: they are fixed to the best chi-square node unless given in ``fixed``. The
    flux scale is marginalised analytically (uniform prior on [0, s_max], s_max = twice the
    largest best-fit scale over the grid nodes) and drawn afterwards from its conditional
    Gaussian for each sample. With ``inflate_errors`` a systematic error floor ``f`` in units
    of the median flux (prior log-uniform 1e-4 to 10) is sampled too.

    Args:
        spectrum: observed spectrum with uncertainties.
        grid: model grid.
        nlive: number of live points.
        dlogz: stopping criterion on the remaining evidence.
        inflate_errors: sample an error-inflation parameter ``log10_f``.
        fixed: parameter values to hold fixed (e.g. ``{"cloudy": 0}``).
        bounds: narrower uniform prior ranges for some parameters (inside the grid's).
        distance_pc: distance, for the radius (flux-calibrated data only).
        coverage: pixels outside the grid's wavelengths: ``"mask"`` (drop) or ``"error"``.
        wave_range: fit only this wavelength interval (micron).
        seed: seed of the sampler's ``numpy.random.Generator``.
        maxcall: cap on likelihood calls.
        n_samples: number of equal-weight posterior samples returned.
        discrepancy: ``"auto"`` (default): the likelihood's covariance adds the grid's shipped
            model-discrepancy model when it has one (see
            :func:`~atmospec.fitting.chi2.fit_chi2`); a model; or None (photon noise only).

    Returns:
        A :class:`~atmospec.fitting.result.FitResult` with ``samples`` (parameters, ``scale``,
        ``radius_rjup`` when available, ``log10_f`` when inflating), ``logz`` +- ``logz_err``
        and ``wall_time_s``; ``best`` is the maximum-likelihood sample.

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
        >>> res = fit_nested(spec, grid, nlive=10, n_samples=50)
        >>> res.method, list(res.samples.columns), round(res.best["teff"])
        ('nested', ['teff', 'scale'], 1500)
    """
    import dynesty
    from dynesty.utils import resample_equal

    from atmospec._fileio import provenance

    t0 = time.perf_counter()
    data = prepare(spectrum, grid, coverage=coverage, wave_range=wave_range)
    rng = np.random.default_rng(seed)
    fitted = fitted_parameters(grid)
    fixed = dict(fixed or {})
    notes: list[str] = [*data.notes, *data.left_out(grid.name)]
    from atmospec.discrepancy.route import resolve_discrepancy

    disc = resolve_discrepancy(discrepancy, grid, data, notes)
    seed_fit = fit_chi2(spectrum, grid, coverage=coverage, wave_range=wave_range, discrepancy=disc)
    for p in getattr(grid, "categorical", ()):
        if p not in fixed:
            fixed[p] = seed_fit.best[p]
            notes.append(f"categorical {p} fixed to {fixed[p]:g} (best chi-square node)")
    free = [p for p in fitted if p not in fixed]
    if not free:
        raise ValueError(f"{grid.name}: nothing to sample (all parameters fixed: {fixed})")
    nodes = seed_fit.nodes
    assert nodes is not None
    s_max = 2.0 * float(nodes["scale"].max())
    like = GridLikelihood(data, grid, free, fixed, s_max, inflate_errors, disc)
    box = {p: grid.bounds[p] for p in free}
    for p, (b_lo, b_hi) in (bounds or {}).items():
        if p not in box:
            raise ValueError(f"bounds given for {p!r}, which is not a sampled parameter {free}")
        g_lo, g_hi = grid.bounds[p]
        if not g_lo <= b_lo < b_hi <= g_hi:
            raise OutOfGridError(
                f"{grid.name}: prior range {p} = {b_lo:g} to {b_hi:g} must lie inside the grid "
                f"range {g_lo:g} to {g_hi:g} (atmospec does not extrapolate)"
            )
        box[p] = (float(b_lo), float(b_hi))
    lo = np.array([box[p][0] for p in free])
    hi = np.array([box[p][1] for p in free])
    if inflate_errors:
        lo = np.append(lo, _INFLATION_RANGE[0])
        hi = np.append(hi, _INFLATION_RANGE[1])
    ndim = lo.size

    def prior_transform(u: FloatArray) -> FloatArray:
        return lo + u * (hi - lo)

    sampler = dynesty.NestedSampler(
        like, prior_transform, ndim, nlive=nlive, bound="multi", sample="rwalk", rstate=rng
    )
    sampler.run_nested(dlogz=dlogz, maxcall=maxcall, print_progress=log.isEnabledFor(logging.INFO))
    res = sampler.results
    weights = np.exp(res.logwt - res.logz[-1])
    weights /= weights.sum()
    equal = resample_equal(res.samples, weights, rstate=rng)
    if len(equal) > n_samples:
        equal = equal[rng.choice(len(equal), n_samples, replace=False)]
    names = free + (["log10_f"] if inflate_errors else [])
    samples = pd.DataFrame(equal, columns=names)
    # Draw the scale from its conditional Gaussian N(B/A, 1/A) for each sample.
    m_all = like.models(equal)
    sig_all = np.vstack([like.sigma(t) for t in equal]) if inflate_errors else data.uncertainty
    a = np.sum(m_all**2 / sig_all**2, axis=1)
    b = np.sum(m_all * data.flux / sig_all**2, axis=1)
    scales = b / a + rng.standard_normal(len(equal)) / np.sqrt(a)
    samples["scale"] = scales
    best_theta = res.samples[int(np.argmax(res.logl))]
    m_best = like.model(best_theta)
    sig_best = like.sigma(best_theta)
    chi2, s_best = chi2_with_scale(m_best, data.flux, sig_best)
    factor = dilution_factor(data, grid, distance_pc, notes)
    radius = None
    if factor is not None and distance_pc is not None:
        radius = float(radius_at_distance(float(s_best[0]) * factor, distance_pc))
        samples["radius_rjup"] = radius_at_distance(np.clip(scales, 0, None) * factor, distance_pc)
    best = {p: float(v) for p, v in zip(grid.param_names, like.point(best_theta), strict=True)}
    best = {p: v for p, v in best.items() if np.isfinite(v)}
    n_fitted = len(fitted) + 1 + int(inflate_errors)
    fraction = float(10 ** best_theta[-1]) if inflate_errors else 0.0
    notes.append(
        f"dynesty static nested sampling: nlive={nlive}, dlogz={dlogz}, "
        f"{int(np.sum(res.ncall))} likelihood calls; priors uniform over "
        + ", ".join(f"{p} {box[p][0]:g}-{box[p][1]:g}" for p in free)
        + "; "
        f"scale marginalised analytically (uniform prior 0-{s_max:.4g})"
    )
    result = FitResult(
        method="nested",
        grid=grid.name,
        source=data.source,
        param_names=tuple(grid.param_names),
        fitted=fitted,
        best=best,
        chi2=float(chi2[0]),
        dof=data.n_pix - n_fitted,
        n_pix=data.n_pix,
        n_fitted=n_fitted,
        scale=float(s_best[0]),
        wavelength=data.wavelength,
        flux=data.flux,
        uncertainty=sig_best,
        model_flux=float(s_best[0]) * m_best,
        inflation=fraction,
        inflation_fitted=inflate_errors,
        distance_pc=distance_pc,
        radius_rjup=radius,
        samples=samples,
        logz=float(res.logz[-1]),
        logz_err=float(res.logzerr[-1]),
        wall_time_s=time.perf_counter() - t0,
        flux_unit=data.flux_unit,
        grid_flux_unit=grid.flux_unit,
        credit=grid.credit,
        notes=notes,
        provenance=provenance(
            seed=seed, grid=grid.name, method="nested", source=data.source, nlive=nlive
        ),
    )
    if disc is not None:
        from atmospec.discrepancy.route import misfit_record

        teff_best = float(best.get("teff", np.nan))
        result.discrepancy = misfit_record(
            disc, data, sig_best, result.model_flux, teff_best, n_fitted
        )
    from atmospec.fitting.edges import fit_warnings

    fit_warnings(result, grid)
    return result
