"""The SpeX prism library catalogue: joins, queries, loading, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from atmospec.errors import DataNotFoundError
from atmospec.library import (
    NORMALISATION_BAND,
    catalogue,
    load,
    num_to_spt,
    parse_spt_range,
    query,
    spt_to_num,
)


def test_spt_numbers() -> None:
    # the SPLAT convention: M0 = 10, L0 = 20, T0 = 30, Y0 = 40
    assert spt_to_num("M0.0") == 10 and spt_to_num("L5.0") == 25 and spt_to_num("T7.5") == 37.5
    assert spt_to_num("sdM7") == 17 and spt_to_num("d/sdM6") == 16 and spt_to_num("L4.0::") == 24
    assert np.isnan(spt_to_num("G")) and np.isnan(spt_to_num(None))
    assert num_to_spt(37.5) == "T7.5" and parse_spt_range("M7-L5") == (17.0, 25.0)
    with pytest.raises(ValueError, match="not understood"):
        parse_spt_range("X5")
    with pytest.raises(ValueError, match="reversed"):
        parse_spt_range("T8-L0")


def test_catalogue_joins_both_tables(splat_dir: Path) -> None:
    raw = pd.read_csv(splat_dir / "db/spectral_data.csv", encoding="utf-8-sig")
    assert raw.columns[0] == "DATA_KEY"  # the BOM is stripped
    cat = catalogue()
    assert len(cat) == len(raw) and cat["key"].is_unique
    for col in ("designation", "spt", "spt_num", "snr", "quality", "gravity_class", "parallax"):
        assert col in cat.columns
    for col in ("j", "h", "ks", "j_err", "binary", "spectral_binary", "companion", "file"):
        assert col in cat.columns
    assert set(cat["quality"].dropna()) == {"OK", "POOR", "BG"}
    assert set(cat["gravity_class"].dropna()) <= {"FLD-G", "INT-G", "VL-G", "LOW-G", "UNKNO"}
    # every row's file exists (the CSV names .fits, the wheel holds .fits.gz)
    spex = splat_dir / "resources/Spectra/Public/SPEX-PRISM"
    assert all((spex / f).exists() for f in cat["file"])
    # source data joined: GJ 570D's parallax 169.3 +- 1.7 mas and 2MASS J = 15.324 in the CSV
    gj = cat.set_index("key").loc["10020_11100"]
    assert gj["name"] == "Gliese 570D" and gj["parallax"] == 169.3 and gj["j"] == 15.324
    assert gj["companion"] and not gj["binary"]


def test_benchmarks_load_as_t_dwarfs(splat_dir: Path) -> None:
    for key, name in (("10703_10070", "HD 3651B"), ("10020_11100", "Gliese 570D")):
        s = load(key)
        assert s.name == name and s.meta["source"] == key
        assert s.meta["spt"].startswith("T") and s.meta["spt_num"] >= 30
        assert "SpeX Prism Library" in s.meta["credit"]
        assert s.flux_unit == "" and s.meta["designation"].startswith("J")
        band = (s.wavelength >= NORMALISATION_BAND[0]) & (s.wavelength <= NORMALISATION_BAND[1])
        assert np.median(s.flux[band & ~s.mask]) == pytest.approx(1.0)
        # T dwarf: deep CH4/H2O absorption at 1.6-1.7 and 2.2 um, J peak much brighter
        peak = np.median(s.flux[band & ~s.mask])
        ch4 = (s.wavelength > 1.63) & (s.wavelength < 1.70) & ~s.mask
        assert np.median(s.flux[ch4]) < 0.3 * peak
        s.validate()
    assert load(10703).meta["source"] == "10703_10070"  # a bare DATA_KEY works too


def test_query_and_every_match_loads(splat_dir: Path) -> None:
    table = query(spt="L0-T8", snr_min=50)
    assert 300 < len(table) < len(catalogue())  # "hundreds"
    assert table["spt_num"].between(20, 38).all() and (table["snr"] >= 50).all()
    for key in table["key"]:  # each loadable and valid (a superset of a random sample)
        load(key).validate()
    ok = query(spt="L0-T8", snr_min=50, quality="ok")
    assert set(ok["quality"]) == {"OK"} and len(ok) < len(table)
    young = query(gravity=["VL-G", "INT-G"])
    assert set(young["gravity_class"]) == {"VL-G", "INT-G"}
    assert not query(binary=False)["binary"].any()


def test_random_sample_validates(splat_dir: Path) -> None:
    table = query(spt="L0-T8", snr_min=50)
    rng = np.random.default_rng(2024)
    for key in rng.choice(table["key"].to_numpy(), size=30, replace=False):
        s = load(str(key))
        s.validate()
        assert s.meta["snr"] >= 50 and 20 <= s.meta["spt_num"] <= 38
        assert 0.6 < s.wavelength[0] < 0.75 and 2.4 < s.wavelength[-1] < 2.6


def test_unknown_key(splat_dir: Path) -> None:
    with pytest.raises(DataNotFoundError, match="no spectrum '99999_1' in the SpeX prism library"):
        load("99999_1")


def test_cli_json_and_table(splat_dir: Path) -> None:
    from typer.testing import CliRunner

    from atmospec.cli.main import app

    runner = CliRunner()
    res = runner.invoke(app, ["library", "--spt", "L0-T8", "--snr-min", "50", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert len(rows) == len(query(spt="L0-T8", snr_min=50)) > 300
    assert {"key", "designation", "spt", "snr", "quality", "j", "parallax"} <= set(rows[0])
    res = runner.invoke(app, ["library", "--spt", "T7-T8", "--quality", "OK", "--limit", "3"])
    assert res.exit_code == 0 and "SpeX prism library: 3 of" in res.stdout
    res = runner.invoke(app, ["library", "--spt", "X5"])
    assert res.exit_code == 2 and "not understood" in res.output
