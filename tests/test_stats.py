"""Statistics and plots: chi-square tests, predictive intervals, calibration, metrics, figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from atmospec import plots, stats


def test_chi2_of_gaussian_noise_has_mean_one_and_uniform_p_values() -> None:
    # Data = model + N(0, sigma): chi2 / N has mean 1; p-values are uniform, so ~5 % fall
    # below 0.05 (binomial std over 2000 trials: sqrt(0.05 * 0.95 / 2000) = 0.005).
    rng = np.random.default_rng(11)
    model = np.linspace(1.0, 2.0, 100)
    sigma = np.full(100, 0.05)
    tests = [
        stats.chi_square(model + sigma * rng.standard_normal(100), model, sigma, n_fitted=0)
        for _ in range(2000)
    ]
    red = np.array([t.chi2_red for t in tests])
    p = np.array([t.p_value for t in tests])
    assert red.mean() == pytest.approx(1.0, abs=0.01)  # std of mean sqrt(2/100/2000) = 0.003
    assert np.mean(p < 0.05) == pytest.approx(0.05, abs=0.02)
    # Errors underestimated by 2x: chi2_red ~ 4 and the test rejects.
    bad = stats.chi_square(model + 2 * sigma * rng.standard_normal(100), model, sigma, 0)
    assert bad.chi2_red > 2.5 and bad.p_value < 1e-6


def test_p_values_of_known_cases() -> None:
    # chi2(2) survival function is exp(-x/2): P(chi2 > 2) = e^-1.
    assert stats.chi2_test(2.0, 2).p_value == pytest.approx(np.exp(-1), rel=1e-12)
    # 1.959964^2 is the two-sided 95 % point of a unit normal, i.e. chi2(1) at p = 0.05.
    assert stats.chi2_test(1.959963984540054**2, 1).p_value == pytest.approx(0.05, rel=1e-9)
    # dof = N - fitted parameters, and it must stay positive.
    t = stats.chi_square([1.0, 2.0, 4.0, 4.0], [1.0, 2.0, 3.0, 4.0], [1.0] * 4, n_fitted=2)
    assert (t.chi2, t.dof, t.chi2_red) == (1.0, 2, 0.5)
    with pytest.raises(ValueError, match="degrees of freedom"):
        stats.degrees_of_freedom(3, 3)


def test_predictive_interval_does_not_shrink_but_standard_error_does() -> None:
    rng = np.random.default_rng(5)
    small, large = rng.normal(0, 2, 1000), rng.normal(0, 2, 100_000)
    for x in (small, large):
        lo, hi = stats.predictive_interval(x, 0.95)
        assert hi - lo == pytest.approx(2 * 1.96 * 2, rel=0.1)  # +-1.96 sigma of N(0, 2)
    # The standard error of the mean is sigma / sqrt(N): 10x smaller for 100x more samples.
    assert stats.standard_error(small) == pytest.approx(2 / np.sqrt(1000), rel=0.1)
    assert stats.standard_error(large) == pytest.approx(2 / np.sqrt(100_000), rel=0.1)


def test_calibration_detects_overconfidence() -> None:
    rng = np.random.default_rng(8)
    truth = rng.normal(size=3000)
    calibrated = rng.normal(size=(400, 3000))
    overconfident = 0.5 * rng.normal(size=(400, 3000))  # intervals half as wide as they should
    lv, emp_ok = stats.calibration_curve(truth, calibrated, [0.68, 0.95])
    _, emp_bad = stats.calibration_curve(truth, overconfident, [0.68, 0.95])
    assert np.allclose(emp_ok, lv, atol=0.03)
    # A N(0, 0.5) 68 % interval (+-0.5) covers P(|z| < 0.5) = 0.383 of N(0, 1) truths.
    assert emp_bad[0] == pytest.approx(0.383, abs=0.03)
    lo, hi = stats.predictive_interval(calibrated, 0.68)
    assert stats.coverage(truth, lo, hi) == pytest.approx(0.68, abs=0.03)


def test_weighted_quantiles_equal_repeated_samples() -> None:
    x = np.array([1.0, 2.0, 3.0])
    w = np.array([1.0, 2.0, 1.0])
    repeated = np.array([1.0, 2.0, 2.0, 3.0])
    assert stats.quantiles(x, [50.0], weights=w)[0] == pytest.approx(np.median(repeated))


def test_r2_has_the_right_argument_order() -> None:
    true = np.array([1.0, 2.0, 3.0, 4.0])
    pred = np.array([2.5, 2.5, 2.5, 2.5])  # predicting the mean: R^2 = 0 exactly
    m = stats.regression_metrics(true, pred)
    assert m["r2"] == pytest.approx(0.0) and m["bias"] == pytest.approx(0.0)
    # Swapped (TelescopeML's bug) the variance of a constant is 0 and R^2 is undefined.
    assert np.isnan(stats.regression_metrics(pred, true)["r2"])


def test_plots_build_figures(tmp_path) -> None:  # noqa: ANN001
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(400, 3)), columns=["teff", "logg", "mh"])
    fig = plots.corner(df, truths={"teff": 0.0, "logg": 0.0, "mh": 0.0})
    assert len(fig.axes) == 6  # 3 diagonal + 3 lower-triangle panels
    assert len(plots.parity(df.teff, df.teff + 0.1).axes) == 1
    assert len(plots.scatter(df.teff, df.logg, c=df.mh).axes) == 2  # with a colour bar
    assert len(plots.histogram({"a": df.teff, "b": df.logg}).axes) == 1
    path = plots.save_figure(plots.boxplot({"a": df.teff, "b": df.mh}), tmp_path / "b.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
