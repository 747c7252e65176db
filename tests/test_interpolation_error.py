"""Grid-interpolation-error augmentation and heavy-tailed (Student-t) calibrated intervals."""

from __future__ import annotations

import numpy as np
import pytest

from atmospec.predictive_tails import (
    ONE_SIGMA,
    fit_tail_dof,
    standardized_draws,
    tail_factor,
)

# --- interpolation error on the real embedded grid ----------------------------------------


@pytest.mark.realdata
def test_node_residual_is_the_leave_one_node_out_interpolation_error(grid):
    # In the training lattice (1200 and 1400 K held out) the Teff neighbours of the 1300 K node
    # are 1100 and 1500 K, half way: its Teff residual is log F(1300) - (log F(1100) +
    # log F(1500)) / 2, computed here by hand from the grid's own spectra.
    from atmospec.training.builder import Lattice, _interpolation_residuals
    from atmospec.training.splits import grid_aware_split

    split = grid_aware_split(grid, duplicates=[])
    lat = Lattice(grid, split.train)
    win = np.arange(len(grid.wavelength))
    res = _interpolation_residuals(grid, lat, win)
    P = grid.params

    def row(teff):
        m = (P.teff == teff) & (P.logg == 5.0) & (P.mh == 0.0) & (P.fsed == 2.0)
        return int(np.flatnonzero(m.to_numpy())[0])

    logf = np.log(np.asarray(grid.flux([row(1100), row(1300), row(1500)]), dtype=np.float64))
    want = logf[1] - 0.5 * (logf[0] + logf[2])
    np.testing.assert_allclose(res[row(1300), 0], want, rtol=1e-5, atol=1e-6)
    # Held-out nodes never get (or give) a residual.
    assert not res[split.test].any() and not res[split.val].any()
    # The grid bends most in the L/T transition: the 1300 K residual is larger than 2100 K's.
    rms = np.sqrt(np.mean(res[[row(1300), row(2100)], 0] ** 2, axis=1))
    assert rms[0] > 3 * rms[1]


@pytest.mark.realdata
def test_augmentation_leaves_nodes_exact_and_scales_off_node_spectra(grid, tmp_path):
    # Noise-free sets (S/N 1e9, no systematics, unit flux scale) built with the same seed
    # without and with the augmentation: node samples are identical (a node is exact);
    # off-node samples move, and doubling the amplitude doubles the log-flux change (the same
    # random factors; up to the per-spectrum normalisation and flux-conserving resampling).
    from atmospec.training.builder import build_training_set
    from atmospec.training.systematics import Systematics

    kw = dict(
        n_samples=200,
        seed=4,
        axis="spex-prism",
        systematics=Systematics.none(),
        noise_shapes="flat",
        flux_scale=(1.0, 1.0),
        snr_levels=[1e9],
    )
    plain = build_training_set(grid, tmp_path / "p.h5", **kw).arrays()[0]
    one = build_training_set(grid, tmp_path / "a1.h5", interpolation_error=1.0, **kw)
    two = build_training_set(grid, tmp_path / "a2.h5", interpolation_error=2.0, **kw).arrays()[0]
    X1 = one.arrays()[0]
    node = one.node >= 0
    np.testing.assert_allclose(X1[node], plain[node], rtol=1e-6)
    d1 = np.log(X1[~node] / plain[~node])
    d2 = np.log(two[~node] / plain[~node])
    d1 -= np.median(d1, axis=1, keepdims=True)  # the median normalisation is a constant
    d2 -= np.median(d2, axis=1, keepdims=True)
    assert np.sqrt(np.mean(d1**2)) > 1e-3
    slope = float(np.sum(d1 * d2) / np.sum(d1 * d1))
    assert slope == pytest.approx(2.0, rel=0.1)
    assert one.config["interpolation_error"] == {"teff": 1.0, "logg": 1.0, "mh": 1.0, "fsed": 1.0}


@pytest.mark.realdata
def test_augmentation_per_parameter_and_bad_values(grid, tmp_path):
    from atmospec.training.builder import build_training_set

    kw = dict(n_samples=20, seed=1, axis="spex-prism")
    ts = build_training_set(grid, tmp_path / "t.h5", interpolation_error={"teff": 1.5}, **kw)
    assert ts.config["interpolation_error"] == {"teff": 1.5, "logg": 0.0, "mh": 0.0, "fsed": 0.0}
    with pytest.raises(ValueError, match="radius"):
        build_training_set(grid, tmp_path / "u.h5", interpolation_error={"radius": 1.0}, **kw)
    with pytest.raises(ValueError, match=">= 0"):
        build_training_set(grid, tmp_path / "v.h5", interpolation_error=-1.0, **kw)
    assert not (tmp_path / "u.h5").exists() and not (tmp_path / "v.h5").exists()


# --- heavy-tailed predictive intervals -----------------------------------------------------


def test_tail_factor_keeps_one_sigma_and_widens_the_tails():
    # Student-t(5): 97.5 % quantile 2.571, 84.13 % quantile 1.111 -> 95 % half-width
    # 2.571 / 1.111 = 2.31 sigma (Gaussian 1.96); the 68.27 % half-width stays 1 sigma.
    k = tail_factor(0.95, [np.inf, 5.0])
    assert k[0] == pytest.approx(1.95996, abs=1e-4)
    assert k[1] == pytest.approx(2.5706 / 1.1105, rel=2e-3)
    assert tail_factor(ONE_SIGMA, [5.0])[0] == pytest.approx(1.0)


def test_fit_tail_dof_recovers_student_t_and_intervals_cover():
    rng = np.random.default_rng(7)
    z = np.column_stack([rng.normal(size=100_000), rng.standard_t(4, 100_000) * 0.7])
    dof = fit_tail_dof(z)
    # Gaussian errors stay Gaussian up to sampling noise: dof > 50 moves the 95 % factor by
    # < 0.5 % from 1.96.
    assert dof[0] > 50
    assert 3.0 < dof[1] < 5.5  # the scale 0.7 does not matter: a quantile ratio
    # Draws of the fitted predictive cover like the errors do at 68.27 and 95 %.
    d = standardized_draws(rng, (200_000, 2), dof)
    for level in (ONE_SIGMA, 0.95):
        k = tail_factor(level, dof)
        assert np.mean(np.abs(d) <= k, axis=0) == pytest.approx([level, level], abs=0.005)


def test_prediction_interval_uses_tail_dof():
    from atmospec.estimators.base import Prediction

    p = Prediction(
        ("teff",),
        np.array([[1500.0]]),
        np.array([[50.0]]),
        np.array([[False]]),
        {"teff": (900.0, 2400.0)},
        np.array([5.0]),
    )
    lo, hi = p.interval(0.95)
    assert hi[0, 0] - 1500.0 == pytest.approx(50.0 * 2.5706 / 1.1105, rel=2e-3)
    lo, hi = p.interval(ONE_SIGMA)
    assert hi[0, 0] - 1500.0 == pytest.approx(50.0)


def test_tail_dof_survives_save_load_and_reaches_predictions(tmp_path):
    from atmospec.estimators import SpectrumCNN, load_estimator

    rng = np.random.default_rng(0)
    wave = np.linspace(1.0, 2.0, 48)
    y = rng.uniform(0, 1, (120, 2))
    X = 1 + y[:, :1] * (wave - 1.5) + 0.3 * y[:, 1:] * np.sin(8 * wave)
    s = np.full_like(X, 0.01)
    est = SpectrumCNN(width=8, hidden=16, max_epochs=2, num_threads=1)
    est.fit(
        X, y, sigma=s, wavelength=wave, param_names=["a", "b"], bounds={"a": (0, 1), "b": (0, 1)}
    )
    est.sigma_tail_dof_ = np.array([np.inf, 6.5])
    est.save(tmp_path / "m")
    back = load_estimator(tmp_path / "m")
    np.testing.assert_array_equal(back.sigma_tail_dof_, [np.inf, 6.5])
    pred = back.predict(X[:3], s[:3])
    np.testing.assert_array_equal(pred.tail_dof, [np.inf, 6.5])
    lo, hi = pred.interval(0.95)
    want = np.clip(pred.mean + tail_factor(0.95, [np.inf, 6.5]) * pred.std, 0, 1)
    np.testing.assert_allclose(hi, want)
