"""FitResult and the shared preparation of a spectrum for classic grid fitting."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import sparse

from atmospec.errors import CoverageError, InvalidSpectrumError
from atmospec.transforms import check_coverage, resampling_matrix

if TYPE_CHECKING:
    from astropy.table import Table
    from matplotlib.figure import Figure

    from atmospec.grids import ModelGrid
    from atmospec.spectrum import Spectrum

__all__ = [
    "FitData",
    "FitResult",
    "prepare",
    "fit",
    "fitted_parameters",
    "radius_from_scale",
    "ranges_text",
    "rich_table",
    "R_JUP_M",
    "PARSEC_M",
]

R_JUP_M: float = 7.1492e7
"""Jupiter's equatorial radius in metres (IAU 2015 nominal), the radius unit of results."""

PARSEC_M: float = 3.0856775814913673e16
"""One parsec in metres (IAU 2015)."""

FloatArray = NDArray[np.float64]


@dataclass
class FitData:
    """A spectrum made ready for fitting against one grid: the pixels used and the resampler.

    ``matrix`` maps grid fluxes (n_grid_wave) onto the used data pixels (n_pix) with the
    spectres weights of each data pixel's own bin (edges from the *full* data axis, so masked
    neighbours do not widen a bin). ``n_masked`` pixels were masked or had no valid error,
    ``n_uncovered`` lie outside the grid's wavelength range (dropped under the mask policy).
    """

    source: str
    wavelength: FloatArray
    flux: FloatArray
    uncertainty: FloatArray
    matrix: sparse.csr_matrix
    n_total: int
    n_masked: int
    n_uncovered: int
    flux_unit: str
    uncovered_range: str = ""

    @property
    def n_pix(self) -> int:
        return int(self.wavelength.size)

    def model(self, grid_flux: FloatArray) -> FloatArray:
        """Grid flux (n, n_grid_wave) or (n_grid_wave,) resampled onto the used pixels."""
        f = np.asarray(grid_flux, dtype=np.float64)
        out = np.asarray((self.matrix @ np.atleast_2d(f).T).T)
        return out[0] if f.ndim == 1 else out


def prepare(
    spectrum: Spectrum,
    grid: ModelGrid,
    *,
    coverage: Literal["mask", "error"] = "mask",
    wave_range: tuple[float, float] | None = None,
) -> FitData:
    """Select the usable pixels of ``spectrum`` and build the grid -> data resampling matrix.

    Pixels are used when unmasked, with finite flux and a positive finite uncertainty, inside
    ``wave_range`` (micron) if given, and whose bins lie wholly inside the grid's wavelength
    coverage. With ``coverage="error"`` a pixel outside the grid's coverage raises
    :class:`~atmospec.errors.CoverageError` instead of being dropped.
    """
    src = spectrum.source
    if spectrum.uncertainty is None:
        raise InvalidSpectrumError(
            f"{src}: the spectrum has no uncertainties; a chi-square fit needs 1-sigma errors "
            "per pixel (give uncertainty=... when building the Spectrum)"
        )
    wave = spectrum.wavelength
    flux = spectrum.flux
    unc = spectrum.uncertainty
    valid = ~spectrum.mask & np.isfinite(flux) & np.isfinite(unc) & (unc > 0)
    if wave_range is not None:
        valid &= (wave >= wave_range[0]) & (wave <= wave_range[1])
    covered = check_coverage(grid.wavelength, wave, policy="mask", source=src)
    uncovered_range = ""
    if not covered.all():
        uncovered_range = ranges_text(wave, ~covered)
        if coverage == "error":
            check_coverage(grid.wavelength, wave[valid], policy="error", source=src)
    elif coverage not in ("mask", "error"):
        raise ValueError(f"coverage={coverage!r}: expected 'mask' or 'error'")
    use = valid & covered
    n_fit = int(use.sum())
    if n_fit < 10:
        raise CoverageError(
            f"{src}: only {n_fit} usable pixels overlap the {grid.name} grid "
            f"({grid.wavelength[0]:.3f}-{grid.wavelength[-1]:.3f} um); the spectrum spans "
            f"{wave[0]:.3f}-{wave[-1]:.3f} um"
        )
    matrix, _ = resampling_matrix(wave, grid.wavelength)
    return FitData(
        source=src,
        wavelength=wave[use],
        flux=flux[use].astype(np.float64),
        uncertainty=unc[use].astype(np.float64),
        matrix=matrix[np.flatnonzero(use)].tocsr(),
        n_total=int(wave.size),
        n_masked=int((~valid).sum()),
        n_uncovered=int((valid & ~covered).sum()),
        flux_unit=spectrum.flux_unit,
        uncovered_range=uncovered_range,
    )


def ranges_text(wave: FloatArray, selected: NDArray[np.bool_]) -> str:
    """The wavelength ranges of contiguous runs of selected pixels, as text.

    Example:
        >>> import numpy as np
        >>> ranges_text(np.arange(1.0, 2.0, 0.1), np.arange(10) % 9 == 0)
        '1.0000-1.0000 um, 1.9000-1.9000 um'
    """
    idx = np.flatnonzero(selected)
    if idx.size == 0:
        return ""
    runs = np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1)
    return ", ".join(f"{wave[r[0]]:.4f}-{wave[r[-1]]:.4f} um" for r in runs)


def fitted_parameters(grid: ModelGrid) -> list[str]:
    """The grid parameters a fit actually chooses: those taking more than one value and not
    tied to another parameter (BT-Settl's ``alpha`` follows ``mh``)."""
    dependent: set[str] = set()
    names_fn = getattr(grid, "_dependent_names", None)
    if callable(names_fn):
        dependent = set(names_fn())
    return [p for p in grid.param_names if grid.axes[p].size > 1 and p not in dependent]


def radius_from_scale(scale: float | FloatArray, distance_pc: float) -> float | FloatArray:
    """Radius (Jupiter radii) from the dilution factor ``scale = (R / d)^2`` and a distance.

    The observed flux of a sphere of radius R at distance d is ``(R/d)^2`` times its surface
    flux, so ``R = d sqrt(scale)``. Valid only when the data are absolutely flux calibrated in
    the grid's flux unit.

    Example:
        >>> r = radius_from_scale((R_JUP_M / PARSEC_M / 10) ** 2, 10.0)  # 1 R_Jup at 10 pc
        >>> round(float(r), 6)
        1.0
    """
    return distance_pc * PARSEC_M * np.sqrt(np.asarray(scale)) / R_JUP_M


@dataclass
class FitResult:
    """The result of fitting a spectrum with a model grid (chi-square or nested sampling).

    Attributes:
        method: ``"chi2"`` (best grid node) or ``"nested"`` (posterior over the interpolated
            grid).
        grid: grid name; ``param_names`` its parameters; ``fitted`` those the fit chose.
        best: best-fit parameter values (chi2: the best node; nested: the maximum-likelihood
            sample).
        chi2, dof, chi2_red, p_value: the chi-square of the best fit with the *given*
            uncertainties, ``dof = n_pix - n_fitted``, ``n_fitted = len(fitted) + 1`` (the
            flux scale) ``+ 1`` if an error-inflation factor was fitted.
        scale: the flux scale s (data = s * model); ``radius_rjup`` ``R = d sqrt(s)`` when a
            distance was given and the data are flux calibrated.
        samples: posterior samples (equal weight) as a DataFrame (nested only).
        logz, logz_err: log evidence and its error (nested only).
        nodes: every grid node with its chi2 and scale (chi2 only).
    """

    method: str
    grid: str
    source: str
    param_names: tuple[str, ...]
    fitted: list[str]
    best: dict[str, float]
    chi2: float
    dof: int
    n_pix: int
    n_fitted: int
    scale: float
    wavelength: FloatArray
    flux: FloatArray
    uncertainty: FloatArray
    model_flux: FloatArray
    inflation: float = 0.0
    inflation_fitted: bool = False
    distance_pc: float | None = None
    radius_rjup: float | None = None
    samples: pd.DataFrame | None = None
    logz: float | None = None
    logz_err: float | None = None
    nodes: pd.DataFrame | None = None
    wall_time_s: float = 0.0
    flux_unit: str = ""
    grid_flux_unit: str = ""
    credit: str = ""
    notes: list[str] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)
    discrepancy: dict[str, Any] | None = None  # model-discrepancy model used + misfit score

    @property
    def chi2_red(self) -> float:
        """chi2 / dof (the reduced chi-square)."""
        return self.chi2 / self.dof

    @property
    def p_value(self) -> float:
        """Probability of a chi2 at least this large if the model and errors were right."""
        from atmospec.stats import chi2_test

        return chi2_test(self.chi2, self.dof).p_value

    def summary(self) -> dict[str, Any]:
        """Parameter summaries: nested -> median and 16/84, 2.5/97.5 percentiles."""
        out: dict[str, Any] = {}
        if self.samples is None:
            return {p: {"best": v} for p, v in self.best.items()}
        for p in self.samples.columns:
            q = np.percentile(self.samples[p].to_numpy(), [2.5, 16, 50, 84, 97.5])
            out[p] = {
                "median": float(q[2]),
                "p16": float(q[1]),
                "p84": float(q[3]),
                "p2.5": float(q[0]),
                "p97.5": float(q[4]),
            }
        return out

    def table(self) -> Table:
        """One row: source, grid, method, parameters, chi2, dof, chi2_red, p, scale, radius."""
        from astropy.table import Table

        row: dict[str, Any] = {"source": self.source, "grid": self.grid, "method": self.method}
        for p, v in self.best.items():
            row[p] = v
        if self.samples is not None:
            for p, s in self.summary().items():
                if p in self.param_names:
                    for k in ("median", "p16", "p84", "p2.5", "p97.5"):
                        row[f"{p}_{k}"] = s[k]
        row.update(
            chi2=self.chi2,
            dof=self.dof,
            chi2_red=self.chi2_red,
            p_value=self.p_value,
            n_pix=self.n_pix,
            n_fitted=self.n_fitted,
            scale=self.scale,
            inflation=self.inflation,
            radius_rjup=np.nan if self.radius_rjup is None else self.radius_rjup,
            logz=np.nan if self.logz is None else self.logz,
            logz_err=np.nan if self.logz_err is None else self.logz_err,
            wall_time_s=self.wall_time_s,
        )
        if self.discrepancy is not None:
            row["misfit_score"] = self.discrepancy["misfit_score"]
            row["misfit_flag"] = self.discrepancy["misfit_flagged"]
        table = Table(rows=[row])
        table.meta["fitted"] = list(self.fitted)
        table.meta["discrepancy"] = self.discrepancy
        table.meta["dof_rule"] = "dof = n_pix - n_fitted; n_fitted = fitted grid params + scale"
        table.meta["credit"] = self.credit
        return table

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record of the fit (no arrays except the parameter summaries)."""
        return {
            "source": self.source,
            "grid": self.grid,
            "method": self.method,
            "best": self.best,
            "fitted": self.fitted,
            "summary": self.summary() if self.samples is not None else None,
            "chi2": self.chi2,
            "dof": self.dof,
            "chi2_red": self.chi2_red,
            "p_value": self.p_value,
            "n_pix": self.n_pix,
            "n_fitted": self.n_fitted,
            "scale": self.scale,
            "inflation": self.inflation,
            "inflation_fitted": self.inflation_fitted,
            "distance_pc": self.distance_pc,
            "radius_rjup": self.radius_rjup,
            "logz": self.logz,
            "logz_err": self.logz_err,
            "wall_time_s": self.wall_time_s,
            "flux_unit": self.flux_unit,
            "grid_flux_unit": self.grid_flux_unit,
            "credit": self.credit,
            "notes": self.notes,
            "provenance": self.provenance,
            "discrepancy": self.discrepancy,
        }

    def plot(self, *, title: str | None = None) -> Figure:
        """Data over the best model with normalised residuals (a matplotlib Figure)."""
        from atmospec.plots import plot_fit

        label = ", ".join(f"{p}={v:g}" for p, v in self.best.items())
        return plot_fit(
            self.wavelength,
            self.flux,
            self.uncertainty,
            self.model_flux,
            model_label=f"{self.grid}: {label}",
            title=title or f"{self.source}: chi2_red = {self.chi2_red:.2f} (dof {self.dof})",
            flux_unit=self.flux_unit,
        )


def fit(
    spectrum: Spectrum,
    grid: ModelGrid | str,
    method: Literal["chi2", "nested"] = "chi2",
    **kwargs: Any,
) -> FitResult:
    """Fit ``spectrum`` with ``grid`` (a ModelGrid or a grid name) by chi-square or nested sampling.

    See :func:`atmospec.inference.chi2.fit_chi2` and
    :func:`atmospec.inference.nested.fit_nested` for the keyword arguments.
    """
    if isinstance(grid, str):
        from atmospec.grids import load_grid

        grid = load_grid(grid)
    if method == "chi2":
        from atmospec.inference.chi2 import fit_chi2

        return fit_chi2(spectrum, grid, **kwargs)
    if method == "nested":
        from atmospec.inference.nested import fit_nested

        return fit_nested(spectrum, grid, **kwargs)
    raise ValueError(f"fit(method={method!r}): expected 'chi2' or 'nested'")


def _dilution_factor(
    data: FitData, grid: ModelGrid, distance_pc: float | None, notes: list[str]
) -> float | None:
    """Factor turning the fitted scale into (R/d)^2, or None when no radius can be computed.

    The fit gives data = s * model in their own units, so (R/d)^2 = s * (1 data unit in grid
    units). A normalised spectrum (no flux unit) has no radius.
    """
    if distance_pc is None:
        return None
    if distance_pc <= 0 or not np.isfinite(distance_pc):
        raise ValueError(f"distance_pc must be a positive number, got {distance_pc!r}")
    if not data.flux_unit:
        notes.append(
            "radius not computed: the spectrum is normalised (no flux unit); flux-calibrate it "
            "first (synthetic photometry) so that scale = (R/d)^2"
        )
        return None
    import astropy.units as u

    try:
        factor = float((1 * u.Unit(data.flux_unit)).to(u.Unit(grid.flux_unit)).value)
    except (u.UnitsError, ValueError):
        notes.append(
            f"radius not computed: data flux unit {data.flux_unit!r} is not convertible to the "
            f"grid's {grid.flux_unit!r} (give F_lambda data)"
        )
        return None
    notes.append("radius R = d sqrt(s) computed here from the flux scale (dilution factor)")
    return factor


def rich_table(
    results: list[Any], title: str, literature: dict[str, dict[str, float]] | None = None
) -> Any:
    """A rich Table of fit results: best parameters (nested: median +- 16/84 percentiles),
    chi2_red, dof, p-value, and literature values per object when given."""
    from rich.table import Table

    table = Table(title=title)
    params: list[str] = []
    for r in results:
        params += [p for p in r.best if p not in params]
    for col in ("object", "grid", "method", *params, "chi2_red", "dof", "p-value"):
        table.add_column(col, justify="left" if col in ("object", "grid", "method") else "right")
    if literature:
        for col in ("lit. teff", "lit. logg", "lit. mh"):
            table.add_column(col, justify="right", style="cyan")
    for r in results:
        row = [r.source, r.grid, r.method]
        for p in params:
            if r.samples is not None and p in r.samples:
                q16, q50, q84 = (float(v) for v in r.samples[p].quantile([0.16, 0.5, 0.84]))
                row.append(f"{q50:.4g} +{q84 - q50:.2g}/-{q50 - q16:.2g}")
            else:
                row.append(f"{r.best[p]:g}" if p in r.best else "-")
        row += [f"{r.chi2_red:.2f}", str(r.dof), f"{r.p_value:.2g}"]
        if literature:
            lit = literature.get(r.source, {})
            row += [f"{lit[k]:g}" if k in lit else "-" for k in ("teff", "logg", "mh")]
        table.add_row(*row)
    return table
