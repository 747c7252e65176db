"""The embedded-data cache: location, status, checksums, and the message when data is absent."""

from __future__ import annotations

import json

import pytest

from atmospec import data
from atmospec.errors import ChecksumError, DataNotFoundError


def test_absent_data_names_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("ATMOSPEC_DATA_DIR", str(tmp_path))
    with pytest.raises(DataNotFoundError, match=r"atmospec data fetch splat"):
        data.require("splat")
    rows = {r["name"]: r for r in data.status()}
    assert rows["splat"]["present"] is False


def test_corrupt_wheel_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("ATMOSPEC_DATA_DIR", str(tmp_path / "cache"))
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / data.DISTRIBUTIONS["muler"].wheel_name).write_bytes(b"not a wheel")
    with pytest.raises(ChecksumError, match="does not match"):
        data.fetch(["muler"], wheel_dir=wheels)
    assert not (tmp_path / "cache" / "muler-0.5.6").exists()  # nothing half-written


def test_fetched_splat_is_verified(splat_dir):
    manifest = json.loads((splat_dir / "manifest.json").read_text())
    assert manifest["sha256"] == data.DISTRIBUTIONS["splat"].sha256
    # The SpeX prism library holds 3,092 observed spectra (CONTEXT.md section 3) plus a few extra.
    n_fits = len(list((splat_dir / "resources/Spectra/Public/SPEX-PRISM").glob("*.fits*")))
    assert n_fits >= 3092
    # Complete Diamondback grid: 16 Teff x 5 log g x 3 [M/H] x 6 fsed = 1,440 files.
    n_dback = len(
        list((splat_dir / "resources/SpectralModels/dback24/SPEX-PRISM").glob("*.txt.gz"))
    )
    assert n_dback == 16 * 5 * 3 * 6
