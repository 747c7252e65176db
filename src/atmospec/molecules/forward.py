"""Transmission forward model: optical depth along chords through the limb, and its analytic check."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from atmospec.errors import ModelInputError
from atmospec.molecules.atmosphere import Atmosphere, Planet, hydrostatic
from atmospec.molecules.cia import CIATable
from atmospec.molecules.opacity import (
    OpacityTable,
    haze_cross_section,
    rayleigh_h2,
    rayleigh_he,
)
from atmospec.molecules.profiles import AMU

__all__ = [
    "Clouds",
    "Simulator",
    "TransmissionModel",
    "path_lengths",
    "heng_kitzmann_radius",
    "EULER_GAMMA",
]

EULER_GAMMA = 0.5772156649015329


@dataclass(frozen=True)
class Clouds:
    """Aerosols: an opaque grey deck below ``p_cloud`` (Pa; None = clear) and a power-law haze.

    The haze cross-section per gas molecule is ``haze_factor * 5.31e-31 m^2 *
    (lambda / 0.35 um)^haze_slope`` (see :func:`~atmospec.molecules.opacity.haze_cross_section`).

    Example:
        >>> model = TransmissionModel(np.array([0.4, 1.0, 4.0]), n_levels=40)   # Rayleigh only
        >>> def ppm(clouds):
        ...     d = model.transit_depth(Planet.from_units(1.0, 10.0, 1.0), 1000.0, {}, clouds)
        ...     return (d * 1e6).round().tolist()
        >>> ppm(Clouds())   # clear: the Rayleigh slope
        [11251.0, 10821.0, 10342.0]
        >>> ppm(Clouds(p_cloud=1e2))   # an opaque deck at 1 mbar flattens it
        [11618.0, 11615.0, 11615.0]
        >>> ppm(Clouds(haze_factor=100.0))   # a haze (factor 100) raises and steepens it
        [11820.0, 11367.0, 10730.0]
    """

    p_cloud: float | None = None
    haze_factor: float = 0.0
    haze_slope: float = -4.0


@runtime_checkable
class Simulator(Protocol):
    """What a transmission forward model provides; any object with these members can stand in.

    ``transit_depth`` returns (R_p(lambda) / R_s)^2 on ``wavelength`` (micron) for trace-species
    mixing ratios ``vmr`` (H2/He background filling the rest). ``extra_sigma``, if given, is an
    additional cross-section per gas molecule (m^2, on ``wavelength``), e.g. a nuisance absorber.

    Example:
        >>> class Flat:   # a stand-in: a flat 1 % transit
        ...     wavelength, species = np.array([1.0, 2.0]), ("H2O",)
        ...     def transit_depth(self, planet, temperature, vmr, clouds=Clouds(), *,
        ...                       extra_sigma=None):
        ...         return np.full(2, 0.01)
        >>> isinstance(Flat(), Simulator), isinstance(object(), Simulator)
        (True, False)
        >>> isinstance(TransmissionModel(np.array([1.0, 2.0])), Simulator)
        True
    """

    @property
    def wavelength(self) -> NDArray[np.float64]: ...

    @property
    def species(self) -> tuple[str, ...]: ...

    def transit_depth(
        self,
        planet: Planet,
        temperature: float,
        vmr: Mapping[str, float],
        clouds: Clouds = ...,
        *,
        extra_sigma: NDArray[np.float64] | None = None,
    ) -> NDArray[np.float64]: ...


def path_lengths(impact: ArrayLike, radius: ArrayLike) -> NDArray[np.float64]:
    """Chord length (m) through each spherical shell ``[r_s, r_s+1]`` for each impact parameter.

    Returns ``(n_impact, n_shells)``: ``2 (sqrt(r_{s+1}^2 - b^2) - sqrt(r_s^2 - b^2))`` with
    negative radicands set to zero (shells below the chord).

    Example:
        >>> path_lengths([1.0], [1.0, 2.0]).round(4).tolist()   # 2 sqrt(3)
        [[3.4641]]
    """
    b2 = np.asarray(impact, dtype=float)[:, None] ** 2
    r2 = np.asarray(radius, dtype=float) ** 2
    root = np.sqrt(np.clip(r2[None, :] - b2, 0.0, None))
    return 2.0 * np.diff(root, axis=1)


class TransmissionModel:
    """Numerical transit depths of a hydrostatic atmosphere seen through the limb.

    For each chord at impact parameter b the optical depth is the sum over spherical shells of
    (shell extinction) x (chord length in the shell); the depth is
    ``D = (r_c^2 + int_{r_c}^{r_top} 2 b (1 - exp(-tau(b))) db) / R_s^2``, with everything
    below ``r_c`` (the cloud top or the bottom level) opaque. Shell extinction: molecular
    cross-sections interpolated on their (T, P) nodes (linear in sigma, in T and log P), H2/He
    Rayleigh scattering, haze, optional extra absorber, and collision-induced absorption.

    Args:
        wavelength: model wavelengths (micron); tables are cell-averaged onto them.
        opacities: cross-section tables, keyed by species (or a sequence, keyed by ``.name``).
        cia: collision-induced absorption tables of background pairs (``H2-H2``, ``H2-He``).
        rayleigh: include H2 and He Rayleigh scattering.
        n_levels: number of log-spaced pressure levels of the atmosphere.
        p_bottom: pressure (Pa) of the bottom level, opaque below.
        p_top: pressure (Pa) of the top level.

    Example:
        >>> lam = np.linspace(1.0, 2.0, 5)
        >>> flat = OpacityTable("H2O", lam, np.array([1000.0]), np.array([1.0, 1e7]),
        ...                     np.full((1, 2, 5), 1e-27))
        >>> model = TransmissionModel(lam, [flat])
        >>> d = model.transit_depth(Planet.from_units(1.0, 10.0, 1.0), 1000.0, {"H2O": 1e-3})
        >>> bool(0.0104 < d[0] < 0.0115)
        True
    """

    def __init__(
        self,
        wavelength: ArrayLike,
        opacities: Mapping[str, OpacityTable] | Sequence[OpacityTable] = (),
        cia: Sequence[CIATable] = (),
        *,
        rayleigh: bool = True,
        n_levels: int = 130,
        p_bottom: float = 1e7,
        p_top: float = 1e-4,
    ) -> None:
        lam = np.asarray(wavelength, dtype=float)
        if lam.ndim != 1 or lam.size < 2 or np.any(np.diff(lam) <= 0):
            raise ModelInputError("model wavelengths must be a 1-D increasing array (micron)")
        self._wavelength = lam
        tables = (
            dict(opacities) if isinstance(opacities, Mapping) else {t.name: t for t in opacities}
        )
        self.tables: dict[str, OpacityTable] = {}
        for name, tab in tables.items():
            if tab.wavelength.shape != lam.shape or not np.allclose(tab.wavelength, lam):
                tab = tab.resample(lam)
            self.tables[name] = tab
        self._flat = {k: t.sigma.reshape(-1, lam.size) for k, t in self.tables.items()}
        self.groups: dict[tuple[bytes, bytes, bytes], list[str]] = {}
        for name, tab in self.tables.items():
            self.groups.setdefault(tab.grid_key, []).append(name)
        self.cia = list(cia)
        self._cia_k = [c.on_wavelength(lam) for c in self.cia]
        self.rayleigh = rayleigh
        self._ray = (rayleigh_h2(lam), rayleigh_he(lam)) if rayleigh else None
        self.n_levels, self.p_bottom, self.p_top = n_levels, p_bottom, p_top

    @property
    def wavelength(self) -> NDArray[np.float64]:
        return self._wavelength

    @property
    def species(self) -> tuple[str, ...]:
        return tuple(self.tables)

    def atmosphere(
        self,
        planet: Planet,
        temperature: float | ArrayLike,
        vmr: Mapping[str, float],
        *,
        constant_gravity: bool = False,
    ) -> Atmosphere:
        """The hydrostatic atmosphere on this model's pressure levels."""
        return hydrostatic(
            planet,
            temperature,
            vmr,
            n_levels=self.n_levels,
            p_bottom=self.p_bottom,
            p_top=self.p_top,
            constant_gravity=constant_gravity,
        )

    def _chord_terms(
        self,
        atm: Atmosphere,
        clouds: Clouds,
        extra_sigma: NDArray[np.float64] | None,
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """Impact parameters b, coefficients C and spectra K with tau(b) = C @ K.

        Each row of K is one opacity "node" (a (T, P) table node, a CIA temperature, the
        continuum); C holds the matching column densities along each chord.
        """
        r, p = atm.radius, atm.pressure
        if clouds.p_cloud is not None and clouds.p_cloud < p[0]:
            r_c = float(np.interp(np.log(clouds.p_cloud), np.log(p[::-1]), r[::-1]))
        else:
            r_c = float(r[0])
        impact = np.concatenate([[r_c], r[r > r_c * (1 + 1e-12)]])
        geom = path_lengths(impact, r)  # (n_b, n_shells)
        p_sh = np.sqrt(p[1:] * p[:-1])
        t_sh = 0.5 * (atm.temperature[1:] + atm.temperature[:-1])
        n_sh = p_sh / (1.380649e-23 * t_sh)
        lam = self._wavelength
        sigma_cont = np.zeros(lam.size)
        if self._ray is not None:
            sigma_cont += (
                atm.vmr.get("H2", 0.0) * self._ray[0] + atm.vmr.get("He", 0.0) * self._ray[1]
            )
        if clouds.haze_factor > 0:
            sigma_cont += haze_cross_section(lam, clouds.haze_factor, clouds.haze_slope)
        if extra_sigma is not None:
            sigma_cont += extra_sigma
        coefs = [geom @ n_sh[:, None]]
        spectra = [sigma_cont[None, :]]
        for names in self.groups.values():
            present = [m for m in names if atm.vmr.get(m, 0.0) > 0]
            if not present:
                continue
            weights = self.tables[present[0]].node_weights(t_sh, p_sh)  # (n_shells, n_nodes)
            active = np.nonzero(weights.any(axis=0))[0]
            kappa = atm.vmr[present[0]] * self._flat[present[0]][active]
            for m in present[1:]:
                kappa += atm.vmr[m] * self._flat[m][active]
            coefs.append(geom @ (n_sh[:, None] * weights[:, active]))
            spectra.append(kappa)
        for table, k in zip(self.cia, self._cia_k, strict=True):
            xa, xb = atm.vmr.get(table.pair[0], 0.0), atm.vmr.get(table.pair[1], 0.0)
            if xa * xb == 0:
                continue
            wt = table.temperature_weights(t_sh)
            active = np.nonzero(wt.any(axis=0))[0]
            coefs.append(geom @ ((n_sh**2 * xa * xb)[:, None] * wt[:, active]))
            spectra.append(k[active])
        return impact, np.hstack(coefs), np.vstack(spectra)

    def optical_depth(
        self,
        atm: Atmosphere,
        clouds: Clouds = Clouds(),
        *,
        extra_sigma: NDArray[np.float64] | None = None,
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Impact parameters (m, from the cloud top up) and chord optical depths ``(n_b, n_wave)``."""
        impact, coefs, spectra = self._chord_terms(atm, clouds, extra_sigma)
        return impact, coefs @ spectra

    def depth_from_atmosphere(
        self,
        atm: Atmosphere,
        clouds: Clouds = Clouds(),
        *,
        extra_sigma: NDArray[np.float64] | None = None,
    ) -> NDArray[np.float64]:
        """Transit depth (R_p(lambda)/R_s)^2 of a given atmosphere."""
        impact, coefs, spectra = self._chord_terms(atm, clouds, extra_sigma)
        tau = coefs @ spectra
        np.expm1(np.negative(tau, out=tau), out=tau)  # tau <- -(1 - exp(-tau))
        # trapezoid weights of int 2 b (1 - e^-tau) db over the impact parameters
        db = np.diff(impact)
        w = np.zeros(impact.size)
        w[:-1] += 0.5 * db
        w[1:] += 0.5 * db
        area = impact[0] ** 2 - (2.0 * impact * w) @ tau
        return area / atm.planet.star_radius**2

    def transit_depth(
        self,
        planet: Planet,
        temperature: float | ArrayLike,
        vmr: Mapping[str, float],
        clouds: Clouds = Clouds(),
        *,
        extra_sigma: NDArray[np.float64] | None = None,
        constant_gravity: bool = False,
    ) -> NDArray[np.float64]:
        """Transit depth on :attr:`wavelength` for a planet, a temperature (K) and mixing ratios."""
        atm = self.atmosphere(planet, temperature, vmr, constant_gravity=constant_gravity)
        return self.depth_from_atmosphere(atm, clouds, extra_sigma=extra_sigma)


def heng_kitzmann_radius(
    sigma: ArrayLike,
    temperature: float,
    mu: float,
    gravity: float,
    radius_ref: float,
    p_ref: float,
) -> NDArray[np.float64]:
    """Isothermal analytic transit radius (Heng & Kitzmann 2017, MNRAS 470, 2972, eq. 12).

    ``R = R0 + H [gamma + ln(P0 kappa / g * sqrt(2 pi R0 / H))]`` with ``kappa = sigma / (mu m_u)``
    the opacity per mass (pressure independent), ``H`` the scale height, gamma Euler's constant.

    Args:
        sigma: cross-section per gas molecule (m^2), any shape.
        temperature: K. mu: amu. gravity: m s^-2. radius_ref: m at pressure ``p_ref`` (Pa).

    Example:
        >>> r = heng_kitzmann_radius(1e-29, 1000.0, 2.3, 10.0, 7e7, 1e6)
        >>> bool(r > 7e7)
        True
    """
    h = 1.380649e-23 * temperature / (mu * AMU * gravity)
    kappa = np.asarray(sigma, dtype=float) / (mu * AMU)
    return radius_ref + h * (
        EULER_GAMMA + np.log(p_ref * kappa / gravity * np.sqrt(2 * np.pi * radius_ref / h))
    )
