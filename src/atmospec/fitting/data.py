"""A spectrum made ready for classic grid fitting: the pixels used, the resampler, units."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
from numpy.typing import NDArray
from scipy import sparse

from atmospec.errors import CoverageError, InvalidSpectrumError
from atmospec.resolution import model_smoothing, to_model_resolution
from atmospec.transforms import check_coverage, resampling_matrix

if TYPE_CHECKING:
    from atmospec.grids import ModelGrid
    from atmospec.spectrum import Spectrum

__all__ = [
    "FitData",
    "prepare",
    "fitted_parameters",
    "radius_at_distance",
    "dilution_factor",
    "ranges_text",
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
    neighbours do not widen a bin), after smoothing the models to the spectrum's resolution
    when it is stated to be coarser than theirs (pixels within one resolution element of the
    grid's ends are then left out, as the note says). ``n_masked`` pixels were masked or had
    no valid error, ``n_uncovered`` lie outside the grid's wavelength range (dropped under the
    mask policy).
    ``notes``: what was converted or assumed about the flux unit (an F_nu flux is converted
    to the grid's F_lambda; :func:`atmospec.io.flux_density.as_flux_lambda`).

    Example:
        >>> m = sparse.csr_matrix([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5]])  # 3 grid pixels onto 2
        >>> d = FitData("s.csv", np.array([1.0, 2.0]), np.ones(2), np.full(2, 0.1), m,
        ...             n_total=2, n_masked=0, n_uncovered=0, flux_unit="")
        >>> d.n_pix, d.model(np.array([1.0, 3.0, 5.0])).tolist()
        (2, [2.0, 4.0])
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
    notes: list[str] = field(default_factory=list)

    @property
    def n_pix(self) -> int:
        return int(self.wavelength.size)

    def left_out(self, grid_name: str) -> list[str]:
        """Sentences for the fit's notes: pixels outside the grid and masked pixels, not fitted.

        Example:
            >>> d = FitData("s.csv", np.ones(2), np.ones(2), np.ones(2), sparse.csr_matrix((2, 3)),
            ...             n_total=5, n_masked=3, n_uncovered=0, flux_unit="")
            >>> d.left_out("dback24")
            ['3 masked / invalid pixels were not fitted']
        """
        out = []
        if self.n_uncovered:
            out.append(
                f"{self.n_uncovered} pixels ({self.uncovered_range}) outside the {grid_name} "
                "wavelength range were not fitted (coverage policy 'mask')"
            )
        if self.n_masked:
            out.append(f"{self.n_masked} masked / invalid pixels were not fitted")
        return out

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
    coverage. A spectrum of higher resolution than a built-in grid's is first smoothed to it
    on the grid's own axis (:func:`atmospec.resolution.to_model_resolution`, noted); one
    stated to resolve less than the grid's spectra gets the grid's models smoothed to its
    resolution in ``matrix`` (:func:`atmospec.resolution.model_smoothing`, noted), and its
    pixels within one resolution element of the grid's ends are left out. With
    ``coverage="error"`` a pixel outside the grid's coverage raises
    :class:`~atmospec.errors.CoverageError` instead of being dropped.

    Example:
        >>> import pathlib, tempfile
        >>> from atmospec.grids import ModelGrid
        >>> from atmospec.spectrum import Spectrum
        >>> path, w = pathlib.Path(tempfile.mkdtemp()) / "toy.h5", np.linspace(1.0, 2.0, 40)
        >>> with ModelGrid.create(path, w, ("teff",), name="toy") as g:
        ...     g.add({"teff": 1000.0}, w**2)
        ...     g.add({"teff": 2000.0}, w**3)
        >>> x = np.linspace(0.9, 1.9, 30)  # starts below the grid's 1.0 um
        >>> d = prepare(Spectrum(x, x**2, 0.02 * x**2, mask=np.arange(30) == 10), ModelGrid(path))
        >>> d.n_total, d.n_pix, d.n_masked, d.n_uncovered, d.matrix.shape
        (30, 25, 1, 4, (25, 40))
        >>> d.uncovered_range
        '0.9000-1.0034 um'
    """
    src = spectrum.source
    if spectrum.uncertainty is None:
        from atmospec.io.error_columns import snr_hint

        raise InvalidSpectrumError(
            f"{src}: the spectrum has no uncertainties; a chi-square fit needs 1-sigma errors "
            "per pixel (an error column in the file, or uncertainty=... when building the "
            "Spectrum), or a typical S/N to assume (CLI --assume-snr)" + snr_hint(spectrum.meta)
        )
    from atmospec.sanity import check_spectrum

    check_spectrum(spectrum)  # zero / constant / negative / absurd values refused before fitting
    from atmospec.io.flux_density import MODEL_FLUX_UNIT, as_flux_lambda

    # an F_nu spectrum has the object's shape tilted by lambda^2: compare it in the grid's unit
    spectrum, notes = as_flux_lambda(spectrum, grid.flux_unit or MODEL_FLUX_UNIT)
    # a spectrum of higher resolution than the grid's, smoothed to it on the grid's own axis
    from atmospec.grids import resolution_of

    native = spectrum.wavelength  # as observed (an echelle order: for the refusal's hint)
    spectrum, smoothed = to_model_resolution(spectrum, resolution_of(grid.name), grid.wavelength)
    notes.extend(smoothed)
    # ... and one stated to resolve less gets the models smoothed to it
    smooth, (lo, hi), said = model_smoothing(spectrum, resolution_of(grid.name), grid.wavelength)
    notes.extend(said)
    wave = spectrum.wavelength
    flux = spectrum.flux
    unc = spectrum.uncertainty
    assert unc is not None  # checked above; a conversion keeps it
    valid = ~spectrum.mask & np.isfinite(flux) & np.isfinite(unc) & (unc > 0)
    if wave_range is not None:
        valid &= (wave >= wave_range[0]) & (wave <= wave_range[1])
    covered = check_coverage(grid.wavelength, wave, policy="mask", source=src)
    # where the smoothing kernel runs off the models (the note names the range)
    inside = (wave >= lo) & (wave <= hi) if smooth is not None else np.ones(wave.size, bool)
    uncovered_range = ""
    if not covered.all():
        uncovered_range = ranges_text(wave, ~covered)
        outside = valid & ~covered
        if coverage == "error" and outside.any():
            raise CoverageError(
                f"{src}: {int(outside.sum())} of {int(valid.sum())} usable pixels "
                f"({ranges_text(wave, outside)}) lie outside grid {grid.name}'s wavelengths "
                f"({grid.wavelength[0]:.3f}-{grid.wavelength[-1]:.3f} um); trim the spectrum, "
                "or fit with coverage='mask' to leave them out"
            )
    elif coverage not in ("mask", "error"):
        raise ValueError(f"coverage={coverage!r}: expected 'mask' or 'error'")
    use = valid & covered & inside
    n_fit = int(use.sum())
    if n_fit < 10:
        from atmospec.io.units import unit_slip_error

        glo, ghi = float(grid.wavelength[0]), float(grid.wavelength[-1])
        grid_text = f"the {grid.name} grid ({glo:.3f}-{ghi:.3f} um)"
        slip = unit_slip_error(src, float(wave[0]), float(wave[-1]), glo, ghi, grid_text)
        if slip is not None:  # nothing overlaps, and a common unit would: a unit slip
            raise slip
        from atmospec.resolution import highres_hint

        fine = highres_hint(native)
        raise CoverageError(
            f"{src}: only {n_fit} usable pixels overlap the {grid.name} grid "
            f"({grid.wavelength[0]:.3f}-{grid.wavelength[-1]:.3f} um); the spectrum spans "
            f"{native[0]:.4g}-{native[-1]:.4g} um" + (f"; {fine}" if fine else "")
        )
    matrix, _ = resampling_matrix(wave, grid.wavelength)
    if smooth is not None:
        matrix = matrix @ smooth
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
        notes=notes,
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
    tied to another parameter (BT-Settl's ``alpha`` follows ``mh``).

    Example:
        >>> import pathlib, tempfile
        >>> from atmospec.grids import ModelGrid
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "toy.h5"
        >>> with ModelGrid.create(path, [1.0, 2.0], ("teff", "logg"), name="toy") as g:
        ...     for t in (1000.0, 2000.0):
        ...         g.add({"teff": t, "logg": 5.0}, [t, 2 * t])  # a single log g
        >>> ModelGrid(path).param_names, fitted_parameters(ModelGrid(path))
        (('teff', 'logg'), ['teff'])
    """
    dependent: set[str] = set()
    names_fn = getattr(grid, "_dependent_names", None)
    if callable(names_fn):
        dependent = set(names_fn())
    return [p for p in grid.param_names if grid.axes[p].size > 1 and p not in dependent]


def radius_at_distance(scale: float | FloatArray, distance_pc: float) -> float | FloatArray:
    """Radius (Jupiter radii) from the dilution factor ``scale = (R / d)^2`` and a distance.

    The observed flux of a sphere of radius R at distance d is ``(R/d)^2`` times its surface
    flux, so ``R = d sqrt(scale)``. Valid only when the data are absolutely flux calibrated in
    the grid's flux unit.

    Example:
        >>> r = radius_at_distance((R_JUP_M / PARSEC_M / 10) ** 2, 10.0)  # 1 R_Jup at 10 pc
        >>> round(float(r), 6)
        1.0
    """
    return distance_pc * PARSEC_M * np.sqrt(np.asarray(scale)) / R_JUP_M


def dilution_factor(
    data: FitData, grid: ModelGrid, distance_pc: float | None, notes: list[str]
) -> float | None:
    """Factor turning the fitted scale into (R/d)^2, or None when no radius can be computed.

    The fit gives data = s * model in their own units, so (R/d)^2 = s * (1 data unit in grid
    units). A normalised spectrum (no flux unit) has no radius.

    Example:
        >>> from types import SimpleNamespace as NS
        >>> grid, notes = NS(flux_unit="erg / (s cm2 um)"), []
        >>> dilution_factor(NS(flux_unit="W / (m2 um)"), grid, 10.0, notes)  # 1 W = 1e7 erg/s
        1000.0
        >>> dilution_factor(NS(flux_unit=""), grid, 10.0, notes), notes[-1][:50]
        (None, 'radius not computed: the spectrum is normalised (n')
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
