"""Free retrieval of a transmission spectrum: prior, binned forward model and offset-free likelihood.

A :class:`Retrieval` ties one observed spectrum to the transmission forward model
(:class:`~atmospec.molecules.forward.TransmissionModel`): an isothermal atmosphere of
temperature ``T``, trace gases with free log10 mixing ratios (H2/He filling the rest), the
radius at 10 bar, a grey cloud deck (``log_p_cloud_bar``) and a haze of slope -4
(``log_haze``). Gravity and stellar radius are given (they set the scale height with the
temperature). Every instrument has a free depth offset; offsets are marginalised analytically
(flat prior of half-width :data:`OFFSET_HALF_RANGE`), so the likelihood depends only on the
per-instrument residuals: the same quantity the amortised posterior
(:mod:`atmospec.molecules.abundances`) and nested sampling (:mod:`atmospec.molecules.nested`)
read, so their posteriors target the same distribution.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from atmospec.errors import CoverageError, ModelInputError
from atmospec.molecules.binning import Binning
from atmospec.molecules.spectrum import TransmissionSpectrum

__all__ = [
    "DEFAULT_LOG_VMR",
    "OFFSET_HALF_RANGE",
    "Retrieval",
    "check_population",
]

DEFAULT_LOG_VMR: dict[str, tuple[float, float]] = {
    "H2O": (-9.0, -1.0),
    "CO2": (-10.0, -1.5),
    "CH4": (-10.0, -1.5),
    "CO": (-8.0, -1.0),
    "Na": (-12.0, -3.0),
    "K": (-13.0, -4.0),
}
"""Prior ranges (log10 volume mixing ratio, uniform) of the retrieved molecules."""

OFFSET_HALF_RANGE = 0.01
"""Half-width of the flat prior on each instrument's depth offset (fraction): it enters the
evidence only as a constant per instrument, identical with and without a molecule."""

TEMPERATURE_RANGE = (200.0, 2500.0)
CLOUD_RANGE = (-6.0, 2.0)  # log10 bar
HAZE_RANGE = (-2.0, 6.0)  # log10 haze factor
RADIUS_SPAN = (0.7, 1.3)  # times the radius of the median depth


def check_population(spec: TransmissionSpectrum) -> None:
    """Refuse a spectrum the retrieval's prior does not cover, saying which assumption it breaks.

    The median depth must lie within the simulated population's range and the depth spread
    within what its atmospheres and spots produce: the range recorded with the shipped
    any-binning classifier (:func:`~atmospec.molecules.anybin.shipped_population_range`).

    Raises:
        OutOfGridError: naming the spectrum and the broken assumption.

    Example:
        >>> lam = np.array([1.0, 2.0, 3.0])
        >>> check_population(TransmissionSpectrum(lam, np.full(3, 0.1), np.full(3, 0.02),
        ...                                       np.full(3, 1e-4), np.full(3, "a"), "ok"))
        >>> check_population(TransmissionSpectrum(lam, np.full(3, 0.1), np.full(3, 0.3),
        ...                                       np.full(3, 1e-4), np.full(3, "a"), "deep"))
        Traceback (most recent call last):
        ...
        atmospec.errors.OutOfGridError: deep: median transit depth 0.3 is outside the simulated ...
    """
    from atmospec.molecules.anybin import shipped_population_range

    shipped_population_range().check(spec)


@dataclass
class Retrieval:
    """One spectrum, the forward model and the prior box: likelihood, prior transform, simulator.

    Build it with :meth:`build`. Parameters (in order): ``log_<molecule>`` for each retrieved
    molecule, ``temperature`` (K), ``radius_rjup`` (at 10 bar), ``log_p_cloud_bar``,
    ``log_haze``.

    Example:
        >>> r = Retrieval.build(spec, gravity=4.3, star_radius_rsun=0.94)   # doctest: +SKIP
        >>> r.log_likelihood(r.prior_transform(np.full(r.n_params, 0.5)))   # doctest: +SKIP
    """

    spec: TransmissionSpectrum
    simulator: Any
    molecules: tuple[str, ...]
    gravity: float
    star_radius_rsun: float
    bounds: dict[str, tuple[float, float]]
    assumptions: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.binning = Binning.from_spectrum(self.spec)
        self.matrix = self.binning.matrix(self.simulator.wavelength)
        self.ids = self.binning.instrument_ids()
        self.n_inst = int(self.ids.max()) + 1
        self.w = 1.0 / self.spec.error**2
        self.w_inst = np.bincount(self.ids, weights=self.w, minlength=self.n_inst)
        self._norm = float(
            -0.5 * np.sum(np.log(2 * np.pi * self.spec.error**2))
            + 0.5 * np.sum(np.log(2 * np.pi / self.w_inst))
            - self.n_inst * np.log(2 * OFFSET_HALF_RANGE)
        )
        self.data_residual = self.residual(self.spec.depth)[0]

    # -- construction -------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        spec: TransmissionSpectrum,
        simulator: Any = None,
        *,
        molecules: Sequence[str] = tuple(DEFAULT_LOG_VMR),
        gravity: float = 10.0,
        star_radius_rsun: float = 1.0,
        log_vmr: Mapping[str, tuple[float, float]] | None = None,
        trim: bool = False,
    ) -> Retrieval:
        """The retrieval of ``spec``; refuses spectra the prior or the opacities do not cover.

        Raises:
            CoverageError: bins beyond the opacities' wavelengths (unless ``trim``).
            OutOfGridError: a depth level or spread outside the population.
            ModelInputError: a molecule without opacity or prior range.
        """
        from atmospec.molecules.atmosphere import R_JUP, R_SUN
        from atmospec.molecules.dataset import build_simulator

        sim = simulator if simulator is not None else build_simulator(t_max=2600.0)
        ranges = dict(DEFAULT_LOG_VMR)
        ranges.update(log_vmr or {})
        mols = tuple(molecules)
        bad = [m for m in mols if m not in sim.species or m not in ranges]
        if bad:
            raise ModelInputError(
                f"no opacity or prior range for {bad}; retrievable: "
                f"{[m for m in sim.species if m in ranges]}"
            )
        if not (gravity > 0 and star_radius_rsun > 0):
            raise ModelInputError("gravity and stellar radius must be positive")
        lam = sim.wavelength
        lo, hi = float(lam[0]), float(lam[-1])
        if trim:
            spec = spec.within(lo, hi)
        else:
            outside = (spec.wavelength - spec.half_width < lo) | (
                spec.wavelength + spec.half_width > hi
            )
            if outside.any():
                raise CoverageError(
                    f"{spec.name}: {int(outside.sum())} bins lie outside {lo:.3g}-{hi:.3g} um, "
                    "where the forward model has no opacities; leave them out with --trim"
                )
        check_population(spec)
        r0 = float(np.sqrt(np.median(spec.depth)) * star_radius_rsun * R_SUN / R_JUP)
        bounds: dict[str, tuple[float, float]] = {f"log_{m}": ranges[m] for m in mols}
        bounds["temperature"] = TEMPERATURE_RANGE
        bounds["radius_rjup"] = (RADIUS_SPAN[0] * r0, RADIUS_SPAN[1] * r0)
        bounds["log_p_cloud_bar"] = CLOUD_RANGE
        bounds["log_haze"] = HAZE_RANGE
        notes = [
            f"gravity {gravity:g} m/s^2 and stellar radius {star_radius_rsun:g} R_sun given; "
            "isothermal, grey cloud deck, haze slope -4, H2/He background",
            f"{len(spec.instruments)} instrument(s), each with a free offset (marginalised)",
            "uniform priors: " + ", ".join(f"{k} {a:.3g}..{b:.3g}" for k, (a, b) in bounds.items()),
            *spec.assumptions,
        ]
        return cls(spec, sim, mols, float(gravity), float(star_radius_rsun), bounds, notes)

    def without(self, molecule: str) -> Retrieval:
        """The same retrieval with ``molecule`` removed (its mixing ratio zero)."""
        mols = tuple(m for m in self.molecules if m != molecule)
        bounds = {k: v for k, v in self.bounds.items() if k != f"log_{molecule}"}
        return Retrieval(
            self.spec,
            self.simulator,
            mols,
            self.gravity,
            self.star_radius_rsun,
            bounds,
            [*self.assumptions, f"{molecule} removed"],
        )

    # -- parameters ----------------------------------------------------------------------
    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(self.bounds)

    @property
    def n_params(self) -> int:
        return len(self.bounds)

    @property
    def low(self) -> NDArray[np.float64]:
        return np.array([b[0] for b in self.bounds.values()])

    @property
    def high(self) -> NDArray[np.float64]:
        return np.array([b[1] for b in self.bounds.values()])

    def prior_transform(self, u: ArrayLike) -> NDArray[np.float64]:
        """Unit cube -> parameters (uniform box)."""
        return self.low + (self.high - self.low) * np.asarray(u, dtype=float)

    def digest(self) -> str:
        """sha256 (16 hex) of everything that defines this retrieval: bins, errors, instruments,
        prior box, gravity, stellar radius, model wavelengths and opacity species."""
        h = hashlib.sha256()
        for a in (self.spec.wavelength, self.spec.half_width, self.spec.error):
            h.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
        h.update(
            json.dumps(
                [
                    self.spec.instrument.tolist(),
                    {k: list(v) for k, v in self.bounds.items()},
                    self.gravity,
                    self.star_radius_rsun,
                    list(self.simulator.species),
                    int(getattr(self.simulator, "n_levels", 0)),
                ]
            ).encode()
        )
        h.update(np.ascontiguousarray(self.simulator.wavelength, dtype=np.float64).tobytes())
        return h.hexdigest()[:16]

    # -- model -----------------------------------------------------------------------------
    def model(self, theta: ArrayLike) -> NDArray[np.float64]:
        """Binned depths (no offsets) for one parameter vector.

        Raises:
            ModelInputError: an unbound atmosphere (scale height too large for the gravity).
        """
        from atmospec.molecules.atmosphere import R_JUP, R_SUN, Planet
        from atmospec.molecules.forward import Clouds

        p = dict(zip(self.param_names, np.asarray(theta, dtype=float), strict=True))
        vmr = {m: 10 ** p[f"log_{m}"] for m in self.molecules}
        planet = Planet(p["radius_rjup"] * R_JUP, self.gravity, self.star_radius_rsun * R_SUN)
        clouds = Clouds(p_cloud=10 ** p["log_p_cloud_bar"] * 1e5, haze_factor=10 ** p["log_haze"])
        depth = self.simulator.transit_depth(planet, p["temperature"], vmr, clouds)
        return self.binning.apply(depth, self.matrix)

    def residual(self, depth: ArrayLike) -> NDArray[np.float64]:
        """Depths ``(n, n_bins)`` minus each instrument's error-weighted mean (offsets removed)."""
        d = np.atleast_2d(np.asarray(depth, dtype=float))
        onehot = np.eye(self.n_inst)[self.ids]  # (n_bins, n_inst)
        means = (d * self.w) @ onehot / self.w_inst
        return d - means[:, self.ids]

    def log_likelihood(self, theta: ArrayLike) -> float:
        """Gaussian log-likelihood with every instrument offset marginalised (flat prior)."""
        try:
            m = self.model(theta)
        except ModelInputError:
            return -1e300
        r = self.residual(m)[0] - self.data_residual
        return float(-0.5 * np.sum(self.w * r**2) + self._norm)

    def chi2(self, theta: ArrayLike) -> float:
        """Chi-square of the data with the best offsets for ``theta``."""
        r = self.residual(self.model(theta))[0] - self.data_residual
        return float(np.sum(self.w * r**2))

    def offsets(
        self, theta: ArrayLike, seed: int = 0, n: int = 500
    ) -> dict[str, NDArray[np.float64]]:
        """Posterior draws of each instrument's depth offset (data minus model, fraction) for
        posterior draws ``theta`` (the first ``n`` rows are used).

        Given the parameters, an offset with a flat prior is Gaussian around the error-weighted
        mean of data minus model, with variance ``1 / sum(1 / error^2)`` over its bins; a draw
        of it for each parameter draw is a draw of the offsets' marginal posterior.
        """
        th = np.atleast_2d(np.asarray(theta, dtype=float))[:n]
        rng = np.random.default_rng(seed)
        names = self.spec.instruments
        out = np.empty((th.shape[0], self.n_inst))
        for i, t in enumerate(th):
            diff = (self.spec.depth - self.model(t)) * self.w
            out[i] = np.bincount(self.ids, weights=diff, minlength=self.n_inst) / self.w_inst
        out += rng.standard_normal(out.shape) / np.sqrt(self.w_inst)
        return {names[k]: out[:, k] for k in range(self.n_inst)}

    def simulate(
        self, n: int, seed: int = 0, *, noise_draws: int = 1
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """Parameters from the prior and their binned noise-free depths (unbound atmospheres
        are redrawn: the prior is the box restricted to bound atmospheres, as in the likelihood).

        Returns ``(theta (n, d), depth (n, n_bins), noisy residuals (n * noise_draws, n_bins))``
        where each noisy spectrum is the depth plus Gaussian noise of the observed error bars,
        offsets removed; rows of the noisy block repeat ``theta`` ``noise_draws`` times.
        """
        from tqdm.auto import tqdm

        rng = np.random.default_rng(seed)
        theta = np.empty((n, self.n_params))
        depth = np.empty((n, len(self.spec)))
        i = 0
        with tqdm(total=n, desc="simulating", unit="planet", disable=n < 1000) as bar:
            while i < n:
                t = self.prior_transform(rng.random(self.n_params))
                try:
                    depth[i] = self.model(t)
                except ModelInputError:
                    continue
                theta[i] = t
                i += 1
                bar.update()
        noisy = np.repeat(depth, noise_draws, axis=0)
        noisy += self.spec.error * rng.standard_normal(noisy.shape)
        return theta, depth, self.residual(noisy)
