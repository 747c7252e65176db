"""Transit reduction on the real Ariel sample (no transit in its 50 frames) and on broken
copies of it: every method refuses to report a spectrum, bad files give clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from atmospec.errors import FileFormatError
from atmospec.transit.calibration import calibrate
from atmospec.transit.detection import NoTransitError, detect_transit
from atmospec.transit.detrenders import METHODS, make_detrender
from atmospec.transit.detrenders.base import DepthSpectrum
from atmospec.transit.io import read_planet
from atmospec.transit.simulator import SimulationConfig, simulate_dataset

PLANET = "342072318"
SMALL = SimulationConfig(n_exposures=160, airs_cols=24)


@pytest.fixture(scope="module")
def sample_root(shared_dir: Path) -> Path:
    root = shared_dir / "ariel_sample" / "raw"
    if not (root / "train" / PLANET).is_dir():
        pytest.skip(f"{root / 'train' / PLANET} is absent")
    return root


@pytest.fixture(scope="module")
def real_obs(sample_root: Path):
    return calibrate(read_planet(sample_root / "train" / PLANET))


@pytest.fixture()
def copy_root(sample_root: Path, tmp_path: Path) -> Path:
    """A writable copy of the sample (1.5 MB) to break on purpose."""
    dst = tmp_path / "raw"
    shutil.copytree(sample_root, dst)
    for p in dst.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return dst


def _cli(*args: str):
    from atmospec.cli.main import app

    return CliRunner().invoke(app, list(args))


@pytest.mark.realdata
def test_real_sample_has_no_detectable_transit(real_obs) -> None:
    det = detect_transit(real_obs)
    # 50 frames = 25 CDS time bins over 0.032 h, while the star info's orbit (P 2.87 d,
    # a/Rs 8.97, i 90 deg) gives T14 = P/pi asin(sqrt((1+k)^2 - b^2)/(a sin i)) ~ 2.7 h: no
    # mid-time can leave bins both in and out of transit
    assert not det.detected
    assert det.span_h == pytest.approx(0.032, abs=0.002)
    assert 2.4 < det.duration_h < 3.0
    assert "no depth can be measured" in det.reason


@pytest.mark.realdata
@pytest.mark.parametrize("method", [m for m in METHODS if m != "cnn"])
def test_every_method_refuses_the_real_sample(real_obs, method: str) -> None:
    try:
        det = make_detrender(method)
    except Exception as err:  # a CNN not shipped in this installation
        pytest.skip(f"{method}: {err}")
    with pytest.raises(NoTransitError, match="no transmission spectrum is reported"):
        det.fit(real_obs)
    assert not det.detection_.detected


@pytest.mark.realdata
def test_every_method_runs_without_the_gate(real_obs) -> None:
    # with the check off the fits still run (no scipy traceback from out-of-bounds starts)
    for method in ("poly", "pca", "gp"):
        det = make_detrender(method)
        det.transit_threshold = None
        spec = det.fit(real_obs)
        assert spec.depth.shape == (283,) and np.all(np.isfinite(spec.depth))


@pytest.mark.realdata
def test_cli_reduce_real_sample_writes_no_spectrum(sample_root: Path, tmp_path: Path) -> None:
    r = _cli(
        "transit",
        "reduce",
        str(sample_root / "train" / PLANET),
        "--method",
        "poly",
        "--out",
        str(tmp_path / "one"),
    )
    # an AtmospecError: the console entry point prints it on one line and exits 2
    assert r.exit_code != 0 and "no transmission spectrum" in str(r.exception)
    assert not list((tmp_path / "one").glob("*.ecsv"))
    r = _cli(
        "transit", "reduce", str(sample_root), "--method", "poly", "--out", str(tmp_path / "all")
    )
    assert r.exit_code == 2, r.output
    summary = json.loads((tmp_path / "all" / "summary_poly.json").read_text())
    assert summary["planets"] == 1 and summary["no_transit"] == 1 and summary["ok"] == 0


def _rewrite(path: Path, fn) -> None:
    table = pd.read_parquet(path)
    table.iloc[:, :] = fn(table.to_numpy()).astype(table.dtypes.iloc[0])
    path.unlink()
    table.to_parquet(path)


@pytest.mark.realdata
@pytest.mark.parametrize(
    ("what", "fn", "match"),
    [
        ("all-zero", lambda v: np.zeros_like(v), "every AIRS-CH0 signal value is 0"),
        ("constant", lambda v: np.full_like(v, 1234), "every AIRS-CH0 signal value is 1234"),
        ("saturated", lambda v: np.full_like(v, 65535), "saturated"),
    ],
)
def test_degenerate_detector_is_refused(copy_root: Path, what: str, fn, match: str) -> None:
    planet = copy_root / "train" / PLANET
    _rewrite(planet / "AIRS-CH0_signal_0.parquet", fn)
    with pytest.raises(FileFormatError, match=match) as err:
        calibrate(read_planet(planet))
    assert PLANET in str(err.value)
    r = _cli("transit", "reduce", str(planet), "--method", "poly", "--out", str(copy_root / "o"))
    assert isinstance(r.exception, FileFormatError) and not list((copy_root / "o").glob("*.ecsv"))


@pytest.mark.realdata
def test_all_zero_flat_field_is_refused(copy_root: Path) -> None:
    planet = copy_root / "train" / PLANET
    _rewrite(planet / "AIRS-CH0_calibration_0" / "flat.parquet", np.zeros_like)
    with pytest.raises(FileFormatError, match="flat.parquet"):
        calibrate(read_planet(planet))


@pytest.mark.realdata
def test_truncated_or_nan_wavelengths_are_refused(copy_root: Path) -> None:
    planet = copy_root / "train" / PLANET
    wl_path = copy_root / "wavelengths.csv"
    wl = pd.read_csv(wl_path)
    # cut to 10 columns: sample_submission.csv of the same dataset defines 283 bins
    wl.iloc[:, :10].to_csv(wl_path, index=False)
    with pytest.raises(FileFormatError, match="10 wavelength bins, but sample_submission.csv"):
        read_planet(planet)
    bad = wl.copy()
    bad.iloc[0, 5] = np.nan
    bad.to_csv(wl_path, index=False)
    with pytest.raises(FileFormatError, match="wl_6"):
        read_planet(planet)


def test_detection_finds_simulated_transits_and_rejects_a_flat_visit() -> None:
    from dataclasses import replace

    from atmospec.transit.simulator import simulate_planet

    raw, truth = simulate_planet("1", SMALL, np.random.default_rng([3, 1]))
    obs = calibrate(raw)
    det = detect_transit(obs)
    # depths of 0.2-1 % against a white-light scatter of ~1e-4 per time bin: S/N well above 7
    assert det.detected and det.snr > 10
    assert det.depth == pytest.approx(truth.depth[1:].mean(), rel=0.3)
    # the same visit with the transit divided out: flux ratio to the transit-free level
    flat = replace(
        obs,
        flux=np.median(obs.flux, axis=0)
        * (1 + 1e-4 * np.random.default_rng(0).normal(size=obs.flux.shape)),
    )
    assert not detect_transit(flat).detected


def test_folder_reduce_summary_and_score(tmp_path: Path) -> None:
    data = tmp_path / "sim"
    simulate_dataset(data, 2, SMALL, seed=4)
    out = tmp_path / "out"
    r = _cli("transit", "reduce", str(data), "--method", "poly", "--out", str(out), "--no-figures")
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "summary_poly.json").read_text())
    assert summary["planets"] == 2 and summary["ok"] == 2
    assert summary["score"]["planets_scored"] == 2
    assert 0.0 <= summary["score"]["gll_score"] <= 1.0
    # the same score from `transit score`, which counts planets, not files
    spectra = sorted(str(p) for p in out.glob("*_poly.ecsv"))
    r = _cli("transit", "score", *spectra, "--labels", str(data / "train_labels.csv"), "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    assert res["planets"] == 2
    assert res["gll_score"] == pytest.approx(summary["score"]["gll_score"])


def test_score_counts_planets_per_method_and_refuses_nan(tmp_path: Path) -> None:
    labels = tmp_path / "train_labels.csv"
    y = np.array([0.010, 0.011, 0.012])
    pd.DataFrame(
        [[1, *y], [2, *(y + 0.001)]], columns=["planet_id", "wl_1", "wl_2", "wl_3"]
    ).to_csv(labels, index=False)
    wl = np.array([0.7, 2.0, 3.0])
    files = []
    for method in ("poly", "gp", "cnn1d"):
        s = DepthSpectrum(wl, y + 1e-4, np.full(3, 1e-4), planet_id="1", method=method)
        files.append(str(s.write(tmp_path / f"1_{method}.ecsv")))
    r = _cli("transit", "score", *files, "--labels", str(labels), "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)["methods"]
    # three methods on one planet: one planet per method, not "planets: 3"
    assert set(res) == {"poly", "gp", "cnn1d"} and all(v["planets"] == 1 for v in res.values())
    # the same planet twice for one method is refused
    dup = DepthSpectrum(wl, y, np.full(3, 1e-4), planet_id="1", method="poly")
    r = _cli(
        "transit", "score", files[0], str(dup.write(tmp_path / "dup.ecsv")), "--labels", str(labels)
    )
    assert r.exit_code != 0 and "also in" in str(r.exception)
    nan = DepthSpectrum(
        wl, np.array([0.01, np.nan, 0.01]), np.full(3, 1e-4), planet_id="2", method="poly"
    )
    r = _cli("transit", "score", str(nan.write(tmp_path / "nan.ecsv")), "--labels", str(labels))
    assert r.exit_code != 0 and "NaN" in str(r.exception)


def test_cnn_weights_are_verified(tmp_path: Path) -> None:
    from atmospec.errors import ModelFileError
    from atmospec.models import list_models, model_path
    from atmospec.transit.detrenders.cnn import CNNDetrender

    if "transit-cnn1d" not in {m["name"] for m in list_models()}:
        pytest.skip("no shipped transit CNN in this build")
    folder = model_path("transit-cnn1d")
    CNNDetrender.load(folder)  # the shipped hash matches
    copy = tmp_path / "m"
    shutil.copytree(folder, copy)
    blob = bytearray((copy / "weights.safetensors").read_bytes())
    blob[-5] ^= 0x40  # one flipped bit in the last weight
    (copy / "weights.safetensors").write_bytes(bytes(blob))
    with pytest.raises(ModelFileError, match="sha256"):
        CNNDetrender.load(copy)
