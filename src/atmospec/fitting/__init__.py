"""Classic grid fitting of observed spectra: chi-square and nested sampling."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from atmospec.fitting.result import FitResult

if TYPE_CHECKING:
    from atmospec.fitting.chi2 import fit_chi2
    from atmospec.fitting.nested import fit_nested
    from atmospec.grids import ModelGrid
    from atmospec.spectrum import Spectrum

__all__ = ["FitResult", "fit", "fit_chi2", "fit_nested"]

_LAZY = {
    "fit_chi2": "atmospec.fitting.chi2",
    "fit_nested": "atmospec.fitting.nested",
}


def fit(
    spectrum: Spectrum,
    grid: ModelGrid | str,
    method: Literal["chi2", "nested"] = "chi2",
    **kwargs: Any,
) -> FitResult:
    """Fit ``spectrum`` with ``grid`` (a ModelGrid or a grid name) by chi-square or nested sampling.

    See :func:`atmospec.fitting.chi2.fit_chi2` and
    :func:`atmospec.fitting.nested.fit_nested` for the keyword arguments.

    Example:
        >>> import numpy as np
        >>> import pathlib, tempfile
        >>> from atmospec.grids import ModelGrid
        >>> from atmospec.spectrum import Spectrum
        >>> path, w = pathlib.Path(tempfile.mkdtemp()) / "toy.h5", np.linspace(1.0, 2.0, 40)
        >>> with ModelGrid.create(path, w, ("teff",), name="toy") as g:
        ...     for t in (1000.0, 1500.0, 2000.0):
        ...         g.add({"teff": t}, (w / 1.5) ** (t / 500.0))  # steeper when hotter
        >>> grid, x = ModelGrid(path), w[5:35]
        >>> spec = Spectrum(x, 2 * (x / 1.5) ** 3, 0.02 * (x / 1.5) ** 3)  # 2 x the 1500 K node
        >>> res = fit(spec, grid)
        >>> res.method, res.best, round(res.scale, 6), res.dof
        ('chi2', {'teff': 1500.0}, 2.0, 28)
        >>> fit(spec, grid, method="mcmc")
        Traceback (most recent call last):
        ...
        ValueError: fit(method='mcmc'): expected 'chi2' or 'nested'
    """
    if isinstance(grid, str):
        from atmospec.grids import load_grid

        grid = load_grid(grid)
    if method == "chi2":
        from atmospec.fitting.chi2 import fit_chi2

        return fit_chi2(spectrum, grid, **kwargs)
    if method == "nested":
        from atmospec.fitting.nested import fit_nested

        return fit_nested(spectrum, grid, **kwargs)
    raise ValueError(f"fit(method={method!r}): expected 'chi2' or 'nested'")


def __getattr__(name: str) -> Any:
    # Lazy: importing atmospec.fitting does not pull in dynesty.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'atmospec.fitting' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
