"""Model-error augmentation: synthetic spectra made as mismatched as real ones are.

A grid never reproduces a real spectrum to the photon noise; a network trained on exact grid
spectra therefore reads every real residual as information and answers narrow and wrong. The
training-set builder's ``discrepancy`` option adds to each synthetic spectrum one realisation
of a grid's learned model-discrepancy (:mod:`atmospec.discrepancy`): fractional, wavelength
dependent, correlated across the bands, and a function of Teff. The network then learns that
such residuals carry no information about the parameters, and its calibrated sigma (fitted on
a validation set that carries the same realisations) includes the model error. This is the
simulation-side answer of robust NPE (Ward et al. 2022): put the error model between the
simulator and the observations.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "DiscrepancySource",
    "resolve_discrepancy",
    "discrepancy_realisations",
    "model_error_from_config",
    "model_error_spec",
]

FloatArray = NDArray[np.float64]

TEFF_STEP = 10.0
"""Teff resolution (K) at which the covariance is evaluated for a batch (it varies slowly)."""


class DiscrepancySource(Protocol):
    """What the builder needs of a discrepancy model: its fractional floor variance and mode
    factors at a Teff on a wavelength axis
    (:meth:`atmospec.discrepancy.DiscrepancyModel.fractional`).

    Example:
        >>> class Flat:  # a 5 % floor and one 10 % mode shared by every pixel
        ...     grid = "toy"
        ...     def fractional(self, teff, wavelength=None):
        ...         n = len(wavelength)
        ...         return np.full(n, 0.05**2), np.full((n, 1), 0.1)
        >>> w, rng = np.linspace(1.0, 2.0, 50), np.random.default_rng(0)
        >>> d = discrepancy_realisations(Flat(), w, np.ones((2000, 50)), np.full(2000, 1e3), rng)
        >>> round(float(d.std()), 2)  # sqrt(0.05**2 + 0.1**2) = 0.112
        0.11
    """

    grid: str

    def fractional(
        self, teff: float, wavelength: Any = None
    ) -> tuple[FloatArray, FloatArray]: ...  # pragma: no cover


def resolve_discrepancy(spec: str | DiscrepancySource) -> DiscrepancySource:
    """A discrepancy model from a recipe value: ``"<grid>-<instrument>"`` (e.g.
    ``"dback24-spex"``, a shipped model), a model folder, or a model object.

    Example:
        >>> resolve_discrepancy("dback24-spex").grid  # doctest: +SKIP
        'dback24'
    """
    from pathlib import Path

    if not isinstance(spec, str):
        return spec
    from atmospec.discrepancy import DiscrepancyModel, load_discrepancy

    path = Path(spec)
    if path.is_dir():
        return DiscrepancyModel.load(path)
    grid, _, inst = spec.partition("-")
    inst = {"": "spex-prism", "spex": "spex-prism"}.get(inst, inst)
    return load_discrepancy(grid, inst)


def model_error_spec(config: Any) -> tuple[str, float] | None:
    """``(name, amplitude)`` of a recipe's ``discrepancy`` / ``discrepancy_amplitude`` keys
    (a trained model's recorded config), without loading the model; None when it names none
    (photon noise only).

    Example:
        >>> model_error_spec({"discrepancy": "burrows06-spex", "discrepancy_amplitude": 0.5})
        ('burrows06-spex', 0.5)
        >>> model_error_spec({"discrepancy": ""}) is None
        True
    """
    info = dict(config or {})
    name = str(info.get("discrepancy") or "")
    if not name:
        return None
    return name, float(info.get("discrepancy_amplitude", 1.0))


def model_error_from_config(config: Any) -> tuple[DiscrepancySource, float] | None:
    """``(model, amplitude)`` named by :func:`model_error_spec`, the model loaded.

    Example:
        >>> model_error_from_config({"discrepancy": ""}) is None
        True
    """
    spec = model_error_spec(config)
    return None if spec is None else (resolve_discrepancy(spec[0]), spec[1])


def discrepancy_realisations(
    model: DiscrepancySource,
    wavelength: FloatArray,
    flux: FloatArray,
    teff: FloatArray,
    rng: np.random.Generator,
    amplitude: float = 1.0,
) -> FloatArray:
    """One additive model-error realisation per spectrum, in the units of ``flux``.

    For the spectrum ``m`` at ``teff`` the realisation is ``m * (f z + U xi) * amplitude``
    with ``f`` the fractional floor and ``U`` the fractional modes of the model at that Teff
    (evaluated every :data:`TEFF_STEP` K), ``z`` and ``xi`` standard normal. NaN (masked)
    pixels stay NaN.

    Args:
        model: the discrepancy model (see :class:`DiscrepancySource`).
        wavelength: (n_wave,) axis of ``flux`` (micron).
        flux: (n, n_wave) model spectra.
        teff: (n,) their effective temperatures.
        rng: random generator.
        amplitude: scale of the realisations (1: as learned from real spectra).

    Example:
        >>> import numpy as np
        >>> from atmospec.discrepancy import DiscrepancyModel
        >>> w = np.linspace(1.0, 2.0, 50)
        >>> toy = DiscrepancyModel(w, [1000.0], np.full((1, 50), 0.1), np.zeros((1, 1, 50)), "toy")
        >>> f = np.ones((2000, 50))
        >>> d = discrepancy_realisations(toy, w, f, np.full(2000, 1000.0), np.random.default_rng(0))
        >>> round(float(d.std()), 2)
        0.1
    """
    flux = np.atleast_2d(np.asarray(flux, dtype=np.float64))
    t = np.round(np.asarray(teff, dtype=np.float64) / TEFF_STEP) * TEFF_STEP
    out = np.zeros_like(flux)
    for value in np.unique(t):
        idx = np.flatnonzero(t == value)
        var, fac = model.fractional(float(value), wavelength)
        z = rng.standard_normal((idx.size, wavelength.size)) * np.sqrt(var)[None, :]
        if fac.shape[1]:
            z += rng.standard_normal((idx.size, fac.shape[1])) @ fac.T
        out[idx] = amplitude * z * flux[idx]
    return out


def describe(model: DiscrepancySource | None, amplitude: float) -> dict[str, Any] | None:
    """The record of the augmentation stored with a training set (None when off)."""
    if model is None:
        return None
    desc = getattr(model, "describe", None)
    record = desc() if callable(desc) else {"grid": getattr(model, "grid", "")}
    return {**record, "amplitude": float(amplitude)}
