"""Estimators: TelescopeCNN size, save/load round trips, axis checks, tampering, bounds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from atmospec.errors import IncompatibleModelError, ModelFileError
from atmospec.estimators import (
    GradientBoostingEstimator,
    RandomForestEstimator,
    SpectrumCNN,
    SpectrumMLP,
    TelescopeCNN,
    load_estimator,
)
from atmospec.estimators.telescope_cnn import telescope_network


def _toy(n: int = 160, n_wave: int = 48, seed: int = 0):
    """Spectra whose slope and curvature encode two parameters (a learnable toy problem)."""
    rng = np.random.default_rng(seed)
    wave = np.linspace(1.0, 2.0, n_wave)
    y = np.column_stack([rng.uniform(900, 2400, n), rng.uniform(3.5, 5.5, n)])
    a = (y[:, :1] - 900) / 1500
    b = (y[:, 1:] - 3.5) / 2
    clean = 1 + a * (wave - 1.5) + 0.5 * b * np.sin(8 * wave)
    sigma = np.full_like(clean, 0.01)
    X = clean + sigma * rng.standard_normal(clean.shape)
    return wave, X, y, sigma


BOUNDS = {"teff": (900.0, 2400.0), "logg": (3.5, 5.5)}


def test_telescope_cnn_has_telescopeml_parameter_count():
    # CONTEXT.md / TelescopeML 0.0.5: 8,438,756 trainable parameters at 104 pixels, 4 targets.
    net = telescope_network(104, 4)
    assert sum(p.numel() for p in net.parameters()) == 8_438_756


def _fitted(kind: str):
    wave, X, y, s = _toy()
    kw = dict(wavelength=wave, param_names=["teff", "logg"], bounds=BOUNDS)
    if kind == "cnn":
        est = SpectrumCNN(width=8, hidden=16, max_epochs=3, n_members=2, num_threads=1)
        est.fit(X, y, sigma=s, validation=(X[:40], y[:40], s[:40]), **kw)
    elif kind == "mlp":
        est = SpectrumMLP(hidden=(32,), max_epochs=3, num_threads=1)
        est.fit(X, y, sigma=s, validation=(X[:40], y[:40], s[:40]), **kw)
    elif kind == "telescope":
        # TelescopeCNN needs >= 27 pixels (two max-pools of 3): use the toy at 48 pixels.
        est = TelescopeCNN(max_epochs=1, batch_size=64, num_threads=1)
        est.fit(X[:64], y[:64], **kw)
    elif kind == "rf":
        est = RandomForestEstimator(n_estimators=15).fit(X, y, validation=(X[:40], y[:40]), **kw)
    else:
        est = GradientBoostingEstimator(n_estimators=20).fit(X, y, **kw)
    return est, wave, X, s


@pytest.mark.parametrize("kind", ["cnn", "mlp", "telescope", "rf", "gbt"])
def test_train_save_load_predict_identical(kind, tmp_path):
    est, wave, X, s = _fitted(kind)
    before = est.predict(X[:20], s[:20])
    folder = est.save(tmp_path / "m")
    again = load_estimator(folder)
    after = again.predict(X[:20], s[:20])
    assert type(again) is type(est)
    np.testing.assert_array_equal(before.mean, after.mean)
    if before.std is not None:
        np.testing.assert_array_equal(before.std, after.std)
    np.testing.assert_array_equal(again.wavelength_, wave)
    record = json.loads((Path(folder) / "model.json").read_text())
    assert record["kind"] == est.kind and "provenance" in record["meta"]


def test_predictions_stay_inside_bounds_and_flag_edges():
    est, wave, X, s = _fitted("cnn")
    # A spectrum far outside the training family: the estimate must still be inside the grid.
    wild = 1 + 5.0 * (wave - 1.5)[None, :] + 0.0 * X[:1]
    pred = est.predict(np.vstack([X[:10], wild]), np.vstack([s[:10], s[:1]]))
    lo = np.array([BOUNDS["teff"][0], BOUNDS["logg"][0]])
    hi = np.array([BOUNDS["teff"][1], BOUNDS["logg"][1]])
    assert np.all(pred.mean >= lo) and np.all(pred.mean <= hi)
    # at_bound is exactly "within 1 % of the range of an edge" (BOUND_TOLERANCE).
    tol = 0.01 * (hi - lo)
    np.testing.assert_array_equal(pred.at_bound, (pred.mean <= lo + tol) | (pred.mean >= hi - tol))


def test_tree_arrays_reproduce_sklearn(tmp_path):
    from sklearn.ensemble import RandomForestRegressor

    wave, X, y, _ = _toy()
    rf = RandomForestEstimator(n_estimators=7, seed=3).fit(
        X, y, wavelength=wave, param_names=["teff", "logg"], bounds=BOUNDS
    )
    # The same forest fitted by scikit-learn directly on the same features must agree.
    feats = rf._features(X)
    sk = RandomForestRegressor(
        n_estimators=7, min_samples_leaf=2, max_features=0.3, random_state=3
    ).fit(feats, rf.preprocessor_.transform_targets(y))
    ours = rf.trees_.predict_each(feats).mean(axis=0)
    np.testing.assert_allclose(ours, sk.predict(feats.astype(np.float32)), rtol=1e-6, atol=1e-6)


def test_other_wavelength_axis_is_refused():
    from atmospec.spectrum import Spectrum

    est, wave, X, s = _fitted("rf")
    other = np.linspace(0.9, 2.4, wave.size)
    spec = Spectrum(other, X[0], uncertainty=s[0], name="obs.fits")
    with pytest.raises(IncompatibleModelError, match="obs.fits: wavelength axis .* not the axis"):
        est.predict_spectrum(spec)
    with pytest.raises(IncompatibleModelError, match="reads 48 pixels"):
        est.predict(X[:, :40])
    # The exact axis is accepted.
    ok = est.predict_spectrum(Spectrum(wave, X[0], uncertainty=s[0]))
    assert ok.mean.shape == (1, 2)


def test_cnn_requires_uncertainties():
    est, wave, X, s = _fitted("cnn")
    with pytest.raises(ValueError, match="uncertainties"):
        est.predict(X[:2])


def test_truncated_weights_give_clear_error(tmp_path):
    est, *_ = _fitted("gbt")
    folder = est.save(tmp_path / "m")
    w = Path(folder) / "weights.safetensors"
    data = w.read_bytes()
    w.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="truncated or was modified"):
        load_estimator(folder)


def test_tampered_record_gives_clear_error(tmp_path):
    est, *_ = _fitted("rf")
    folder = est.save(tmp_path / "m")
    rec_path = Path(folder) / "model.json"
    rec = json.loads(rec_path.read_text())
    rec["bounds"]["teff"] = [0.0, 99999.0]  # edited by hand: must not load silently
    rec_path.write_text(json.dumps(rec))
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        load_estimator(folder)


def test_truncated_record_and_foreign_files(tmp_path):
    est, *_ = _fitted("rf")
    folder = Path(est.save(tmp_path / "m"))
    rec = (folder / "model.json").read_text()
    (folder / "model.json").write_text(rec[: len(rec) // 3])
    with pytest.raises(ModelFileError, match="truncated or corrupt JSON"):
        load_estimator(folder)
    # A pickle posing as a model is never unpickled: the record check refuses it first.
    bad = tmp_path / "evil"
    bad.mkdir()
    (bad / "model.json").write_text('{"format": "something-else"}')
    (bad / "weights.safetensors").write_bytes(b"\x80\x04\x95")
    with pytest.raises(ModelFileError, match="not an atmospec model record"):
        load_estimator(bad)
    with pytest.raises(ModelFileError, match="no model record"):
        load_estimator(tmp_path / "missing")


def _unit_sigma_estimator() -> tuple[np.ndarray, SpectrumCNN]:
    """A one-parameter SpectrumCNN whose network says mean 0, raw sigma 1 for every spectrum
    (so only the calibration acts), on an axis containing the 1.20-1.30 um S/N window."""
    wave = np.linspace(1.0, 2.0, 40)
    est = SpectrumCNN()
    est.wavelength_, est.param_names_, est.bounds_ = wave, ("t",), {"t": (-50.0, 50.0)}

    def fake_predict(X, sigma):
        n = np.asarray(X).shape[0]
        return np.zeros((n, 1)), np.ones((n, 1)) * est.sigma_scale_for(X, sigma)

    est._predict = fake_predict
    return wave, est


def test_sigma_calibration_follows_snr_and_reaches_nominal_coverage(tmp_path):
    # A network whose raw sigma is 1 everywhere while the true errors have
    # sigma_true = 2 (S/N / 50)^-0.5: the calibration must find s0 = 2 at the reference S/N 50
    # and slope b = -0.5 (the construction), restore 68 / 95 % coverage at every S/N
    # (binomial +- 0.01 at n = 4000).
    from atmospec.learning.evaluation import coverage

    wave, est = _unit_sigma_estimator()
    rng = np.random.default_rng(3)

    def draw(snr):
        X = np.ones((snr.size, wave.size))
        sigma = np.ones_like(X) / snr[:, None]
        y = rng.normal(size=(snr.size, 1)) * 2.0 * (snr[:, None] / 50.0) ** -0.5
        return X, y, sigma

    X, y, sigma = draw(np.exp(rng.uniform(np.log(10), np.log(250), 6000)))
    est.calibrate_sigma(X, y, sigma)
    assert est.sigma_snr_ref_ == pytest.approx(50.0, rel=0.1)  # median of log-uniform 10-250
    ref_scale = est.sigma_scale_[0] * (50.0 / est.sigma_snr_ref_) ** est.sigma_snr_slope_[0]
    assert ref_scale == pytest.approx(2.0, rel=0.04)
    assert est.sigma_snr_slope_[0] == pytest.approx(-0.5, abs=0.04)
    for level in (20.0, 100.0):
        Xt, yt, st = draw(np.full(4000, level))
        mean, std = est._predict(Xt, st)
        assert abs(coverage(yt, mean, std, 0.68)[0] - 0.68) < 0.03
        assert abs(coverage(yt, mean, std, 0.95)[0] - 0.95) < 0.015
    # Without uncertainties the constant scale at the reference S/N applies.
    assert est.sigma_scale_for(Xt[:2], None)[:, 0] == pytest.approx(est.sigma_scale_[0])


def test_calibration_sigma_is_rms_and_tails_follow_the_errors():
    # A network whose raw sigma is 1 while its errors are Student-t(4) with unit variance
    # (scale sqrt(1/2)). The calibrated sigma is the RMS error (1); the fitted tail has dof ~4
    # (the 95/68.27 % quantile ratio of the errors); mean ± sigma stays the nominal 68.27 %
    # interval, so with these heavy tails it holds P(|T4| <= sqrt 2) = 0.770 of the errors,
    # and the 95 % one, sigma * t4(0.975) / t4(0.8413) = 2.43 sigma, holds
    # P(|T4| <= 2.43 sqrt 2) = 0.974 (both at least nominal: conservative by construction).
    from scipy.stats import t

    from atmospec.learning.evaluation import coverage
    from atmospec.predictive_tails import ONE_SIGMA

    wave, est = _unit_sigma_estimator()
    rng = np.random.default_rng(5)
    snr = np.exp(rng.uniform(np.log(10), np.log(250), 40_000))
    X = np.ones((snr.size, wave.size))
    sigma = X / snr[:, None]
    est.calibrate_sigma(X, rng.standard_t(4, (snr.size, 1)) * np.sqrt(0.5), sigma)
    assert est.sigma_scale_[0] == pytest.approx(1.0, rel=0.05)
    assert 3.0 < est.sigma_tail_dof_[0] < 5.5
    yt = rng.standard_t(4, (40_000, 1)) * np.sqrt(0.5)
    mean, std = est._predict(X, sigma)
    k95 = float(t.ppf(0.975, 4) / t.ppf(0.5 + ONE_SIGMA / 2, 4))
    want68 = 2 * t.cdf(np.sqrt(2), 4) - 1
    want95 = 2 * t.cdf(k95 * np.sqrt(2), 4) - 1
    assert want68 == pytest.approx(0.770, abs=0.002) and want95 == pytest.approx(0.974, abs=0.002)
    dof = est.sigma_tail_dof_
    assert coverage(yt, mean, std, ONE_SIGMA, dof)[0] == pytest.approx(want68, abs=0.01)
    assert coverage(yt, mean, std, 0.95, dof)[0] == pytest.approx(want95, abs=0.006)


def test_beta_nll_weights_terms_by_sigma_and_validation_stays_plain_nll():
    # beta-NLL (Seitzer et al. 2022): each term times sigma^(2 beta), held constant in the
    # gradient. With beta = 0.5 the gradient with respect to the mean is
    # (mean - y) / sigma^2 * sigma = (mean - y) / sigma: for y - mean = 0.3, sigma = 2 that is
    # -0.15 (the plain NLL gives -0.075). Early stopping compares epochs on the plain NLL.
    import torch

    from atmospec.estimators._neural import beta_nll, gaussian_nll

    mean = torch.tensor([[0.0]], requires_grad=True)
    out = torch.stack([mean, torch.tensor([[2.0]])], dim=1)  # (n, 2, p)
    y = torch.tensor([[0.3]])
    (g0,) = torch.autograd.grad(beta_nll(out, y, 0.0), mean)
    (g5,) = torch.autograd.grad(beta_nll(out, y, 0.5), mean)
    assert float(g0) == pytest.approx(-0.075) and float(g5) == pytest.approx(-0.15)
    wave, X, y2, s = _toy()
    est = SpectrumCNN(width=8, hidden=16, max_epochs=2, num_threads=1, nll_beta=0.5)
    est.fit(X, y2, sigma=s, validation=(X[:40], y2[:40], s[:40]), wavelength=wave,
            param_names=["teff", "logg"], bounds=BOUNDS)  # fmt: skip
    assert est._loss().keywords == {"beta": 0.5}
    # The recorded validation loss is the plain NLL of the validation spectra (target units).
    raw = est._raw(X[:40], s[:40]).mean(axis=0)  # one member: its (mean, sigma)
    t = est.preprocessor_.transform_targets(y2[:40])
    want = gaussian_nll(torch.from_numpy(raw), torch.from_numpy(t)).item()
    best = est.history_[0]["best_epoch"]  # the kept weights are the best epoch's
    assert est.history_[0]["val_loss"][best] == pytest.approx(want, rel=1e-4)


def test_random_forest_sigma_survives_spectra_on_which_every_tree_agrees() -> None:
    # y = max(t - 0.3, 0): below t = 0.3 every leaf holds 0, so the trees agree exactly and
    # their spread is 0. A validation label off by 0.01 there gave a z-score of 1e10 and a
    # root-mean-square sigma scale of ~1e9 (every sigma of the parameter with it); the scale
    # is the 68.27 % quantile of |z| now, set by the spectra the trees disagree on.
    rng = np.random.default_rng(0)
    wave = np.linspace(1.0, 2.0, 20)
    t = rng.uniform(0.0, 1.0, 600)
    X, y = 1.0 + t[:, None] * wave, np.maximum(t - 0.3, 0.0)[:, None]
    vt = np.r_[0.1, rng.uniform(0.35, 1.0, 199)]
    vy = np.maximum(vt - 0.3, 0.0)[:, None]
    vy[0, 0] = 0.01  # the one label the trees cannot explain
    rf = RandomForestEstimator(n_estimators=50, seed=0).fit(
        X, y, wavelength=wave, param_names=["p"], validation=(1.0 + vt[:, None] * wave, vy)
    )
    assert rf.predict(1.0 + vt[:1, None] * wave).std[0, 0] < 1e-9  # the trees agree there
    assert rf.sigma_scale_ is not None and 0.3 < float(rf.sigma_scale_[0]) < 3.0
    pred = rf.predict(1.0 + vt[1:, None] * wave)
    z = (vy[1:, 0] - pred.mean[:, 0]) / pred.std[:, 0]
    assert abs(float(np.mean(np.abs(z) <= 1.0)) - 0.6827) < 0.02  # calibrated where they vary
