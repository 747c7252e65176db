"""`atmospec stats`: chi-square test, intervals, metrics and plots from the command line."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from atmospec.cli.main import app

runner = CliRunner()


def _spectrum_files(tmp: Path, n: int = 400, seed: int = 0) -> tuple[Path, Path]:
    """Data = model + N(0, sigma) noise, both as ECSV spectrum files."""
    from atmospec.spectrum import Spectrum

    wave = np.linspace(1.0, 2.0, n)
    model = 1.0 + 0.5 * np.sin(4 * wave)
    sigma = np.full(n, 0.02)
    data = model + sigma * np.random.default_rng(seed).standard_normal(n)
    data_path = tmp / "data.ecsv"
    model_path = tmp / "model.ecsv"
    Spectrum(wave, data, sigma, name="data").write(data_path)
    Spectrum(wave, model, np.full(n, 1e-3), name="model").write(model_path)
    return data_path, model_path


def _number(text: str, key: str) -> float:
    match = re.search(rf"{key} = ([-0-9.eE+]+)", text)
    assert match, text
    return float(match.group(1))


def test_stats_chi2_model_file(tmp_path: Path) -> None:
    data, model = _spectrum_files(tmp_path)
    res = runner.invoke(app, ["stats", "chi2", str(data), "--model-file", str(model)])
    assert res.exit_code == 0, res.output
    # The model is the truth: chi2 ~ chi2(dof) with dof = N - 1 (the solved flux scale), so
    # chi2_red = 1 +- sqrt(2 / dof) = 1 +- 0.07; 4 sigma bound.
    n = _number(res.output, "N")
    dof = _number(res.output, "dof")
    assert dof == n - 1
    assert abs(_number(res.output, "chi2_red") - 1.0) < 0.3
    assert _number(res.output, "scale") == pytest.approx(1.0, abs=0.01)
    # Without the scale, nothing is fitted: dof = N.
    res = runner.invoke(app, ["stats", "chi2", str(data), "--model-file", str(model), "--no-scale"])
    assert res.exit_code == 0, res.output
    assert _number(res.output, "dof") == n


def test_stats_chi2_model_file_in_another_flux_unit(tmp_path: Path) -> None:
    # The model is the truth, written in mJy (F_nu) while the data are in W m-2 um-1
    # (F_lambda). F_nu = F_lambda lambda^2 / c tilts the shape by lambda^2 (a factor 4 over
    # 1-2 um) that no flux scale absorbs: compared as raw numbers the chi2_red was in the
    # thousands. Converted to the data's unit, chi2_red = 1 +- 0.07 as for one unit (4 sigma
    # bound below), with the scale solved or not.
    from atmospec.spectrum import Spectrum

    n = 400
    wave = np.linspace(1.0, 2.0, n)
    truth = 1e-15 * (1.0 + 0.5 * np.sin(4 * wave))
    sigma = np.full(n, 2e-17)
    noisy = truth + sigma * np.random.default_rng(0).standard_normal(n)
    data, model = tmp_path / "data.ecsv", tmp_path / "model.ecsv"
    Spectrum(wave, noisy, sigma, flux_unit="W m-2 um-1", name="data").write(data)
    flam = Spectrum(wave, truth, sigma / 20, flux_unit="W m-2 um-1", name="model")
    flam.to_flux_unit("mJy").write(model)
    for extra in ([], ["--no-scale"]):
        res = runner.invoke(app, ["stats", "chi2", str(data), "--model-file", str(model), *extra])
        assert res.exit_code == 0, res.output
        assert abs(_number(res.output, "chi2_red") - 1.0) < 0.3, res.output
        if not extra:
            assert _number(res.output, "scale") == pytest.approx(1.0, abs=0.01)


def test_stats_chi2_needs_one_model(tmp_path: Path) -> None:
    data, _ = _spectrum_files(tmp_path)
    res = runner.invoke(app, ["stats", "chi2", str(data)])
    assert res.exit_code != 0
    assert "--model-file" in res.output


def test_stats_intervals_from_samples_and_predictions(tmp_path: Path) -> None:
    # Samples from N(10, 2): the 68 % predictive interval is 10 -+ 2 (to ~1 %), while the
    # standard error of the mean is 2 / sqrt(20000) = 0.014: both shown, never confused.
    x = np.random.default_rng(1).normal(10.0, 2.0, 20000)
    pd.DataFrame({"teff": x}).to_csv(tmp_path / "samples.csv", index=False)
    res = runner.invoke(app, ["stats", "intervals", str(tmp_path / "samples.csv")])
    assert res.exit_code == 0, res.output
    lo, hi = map(float, re.search(r"\[([0-9.]+), ([0-9.]+)\]", res.output).groups())  # type: ignore[union-attr]
    assert lo == pytest.approx(8.0, abs=0.1) and hi == pytest.approx(12.0, abs=0.1)
    assert "0.014" in res.output
    pred = pd.DataFrame(
        {
            "source": ["a"],
            "teff_median": [1000.0],
            "teff_p16": [950.0],
            "teff_p84": [1060.0],
            "teff_p2.5": [900.0],
            "teff_p97.5": [1120.0],
        }
    )
    pred.to_csv(tmp_path / "predictions.csv", index=False)
    res = runner.invoke(app, ["stats", "intervals", str(tmp_path / "predictions.csv")])
    assert res.exit_code == 0, res.output
    assert "1000 [950, 1060]" in res.output and "900-1120" in res.output


def test_stats_intervals_say_what_they_leave_out(tmp_path: Path) -> None:
    # A samples table with a column that holds no number (a radius never computed) ended in
    # an IndexError from numpy; NaN among samples were dropped without a word. The empty
    # column is refused by name, and the count of values left out is printed.
    x = np.random.default_rng(3).normal(10.0, 2.0, 1000)
    x[:10] = np.nan
    frame = pd.DataFrame({"teff": x, "radius": np.full(1000, np.nan)})
    frame.to_csv(tmp_path / "samples.csv", index=False)
    res = runner.invoke(app, ["stats", "intervals", str(tmp_path / "samples.csv")])
    assert res.exit_code != 0 and isinstance(res.exception, Exception)
    assert "column radius has 0 finite values of 1000" in str(res.exception)
    res = runner.invoke(app, ["stats", "intervals", str(tmp_path / "samples.csv"), "-c", "teff"])
    assert res.exit_code == 0, res.output
    assert "teff: 10 of 1000" in res.output


def test_stats_metrics(tmp_path: Path) -> None:
    # pred = true + 1 everywhere: bias 1, RMSE 1; intervals [pred-1.5, pred+1.5] all cover.
    t = np.arange(10.0)
    pd.DataFrame({"t": t, "p": t + 1, "lo": t - 0.5, "hi": t + 2.5}).to_csv(
        tmp_path / "m.csv", index=False
    )
    res = runner.invoke(
        app,
        [
            "stats",
            "metrics",
            str(tmp_path / "m.csv"),
            "--true",
            "t",
            "--pred",
            "p",
            "--lower",
            "lo",
            "--upper",
            "hi",
        ],
    )
    assert res.exit_code == 0, res.output
    assert _number(res.output, "rmse") == 1.0 and _number(res.output, "bias") == 1.0
    assert _number(res.output, "coverage") == 1.0


def test_stats_metrics_leave_out_rows_without_a_value_and_say_so(tmp_path: Path) -> None:
    # A predictions table scored against literature values that only some objects have:
    # the NaN truths made every metric nan, and the coverage counted them as misses (0.7
    # here). As above, pred = true + 1 with intervals that cover: RMSE 1, bias 1, coverage 1
    # over the 7 rows with a value, and the 3 others are counted in the output.
    t = np.arange(10.0)
    lit = np.where(np.arange(10) % 3 == 1, np.nan, t)
    pd.DataFrame({"lit": lit, "p": t + 1, "lo": t - 0.5, "hi": t + 2.5}).to_csv(
        tmp_path / "m.csv", index=False
    )
    args = ["stats", "metrics", str(tmp_path / "m.csv"), "--true", "lit", "--pred", "p"]
    res = runner.invoke(app, [*args, "--lower", "lo", "--upper", "hi"])
    assert res.exit_code == 0, res.output
    assert _number(res.output, "rmse") == 1.0 and _number(res.output, "bias") == 1.0
    assert _number(res.output, "coverage") == 1.0 and _number(res.output, "n") == 7
    assert "3 of 10 rows left out" in res.output
    pd.DataFrame({"lit": [np.nan, np.nan], "p": [1.0, 2.0]}).to_csv(tmp_path / "e.csv")
    res = runner.invoke(app, ["stats", "metrics", str(tmp_path / "e.csv"), *args[3:]])
    assert res.exit_code != 0 and "no row has a finite number" in str(res.exception)


@pytest.mark.parametrize("kind", ["hist", "box", "scatter", "corner", "parity"])
def test_stats_plot(kind: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    frame["c"] = frame["a"] + 0.1 * frame["b"]
    frame.to_csv(tmp_path / "t.csv", index=False)
    args = {
        "hist": ["--x", "a,b"],
        "box": ["--x", "a,b"],
        "scatter": ["--x", "a", "--y", "c", "--c", "b"],
        "corner": ["--x", "a,b,c"],
        "parity": ["--x", "a", "--y", "c"],
    }[kind]
    out = tmp_path / f"{kind}.png"
    res = runner.invoke(
        app, ["stats", "plot", kind, str(tmp_path / "t.csv"), *args, "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert out.stat().st_size > 5000


def test_stats_plot_errors(tmp_path: Path) -> None:
    pd.DataFrame({"a": [1.0, 2.0]}).to_csv(tmp_path / "t.csv", index=False)
    res = runner.invoke(
        app, ["stats", "plot", "pie", str(tmp_path / "t.csv"), "--x", "a", "--out", "x.png"]
    )
    assert res.exit_code != 0 and "hist, box" in res.output
    res = runner.invoke(
        app,
        [
            "stats",
            "plot",
            "hist",
            str(tmp_path / "t.csv"),
            "--x",
            "zzz",
            "--out",
            str(tmp_path / "x.png"),
        ],
    )
    assert res.exit_code != 0
    assert "no column zzz" in str(res.exception) or "no column zzz" in res.output
