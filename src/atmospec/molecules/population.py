"""The simulated planet population: JWST-like planets and hosts, mean molecular weight, star spots."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from atmospec.molecules.atmosphere import MOLECULAR_MASS, composition, mean_molecular_weight

__all__ = [
    "Population",
    "R_EARTH_RJUP",
    "R_JUP_RSUN",
    "blackbody_ratio",
    "gravity",
    "heavy_filler",
    "mean_log_mass",
    "spot_contamination",
]

R_JUP_M = 7.1492e7
R_EARTH_RJUP = 6.3781e6 / R_JUP_M
"""Earth's equatorial radius in Jupiter radii (IAU 2015 nominal values)."""
R_JUP_RSUN = R_JUP_M / 6.957e8

M_EARTH_KG = 5.9722e24
R_EARTH_M = 6.3781e6
_G = 6.6743e-11
_H = 6.62607015e-34
_C = 2.99792458e8
_KB = 1.380649e-23


def blackbody_ratio(
    wavelength: NDArray[np.float64], t_spot: float, t_phot: float
) -> NDArray[np.float64]:
    """Planck ratio B(lambda, t_spot) / B(lambda, t_phot) at ``wavelength`` (micron).

    Example:
        >>> float(blackbody_ratio(np.array([1.0]), 3000.0, 3000.0)[0])
        1.0
    """
    x = _H * _C / (np.asarray(wavelength, float) * 1e-6 * _KB)
    return np.expm1(x / t_phot) / np.expm1(x / t_spot)


def spot_contamination(
    wavelength: NDArray[np.float64], fraction: float, t_spot: float, t_phot: float
) -> NDArray[np.float64]:
    """Transit light source factor (Rackham et al. 2018, eq. 2): observed depth / true depth.

    ``1 / (1 - f (1 - B(T_spot) / B(T_phot)))`` for unocculted spots (T_spot < T_phot, factor
    > 1) or faculae (T_spot > T_phot, factor < 1) covering a fraction ``f`` of the disc. The
    stellar spectra are blackbodies here: the molecular bands of cool spots (H2O in M dwarfs)
    are not modelled.

    Example:
        >>> lam = np.array([0.5, 5.0])
        >>> c = spot_contamination(lam, 0.1, 2800.0, 3300.0)
        >>> bool(c[0] > c[1] > 1.0)    # stronger in the optical
        True
    """
    ratio = blackbody_ratio(wavelength, t_spot, t_phot)
    return 1.0 / (1.0 - fraction * (1.0 - ratio))


def mean_log_mass(radius_rearth: float | NDArray[np.float64]) -> NDArray[np.float64]:
    """Mean log10 mass (Earth masses) at a radius (Earth radii): Chen & Kipping (2017) inverted.

    Their Terran branch ``R = 1.008 M^0.279`` below 2.04 M_earth (1.23 R_earth) and their
    Neptunian branch ``R proportional to M^0.589`` above it, continued to the largest radii:
    their Jovian branch is flat (radius nearly independent of mass), so it cannot be inverted,
    and the continued Neptunian branch gives the light, inflated hot Jupiters transmission
    spectroscopy favours (0.27 M_Jup at 1 R_Jup, 0.9 M_Jup at 2 R_Jup).

    Example:
        >>> round(float(10 ** mean_log_mass(1.008)), 2)     # Earth
        1.0
        >>> round(float(10 ** mean_log_mass(3.865)), 1)     # Neptune: 17.1 M_earth measured
        14.3
    """
    r = np.asarray(radius_rearth, dtype=float)
    r_break = 1.008 * 2.04**0.279
    terran = np.log10(r / 1.008) / 0.279
    neptunian = np.log10(2.04) + np.log10(r / r_break) / 0.589
    return np.where(r < r_break, terran, neptunian)


def gravity(mass_mearth: float, radius_rjup: float) -> float:
    """Surface gravity (m s^-2) of a planet of ``mass_mearth`` Earth masses and ``radius_rjup``.

    Example:
        >>> round(gravity(317.83, 1.0), 1)    # Jupiter at its equatorial radius: 24.8 m/s^2
        24.8
    """
    r = radius_rjup * R_JUP_M
    return float(_G * mass_mearth * M_EARTH_KG / r**2)


def heavy_filler(trace: Mapping[str, float], mu: float, filler: str = "N2") -> dict[str, float]:
    """Add an opacity-free heavy gas so that the mean molecular weight is ``mu`` (amu).

    High-metallicity atmospheres have mean molecular weights well above the solar 2.3; the
    filler (N2 by default) stands for the metals without opacity here. If the trace gases
    already give ``mu`` or more, they are returned unchanged.

    Example:
        >>> vmr = heavy_filler({"H2O": 1e-3}, 5.0)
        >>> round(mean_molecular_weight(composition(vmr)), 3)
        5.0
    """
    base = mean_molecular_weight(composition(trace))
    if base >= mu:
        return dict(trace)
    # mu is linear in x: mu(x) = base + x * (m_filler - mu_background) with H2/He shrinking
    bg = composition({})
    mu_bg = mean_molecular_weight(bg)
    rest = 1.0 - sum(trace.values())
    x = (mu - base) / (MOLECULAR_MASS[filler] - mu_bg)
    x = min(x, 0.999 * rest)
    return {**trace, filler: float(x)}


@dataclass(frozen=True)
class Population:
    """Planets JWST observes: sizes, temperatures, hosts, metallicity, clouds, hazes, spots.

    Uniform ranges unless named ``log_*`` (uniform in log10). The planet's mass follows its
    radius (:func:`mean_log_mass`, Chen & Kipping 2017) with a log-normal scatter of
    ``mass_scatter_dex`` (rocky planets below 1.23 R_earth; larger planets, widened from
    their 0.1 dex so that puffy planets such as WASP-107b, 0.41 dex below the relation, and
    dense ones such as Jupiter, 0.56 dex above, stay inside 2 sigma), so the gravity is
    physical: mostly 3-30 m/s^2, with low-gravity, extended atmospheres as rare as observed
    rather than drawn independently of the radius. Each molecule is switched on with
    probability ``p_on`` (log-uniform mixing ratio). The mean molecular weight ``mu`` ranges
    from solar (2.3) to 8 amu (about 1000x solar metallicity for H2-dominated envelopes), with
    an opacity-free filler gas making up the difference. Hosts smaller than ``m_dwarf_rsun``
    carry unocculted spots or faculae with probability ``p_spots`` (Rackham et al. 2018).
    The nuisance absorber is a Gaussian band at a random wavelength, standing for species
    without opacity here (SO2, NH3, ...), never labelled.

    Example:
        >>> p = Population().sample(np.random.default_rng(0))
        >>> 200 <= p["temperature"] <= 2500
        True
    """

    molecules: tuple[str, ...] = ("H2O", "CO2", "CH4", "CO", "Na", "K")
    p_on: float = 0.5
    log_vmr: Mapping[str, tuple[float, float]] = field(
        default_factory=lambda: {
            "H2O": (-8.0, -1.0),
            "CO2": (-9.0, -2.0),
            "CH4": (-9.0, -1.5),
            "CO": (-7.0, -1.0),
            "Na": (-11.0, -4.0),
            "K": (-12.0, -5.0),
        }
    )
    temperature: tuple[float, float] = (200.0, 2500.0)
    log_radius_rjup: tuple[float, float] = (float(np.log10(R_EARTH_RJUP)), float(np.log10(2.0)))
    mass_scatter_dex: tuple[float, float] = (0.1, 0.3)
    mass_range_mearth: tuple[float, float] = (0.1, 4000.0)
    log_star_radius_rsun: tuple[float, float] = (-1.0, float(np.log10(1.5)))
    log_mu: tuple[float, float] = (float(np.log10(2.3)), float(np.log10(8.0)))
    p_clear: float = 0.3
    log_p_cloud_bar: tuple[float, float] = (-5.0, 1.0)
    p_haze: float = 0.4
    log_haze: tuple[float, float] = (0.0, 5.0)
    haze_slope: tuple[float, float] = (-10.0, -1.0)
    p_nuisance: float = 0.5
    nuisance_wavelength: tuple[float, float] = (0.5, 12.0)
    nuisance_rel_width: tuple[float, float] = (0.005, 0.05)
    log_nuisance_peak: tuple[float, float] = (-31.0, -25.0)
    m_dwarf_rsun: float = 0.6
    p_spots: float = 0.5
    spot_fraction: tuple[float, float] = (0.0, 0.3)
    spot_delta_t: tuple[float, float] = (-1000.0, 500.0)
    log_noise_scale: tuple[float, float] = (float(np.log10(0.35)), float(np.log10(3.0)))
    max_radius_ratio: float = 0.3

    def sample(self, rng: np.random.Generator) -> dict[str, float]:
        """One planet: a flat dict (log10 VMR = -inf for switched-off molecules)."""
        u = rng.uniform
        out: dict[str, float] = {}
        for m in self.molecules:
            on = rng.random() < self.p_on
            out[f"log_{m}"] = float(u(*self.log_vmr[m])) if on else -np.inf
        out["temperature"] = float(u(*self.temperature))
        while True:  # planet and host drawn together: R_p / R_s <= max_radius_ratio
            rp = float(10 ** u(*self.log_radius_rjup))
            rs = float(10 ** u(*self.log_star_radius_rsun))
            if rp * R_JUP_RSUN <= self.max_radius_ratio * rs:
                break
        out["radius_rjup"] = rp
        r_earth = rp / R_EARTH_RJUP
        scatter = self.mass_scatter_dex[0 if r_earth < 1.008 * 2.04**0.279 else 1]
        log_m = float(mean_log_mass(r_earth)) + scatter * float(rng.standard_normal())
        mass = float(np.clip(10**log_m, *self.mass_range_mearth))  # 13 M_Jup: deuterium burning
        out["mass_mearth"] = mass
        out["gravity"] = gravity(mass, rp)
        out["star_radius_rsun"] = rs
        out["mu"] = float(10 ** u(*self.log_mu))
        out["log_p_cloud_bar"] = (
            np.inf if rng.random() < self.p_clear else float(u(*self.log_p_cloud_bar))
        )
        haze = rng.random() < self.p_haze
        out["log_haze"] = float(u(*self.log_haze)) if haze else -np.inf
        out["haze_slope"] = float(u(*self.haze_slope))
        nuis = rng.random() < self.p_nuisance
        out["nuisance_wavelength"] = float(
            np.exp(u(np.log(self.nuisance_wavelength[0]), np.log(self.nuisance_wavelength[1])))
        )
        out["nuisance_rel_width"] = float(u(*self.nuisance_rel_width))
        out["log_nuisance_peak"] = float(u(*self.log_nuisance_peak)) if nuis else -np.inf
        # photosphere from an approximate main-sequence radius-temperature relation (M to F)
        out["t_star"] = float(
            np.interp(rs, [0.1, 0.2, 0.5, 0.6, 1.0, 1.5], [2700, 3100, 3700, 3900, 5800, 6700])
        )
        spots = rs < self.m_dwarf_rsun and rng.random() < self.p_spots
        out["spot_fraction"] = float(u(*self.spot_fraction)) if spots else 0.0
        out["spot_delta_t"] = float(u(*self.spot_delta_t))
        out["noise_scale"] = float(10 ** u(*self.log_noise_scale))
        return out
