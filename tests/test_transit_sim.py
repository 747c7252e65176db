"""Simulator + detrenders: noiseless recovery and each systematic removed by its method."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from atmospec.transit.calibration import CalibrationConfig, calibrate
from atmospec.transit.detrenders.gp import GPDetrender
from atmospec.transit.detrenders.pca import PCADetrender
from atmospec.transit.detrenders.polynomial import PolynomialDetrender
from atmospec.transit.lightcurve import TransitGeometry, TransitModel
from atmospec.transit.simulator import SimulationConfig, simulate_planet

# small visits keep the tests fast: 200 exposures, 24 detector columns (19 AIRS bins + FGS1)
SMALL = SimulationConfig(n_exposures=200, airs_cols=24, airs_rows=12)


def _rms_ppm(detrender, config: SimulationConfig, seed: int = 1, cal=None) -> float:
    raw, truth = simulate_planet("1", config, np.random.default_rng(seed))
    spec = detrender.fit(calibrate(raw, cal))
    return float(np.sqrt(np.mean((spec.depth - truth.depth) ** 2)) * 1e6)


def test_transit_model_physics() -> None:
    geo = TransitGeometry(0.0, 3.0, 10.0, 90.0)
    m = TransitModel(np.array([0.0, 10.0]), geo)
    # uniform disc: the flux drop at mid-transit is exactly (Rp/Rs)^2
    assert 1 - m(0.05, 0.0, 0.0)[0] == pytest.approx(0.0025, rel=1e-9)
    # quadratic limb darkening, small planet at the disc centre: I(1)/<I> = 1/(1 - u1/3 - u2/6)
    u1, u2, rp = 0.4, 0.2, 0.01
    assert 1 - m(rp, u1, u2)[0] == pytest.approx(rp**2 / (1 - u1 / 3 - u2 / 6), rel=2e-3)
    assert m(rp, u1, u2)[1] == 1.0  # out of transit
    # supersampling averages the exposures of a bin
    t = np.linspace(-0.2, 0.2, 5)
    off = np.array([-0.01, 0.0, 0.01])
    fine = TransitModel((t[:, None] + off).ravel(), geo)(0.1, u1, u2).reshape(5, 3).mean(1)
    np.testing.assert_allclose(TransitModel(t, geo, off)(0.1, u1, u2), fine, rtol=1e-12)


def test_noiseless_transit_is_recovered_below_one_ppm() -> None:
    # no noise, no systematics, no ADC rounding: the only errors left are numerical (the GP
    # without its limb-darkening prior, which would otherwise pull the fit off the truth)
    for det in (PolynomialDetrender(), PCADetrender(), GPDetrender(ld_prior=None)):
        assert _rms_ppm(det, SMALL.clean()) < 1.0, det.name


def test_hot_and_dead_pixels_are_removed_by_masking() -> None:
    cfg = SMALL.only("dead_fraction", "hot_fraction")
    masked = _rms_ppm(PolynomialDetrender(), cfg)
    unmasked = _rms_ppm(PolynomialDetrender(), cfg, cal=CalibrationConfig(mask_pixels=False))
    # telegraphing hot pixels (+-30% of 50-500 counts/s) and garbage dead pixels spoil the
    # unmasked columns by ~1000 ppm; masked, the clean-visit accuracy (< 1 ppm) returns
    assert unmasked > 100.0
    assert masked < 1.0


def test_pointing_jitter_is_removed_by_centroid_regression() -> None:
    cfg = SMALL.only("jitter_px")
    plain = _rms_ppm(PolynomialDetrender(degree=0, centroid=False), cfg)
    with_centroids = _rms_ppm(PolynomialDetrender(degree=0, centroid=True), cfg)
    # 0.15 px rms jitter x 3e-3 loss per px: a few hundred ppm of flux noise, correlated with
    # the FGS1 centroids that the polynomial detrender regresses on
    assert plain > 50.0
    assert with_centroids < plain / 4


def test_masked_pixels_are_filled_so_jitter_does_not_leak() -> None:
    cfg = SMALL.only("jitter_px", "dead_fraction", "hot_fraction")
    det = PolynomialDetrender()
    filled = _rms_ppm(det, cfg, seed=3)
    zeroed = _rms_ppm(det, cfg, seed=3, cal=CalibrationConfig(fill_masked=False))
    # a masked pixel left at zero inside the moving trace turns the ~0.3 px trace motion into
    # a flux change of its column that the centroid regressors only partly follow; filled
    # from the neighbouring columns, the column moves like the others
    assert zeroed > 100.0
    assert filled < zeroed / 3


def test_ramp_is_removed_by_the_gp_detrender() -> None:
    cfg = SMALL.only("ramp")
    poly = _rms_ppm(PolynomialDetrender(), cfg)
    gp = _rms_ppm(GPDetrender(), cfg)
    # a 1500 ppm exponential ramp biases a quadratic baseline by ~100 ppm; the GP detrender's
    # fitted ramp time scale removes it to the level of the LD/white-light fit
    assert poly > 50.0
    assert gp < poly / 5


def test_gain_drift_is_removed_by_the_gp_detrender() -> None:
    cfg = SMALL.only("gain_drift")
    constant = _rms_ppm(PolynomialDetrender(degree=0, centroid=False), cfg)
    gp = _rms_ppm(GPDetrender(), cfg)
    # a 1000 ppm drift f(t) g(lambda) (polynomial + sinusoid) biases an unmodelled fit by
    # hundreds of ppm; the white-light GP follows f(t) and each channel regresses on it for
    # its own g(lambda): what is left must be below a tenth of the drift amplitude
    assert constant > 200.0
    assert gp < 0.1 * cfg.gain_drift * 1e6
    assert gp < constant / 5


def test_one_over_f_noise_is_absorbed_by_the_gp_sigma() -> None:
    # 1/f noise is a random process, not a deterministic trend: its power on the transit's
    # time scale cannot be separated from the depth. The method meant for it is the GP:
    # its Matern kernel takes the slow part, and the likelihood marginalised over it widens
    # the white-light sigma, so the errors scale like the quoted sigmas. A fit that treats
    # the noise as white (the polynomial, with its red-noise beta factor only) does not.
    cfg = SMALL.only("pink_noise")
    z_gp, z_poly = [], []
    for seed in (1, 2, 3, 4):
        raw, truth = simulate_planet("1", cfg, np.random.default_rng(seed))
        obs = calibrate(raw)
        gp = GPDetrender().fit(obs)
        poly = PolynomialDetrender().fit(obs)
        z_gp.append((gp.depth - truth.depth) / gp.sigma)
        z_poly.append((poly.depth - truth.depth) / poly.sigma)
    rms_gp = float(np.sqrt(np.mean(np.concatenate(z_gp) ** 2)))
    rms_poly = float(np.sqrt(np.mean(np.concatenate(z_poly) ** 2)))
    # honest sigmas give z rms ~ 1; with 4 visits (errors shared within a visit) allow 0.4-2
    assert 0.4 < rms_gp < 2.0
    assert abs(np.log(rms_gp)) < abs(np.log(rms_poly))


def test_white_noise_sigmas_are_honest() -> None:
    # photon + read noise only: the errors scatter like the quoted sigmas (z rms near 1)
    cfg = replace(SMALL.clean(), photon_noise=True, read_noise=13.0)
    zs = []
    for seed in (1, 2, 3):
        raw, truth = simulate_planet("1", cfg, np.random.default_rng(seed))
        spec = GPDetrender().fit(calibrate(raw))
        zs.append((spec.depth - truth.depth) / spec.sigma)
    z = np.concatenate(zs)
    assert 0.5 < np.sqrt(np.mean(z**2)) < 2.0


def test_pca_refuses_as_many_components_as_channels() -> None:
    # Two components on two channels fit each channel's residual exactly: its sigma fell to
    # the 1 ppm floor. The components must be fewer than the channels they summarise.
    from atmospec.transit.detrenders.pca import common_modes
    from atmospec.transit.observation import TransitObservation

    t = np.linspace(0.0, 6.0, 80)
    f = TransitModel(t, TransitGeometry(3.0, 3.0, 10.0, 90.0))(0.1, 0.3, 0.2)
    flux = 1e4 * f[:, None] * (1 + np.random.default_rng(0).normal(0, 1e-4, (80, 3)))
    obs = TransitObservation(
        "7", t, np.array([0.7, 2.0, 3.0]), flux, np.ones((80, 3)), np.zeros((80, 3)),
        star={"P": 3.0, "sma": 10.0, "i": 90.0},
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"planet 7: n_components=2 .* channels \(2\)"):
        common_modes(obs, n_components=2)
    assert common_modes(obs, n_components=1).shape == (80, 1)
