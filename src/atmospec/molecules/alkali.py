"""Na and K resonance doublets from NIST line constants, with Voigt profiles."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from atmospec.molecules.opacity import OpacityTable, cell_edges
from atmospec.molecules.profiles import doppler_sigma, voigt_cell_average

__all__ = ["AlkaliLine", "ALKALI_LINES", "ALKALI_MASS", "alkali_table", "PI_R_E"]

PI_R_E = np.pi * 2.8179403262e-15
"""pi times the classical electron radius (m): sigma = pi r_e f phi(nu) with phi in m."""


@dataclass(frozen=True)
class AlkaliLine:
    """One resonance line: vacuum wavelength (nm), oscillator strength f, Einstein A (s^-1).

    Example:
        >>> d2 = AlkaliLine("Na", 589.1583, 0.641, 6.16e7)
        >>> d2 in ALKALI_LINES, round(1e7 / d2.wavelength_nm, 1)   # Na D2; its wavenumber, cm^-1
        (True, 16973.4)
    """

    species: str
    wavelength_nm: float
    f: float
    a: float


ALKALI_LINES: tuple[AlkaliLine, ...] = (
    # NIST Atomic Spectra Database (Kramida et al.), vacuum wavelengths of the resonance lines
    AlkaliLine("Na", 589.1583, 0.641, 6.16e7),  # D2, 3s 2S1/2 - 3p 2P3/2
    AlkaliLine("Na", 589.7558, 0.320, 6.14e7),  # D1, 3s 2S1/2 - 3p 2P1/2
    AlkaliLine("K", 766.7009, 0.670, 3.779e7),  # D2, 4s 2S1/2 - 4p 2P3/2
    AlkaliLine("K", 770.1084, 0.332, 3.734e7),  # D1, 4s 2S1/2 - 4p 2P1/2
)
ALKALI_MASS = {"Na": 22.989769, "K": 39.0983}


def alkali_table(
    species: str,
    wavelength: ArrayLike,
    temperature: ArrayLike,
    pressure: ArrayLike,
    *,
    gamma_per_bar: float = 0.2,
    cutoff: float = 250.0,
) -> OpacityTable:
    """Cell-averaged cross-sections (m^2) of the Na or K doublet on (T, P) nodes.

    sigma(nu) = pi r_e f phi(nu): all atoms are taken to be in the ground state (Q = g = 2
    below 3000 K to better than 1 %) and stimulated emission is negligible (hc nu >> kT).
    Widths: thermal Doppler, natural (A / 4 pi c) plus an impact (van der Waals) half width
    ``gamma_per_bar * (P / 1 bar) * (T / 1000 K)^-0.7`` cm^-1, an order-of-magnitude value for
    alkali lines broadened by H2 (Burrows & Volobuyev 2003 give a few tenths of cm^-1 per bar).
    Profiles are cut ``cutoff`` cm^-1 from the centre (9 nm at Na D, 15 nm at K): the
    Lorentzian far wings of alkali lines are known to be far stronger than the real ones.

    Example:
        >>> lam = np.linspace(0.58, 0.60, 41)
        >>> t = alkali_table("Na", lam, [1000.0], [100.0])
        >>> float(lam[np.argmax(t.sigma[0, 0])])  # the cell holding D2 (589.16 nm, f = 0.641)
        0.589
    """
    lines = [ln for ln in ALKALI_LINES if ln.species == species]
    if not lines:
        raise KeyError(f"no resonance lines for {species!r}; known: {sorted(ALKALI_MASS)}")
    lam = np.asarray(wavelength, dtype=float)
    temps = np.asarray(temperature, dtype=float)
    press = np.asarray(pressure, dtype=float)
    edges_nu = 1e4 / cell_edges(lam)[::-1]
    nu0 = np.array([1e7 / ln.wavelength_nm for ln in lines])
    strength = np.array([PI_R_E * ln.f for ln in lines]) * 0.01  # profile per cm^-1 -> per m^-1
    natural = np.array([ln.a for ln in lines]) / (4 * np.pi * 2.99792458e10)
    sigma = np.zeros((temps.size, press.size, lam.size))
    for it, t in enumerate(temps):
        sg = doppler_sigma(nu0, t, ALKALI_MASS[species])
        for ip, p in enumerate(press):
            gm = natural + gamma_per_bar * (p / 1e5) * (t / 1000.0) ** -0.7
            avg = voigt_cell_average(edges_nu, nu0, strength, sg, gm, cutoff=cutoff)
            sigma[it, ip] = avg[::-1]
    return OpacityTable(species, lam, temps, press, sigma, source="NIST ASD resonance lines")
