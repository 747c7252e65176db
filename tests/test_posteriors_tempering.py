"""Latent temperature of the flow posterior: exact tempered density, and a fit that restores
coverage of a posterior known to be over-confident."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from _linear_npe import BOX, NOISE, train_linear_npe  # noqa: E402
from _linear_npe import linear_model as _model  # noqa: E402

from atmospec.posteriors.flow import PosteriorFlow  # noqa: E402
from atmospec.posteriors.npe import NPEstimator  # noqa: E402
from atmospec.posteriors.tempering import fit_temperature, tempered_coverage  # noqa: E402


@pytest.fixture(scope="module")
def npe() -> NPEstimator:
    return train_linear_npe()


def _set(seed: int, n: int) -> tuple[np.ndarray, ...]:
    """Noisy spectra of parameters drawn inside the box, with their errors."""
    rng = np.random.default_rng(seed)
    theta = rng.uniform(-2.5, 2.5, (n, 2))
    noisy, sig = NOISE.draw(_model(theta), rng)
    return noisy, sig, theta


class _Narrowed:
    """The trained flow with its base shrunk to ``N(0, 0.5^2 I)``: over-confident by a known
    factor 2 in latent space, so the temperature that restores it is 2."""

    def __init__(self, est: NPEstimator) -> None:
        self.est, self.bounds_ = est, est.bounds_

    def sample(self, f, s, n, seed, temperature):  # noqa: ANN001, ANN201
        return self.est.sample(f, s, n=n, seed=seed, temperature=0.5 * temperature)

    def log_prob(self, th, f, s, temperature):  # noqa: ANN001, ANN201
        return self.est.log_prob(th, f, s, temperature=0.5 * temperature)


def test_base_temperature_gives_exact_gaussian_without_transforms() -> None:
    # no blocks: z is the base variable itself, so q_tau = N(0, tau^2 I) exactly
    flow = PosteriorFlow(2, 4, n_features=4, width=8, depth=1, transforms=0)
    ctx = flow.context(torch.zeros(1, 4), torch.zeros(1, 4))
    z = torch.tensor([[[0.3, -1.2]], [[2.0, 0.5]]])
    for tau in (1.0, 1.7):
        want = -0.5 * (z**2).sum(-1) / tau**2 - 2 * math.log(tau * math.sqrt(2 * math.pi))
        assert torch.allclose(flow.log_prob(z, ctx, tau), want, atol=1e-5)
    draws = flow.sample(ctx, (20000,), torch.Generator().manual_seed(0), temperature=1.7)
    assert float(draws.std()) == pytest.approx(1.7, rel=0.02)  # 2 % ~ 3 sd of the estimate


def test_tempered_density_is_normalised_and_matches_its_draws() -> None:
    # a random (untrained) flow with spline couplings: E_{z ~ q_1}[q_tau(z) / q_1(z)] = 1
    # for a normalised q_tau; and draws at tau are a wider copy of the same latent draws
    torch.manual_seed(3)
    flow = PosteriorFlow(3, 6, n_features=8, width=16, depth=1, transforms=2, couplings=2)
    ctx = flow.context(torch.randn(1, 6), torch.zeros(1, 6))
    with torch.no_grad():
        z = flow.sample(ctx, (40000,), torch.Generator().manual_seed(1))
        ratio = torch.exp(flow.log_prob(z, ctx, 1.3) - flow.log_prob(z, ctx, 1.0))
        # the ratio's variance is finite for tau = 1.3 in 3-D; 40,000 draws: sd ~ 0.01
        assert float(ratio.mean()) == pytest.approx(1.0, abs=0.04)
        wide = flow.sample(ctx, (40000,), torch.Generator().manual_seed(1), temperature=1.3)
    assert bool((wide.std(0) > z.std(0)).all())


def test_fitted_temperature_restores_coverage_of_overconfident_posterior(npe) -> None:
    narrow = _Narrowed(npe)
    flux, sig, theta = _set(1, 600)
    fit = fit_temperature(narrow, flux, sig, theta, n_samples=200, seed=2)
    assert 1.7 <= fit.temperature <= 2.3  # the factor put in, within the grid and noise
    assert fit.n_calibration == 600 and fit.to_dict()["temperature"] == fit.temperature
    # judged on a second, disjoint set: a 2-D posterior half as wide holds the truth in its
    # 68 % HPD region in P(chi2_2 < 2.28 / 4) = 0.25 of the tests (0.68 if calibrated); the
    # fitted tau brings HPD, TARP and marginal coverage to within 0.06 of 68 and 95 %
    # (600 tests: binomial sd <= 0.02; the flow itself is a small one trained in seconds)
    tf, ts, tt = _set(7, 600)
    levels = (0.68, 0.95)
    before = tempered_coverage(narrow, tf, ts, tt, 1.0, levels=levels, n_samples=200)
    after = tempered_coverage(narrow, tf, ts, tt, fit.temperature, levels=levels, n_samples=200)
    assert before["hpd"][0] < 0.4 and before["marginal"][0] < 0.5
    for kind in ("hpd", "tarp", "marginal"):
        assert np.all(np.abs(after[kind] - levels) < 0.06), (kind, after[kind])


def test_calibrated_posterior_is_left_alone_and_tau_is_saved(npe, tmp_path) -> None:
    flux, sig, theta = _set(3, 600)
    fit = fit_temperature(npe, flux, sig, theta, n_samples=200, seed=2)
    assert fit.temperature <= 1.2  # the trained flow is calibrated: no widening needed
    npe.temperature_ = 1.8
    try:
        npe.save(tmp_path / "m")
        back = NPEstimator.load(tmp_path / "m")
        assert back.temperature_ == 1.8
        a = back.sample(flux[0], sig[0], n=500, seed=4)
        b = back.sample(flux[0], sig[0], n=500, seed=4, temperature=1.0)
        assert np.all(a.std(0) > 1.4 * b.std(0))  # ~1.8x wider, same latent draws
    finally:
        npe.temperature_ = 1.0
    with pytest.raises(ValueError, match="include 1"):
        fit_temperature(npe, flux, sig, theta, temperatures=(1.5, 2.0))


@pytest.mark.parametrize("box_map", ["logit", "probit"])
def test_box_map_round_trip_and_jacobian(box_map) -> None:
    est = NPEstimator(["a", "b"], BOX, box_map=box_map)
    theta = np.array([[-2.9, 0.3], [1.7, 2.999]])
    assert np.allclose(est.from_z(est.to_z(theta)), theta, atol=1e-9)
    # log |dz/dtheta| against a central finite difference, per parameter
    h = 1e-6
    num = np.log((est.to_z(theta + h) - est.to_z(theta - h)) / (2 * h)).sum(-1)
    assert np.allclose(est._log_jacobian(theta), num, atol=1e-4)
    if box_map == "probit":  # the uniform prior maps to the flow's N(0, 1) base exactly
        z = est.to_z(np.random.default_rng(0).uniform(-3, 3, (20000, 2)))
        assert np.allclose(z.std(0), 1.0, atol=0.02) and np.allclose(z.mean(0), 0, atol=0.03)
    with pytest.raises(ValueError, match="box_map"):
        NPEstimator(["a"], {"a": (0.0, 1.0)}, box_map="tanh")._box()
