"""Transit inputs no spectrum can honestly come from (too few time bins, a channel without
light) are refused by name; reruns into one output folder and the reduce options do what
they say."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from atmospec.errors import InvalidSpectrumError
from atmospec.transit.calibration import calibrate, spectral_columns
from atmospec.transit.detection import detect_transit
from atmospec.transit.detrenders import make_detrender
from atmospec.transit.detrenders.base import DepthSpectrum
from atmospec.transit.detrenders.gp import GPDetrender
from atmospec.transit.detrenders.polynomial import PolynomialDetrender
from atmospec.transit.simulator import SimulationConfig, simulate_dataset, simulate_planet

SMALL = SimulationConfig(n_exposures=160, airs_cols=24)


def _cli(*args: str):
    from atmospec.cli.main import app

    return CliRunner().invoke(app, list(args))


def _short(n_exposures: int):
    raw, _ = simulate_planet(
        "8", SimulationConfig(n_exposures=n_exposures, airs_cols=24), np.random.default_rng(0)
    )
    obs = calibrate(raw)
    assert obs.n_time == n_exposures  # below 200 exposures each is its own time bin
    return obs


def test_too_few_time_bins_give_no_infinite_significance() -> None:
    # the detection baseline has 9 parameters (quadratic in time, 4 pointing terms, ramp,
    # depth): 8 time bins are fitted exactly, so the residual scatter is 0 and no S/N exists
    obs = _short(8)
    det = detect_transit(obs)
    assert not det.detected and "8 time bins" in det.reason
    # without the gate the polynomial fit (quadratic, 4 pointing terms, rp, u1, u2) has more
    # parameters than bins: refused, not a 1 ppm sigma from a zero residual
    poly = PolynomialDetrender()
    poly.transit_threshold = None
    with pytest.raises(InvalidSpectrumError, match="planet 8: 8 time bins are too few"):
        poly.fit(obs)
    # the GP's white-light fit has 14 parameters: refused by name, not a LinAlgError
    gp = GPDetrender()
    gp.transit_threshold = None
    with pytest.raises(InvalidSpectrumError, match="planet 8: 8 time bins are too few"):
        gp.fit(obs)


def test_short_visit_is_reported_by_the_cli_without_a_traceback(tmp_path: Path) -> None:
    data = tmp_path / "sim"
    simulate_dataset(data, 2, SimulationConfig(n_exposures=6, airs_cols=24), seed=0)
    for method in ("poly", "gp"):
        out = tmp_path / method
        r = _cli("transit", "reduce", str(data), "--method", method, "-o", str(out))
        assert r.exit_code == 2, r.output
        for row in json.loads((out / f"summary_{method}.json").read_text())["rows"]:
            assert row["status"] == "no_transit", row
            assert "6 time bins, too few for the 9 parameters" in row["message"]
        assert not list(out.glob("*.ecsv"))


def test_a_channel_without_light_or_with_nan_is_refused_by_name() -> None:
    raw, _ = simulate_planet("3", SMALL, np.random.default_rng([5, 3]))
    # channel 5's detector column dead in every row: no pixel of it to scale a fill by
    col = int(spectral_columns(raw)[4])
    raw.calibration["AIRS-CH0"].dead[:, col] = True
    obs = calibrate(raw)
    assert np.all(obs.flux[:, 5] == 0)
    wl = f"{obs.wavelength[5]:.4g} um"
    for method in ("poly", "gp"):
        det = make_detrender(method)
        det.transit_threshold = None  # refused even where the transit is taken as given
        with pytest.raises(InvalidSpectrumError, match=f"channel 5 \\({wl}\\) has no light"):
            det.fit(obs)
    good = calibrate(simulate_planet("3", SMALL, np.random.default_rng([5, 3]))[0])
    good.flux[10:13, 7] = np.nan
    with pytest.raises(InvalidSpectrumError, match="channel 7 .* in 3 of"):
        PolynomialDetrender().fit(good)


def test_rerun_into_the_same_folder_leaves_no_earlier_spectrum(tmp_path: Path) -> None:
    data, out = tmp_path / "sim", tmp_path / "out"
    first, second = (t.planet_id for t in simulate_dataset(data, 2, SMALL, seed=4))
    r = _cli("transit", "reduce", str(data), "--method", "poly", "-o", str(out))
    assert r.exit_code == 0, r.output
    assert (out / f"{first}_poly.ecsv").is_file()
    assert (out / f"{first}_poly_spectrum.png").is_file()
    # the first planet's orbit now inclined to 70 degrees: it never transits, so no spectrum
    stars = pd.read_csv(data / "train_star_info.csv")
    stars.loc[stars["planet_id"].astype(str) == first, "i"] = 70.0
    stars.to_csv(data / "train_star_info.csv", index=False)
    r = _cli("transit", "reduce", str(data), "--method", "poly", "-o", str(out), "--no-figures")
    assert r.exit_code == 3, r.output
    summary = json.loads((out / "summary_poly.json").read_text())
    assert [row["status"] for row in summary["rows"]] == ["no_transit", "ok"]
    # the folder holds what the summary says: the second planet's new spectrum, no figures,
    # nothing of the first
    assert sorted(p.name for p in out.iterdir()) == [
        f"{second}_poly.ecsv",
        "summary_poly.csv",
        "summary_poly.json",
    ]
    spectra = [str(p) for p in out.glob("*.ecsv")]
    r = _cli("transit", "score", *spectra, "--labels", str(data / "train_labels.csv"), "--json")
    assert r.exit_code == 0 and json.loads(r.output)["planets"] == 1


def test_reduce_refuses_options_it_would_ignore_or_that_mean_nothing(tmp_path: Path) -> None:
    (truth,) = simulate_dataset(tmp_path / "sim", 1, SMALL, seed=4)
    planet = tmp_path / "sim" / "train" / truth.planet_id
    cases = [
        (["--method", "poly", "--model", str(tmp_path)], "cnn1d and cnn2d"),
        (["--sigma-scale", "nan"], "--sigma-scale"),
        (["--sigma-scale", "0"], "--sigma-scale"),
        (["--sigma-floor", "-0.001"], "--sigma-floor"),
        (["--sigma-shared-scale", "inf"], "--sigma-shared-scale"),
    ]
    for args, said in cases:
        r = _cli("transit", "reduce", str(planet), "-o", str(tmp_path / "out"), *args)
        assert r.exit_code == 2 and said in r.output, (args, r.output)
    assert not (tmp_path / "out").exists()
    (tmp_path / "file").touch()  # --out naming a file: refused by name, no traceback
    r = _cli("transit", "reduce", str(planet), "--method", "poly", "-o", str(tmp_path / "file"))
    assert r.exit_code != 0 and "output folder is an existing file" in str(r.exception)
    with pytest.raises(ValueError, match="cnn1d and cnn2d"):
        make_detrender("gp", model=tmp_path)
    with pytest.raises(Exception, match="floor must be finite and >= 0"):
        PolynomialDetrender().set_sigma_model(1.0, 1.0, float("nan"))


def test_sigma_options_act_on_top_of_a_cnns_calibration(tmp_path: Path) -> None:
    from atmospec.models import list_models

    if "transit-cnn1d" not in {m["name"] for m in list_models()}:
        pytest.skip("no shipped transit CNN in this build")
    shipped = make_detrender("cnn1d")
    a, b, c = shipped.sigma_scale, shipped.sigma_shared_scale, shipped.sigma_floor
    assert (a, b, c) != (1.0, 1.0, 0.0)  # it carries its calibration
    (truth,) = simulate_dataset(tmp_path / "sim", 1, SMALL, seed=4)
    planet = tmp_path / "sim" / "train" / truth.planet_id
    r = _cli(
        "transit", "reduce", str(planet), "--method", "cnn1d", "-o", str(tmp_path / "out"),
        "--no-figures", "--sigma-floor", "1e-4", "--sigma-scale", "2",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    spec = DepthSpectrum.read(tmp_path / "out" / f"{truth.planet_id}_cnn1d.ecsv")
    # "factor applied" and "added in quadrature": to the calibrated model, not replacing it
    assert spec.meta["sigma_scale"] == pytest.approx(2 * a)
    assert spec.meta["sigma_shared_scale"] == pytest.approx(b)
    assert spec.meta["sigma_floor"] == pytest.approx(math.hypot(c, 1e-4))
    own = np.asarray(spec.meta["sigma_relative"])
    white = float(spec.meta["white_depth_sigma"])
    expected = np.sqrt((2 * a * own) ** 2 + (b * white) ** 2 + c**2 + 1e-8)
    np.testing.assert_allclose(spec.sigma, expected, rtol=1e-9)


def test_train_cnn_kind_and_score_labels_are_checked_before_any_work(tmp_path: Path) -> None:
    # an unknown --kind is a usage error at once, not a traceback after simulating planets
    r = _cli("transit", "train-cnn", "-o", str(tmp_path / "m"), "--kind", "3d", "--planets", "4")
    assert r.exit_code == 2 and "--kind" in r.output, r.output
    assert not (tmp_path / "m").exists()
    # a labels file that is not SPLIT_labels.csv is named as given, not as a made-up path
    spec = DepthSpectrum(np.array([0.7, 2.0]), np.full(2, 0.01), np.full(2, 1e-4), "1", "poly")
    labels = tmp_path / "truth.csv"
    labels.write_text("planet_id,wl_1,wl_2\n1,0.01,0.01\n")
    r = _cli("transit", "score", str(spec.write(tmp_path / "1_poly.ecsv")), "--labels", str(labels))
    assert r.exit_code != 0
    message = str(r.exception)
    assert message.startswith(f"{labels}:") and "SPLIT_labels.csv" in message


def test_adc_table_without_the_planets_row_is_refused_not_another_planets_used(tmp_path):
    # An adc_info.csv with a planet_id column that lacks this planet used to give it row 0's
    # gain and offset (another planet's conversion, without a word); a table of several rows
    # without that column cannot say which row is whose either.
    from atmospec.errors import FileFormatError
    from atmospec.transit.io import read_planet

    simulate_dataset(tmp_path, 1, config=SMALL, seed=0)
    adc = tmp_path / "adc_info.csv"
    one = pd.read_csv(adc)
    assert len(one) == 1 and "planet_id" not in one  # the layout of the real sample
    read_planet(tmp_path / "train" / "0")  # one row: every planet's
    other = one.assign(planet_id=[5])
    other.to_csv(adc, index=False)
    with pytest.raises(FileFormatError, match=r"adc_info.csv: no row for planet 0"):
        read_planet(tmp_path / "train" / "0")
    pd.concat([one, one.assign(FGS1_adc_gain=2 * one["FGS1_adc_gain"])]).to_csv(adc, index=False)
    with pytest.raises(FileFormatError, match=r"2 rows and no planet_id column"):
        read_planet(tmp_path / "train" / "0")
    # the planet's own row is used, not the first
    both = pd.concat([one.assign(planet_id=[5]), one.assign(planet_id=[0], FGS1_adc_gain=[2.0])])
    both.to_csv(adc, index=False)
    assert read_planet(tmp_path / "train" / "0").adc["FGS1"][0] == 2.0
