"""The grid model at a prediction against the data of one object (chi-square, plot data)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from atmospec.errors import OutOfGridError

if TYPE_CHECKING:
    from atmospec.grids import ModelGrid
    from atmospec.prediction.coverage import ModelInput

__all__ = ["ObjectModel", "object_model"]

FloatArray = NDArray[np.float64]


@dataclass
class ObjectModel:
    """The data of one object over the grid model interpolated at its prediction.

    Example:
        >>> w = np.array([1.0, 1.5, 2.0])
        >>> m = ObjectModel(w, np.ones(3), np.full(3, 0.1), np.array([1.0, 1.1, 0.8]),
        ...                 chi2=5.0, dof=2, point={"teff": 1500.0}, grid="toy")
        >>> m.chi2_red
        2.5
    """

    wavelength: FloatArray
    flux: FloatArray
    uncertainty: FloatArray
    model_flux: FloatArray
    chi2: float
    dof: int
    point: dict[str, float]
    grid: str
    flux_unit: str = ""

    @property
    def chi2_red(self) -> float:
        return self.chi2 / self.dof


def _point_mapping(grid: ModelGrid, names: tuple[str, ...], values: FloatArray) -> dict[str, float]:
    point = {p: float(v) for p, v in zip(names, values, strict=True) if p in grid.param_names}
    for p in getattr(grid, "categorical", ()) or ():
        if p in point:
            axis = np.asarray(grid.axes[p], dtype=np.float64)
            point[p] = float(axis[np.argmin(np.abs(axis - point[p]))])
    return point


def object_model(
    grid: ModelGrid,
    names: tuple[str, ...],
    wavelength: FloatArray,
    inp: ModelInput,
    median: FloatArray,
) -> ObjectModel | None:
    """The data of ``inp`` over ``grid`` interpolated at ``median`` (flux scale solved).

    Only the data pixels inside the model axis ``wavelength`` count; ``dof`` is the number of
    those pixels minus the parameters and the scale. None where the median falls in a hole
    of a sparse grid.

    Example:
        >>> import pathlib, tempfile
        >>> from atmospec.grids import ModelGrid
        >>> from atmospec.prediction.coverage import prepare_input
        >>> from atmospec.spectrum import Spectrum
        >>> path, wave = pathlib.Path(tempfile.mkdtemp()) / "toy.h5", np.linspace(1.0, 2.0, 11)
        >>> with ModelGrid.create(path, wave, ("teff",), name="toy") as w:
        ...     for t in (1000.0, 2000.0):
        ...         w.add({"teff": t}, (t / 1000.0) ** (wave - 1.0))
        >>> spec = Spectrum(wave, 3.0 * 2.0 ** ((wave - 1.0) / 2), np.full(11, 0.01))
        >>> inp = prepare_input(spec, wave)  # the grid's model at teff 1500, times 3
        >>> m = object_model(ModelGrid(path), ("teff",), wave, inp, np.array([1500.0]))
        >>> m.point, m.dof, round(m.chi2_red, 6), m.model_flux[[0, -1]].round(3).tolist()
        ({'teff': 1500.0}, 9, 0.0, [3.0, 4.243])
    """
    from atmospec.fitting.chi2 import chi2_with_scale
    from atmospec.fitting.data import prepare
    from atmospec.transforms import bin_edges

    point = _point_mapping(grid, names, median)
    spec = inp.spectrum
    assert spec is not None
    edges = bin_edges(wavelength)
    try:
        data = prepare(spec, grid, coverage="mask", wave_range=(edges[0], edges[-1]))
        native = grid.interpolate(point)
    except OutOfGridError:
        return None
    model = data.model(native)
    chi2, scale = chi2_with_scale(model, data.flux, data.uncertainty)
    return ObjectModel(
        wavelength=data.wavelength,
        flux=data.flux,
        uncertainty=data.uncertainty,
        model_flux=scale[0] * model,
        chi2=float(chi2[0]),
        dof=max(data.n_pix - (len(names) + 1), 1),
        point=point,
        grid=grid.name,
        flux_unit=data.flux_unit,
    )
