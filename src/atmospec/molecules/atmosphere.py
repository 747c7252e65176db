"""Hydrostatic planetary atmospheres: T-P profiles, H2/He background, mean molecular weight."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from atmospec.errors import ModelInputError
from atmospec.molecules.profiles import AMU, K_B

__all__ = [
    "Planet",
    "Atmosphere",
    "hydrostatic",
    "composition",
    "mean_molecular_weight",
    "guillot_profile",
    "scale_height",
    "MOLECULAR_MASS",
    "HE_H2_RATIO",
    "R_JUP",
    "R_SUN",
]

R_JUP = 7.1492e7  # m, equatorial (IAU 2015 nominal)
R_SUN = 6.957e8  # m (IAU 2015 nominal)
HE_H2_RATIO = 0.17
"""He/H2 by number for a solar background: He/H = 0.085 (Asplund et al. 2009)."""

MOLECULAR_MASS: dict[str, float] = {
    "H2": 2.01588,
    "He": 4.002602,
    "H2O": 18.01528,
    "CO2": 44.0095,
    "CH4": 16.04246,
    "CO": 28.0101,
    "O2": 31.9988,
    "O3": 47.9982,
    "SO2": 64.0638,
    "NH3": 17.03052,
    "HCN": 27.0253,
    "N2": 28.0134,
    "Na": 22.989769,
    "K": 39.0983,
}
"""Molar masses (g/mol = amu per molecule), standard atomic weights."""


@dataclass(frozen=True)
class Planet:
    """Bulk properties that set the geometry of a transit.

    Args:
        radius: planet radius (m) at the reference pressure ``p_ref``.
        gravity: surface gravity (m s^-2) at that radius.
        star_radius: stellar radius (m).
        p_ref: reference pressure (Pa) where the radius is ``radius``; 10 bar by default.

    Example:
        >>> p = Planet.from_units(1.27, 4.3, 0.939)   # WASP-39b-like
        >>> round(p.radius / R_JUP, 2), p.p_ref
        (1.27, 1000000.0)
    """

    radius: float
    gravity: float
    star_radius: float
    p_ref: float = 1e6

    def __post_init__(self) -> None:
        for name in ("radius", "gravity", "star_radius", "p_ref"):
            value = getattr(self, name)
            if not np.isfinite(value) or value <= 0:
                raise ModelInputError(f"Planet.{name} must be positive and finite, got {value!r}")

    @classmethod
    def from_units(
        cls, radius_rjup: float, gravity: float, star_radius_rsun: float, p_ref_bar: float = 10.0
    ) -> Planet:
        """A planet from Jupiter radii, m s^-2, solar radii and bar."""
        return cls(radius_rjup * R_JUP, gravity, star_radius_rsun * R_SUN, p_ref_bar * 1e5)


def composition(vmr: Mapping[str, float], he_h2: float = HE_H2_RATIO) -> dict[str, float]:
    """Complete volume mixing ratios: the trace species plus an H2/He background filling the rest.

    Example:
        >>> c = composition({"H2O": 1e-3})
        >>> round(c["H2"] + c["He"] + c["H2O"], 12), round(c["He"] / c["H2"], 2)
        (1.0, 0.17)
    """
    trace = {k: float(v) for k, v in vmr.items() if k not in ("H2", "He")}
    if any(v < 0 or not np.isfinite(v) for v in trace.values()):
        raise ModelInputError(f"mixing ratios must be finite and >= 0, got {trace}")
    total = sum(trace.values())
    if total >= 1.0:
        raise ModelInputError(f"trace mixing ratios sum to {total:g} >= 1; no room for H2/He")
    rest = 1.0 - total
    out = dict(trace)
    out["H2"] = rest / (1.0 + he_h2)
    out["He"] = rest * he_h2 / (1.0 + he_h2)
    return out


def mean_molecular_weight(vmr: Mapping[str, float]) -> float:
    """Mean molecular weight (amu) of a complete composition (see :func:`composition`).

    Example:
        >>> round(mean_molecular_weight(composition({})), 3)   # solar H2/He
        2.305
    """
    unknown = [k for k in vmr if k not in MOLECULAR_MASS]
    if unknown:
        raise ModelInputError(f"no molecular mass for {unknown}; known: {sorted(MOLECULAR_MASS)}")
    return float(sum(x * MOLECULAR_MASS[k] for k, x in vmr.items()))


def scale_height(temperature: float, mu: float, gravity: float) -> float:
    """Pressure scale height H = k T / (mu m_u g) in metres.

    Example:
        >>> round(scale_height(1000.0, 2.3, 10.0) / 1e3)   # km
        361
    """
    return K_B * temperature / (mu * AMU * gravity)


def guillot_profile(
    pressure: ArrayLike,
    *,
    t_irr: float,
    gravity: float,
    t_int: float = 100.0,
    kappa_ir: float = 0.01,
    gamma: float = 0.4,
    f: float = 0.25,
) -> NDArray[np.float64]:
    """Guillot (2010, eq. 29) analytic irradiated T-P profile.

    Args:
        pressure: Pa.
        t_irr: irradiation temperature (K); ``f = 1/4`` averages over the planet.
        gravity: m s^-2; the thermal optical depth is ``tau = kappa_ir * P / g``.
        t_int: internal temperature (K).
        kappa_ir: infrared opacity (m^2 kg^-1).
        gamma: visible-to-infrared opacity ratio.

    Example:
        >>> t = guillot_profile([1e-1, 1e7], t_irr=1500.0, gravity=10.0)
        >>> bool(t[0] < t[1])
        True
    """
    p = np.asarray(pressure, dtype=float)
    tau = kappa_ir * p / gravity
    s3 = np.sqrt(3.0)
    irr = (
        2.0 / 3.0
        + 1.0 / (gamma * s3)
        + (gamma / s3 - 1.0 / (gamma * s3)) * np.exp(-gamma * tau * s3)
    )
    t4 = 0.75 * t_int**4 * (2.0 / 3.0 + tau) + 0.75 * t_irr**4 * f * irr
    return t4**0.25


@dataclass(frozen=True)
class Atmosphere:
    """A hydrostatic atmosphere on pressure levels, ordered from the bottom up.

    Attributes:
        pressure: Pa, decreasing upwards.
        temperature: K per level.
        radius: m per level (distance from the planet centre).
        vmr: complete, height-independent volume mixing ratios (incl. H2, He).
        mu: mean molecular weight (amu).
        planet: the bulk planet.

    Example:
        >>> atm = hydrostatic(Planet.from_units(1.0, 10.0, 1.0), 1000.0, {}, n_levels=5, p_top=0.1)
        >>> atm.pressure.tolist(), round(atm.mu, 2)   # Pa from the bottom up; solar H2/He
        ([10000000.0, 100000.0, 1000.0, 10.0, 0.1], 2.3)
        >>> f"{atm.number_density[0]:.3g}", (atm.scale_height()[[0, -1]] / 1e3).round().tolist()
        ('7.24e+26', [353.0, 428.0])
    """

    pressure: NDArray[np.float64]
    temperature: NDArray[np.float64]
    radius: NDArray[np.float64]
    vmr: dict[str, float]
    mu: float
    planet: Planet
    meta: dict[str, object] = field(default_factory=dict, compare=False)

    @property
    def number_density(self) -> NDArray[np.float64]:
        """Total number density per level (m^-3), ideal gas."""
        return self.pressure / (K_B * self.temperature)

    def scale_height(self) -> NDArray[np.float64]:
        """Local pressure scale height per level (m), with gravity falling off as 1/r^2."""
        g = self.planet.gravity * (self.planet.radius / self.radius) ** 2
        return K_B * self.temperature / (self.mu * AMU * g)


def hydrostatic(
    planet: Planet,
    temperature: float | ArrayLike | Callable[[NDArray[np.float64]], NDArray[np.float64]],
    vmr: Mapping[str, float],
    *,
    n_levels: int = 130,
    p_bottom: float = 1e7,
    p_top: float = 1e-4,
    constant_gravity: bool = False,
    he_h2: float = HE_H2_RATIO,
) -> Atmosphere:
    """Integrate hydrostatic equilibrium dP/dr = -rho g on log-spaced pressure levels.

    With gravity ``g = g0 (R0/r)^2`` the integral is exact in 1/r:
    ``1/r = 1/R0 + k / (mu m_u g0 R0^2) * int_{ln P_ref}^{ln P} T d ln P`` (trapezoid in
    ln P, exact for an isothermal atmosphere). With ``constant_gravity`` r is linear in the
    same integral (the plane-parallel-gravity assumption of analytic formulae).

    Args:
        planet: radius, gravity at the reference pressure, stellar radius.
        temperature: K; a number (isothermal), one value per level, or a function of P (Pa).
        vmr: trace-species mixing ratios; H2/He fill the rest (ratio ``he_h2``).
        n_levels: number of log-spaced pressure levels from ``p_bottom`` to ``p_top`` (Pa).

    Example:
        >>> atm = hydrostatic(Planet.from_units(1.0, 10.0, 1.0), 1000.0, {"H2O": 1e-3})
        >>> bool(np.all(np.diff(atm.radius) > 0)), round(atm.mu, 2)
        (True, 2.32)
    """
    if not (p_bottom > p_top > 0) or n_levels < 3:
        raise ModelInputError(
            f"need p_bottom > p_top > 0 and n_levels >= 3, got {p_bottom:g}, {p_top:g}, {n_levels}"
        )
    pressure = np.logspace(np.log10(p_bottom), np.log10(p_top), n_levels)
    if callable(temperature):
        temp = np.asarray(temperature(pressure), dtype=float)
    else:
        temp = np.broadcast_to(np.asarray(temperature, dtype=float), pressure.shape).copy()
    if temp.shape != pressure.shape or np.any(~np.isfinite(temp)) or np.any(temp <= 0):
        raise ModelInputError("temperatures must be positive and finite, one per level")
    full = composition(vmr, he_h2)
    mu = mean_molecular_weight(full)
    lnp = np.log(pressure)
    # cumulative integral of T d ln P from the bottom, then shifted to P_ref
    steps = 0.5 * (temp[1:] + temp[:-1]) * np.diff(lnp)
    cum = np.concatenate([[0.0], np.cumsum(steps)])
    ref = np.interp(np.log(planet.p_ref), lnp[::-1], cum[::-1])
    integral = cum - ref
    if constant_gravity:
        radius = planet.radius - K_B / (mu * AMU * planet.gravity) * integral
    else:
        inv_r = (
            1.0 / planet.radius + K_B / (mu * AMU * planet.gravity * planet.radius**2) * integral
        )
        if np.any(inv_r <= 0):
            raise ModelInputError(
                "the atmosphere is not bound: the scale height is too large for this gravity and "
                f"radius (T up to {temp.max():.0f} K, mu {mu:.2f}, g {planet.gravity:g} m/s^2)"
            )
        radius = 1.0 / inv_r
    return Atmosphere(pressure, temp, radius, full, mu, planet)
