"""Tests of atmospec.posteriors: NPE on an analytic problem, calibration, JSD, importance."""

from __future__ import annotations

import json
import math
import warnings
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

# --------------------------------------------------------------------------- helpers
from _linear_npe import NOISE, A, train_linear_npe  # noqa: E402
from _linear_npe import linear_model as _linear_model  # noqa: E402

from atmospec.errors import ModelFileError  # noqa: E402
from atmospec.posteriors.calibration import LEVELS, calibrate_estimator, calibration_report  # noqa: E402
from atmospec.posteriors.compare import interval68, jsd_bits  # noqa: E402
from atmospec.posteriors.importance import (  # noqa: E402
    LowEfficiencyWarning,
    ScaledGaussianLikelihood,
    importance_correct,
)
from atmospec.posteriors.npe import NPEstimator  # noqa: E402


def _exact_posterior(flux: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian posterior of the linear model with a flat prior (the box is many sigma wide).

    Precision = A^T A / s^2, mean = C A^T (d - 1) / s^2 (standard linear least squares).
    """
    cov = np.linalg.inv(A.T @ A / sigma**2)
    mean = cov @ A.T @ (flux - 1.0) / sigma**2
    return mean, cov


@pytest.fixture(scope="module")
def linear_npe() -> NPEstimator:
    return train_linear_npe()


# --------------------------------------------------------------------------- NPE
def test_linear_gaussian_posterior_recovered(linear_npe: NPEstimator) -> None:
    rng = np.random.default_rng(5)
    errs, ratios, dcorr = [], [], []
    for i in range(20):
        truth = rng.uniform(-1.5, 1.5, 2)  # well inside the box: truncation is negligible
        noisy, sig = NOISE.draw(_linear_model(truth), rng)
        s = float(sig[0, 0])
        mean, cov = _exact_posterior(noisy[0], s)
        draws = linear_npe.sample(noisy[0], sig[0], n=4000, seed=i)
        sd = np.sqrt(np.diag(cov))
        c = np.cov(draws.T)
        errs.append((draws.mean(axis=0) - mean) / sd)
        ratios.append(np.sqrt(np.diag(c)) / sd)
        dcorr.append(c[0, 1] / math.sqrt(c[0, 0] * c[1, 1]) - cov[0, 1] / (sd[0] * sd[1]))
    errs_a, ratios_a = np.array(errs), np.array(ratios)
    # Tolerances: the Monte-Carlo error of a 4000-draw mean is sd/63 (negligible); what is
    # left is the approximation error of a tiny flow trained for ~30 s. We require the
    # posterior mean within 0.35 posterior sd (rms over 20 spectra), widths within 20 % on
    # average and never off by more than 50 %, and the correlation coefficient (-0.59
    # here) within 0.3 (an uncorrelated or sign-flipped posterior is off by >= 0.59).
    assert np.sqrt((errs_a**2).mean()) < 0.35
    assert np.all(np.abs(ratios_a.mean(axis=0) - 1.0) < 0.2)
    assert ratios_a.min() > 0.6 and ratios_a.max() < 1.5
    assert np.max(np.abs(dcorr)) < 0.3


def test_linear_npe_calibrated(linear_npe: NPEstimator) -> None:
    rng = np.random.default_rng(11)
    truth = rng.uniform(-3.0, 3.0, (400, 2))
    noisy, sig = NOISE.draw(_linear_model(truth), rng)
    rep = calibrate_estimator(linear_npe, noisy, sig, truth, n_samples=300, seed=3)
    # 400 tests: binomial sd of a coverage is <= 2.5 points; 0.1 allows 4 sd
    assert rep.max_error < 0.1, rep.to_dict()["coverage_hpd"]


def test_save_load_exact_round_trip(linear_npe: NPEstimator, tmp_path) -> None:
    linear_npe.save(tmp_path / "m")
    back = NPEstimator.load(tmp_path / "m")
    rng = np.random.default_rng(2)
    noisy, sig = NOISE.draw(_linear_model(np.array([0.3, -0.2])), rng)
    a = linear_npe.sample(noisy[0], sig[0], n=500, seed=7)
    b = back.sample(noisy[0], sig[0], n=500, seed=7)
    assert np.array_equal(a, b)
    assert np.array_equal(
        linear_npe.log_prob(a, noisy[0], sig[0]), back.log_prob(a, noisy[0], sig[0])
    )
    for (k1, v1), (k2, v2) in zip(
        linear_npe.model_.state_dict().items(), back.model_.state_dict().items(), strict=True
    ):
        assert k1 == k2 and torch.equal(v1, v2)
    # samples lie inside the prior box (logit map), never extrapolated
    assert a.min() >= -3.0 and a.max() <= 3.0


def test_tampered_model_is_refused(linear_npe: NPEstimator, tmp_path) -> None:
    path = linear_npe.save(tmp_path / "m")
    weights = path / "weights.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-10] ^= 0xFF
    weights.write_bytes(bytes(raw))
    with pytest.raises(ModelFileError, match="sha256"):
        NPEstimator.load(path)
    rec = json.loads((path / "model.json").read_text())
    rec["param_names"] = ["x", "y"]
    (path / "model.json").write_text(json.dumps(rec))
    with pytest.raises(ModelFileError, match="checksum"):
        NPEstimator.load(path)


def test_wrong_pixel_count_is_refused(linear_npe: NPEstimator) -> None:
    from atmospec.errors import IncompatibleModelError

    with pytest.raises(IncompatibleModelError, match="16 pixels"):
        linear_npe.sample(np.ones(20), np.full(20, 0.1), n=10)


# --------------------------------------------------------------------------- calibration
def _conjugate(
    n: int, shrink: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """theta ~ N(0, 1), x = theta + N(0, s^2): exact posterior N(x/(1+s^2), s^2/(1+s^2)).

    ``shrink`` multiplies the posterior sd (1 = exact, 0.5 = over-confident).
    """
    rng = np.random.default_rng(seed)
    s2 = 0.25
    theta = rng.standard_normal((n, 1))
    x = theta + math.sqrt(s2) * rng.standard_normal((n, 1))
    mu = x / (1 + s2)
    sd = math.sqrt(s2 / (1 + s2)) * shrink
    draws = mu[:, None, :] + sd * rng.standard_normal((n, 500, 1))
    lq = -0.5 * (((draws - mu[:, None, :]) / sd) ** 2).sum(-1)
    lt = -0.5 * (((theta - mu) / sd) ** 2).sum(-1)
    return draws, theta, lq, lt


def test_exact_posterior_has_nominal_coverage() -> None:
    draws, theta, lq, lt = _conjugate(4000, 1.0, 0)
    rep = calibration_report(draws, theta, lq, lt, ["x"], low=[-5], high=[5], tolerance=0.03)
    # 4000 tests: binomial sd <= 0.8 points, so +-3 points is ~3.8 sd at every level
    assert rep.passed, rep.hpd
    assert rep.max_error_all < 0.03
    assert len(rep.levels) == 10 and rep.levels[0] == 0.1 and rep.levels[-1] == 0.95


def test_overconfident_posterior_fails() -> None:
    draws, theta, lq, lt = _conjugate(4000, 0.5, 1)
    rep = calibration_report(draws, theta, lq, lt, ["x"], low=[-5], high=[5])
    assert not rep.passed
    # Truth is inside the level-c HPD region of a half-width Gaussian iff |Z| < z_c / 2:
    # coverage(0.5) = 2 Phi(0.6745 / 2) - 1 = 0.264
    assert abs(rep.hpd["0.5"] - 0.264) < 0.03
    assert abs(rep.marginal["x"]["0.5"] - 0.264) < 0.03
    under = calibration_report(*_conjugate(4000, 2.0, 2), ["x"], low=[-5], high=[5])
    # twice too wide: coverage(0.5) = 2 Phi(2 * 0.6745) - 1 = 0.823
    assert abs(under.hpd["0.5"] - 0.823) < 0.03 and not under.passed


def test_calibration_report_files(tmp_path) -> None:
    draws, theta, lq, lt = _conjugate(500, 1.0, 3)
    rep = calibration_report(
        draws, theta, lq, lt, ["x"], regions={"x<0": theta[:, 0] < 0, "x>=0": theta[:, 0] >= 0}
    )
    path = rep.write(tmp_path)
    data = json.loads(path.read_text())
    assert set(data["coverage_hpd"]) == {str(v) for v in LEVELS}
    assert data["regions"]["x<0"]["n"] + data["regions"]["x>=0"]["n"] == 500
    assert (tmp_path / "calibration.png").stat().st_size > 10_000


# --------------------------------------------------------------------------- JSD
def test_jsd_matches_numerical_integral() -> None:
    from scipy import integrate, stats

    # JSD(N(0,1), N(1,1)) by quadrature of its definition, in bits
    p, q = stats.norm(0, 1), stats.norm(1, 1)

    def integrand(x: float) -> float:
        m = 0.5 * (p.pdf(x) + q.pdf(x))
        return 0.5 * p.pdf(x) * math.log2(p.pdf(x) / m) + 0.5 * q.pdf(x) * math.log2(q.pdf(x) / m)

    exact, _ = integrate.quad(integrand, -12, 13)
    rng = np.random.default_rng(0)
    est = jsd_bits(rng.normal(0, 1, 200_000), rng.normal(1, 1, 200_000), bins=60)
    assert abs(est - exact) < 0.01  # exact is 0.0853 bits
    assert jsd_bits(rng.normal(0, 1, 5000), rng.normal(0, 1, 5000)) < 0.01
    assert jsd_bits(np.zeros(100), np.ones(100), value_range=(0.0, 1.0)) == pytest.approx(1.0)


def test_interval68_of_gaussian() -> None:
    x = np.random.default_rng(1).normal(3.0, 2.0, (200_000, 1))
    lo, hi = interval68(x)[0]
    assert lo == pytest.approx(3.0 - 2.0 * 0.9945, abs=0.02)  # Phi^-1(0.84) = 0.9945
    assert hi == pytest.approx(3.0 + 2.0 * 0.9945, abs=0.02)


# --------------------------------------------------------------------------- importance
class _GaussianProposal:
    """A stand-in fitted estimator: q = N(mu, sd^2) in one parameter, with the NPE interface.

    Not an NPEstimator, so the tests hold it as ``Any`` to hand it to ``importance_correct``
    (which uses only ``param_names_``, ``bounds_``, ``sample`` and ``log_prob``).
    """

    param_names_ = ("a",)
    bounds_ = {"a": (-3.0, 3.0)}

    def __init__(self, mu: float, sd: float) -> None:
        self.mu, self.sd = mu, sd

    def sample(self, flux, sigma=None, n=1000, seed=0):
        rng = np.random.default_rng(seed)
        return self.mu + self.sd * rng.standard_normal((n, 1))

    def log_prob(self, theta, flux, sigma=None):
        z = (np.asarray(theta)[:, 0] - self.mu) / self.sd
        return -0.5 * z**2 - math.log(self.sd * math.sqrt(2 * math.pi))


def _slope_problem() -> tuple[np.ndarray, np.ndarray, ScaledGaussianLikelihood]:
    w = np.linspace(-1, 1, 20)

    def models(theta):
        return 1.0 + 0.3 * np.atleast_2d(theta)[:, :1] * w

    rng = np.random.default_rng(4)
    sigma = np.full(20, 0.05)
    flux = 2.0 * models(np.array([[0.4]]))[0] + sigma * rng.standard_normal(20)
    return flux, sigma, ScaledGaussianLikelihood(flux, sigma, models, s_max=10.0)


def test_importance_correction_matches_quadrature() -> None:
    flux, sigma, like = _slope_problem()
    # reference: posterior mean and evidence by quadrature over the prior box [-3, 3]
    grid = np.linspace(-3, 3, 20001)
    ll = like(grid[:, None])
    post = np.exp(ll - ll.max())
    dx = grid[1] - grid[0]
    mean_ref = float(np.sum(grid * post) / np.sum(post))
    logz_ref = float(ll.max() + np.log(np.sum(post) * dx / 6.0))  # prior density 1/6
    proposal: Any = _GaussianProposal(mean_ref + 0.05, 0.12)  # shifted and too wide
    res = importance_correct(proposal, flux, like, sigma=sigma, n=20000, seed=1)
    wmean = float(np.sum(res.weights * res.samples[:, 0]))
    assert abs(wmean - mean_ref) < 0.005
    assert abs(res.log_evidence - logz_ref) < 0.05
    assert 0.05 < res.efficiency < 1.0
    # the flux scale drawn from its conditional Gaussian recovers the injected scale 2
    assert res.scale is not None
    assert abs(np.sum(res.weights * res.scale) - 2.0) < 0.05


def test_low_efficiency_warns() -> None:
    flux, sigma, like = _slope_problem()
    bad: Any = _GaussianProposal(-1.0, 0.05)  # far from the posterior at ~0.4
    with pytest.warns(LowEfficiencyWarning, match="efficiency"):
        res = importance_correct(bad, flux, like, sigma=sigma, n=2000, seed=0)
    assert res.low_efficiency


def test_no_warning_for_good_proposal() -> None:
    flux, sigma, like = _slope_problem()
    grid = np.linspace(-3, 3, 20001)
    ll = like(grid[:, None])
    p = np.exp(ll - ll.max())
    m = float(np.sum(grid * p) / p.sum())
    s = float(np.sqrt(np.sum((grid - m) ** 2 * p) / p.sum()))
    good: Any = _GaussianProposal(m, s)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LowEfficiencyWarning)
        res = importance_correct(good, flux, like, sigma=sigma, n=5000)
    assert res.efficiency > 0.9


@pytest.mark.realdata
def test_npe_refuses_a_spectrum_short_of_its_axis_and_says_what_serves_it(splat_dir) -> None:
    # The shipped NPE was trained on complete spectra of 0.85-2.45 um; GD 165B cut to
    # 1.0-2.3 um is refused in words a user can act on (the predictor's CNN takes it with
    # the missing bins masked), not with the resampler's advice to pass fill=.
    from atmospec import library
    from atmospec.errors import CoverageError
    from atmospec.models import load_model

    gd165b = library.load("11250_11052").good().trim(1.0, 2.3)
    npe = load_model("npe_dback24", kind="npe")
    with pytest.raises(CoverageError) as info:
        npe.sample(gd165b, n=10)
    said = str(info.value)
    assert "spans 1.003-2.299 um but the NPE reads every bin of its axis (0.852-2.449" in said
    assert said.startswith("11250_11052: ") and "--coverage mask" in said and "fill=" not in said
    # the J band alone (10 % of the axis) is too little for the CNN too: the classic fit is named
    with pytest.raises(CoverageError) as info:
        npe.sample(library.load("11250_11052").good().trim(1.15, 1.35), n=10)
    said = str(info.value)
    assert said.startswith("11250_11052: the spectrum spans 1.1")
    assert "It covers 1" in said and "`atmospec fit FILE --grid NAME`" in said
    assert "--coverage mask" not in said


def test_shipped_npe_calibration_is_what_the_code_measures_today(grid) -> None:
    # `predict --model default` hands in-domain spectra to the NPE because its calibration
    # record passed; the record is read, not re-measured. So the record must be what
    # `calibrate_model` measures now (same held-out simulations: seed 0, its test stream, its
    # model-error realisations), or a change of the simulator, the noise model or the model
    # of mismatch would leave a stale "passed" in force. It is deterministic (equal to the
    # last digit today); one test case in 2000 may flip on other BLAS builds. 6 s.
    from atmospec.models import model_path
    from atmospec.posteriors.calibration import CALIBRATION_FILE
    from atmospec.posteriors.pipeline import calibrate_model

    shipped = json.loads((model_path("npe_dback24") / CALIBRATION_FILE).read_text())
    now = calibrate_model("npe_dback24").to_dict()
    assert (
        (now["n_tests"], now["n_samples"])
        == (shipped["n_tests"], shipped["n_samples"])
        == (2000, 1000)
    )
    assert now["meta"]["model_error"] == shipped["meta"]["model_error"]
    one_case = 1.5 / shipped["n_tests"]
    curves = [("coverage_hpd", shipped["coverage_hpd"], now["coverage_hpd"])]
    curves.append(("coverage_tarp", shipped["coverage_tarp"], now["coverage_tarp"]))
    for p, curve in shipped["coverage_marginal"].items():
        curves.append((p, curve, now["coverage_marginal"][p]))
    for name, old, new in curves:
        assert old.keys() == new.keys(), name
        worst = max(abs(new[k] - old[k]) for k in old)
        assert worst <= one_case, f"{name}: coverage moved by {worst:.4f}; re-run the calibration"
