"""Synthetic photometry, flux calibration and radii, checked against physics and published values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from atmospec.errors import CoverageError, UnitError
from atmospec.photometry import (
    PC_M,
    R_JUP_M,
    flux_calibrate,
    load_filter,
    radius_from_scale,
    scale_from_radius,
    synthetic_magnitude,
)
from atmospec.spectrum import Spectrum

SIGMA_SB = 5.670374419e-8  # W m-2 K-4
H, C, K_B = 6.62607015e-34, 2.99792458e8, 1.380649e-23


def flat_fnu(jy: float, lo: float = 0.9, hi: float = 2.6, n: int = 4000) -> Spectrum:
    w = np.linspace(lo, hi, n)
    return Spectrum(w, np.full(n, jy), flux_unit="Jy")


def planck_surface_flux(wave_um: np.ndarray, teff: float) -> np.ndarray:
    """pi B_lambda(T) in W m-2 um-1: the surface flux of a blackbody."""
    lam = wave_um * 1e-6
    b = 2 * H * C**2 / lam**5 / np.expm1(H * C / (lam * K_B * teff))  # W m-2 m-1 sr-1
    return np.pi * b * 1e-6


def test_filter_files(splat_dir: Path) -> None:
    j = load_filter("J")
    # j_2mass.txt.gz: Cohen et al. 2003 RSR from 1.062 to 1.450 um (zero at both ends)
    assert j.wavelength[0] == 1.062 and j.wavelength[-1] == 1.450
    # Cohen et al. 2003 isophotal wavelengths J 1.235, H 1.662, Ks 2.159 um: pivots lie close
    for band, lam_iso in (("J", 1.235), ("H", 1.662), ("Ks", 2.159)):
        assert load_filter(band).pivot_wavelength == pytest.approx(lam_iso, abs=0.015)


@pytest.mark.parametrize(
    ("band", "flam_cohen"),  # Cohen, Wheaton & Megeath 2003, Table 2, W cm-2 um-1
    [("J", 3.129e-13), ("H", 1.133e-13), ("Ks", 4.283e-14)],
)
def test_zero_points_match_cohen_2003(splat_dir: Path, band: str, flam_cohen: float) -> None:
    # F_lambda zero point derived from the filter curve and the F_nu zero point (1594 / 1024 /
    # 666.7 Jy) must agree with the independently published F_lambda within 1%
    flam = load_filter(band).zero_point_flambda  # W m-2 um-1
    assert flam * 1e-4 == pytest.approx(flam_cohen, rel=0.01)


@pytest.mark.parametrize(("band", "jy"), [("J", 1594.0), ("H", 1024.0), ("Ks", 666.7)])
def test_flat_fnu_at_zero_point_is_magnitude_zero(splat_dir: Path, band: str, jy: float) -> None:
    assert synthetic_magnitude(flat_fnu(jy), band) == pytest.approx(0.0, abs=1e-4)
    # 100x fainter is exactly 5 magnitudes
    assert synthetic_magnitude(flat_fnu(jy / 100), band) == pytest.approx(5.0, abs=1e-4)


def test_flat_fnu_1594jy_in_other_bands(splat_dir: Path) -> None:
    # a flat F_nu spectrum of 1594 Jy is brighter than the H and Ks zero points:
    # H = -2.5 log10(1594 / 1024) = -0.480, Ks = -2.5 log10(1594 / 666.7) = -0.946
    s = flat_fnu(1594.0)
    assert synthetic_magnitude(s, "H") == pytest.approx(-2.5 * np.log10(1594 / 1024), abs=2e-3)
    assert synthetic_magnitude(s, "Ks") == pytest.approx(-2.5 * np.log10(1594 / 666.7), abs=2e-3)


def test_vega_is_near_zero_magnitude(splat_dir: Path) -> None:
    # The 2MASS system is Vega-based: Cohen et al. (2003) find Vega's 2MASS magnitudes within a
    # few hundredths of 0. splat's Kurucz Vega model (erg s-1 cm-2 um-1) must give |m| < 0.03.
    data = np.loadtxt(splat_dir / "resources/Filters/vega_kurucz.txt.gz")
    sel = (data[:, 0] > 0.9) & (data[:, 0] < 2.6)
    vega = Spectrum(data[sel, 0], data[sel, 1], flux_unit="erg s-1 cm-2 um-1")
    for band in ("J", "H", "Ks"):
        assert abs(synthetic_magnitude(vega, band)) < 0.03


def test_library_t_dwarfs_calibrated_to_their_j(splat_dir: Path) -> None:
    from atmospec.library import load

    for key in ("10703_10070", "10020_11100"):  # HD 3651B, GJ 570D
        s = load(key)
        j = s.meta["mags"]["J"]
        cal = flux_calibrate(s, {"J": j})
        assert cal.flux_unit == "W / (um m2)"
        assert synthetic_magnitude(cal, "J") == pytest.approx(j, abs=1e-9)
        # GJ 570D: J = 15.32 gives F_lambda(1.27 um) of order 3.1e-9 * 10**(-0.4 * 15.3)
        # ~ 2e-15 W m-2 um-1 at the J peak (within a factor 3: T dwarf J band is peaked)
        peak = np.median(cal.flux[(cal.wavelength > 1.25) & (cal.wavelength < 1.3)])
        assert 3.1e-9 * 10 ** (-0.4 * j) / 3 < peak < 3.1e-9 * 10 ** (-0.4 * j) * 3


def test_spectrophotometry_reproduces_2mass_colours(splat_dir: Path) -> None:
    """L dwarfs with S/N >= 100: calibrate on J, predict H and Ks; compare with 2MASS.

    SpeX prism spectra are flux calibrated across 0.7-2.5 um by the A0 V telluric standard,
    so synthetic 2MASS colours agree with the photometry to ~0.05-0.1 mag (Burgasser 2014).
    A wrong filter curve, weighting or zero point shifts the median by >= 0.05 mag.
    """
    from atmospec.library import load, query

    table = query(spt="L0-L9.5", snr_min=100, quality="OK")
    table = table[(table.j_err < 0.05) & (table.h_err < 0.05) & (table.ks_err < 0.05)]
    assert len(table) > 100
    dh, dk = [], []
    for rec in table.itertuples():
        cal = flux_calibrate(load(rec.key), {"J": rec.j})
        dh.append(synthetic_magnitude(cal, "H") - rec.h)
        dk.append(synthetic_magnitude(cal, "Ks") - rec.ks)
    assert abs(np.median(dh)) < 0.05 and abs(np.median(dk)) < 0.05
    assert np.median(np.abs(dh)) < 0.1 and np.median(np.abs(dk)) < 0.1


def test_calibration_combines_bands(splat_dir: Path) -> None:
    from atmospec.library import load

    s = load("10001_10443")  # an L5 with S/N 224
    cal = flux_calibrate(s)  # uses meta["mags"] and meta["mag_errors"]
    info = cal.meta["flux_calibration"]
    assert set(info["bands"]) == {"J", "H", "Ks"} and info["spread_mag"] < 0.2
    for band in ("J", "H", "Ks"):  # each band within the spread of the others
        assert abs(synthetic_magnitude(cal, band) - s.meta["mags"][band]) <= info["spread_mag"]


def test_blackbody_radius_and_bolometric_flux() -> None:
    # a 1000 K blackbody of 1 R_Jup at 10 pc (parallax 100 mas)
    teff, plx = 1000.0, 100.0
    wave = np.geomspace(0.1, 1000.0, 200_000)
    surface = planck_surface_flux(wave, teff)
    dilution = (R_JUP_M / (1000 / plx * PC_M)) ** 2
    observed = Spectrum(wave, surface * dilution, flux_unit="W m-2 um-1")
    mags = {b: synthetic_magnitude(observed, b) for b in ("J", "H", "Ks")}
    # recover the absolute scale from a normalised copy and the magnitudes alone
    cal = flux_calibrate(observed.normalize("max"), mags)
    np.testing.assert_allclose(cal.flux, observed.flux, rtol=1e-9)
    scale = float(np.median(cal.flux / surface))
    assert radius_from_scale(scale, plx) == pytest.approx(1.0, rel=1e-9)
    # Stefan-Boltzmann: the bolometric flux is sigma T^4 (R/d)^2
    fbol = np.trapezoid(cal.flux, wave)  # W m-2
    assert fbol == pytest.approx(SIGMA_SB * teff**4 * dilution, rel=2e-3)


def test_radius_scale_inverse_and_values() -> None:
    # Jupiter at 1 pc: (7.1492e7 m / 3.0857e16 m)^2 = 5.368e-18
    assert scale_from_radius(1.0, 1000.0) == pytest.approx((7.1492e7 / 3.0856775814913673e16) ** 2)
    r = np.array([0.8, 1.0, 1.2])
    np.testing.assert_allclose(radius_from_scale(scale_from_radius(r, 90.03), 90.03), r)
    with pytest.raises(ValueError, match="parallax > 0"):
        radius_from_scale(1e-20, 0.0)


def test_errors(splat_dir: Path) -> None:
    s = Spectrum(np.linspace(1.0, 1.8, 50), np.ones(50))
    with pytest.raises(UnitError, match="no magnitudes to calibrate with"):
        flux_calibrate(s, {})
    with pytest.raises(CoverageError, match="band Ks needs 1.9"):
        flux_calibrate(s, {"Ks": 12.0})
    with pytest.raises(UnitError, match="the flux is normalised"):
        synthetic_magnitude(s, "J")
    masked = Spectrum(np.linspace(1.0, 1.8, 50), np.ones(50), mask=np.arange(50) < 30)
    with pytest.raises(CoverageError, match="of band J falls on masked pixels"):
        flux_calibrate(masked, {"J": 12.0})
    from atmospec.errors import DataNotFoundError

    with pytest.raises(DataNotFoundError, match="no filter 'Q'"):
        load_filter("Q")


def test_synthetic_flux_integrates_the_ramps_of_a_zero_padded_curve() -> None:
    # Published curves (2MASS, MKO) start and end with a zero sample; the response is linear
    # between samples, so the ramps up from those zeros belong to the band, as the zero point
    # and pivot wavelength integrate them. For S = [0, 1, 1, 0] at 1.0, 1.1, 1.3, 1.4 um and
    # F = 2 lambda, <F> = int 2 lambda^2 S / int lambda S (closed form below) = 2.4139;
    # dropping the ramps gave 2.4056, the value over 1.1-1.3 um alone.
    from atmospec.photometry import Filter, synthetic_flux

    def integral(power: int) -> float:  # int lambda^power S(lambda) over the trapezoid
        up = (1.1 ** (power + 2) - 1.0 ** (power + 2)) / (power + 2) - 1.0 * (
            1.1 ** (power + 1) - 1.0 ** (power + 1)
        ) / (power + 1)
        flat = (1.3 ** (power + 1) - 1.1 ** (power + 1)) / (power + 1)
        down = 1.4 * (1.4 ** (power + 1) - 1.3 ** (power + 1)) / (power + 1) - (
            1.4 ** (power + 2) - 1.3 ** (power + 2)
        ) / (power + 2)
        return (up / 0.1) + flat + (down / 0.1)

    exact = 2.0 * integral(2) / integral(1)
    band = Filter("pad", np.array([1.0, 1.1, 1.3, 1.4]), np.array([0.0, 1.0, 1.0, 0.0]))
    w = np.linspace(0.9, 1.5, 601)
    assert round(exact, 4) == 2.4139
    assert synthetic_flux(Spectrum(w, 2.0 * w), band) == pytest.approx(exact, rel=1e-5)
    with pytest.raises(CoverageError, match="needs 1.000-1.400 um"):  # the ramps need data too
        synthetic_flux(Spectrum(w[w >= 1.05], 2.0 * w[w >= 1.05]), band)
