"""One grid's answer for one spectrum: samples, bound pressure, misfit and the fitted model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from atmospec.grids import ModelGrid
    from atmospec.spectrum import Spectrum

__all__ = ["GridEstimate", "chi2_estimate", "node_weights", "photon_chi2", "COMMON_PARAMS"]

PART_COVERAGE = 0.1
"""A grid that leaves more than this fraction of a spectrum's usable pixels uncovered (inside
the fitted wavelength range) answers with a note naming them: its answer rests on the rest."""

FloatArray = NDArray[np.float64]

COMMON_PARAMS: tuple[str, ...] = ("teff", "logg", "mh")
"""Parameters every brown-dwarf grid shares: the combined estimate is made over these."""


@dataclass
class GridEstimate:
    """What one grid says about one spectrum.

    Attributes:
        grid: the grid's name.
        route: how the answer was made (``"npe"``, ``"cnn"`` or ``"chi2"``).
        param_names: parameters of ``samples`` (the grid's own, e.g. ``fsed`` or ``cloudy``).
        samples: (draws, p) samples of the grid's posterior / predictive.
        bounds: the parameter range the answer is valid in (the model's or the grid's).
        at_bound: (p,) True where the median presses a bound of ``bounds``.
        misfit: chi-square per degree of freedom of the best grid node under noise plus the
            grid's model-error covariance, in units of the discrepancy model's calibrated
            threshold: above 1 the residual exceeds what the model of mismatch allows (NaN
            without a discrepancy model).
        wavelength, flux, uncertainty, model_flux, band: the data and the best model on the
            data pixels, and the 1-sigma model-error band around the model (for figures).
        notes: why and how (routing, error inflation, masked pixels).
        model: the id of what answered: a learned model's id, or ``chi2:<grid>`` for the
            scan over the grid's nodes.

    Example:
        >>> s = np.float32([[900.0, 5.0], [1000.0, 5.5], [1100.0, 5.0]])
        >>> est = GridEstimate("dback24", "chi2", ("teff", "logg"), s, {"teff": (900.0, 2400.0)},
        ...                    np.array([False, False]))
        >>> est.median("teff"), est.column("mh"), est.covers("teff", 800.0)
        (1000.0, None, False)
    """

    grid: str
    route: str
    param_names: tuple[str, ...]
    samples: NDArray[np.float32]
    bounds: dict[str, tuple[float, float]]
    at_bound: NDArray[np.bool_]
    misfit: float = float("nan")
    wavelength: FloatArray | None = None
    flux: FloatArray | None = None
    uncertainty: FloatArray | None = None
    model_flux: FloatArray | None = None
    band: FloatArray | None = None
    notes: list[str] = field(default_factory=list)
    model: str = ""

    def column(self, name: str) -> NDArray[np.float32] | None:
        """The samples of parameter ``name`` (None when this grid lacks it)."""
        if name not in self.param_names:
            return None
        return self.samples[:, self.param_names.index(name)]

    def median(self, name: str) -> float:
        col = self.column(name)
        return float("nan") if col is None else float(np.median(col))

    def covers(self, name: str, value: float) -> bool:
        """Whether ``value`` of parameter ``name`` lies inside this answer's valid range."""
        if name not in self.bounds or not np.isfinite(value):
            return True
        lo, hi = self.bounds[name]
        return bool(lo <= value <= hi)


def node_weights(chi2: FloatArray) -> FloatArray:
    """Normalised likelihood weights ``exp(-(chi2 - min) / 2)`` of grid nodes.

    Example:
        >>> node_weights(np.array([10.0, 10.0, 1e6])).round(3).tolist()
        [0.5, 0.5, 0.0]
    """
    c = np.asarray(chi2, dtype=np.float64)
    w = np.exp(-0.5 * (c - np.nanmin(c)))
    w = np.where(np.isfinite(w), w, 0.0)
    return w / w.sum()


def _half_steps(grid: ModelGrid, names: tuple[str, ...]) -> dict[str, FloatArray]:
    """Per parameter and axis value, half the distance to the neighbouring nodes (continuous
    parameters only; categorical ones get zero)."""
    cat = set(getattr(grid, "categorical", ()) or ())
    out = {}
    for p in names:
        axis = np.asarray(grid.axes[p], dtype=np.float64)
        if p in cat or axis.size < 2:
            out[p] = np.zeros(axis.size)
            continue
        d = np.diff(axis)
        out[p] = 0.5 * np.minimum(np.r_[d[0], d], np.r_[d, d[-1]])
    return out


def _jittered(
    grid: ModelGrid, names: tuple[str, ...], nodes: NDArray[np.int64], rng: np.random.Generator
) -> NDArray[np.float32]:
    """Node parameters spread uniformly over each node's cell (a grid node stands for the
    parameter values nearer to it than to its neighbours), clipped to the grid's range."""
    values = grid.params[list(names)].to_numpy(dtype=np.float64)[nodes]
    steps = _half_steps(grid, names)
    for j, p in enumerate(names):
        axis = np.asarray(grid.axes[p], dtype=np.float64)
        k = np.clip(np.searchsorted(axis, values[:, j]), 0, axis.size - 1)
        h = steps[p][k]
        values[:, j] = np.clip(values[:, j] + rng.uniform(-h, h), axis[0], axis[-1])
    return values.astype(np.float32)


def chi2_estimate(
    spectrum: Spectrum,
    grid: ModelGrid,
    *,
    draws: int = 1000,
    rng: np.random.Generator,
    discrepancy: Any = None,
    wave_range: tuple[float, float] | None = None,
) -> GridEstimate:
    """A grid's answer by chi-square over every node, as a posterior over the nodes.

    Each node's likelihood has its flux scale solved; samples are nodes drawn by their
    posterior weights and spread over each node's cell (a grid cannot resolve finer). With a
    ``discrepancy`` model (:class:`atmospec.discrepancy.DiscrepancyModel`) the likelihood
    uses noise plus the grid's learned model-error covariance at each node's Teff
    (``-2 log L = chi2 + log det C``, divided by the model's likelihood temperature), and ``misfit`` is the best node's chi-square per degree
    of freedom under that covariance divided by the model's calibrated threshold (> 1: the
    residual exceeds what the model of mismatch allows). Without one, the errors get the
    systematic floor that makes the best reduced chi-square 1 (Line et al. 2015), ``misfit``
    is NaN and a note says so.

    Args:
        spectrum: the observed spectrum (uncertainties required).
        grid: the model grid.
        draws: number of samples.
        rng: random generator.
        discrepancy: the grid's model-discrepancy model, or None.
        wave_range: fit only this interval (micron); default the interval the discrepancy
            model was learned and calibrated on (0.70-2.50 um), else 0.90-2.45 um.

    Example:
        >>> from atmospec.grids import load_grid  # doctest: +SKIP
        >>> est = chi2_estimate(spec, load_grid("btsettl08"), rng=np.random.default_rng(0))  # doctest: +SKIP
        >>> est.median("teff")  # doctest: +SKIP
        800.0
    """
    from atmospec.fitting.chi2 import _auto_fraction, chi2_with_scale, inflated_sigma
    from atmospec.fitting.data import fitted_parameters, prepare

    if wave_range is None:
        wave_range = (0.90, 2.45)
        if discrepancy is not None:
            from atmospec.discrepancy.learn import AXIS_RANGE

            wave_range = AXIS_RANGE
    data = prepare(spectrum, grid, coverage="mask", wave_range=wave_range)
    names = tuple(fitted_parameters(grid))
    models = data.model(np.asarray(grid.flux(np.arange(len(grid))), dtype=np.float64))
    dof = max(data.n_pix - (len(names) + 1), 1)
    notes: list[str] = []
    usable = data.n_pix + data.n_uncovered
    if data.n_uncovered > PART_COVERAGE * usable:  # a grid of one band, say: its answer too
        notes.append(
            f"{grid.name}: answers from {data.n_pix} of the spectrum's {usable} usable pixels; "
            + data.left_out(grid.name)[0]
        )
    teff = grid.params["teff"].to_numpy(dtype=np.float64)
    misfit = float("nan")
    if discrepancy is not None:
        from atmospec.discrepancy.likelihood import scan_nodes

        chi2, logdet, scale = scan_nodes(
            models, data.flux, data.uncertainty, teff, discrepancy, data.wavelength
        )
        # The model's likelihood temperature (a power posterior calibrated on repeat spectra:
        # correlated residuals make -2 log L overconfident by that factor).
        w = node_weights((chi2 + logdet) / float(getattr(discrepancy, "temperature", 1.0)))
        best = int(np.argmin(chi2 + logdet))
        var, fac = discrepancy.fractional(float(teff[best]), data.wavelength)
        model = scale[best] * models[best]
        # the flux the likelihood's fractional terms multiply (a floor in deep troughs)
        band = discrepancy.reference(model) * np.sqrt(var + np.sum(fac**2, axis=1))
        mis = discrepancy.misfit(
            data.flux,
            data.uncertainty,
            model,
            float(teff[best]),
            wavelength=data.wavelength,
            n_fitted=len(names) + 1,
        )
        misfit = float(mis.score / mis.threshold) if np.isfinite(mis.threshold) else mis.score
    else:
        frac = _auto_fraction(lambda: iter([models]), data, dof)
        sigma = inflated_sigma(data.uncertainty, data.flux, frac)
        chi2, scale = chi2_with_scale(models, data.flux, sigma)
        w = node_weights(chi2)
        best = int(np.argmin(chi2))
        model = scale[best] * models[best]
        band = np.sqrt(np.clip(sigma**2 - data.uncertainty**2, 0, None))
        notes.append(
            f"{grid.name}: no model-error covariance for this grid; errors inflated by a fitted "
            f"floor f = {frac:.3g} x median |flux| (best chi2_red = 1 by construction)"
        )
    picks = rng.choice(len(grid), size=draws, p=w)
    samples = _jittered(grid, names, picks, rng)
    bounds = {p: (float(grid.params[p].min()), float(grid.params[p].max())) for p in names}
    return GridEstimate(
        grid=grid.name,
        route="chi2",
        param_names=names,
        samples=samples,
        bounds=bounds,
        at_bound=_at_bound(samples, names, bounds, set(getattr(grid, "categorical", ()) or ())),
        misfit=misfit,
        wavelength=data.wavelength,
        flux=data.flux,
        uncertainty=data.uncertainty,
        model_flux=model,
        band=band,
        notes=notes,
        model=f"chi2:{grid.name}",
    )


def photon_chi2(est: GridEstimate) -> tuple[float, int] | None:
    """Chi-square of the estimate's best model under the data's own errors, and its degrees of
    freedom (pixels - fitted parameters - 1, the flux scale among them); None when the estimate
    carries no model on the data.

    Example:
        >>> import numpy as np
        >>> est = GridEstimate("g", "chi2", ("teff", "logg"), np.zeros((1, 2), np.float32), {},
        ...                    np.zeros(2, bool), flux=np.ones(10), uncertainty=np.full(10, 0.1),
        ...                    model_flux=np.full(10, 1.1))
        >>> chi2, dof = photon_chi2(est)
        >>> round(chi2, 6), dof
        (10.0, 7)
    """
    if est.flux is None or est.uncertainty is None or est.model_flux is None:
        return None
    ok = np.isfinite(est.flux) & np.isfinite(est.model_flux) & (est.uncertainty > 0)
    chi2 = float(np.sum(((est.flux[ok] - est.model_flux[ok]) / est.uncertainty[ok]) ** 2))
    return chi2, max(int(ok.sum()) - (len(est.param_names) + 1), 1)


def _at_bound(
    samples: NDArray[np.float32],
    names: tuple[str, ...],
    bounds: dict[str, tuple[float, float]],
    categorical: set[str],
    tol: float = 0.02,
) -> NDArray[np.bool_]:
    """Where the median lies within ``tol`` of the range from a bound (categorical: never)."""
    med = np.median(samples, axis=0)
    out = np.zeros(len(names), dtype=bool)
    for j, p in enumerate(names):
        lo, hi = bounds[p]
        if p in categorical or hi <= lo:
            continue
        t = tol * (hi - lo)
        out[j] = bool(med[j] <= lo + t or med[j] >= hi - t)
    return out


def summary(est: GridEstimate) -> dict[str, Any]:
    """Median and 68 % interval of each parameter (for logs and reports)."""
    out: dict[str, Any] = {}
    for j, p in enumerate(est.param_names):
        q = np.percentile(est.samples[:, j], [16, 50, 84])
        out[p] = [float(x) for x in q]
    return out
