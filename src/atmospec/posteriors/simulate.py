"""GridSimulator: noise-free spectra from an interpolated model grid on a target axis."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

if TYPE_CHECKING:
    from atmospec.grids import ModelGrid
    from atmospec.spectrum import Spectrum

__all__ = ["GridSimulator", "SPEX_RANGE"]

#: Wavelength range (micron) of the SpeX prism axis used by the shipped NPE: the grid's
#: own (SpeX-resolution) pixels inside the range where SpeX prism data are reliable.
SPEX_RANGE: tuple[float, float] = (0.85, 2.45)

FloatArray = NDArray[np.float64]


class GridSimulator:
    """The simulator behind NPE training and its tests: ``theta -> model spectrum``.

    Parameters are drawn uniformly over the grid's box (the prior of the NPE, of nested
    sampling and of the importance weights). A model spectrum is the grid interpolated
    at ``theta`` (:meth:`atmospec.grids.ModelGrid.interpolate`, linear in log flux) and
    resampled flux-conservingly onto ``wavelength`` with the same matrix the classic fit
    builds (:func:`atmospec.transforms.resampling_matrix`), so the NPE, the importance
    weights and nested sampling all see the very same model.

    Args:
        grid: the model grid (its flux is read into RAM once).
        wavelength: target axis in micron (default: the grid's pixels inside
            :data:`SPEX_RANGE`).
        param_names: parameters to infer (default: all of the grid's).

    Example:
        >>> from atmospec.grids import load_grid  # doctest: +SKIP
        >>> sim = GridSimulator(load_grid("dback24"))  # doctest: +SKIP
        >>> theta = sim.sample_prior(4, seed=0)  # doctest: +SKIP
        >>> sim.models(theta).shape  # doctest: +SKIP
        (4, 700)
    """

    def __init__(
        self,
        grid: ModelGrid,
        wavelength: ArrayLike | None = None,
        param_names: Sequence[str] | None = None,
    ) -> None:
        from atmospec.transforms import resampling_matrix

        self.grid = grid
        gw = np.asarray(grid.wavelength, dtype=np.float64)
        if wavelength is None:
            wavelength = gw[(gw >= SPEX_RANGE[0]) & (gw <= SPEX_RANGE[1])]
        self.wavelength = np.asarray(wavelength, dtype=np.float64)
        self.param_names = tuple(param_names or grid.param_names)
        if set(self.param_names) != set(grid.param_names):
            raise ValueError(
                f"GridSimulator infers all grid parameters {grid.param_names}; got {self.param_names}"
            )
        self.matrix, covered = resampling_matrix(self.wavelength, gw)
        if not covered.all():
            from atmospec.errors import CoverageError

            raise CoverageError(
                f"target axis {self.wavelength[0]:.3f}-{self.wavelength[-1]:.3f} um is not covered "
                f"by the {grid.name} grid ({gw[0]:.3f}-{gw[-1]:.3f} um)"
            )
        self._cols = [grid.param_names.index(p) for p in self.param_names]
        if hasattr(grid, "load"):
            grid.load()

    @property
    def bounds(self) -> dict[str, tuple[float, float]]:
        return {p: tuple(map(float, self.grid.bounds[p])) for p in self.param_names}  # type: ignore[misc]

    def sample_prior(self, n: int, seed: int | np.random.Generator = 0) -> FloatArray:
        """``n`` parameter vectors uniform over the grid box, columns in ``param_names`` order."""
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        lo = np.array([self.bounds[p][0] for p in self.param_names])
        hi = np.array([self.bounds[p][1] for p in self.param_names])
        return lo + (hi - lo) * rng.uniform(size=(n, len(lo)))

    def models(self, theta: ArrayLike, chunk: int = 4096, dtype: Any = np.float64) -> NDArray[Any]:
        """Noise-free model spectra ``(n, n_pix)`` on the target axis."""
        th = np.atleast_2d(np.asarray(theta, dtype=np.float64))
        pts = np.empty_like(th)
        pts[:, self._cols] = th
        out = np.empty((len(th), self.wavelength.size), dtype=dtype)
        for i in range(0, len(th), chunk):
            native = self.grid.interpolate(pts[i : i + chunk])
            out[i : i + chunk] = np.asarray((self.matrix @ np.atleast_2d(native).T).T)
        return out

    def spectrum(self, flux: ArrayLike, sigma: ArrayLike, name: str = "simulated") -> Spectrum:
        """Wrap simulated data as a Spectrum on the target axis (e.g. for nested sampling)."""
        from atmospec.spectrum import Spectrum

        return Spectrum(
            self.wavelength,
            np.asarray(flux, dtype=np.float64),
            np.asarray(sigma, dtype=np.float64),
            name=name,
            flux_unit=getattr(self.grid, "flux_unit", ""),
            meta={"source": name, "grid": self.grid.name},
        )
