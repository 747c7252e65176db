"""The fast inference Engine: same numbers as the estimator, batch-independent draws, noise
counted once, calibrated coverage on held-out synthetic spectra."""

# ruff: noqa: F811  (the `tiny` fixture is imported from _inference_support)
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _inference_support import AXIS, tiny  # noqa: F401 (fixture)

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def held_out(tiny: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Fresh synthetic dback24 spectra (seed unseen in training) at S/N 20 and 100."""
    from atmospec.training.builder import build_training_set

    ts = build_training_set(
        tiny["grid"],
        tmp_path_factory.mktemp("held") / "held.h5",
        n_samples=240,
        axis=AXIS,
        seed=404,
        snr_levels=[20.0, 100.0],
        bounds=tiny["estimator"].bounds_,
    )
    return ts.arrays()


def test_engine_matches_estimator(tiny: dict[str, Any], held_out: Any) -> None:
    from atmospec.prediction.engine import Engine

    X, _, S = held_out
    est = tiny["estimator"]
    engine = Engine(est, num_threads=2, sub_batch=32)  # several sub-batches on 2 threads
    mean, std = engine.predict(X, S)
    ref = est.predict(X, S)
    # float32 network vs the float64-preprocessed reference: relative agreement ~1e-6 of the
    # grid range (Teff range 1500 K -> well below 0.01 K).
    span = np.array([hi - lo for lo, hi in est.bounds_.values()])
    assert np.max(np.abs(mean - ref.mean) / span) < 1e-4
    assert std is not None and ref.std is not None
    np.testing.assert_allclose(std, ref.std, rtol=1e-3)


def test_draws_are_batch_independent_and_noisy(tiny: dict[str, Any], held_out: Any) -> None:
    from atmospec.prediction.engine import Engine

    X, _, S = held_out
    engine = Engine(tiny["estimator"], num_threads=2)
    both = engine.draws(X[:2], S[:2], n_draws=300, seeds=[(0, 1), (0, 2)])
    one = engine.draws(X[1:2], S[1:2], n_draws=300, seeds=[(0, 2)])
    np.testing.assert_array_equal(both.mean[1], one.mean[0])
    # Noisy copies give different estimates; the S/N 20 spectrum (row 0) spreads more in Teff
    # than the S/N 100 one (row 1): noise propagates.
    assert both.mean[0, :, 0].std() > both.mean[1, :, 0].std() > 0


def test_noise_counted_once(tiny: dict[str, Any], held_out: Any) -> None:
    # Sigma heads trained on noisy spectra already hold the noise: by the law of total
    # variance the samples' variance equals the predicted sigma^2 (when the noise spread of
    # the means is smaller), not sigma^2 + noise variance as adding both would give.
    from atmospec.prediction.engine import Engine, sigma_kind
    from atmospec.prediction.sampling import monte_carlo

    X, _, S = held_out
    engine = Engine(tiny["estimator"])
    assert sigma_kind(tiny["estimator"]) == "total"
    samples, _, std, _ = monte_carlo(engine, X[:20], S[:20], draws=2000, seeds=list(range(20)))
    assert std is not None
    res = engine.draws(X[:20], S[:20], n_draws=2000, seeds=list(range(20)))
    teff = 0  # far from bounds for most rows: keep rows whose 3-sigma range stays inside
    lo, hi = engine.lo[teff], engine.hi[teff]
    ok = (res.point[:, teff] - 3 * std[:, teff] > lo) & (res.point[:, teff] + 3 * std[:, teff] < hi)
    ok &= res.mean[:, :, teff].var(axis=1) < std[:, teff] ** 2
    assert ok.sum() >= 5
    ratio = samples[ok, :, teff].std(axis=1) / std[ok, teff]
    # std of a std estimate from 2000 draws: ~1.6 %; allow 6 %.
    np.testing.assert_allclose(ratio, 1.0, atol=0.06)


def test_intervals_calibrated_on_held_out_spectra(tiny: dict[str, Any], held_out: Any) -> None:
    # Fresh synthetic spectra from the training distribution (unseen seed): the truth falls in
    # the 68 % interval for ~68 % and in the 95 % interval for ~95 % of the 960 pairs
    # (binomial std 1.5 % and 0.7 %); allow for the tiny model's imperfect calibration.
    from atmospec.prediction.sampling import monte_carlo

    X, y, S = held_out
    samples, _, _, _ = monte_carlo(tiny["estimator"], X, S, draws=400, seeds=list(range(240)))
    for level, tol in ((68, 0.08), (95, 0.04)):
        lo, hi = np.percentile(samples, [50 - level / 2, 50 + level / 2], axis=1)
        inside = (y >= lo) & (y <= hi)
        assert inside.mean() == pytest.approx(level / 100, abs=tol), level


def test_engine_falls_back_for_non_neural(tmp_path: Path) -> None:
    from atmospec.estimators.baselines import RandomForestEstimator
    from atmospec.prediction.engine import Engine

    rng = np.random.default_rng(0)
    wave = np.linspace(1.0, 2.0, 20)
    t = rng.uniform(0, 1, (200, 1))
    X = 1 + t * np.sin(5 * wave)
    est = RandomForestEstimator(n_estimators=10).fit(
        X, t, wavelength=wave, param_names=["t"], bounds={"t": (0.0, 1.0)}
    )
    engine = Engine(est)
    assert not engine.neural
    np.testing.assert_allclose(engine.predict(X[:5])[0], est.predict(X[:5]).mean)
    res = engine.draws(X[:2], np.full((2, 20), 0.01), n_draws=50, seeds=[1, 2])
    assert res.mean.shape == (2, 50, 1)


def test_bfloat16_draws_stay_close_to_float32(tiny: dict[str, Any], held_out: Any) -> None:
    # bfloat16 keeps 8 mantissa bits (relative rounding 2^-9 = 0.2 % per operation); through
    # three layers the percentiles of the draws move by well under 2 % of the grid range.
    from atmospec.prediction.engine import Engine
    from atmospec.prediction.sampling import monte_carlo

    X, _, S = held_out
    engine = Engine(tiny["estimator"])
    seeds = list(range(6))
    a = monte_carlo(engine, X[:6], S[:6], draws=400, seeds=seeds)[0]
    b = monte_carlo(engine, X[:6], S[:6], draws=400, seeds=seeds, precision="bfloat16")[0]
    span = engine.hi - engine.lo
    qa, qb = (np.percentile(s, [16, 50, 84], axis=1) for s in (a, b))
    assert np.max(np.abs(qa - qb) / span) < 0.02
    with pytest.raises(ValueError, match="precision"):
        monte_carlo(engine, X[:1], S[:1], draws=10, seeds=[0], precision="float16")  # type: ignore[arg-type]


def test_engine_falls_back_when_it_cannot_reproduce(
    tiny: dict[str, Any], held_out: Any, tmp_path: Path
) -> None:
    # An estimator whose predict does something the fast path does not know (here: a
    # shifted mean) must not be silently mis-predicted: warn, then use its own predict.
    from atmospec.estimators.base import load_estimator
    from atmospec.prediction.engine import Engine

    est = load_estimator(tiny["estimator"].save(tmp_path / "copy"))
    original = est._predict
    est._predict = lambda X, sigma: (original(X, sigma)[0] + 50.0, original(X, sigma)[1])  # type: ignore[method-assign]
    X, _, S = held_out
    engine = Engine(est)
    with pytest.warns(RuntimeWarning, match="fast inference path"):
        mean, _ = engine.predict(X[:5], S[:5])
    np.testing.assert_allclose(mean, est.predict(X[:5], S[:5]).mean)
    assert not engine.neural
