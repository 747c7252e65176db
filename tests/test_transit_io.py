"""Ariel raw-format reader and calibration chain, on the real 50-frame sample and on the simulator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from atmospec.errors import DataNotFoundError, FileFormatError
from atmospec.transit.calibration import calibrate, spectral_columns
from atmospec.transit.io import read_planet, write_dataset_tables, write_planet
from atmospec.transit.simulator import SimulationConfig, simulate_planet

PLANET = "342072318"


@pytest.fixture(scope="module")
def sample(shared_dir: Path) -> Path:
    path = shared_dir / "ariel_sample" / "raw" / "train" / PLANET
    if not path.is_dir():
        pytest.skip(f"{path} is absent")
    return path


@pytest.fixture(scope="module")
def raw(sample: Path):
    return read_planet(sample)


@pytest.mark.realdata
def test_real_sample_shapes_and_timing(raw) -> None:
    # the sample README: 50 frames of 32 x 356 (AIRS-CH0) and 32 x 32 (FGS1), uint16
    assert raw.frames["AIRS-CH0"].shape == (50, 32, 356)
    assert raw.frames["FGS1"].shape == (50, 32, 32)
    assert raw.frames["AIRS-CH0"].dtype == np.uint16
    assert raw.calibration["AIRS-CH0"].linear_corr.shape == (6, 32, 356)  # 6 coefficients
    assert raw.wavelengths.size == 283 and raw.wavelengths[0] == pytest.approx(0.7)
    # reads alternate a 0.1 s and a 4.5 s integration (challenge documentation)
    assert raw.integration_s[:4].tolist() == [0.1, 4.5, 0.1, 4.5]
    assert np.all(np.diff(raw.time_h["AIRS-CH0"]) > 0)
    assert raw.adc["AIRS-CH0"] == (0.4369, -1000.0)
    assert raw.star["P"] > 0 and 80 < raw.star["i"] <= 90


@pytest.mark.realdata
def test_real_sample_spectral_columns(raw) -> None:
    # the organisers' starter notebook keeps AIRS-CH0 columns 39:321 (282 bins) reversed
    cols = spectral_columns(raw)
    assert cols.tolist() == list(range(320, 38, -1))


@pytest.mark.realdata
def test_real_sample_calibration_matches_hand_computation(raw) -> None:
    from astropy.stats import sigma_clip

    obs = calibrate(raw)
    cal = raw.calibration["AIRS-CH0"]
    hot = sigma_clip(cal.dark, sigma=5, maxiters=5).mask
    bad = cal.dead | hot
    # masked pixels = dead (from dead.parquet) or 5-sigma dark outliers, in columns 39..320
    assert obs.meta["masked_pixels"]["AIRS-CH0"] == int(bad[:, 39:321].sum())
    assert obs.meta["dead_pixels"]["AIRS-CH0"] == int(cal.dead[:, 39:321].sum())
    # one channel by hand: wl_2 (index 1) is detector column 320
    col = 320
    gain, offset = 0.4369, -1000.0
    x = raw.frames["AIRS-CH0"][:, :, col].astype(float) / gain + offset
    c = cal.linear_corr[:, :, col]
    x = sum(c[k] * x**k for k in range(6))
    dt = np.tile([0.1, 4.6], 25)
    x = x - cal.dark[:, col] * dt[:, None]
    cds = (x[1::2] - x[0::2]) / cal.flat[:, col]
    expected = np.where(bad[:, col], 0.0, cds).sum(axis=1)
    np.testing.assert_allclose(obs.flux[:, 1], expected, rtol=1e-10)
    # units and timing: counts per CDS exposure, 25 exposures, time in hours
    assert obs.n_time == 25 and obs.meta["time_bin_cds"] == 1
    assert "counts" in obs.meta["flux_unit"] and obs.meta["time_unit"] == "h"
    assert (obs.flux > 0).all()
    np.testing.assert_allclose(obs.time_h, raw.time_h["AIRS-CH0"].reshape(25, 2).mean(axis=1))


def test_simulated_planet_round_trips_through_the_raw_format(tmp_path: Path) -> None:
    cfg = SimulationConfig(n_exposures=16, airs_rows=6, airs_cols=30, fgs_size=4)
    raw, truth = simulate_planet("123", cfg, np.random.default_rng(0))
    write_planet(raw, tmp_path)
    write_dataset_tables(tmp_path, raw, stars={"123": truth.star}, labels={"123": truth.depth})
    back = read_planet(tmp_path / "train" / "123")
    for inst in ("AIRS-CH0", "FGS1"):
        np.testing.assert_array_equal(back.frames[inst], raw.frames[inst])
        np.testing.assert_allclose(
            back.calibration[inst].linear_corr, raw.calibration[inst].linear_corr
        )
        np.testing.assert_array_equal(back.calibration[inst].dead, raw.calibration[inst].dead)
    np.testing.assert_allclose(back.wavelengths, raw.wavelengths)
    assert back.star["P"] == pytest.approx(truth.star["P"])
    labels = pd.read_csv(tmp_path / "train_labels.csv")
    assert labels.shape == (1, 1 + truth.depth.size)


def test_reader_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="axis_info.parquet"):
        read_planet(tmp_path)
    cfg = SimulationConfig(n_exposures=4, airs_rows=4, airs_cols=30, fgs_size=4)
    raw, truth = simulate_planet("7", cfg, np.random.default_rng(0))
    write_planet(raw, tmp_path)
    write_dataset_tables(tmp_path, raw, stars={"7": truth.star})
    signal = tmp_path / "train" / "7" / "AIRS-CH0_signal_0.parquet"
    pd.DataFrame({"0": np.zeros(7, dtype=np.uint16)}).to_parquet(signal)
    with pytest.raises(FileFormatError, match="AIRS-CH0_signal_0.parquet"):
        read_planet(tmp_path / "train" / "7")


def test_a_file_of_a_planet_folder_names_the_folder(sample: Path) -> None:
    from atmospec.transit.batch import planet_folders

    assert planet_folders(sample) == [sample]
    signal = sample / "AIRS-CH0_signal_0.parquet"
    with pytest.raises(DataNotFoundError) as err:
        planet_folders(signal)
    assert str(err.value).endswith(f"this is a file of the planet folder {sample}: give the folder")
    with pytest.raises(DataNotFoundError) as err:  # a folder of no planets: no such advice
        planet_folders(sample / "AIRS-CH0_calibration_0")
    assert "give the folder" not in str(err.value)
