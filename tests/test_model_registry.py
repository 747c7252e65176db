"""One registry of shipped models, one on-disk format, every file verified on load."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from atmospec.errors import ModelFileError
from atmospec.models import list_models, load_model, model_path

# One shipped model per family that has one (the highres line emulator ships none).
SHIPPED = {
    "dback24-spex": "brown-dwarf",
    "burrows06-spex": "brown-dwarf",
    "npe_dback24": "npe",
    "molecules": "molecules",
    "transit-cnn1d": "transit",
}


@pytest.fixture(scope="module")
def rows() -> dict[str, dict]:
    found = {r["name"]: r for r in list_models()}
    missing = set(SHIPPED) - set(found)
    if missing:
        pytest.skip(f"pretrained models not installed in this build: {sorted(missing)}")
    return found


def test_registry_lists_every_shipped_model_with_provenance(rows) -> None:
    for name, family in SHIPPED.items():
        r = rows[name]
        assert r["family"] == family, name
        assert r["versions"].get("atmospec") and r["versions"].get("torch"), name
        assert isinstance(r["seed"], int), name  # every shipped model records its seed
    for name in ("dback24-spex", "burrows06-spex", "npe_dback24"):
        assert rows[name]["grid"] in ("dback24", "burrows06"), name  # trained on a named grid
    assert rows["molecules"]["param_names"] == ["H2O", "CO2", "CH4", "CO", "Na", "K"]
    assert "transit" in rows["transit-cnn1d"]["aliases"]


def test_registry_loads_each_family_as_its_class(rows) -> None:
    from atmospec.estimators.base import Estimator
    from atmospec.molecules.classifiers import MoleculeClassifier
    from atmospec.posteriors.npe import NPEstimator
    from atmospec.transit.detrenders.cnn import CNNDetrender

    assert isinstance(load_model("t-dwarf"), Estimator)
    assert isinstance(load_model("npe_dback24"), NPEstimator)
    assert isinstance(load_model("molecules"), MoleculeClassifier)
    assert isinstance(load_model("transit"), CNNDetrender)
    with pytest.raises(ModelFileError, match="'npe'.*not the 'transit_cnn'"):
        load_model("npe_dback24", kind="transit_cnn")


def test_cli_models_lists_all_families(rows) -> None:
    from typer.testing import CliRunner

    from atmospec.cli.main import app

    r = CliRunner().invoke(app, ["models", "--json"])
    assert r.exit_code == 0, r.output
    listed = {m["name"]: m["family"] for m in json.loads(r.output)}
    assert {k: listed.get(k) for k in SHIPPED} == SHIPPED


def _copy(name: str, tmp_path: Path) -> Path:
    dst = tmp_path / name
    shutil.copytree(model_path(name), dst)
    return dst


def _flip(path: Path, at: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    i = int(len(data) * at)
    data[i] ^= 0x01  # one bit
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("name", ["dback24-spex", "npe_dback24", "molecules", "transit-cnn1d"])
def test_one_flipped_bit_in_the_weights_is_refused(name: str, rows, tmp_path: Path) -> None:
    folder = _copy(name, tmp_path)
    load_model(folder)  # the intact copy loads
    _flip(folder / "weights.safetensors")
    with pytest.raises(ModelFileError, match=r"weights\.safetensors: sha256 .* does not match"):
        load_model(folder)


@pytest.mark.parametrize("name", ["dback24-spex", "npe_dback24", "molecules", "transit-cnn1d"])
def test_an_edited_record_is_refused(name: str, rows, tmp_path: Path) -> None:
    folder = _copy(name, tmp_path)
    rec_path = folder / "model.json"
    record = json.loads(rec_path.read_text())
    # An edit that keeps valid JSON and a plausible model: swap the first two parameter (or
    # molecule) names, the tampering that would silently relabel every output.
    key = "molecules" if "molecules" in record else "param_names"
    if key in record:
        record[key][0], record[key][1] = record[key][1], record[key][0]
    else:  # the transit CNN: change its calibrated sigma scale
        record["white_sigma_scale"] *= 2.0
    rec_path.write_text(json.dumps(record, indent=2))
    with pytest.raises(ModelFileError, match=r"model\.json: the record was modified"):
        load_model(folder)


def test_a_flipped_bit_in_the_record_is_refused(rows, tmp_path: Path) -> None:
    folder = _copy("transit-cnn1d", tmp_path)
    text = (folder / "model.json").read_text()
    i = text.index('"lr": ') + len('"lr": ')  # 0.002 -> 0.003: still valid JSON
    (folder / "model.json").write_text(text[:i] + text[i:].replace("0.002", "0.003", 1))
    with pytest.raises(ModelFileError, match="model.json: the record was modified"):
        load_model(folder)


def test_missing_weights_are_named(rows, tmp_path: Path) -> None:
    folder = _copy("molecules", tmp_path)
    (folder / "weights.safetensors").unlink()
    with pytest.raises(ModelFileError, match=r"weights\.safetensors: weights file missing"):
        load_model(folder)


def test_every_saver_round_trips_through_the_one_format(tmp_path: Path, rows) -> None:
    from atmospec.molecules.classifiers import MoleculeClassifier
    from atmospec.serialization import read_record
    from atmospec.transit.detrenders.cnn import CNNDetrender

    clf = load_model("molecules")
    clf.save(tmp_path / "clf")
    again = MoleculeClassifier.load(tmp_path / "clf")
    depth = np.full((1, len(clf.binning)), 0.021)
    error = np.full_like(depth, 1e-4)
    assert np.array_equal(clf.predict_proba(depth, error), again.predict_proba(depth, error))
    det = load_model("transit-cnn1d")
    det.save(tmp_path / "cnn")
    assert isinstance(CNNDetrender.load(tmp_path / "cnn"), CNNDetrender)
    for sub in ("clf", "cnn"):
        rec = read_record(tmp_path / sub)
        assert rec["format"] == "atmospec-model" and len(rec["weights_sha256"]) == 64
        assert rec["provenance"]["versions"]["atmospec"]


def test_highres_clone_is_checksummed(tmp_path: Path) -> None:
    from atmospec.highres.emulator import LineEmulator
    from atmospec.highres.linefinder import LineList

    ll = LineList(
        np.array([5000.0, 5001.0]), np.array([0.3, 0.5]), np.array([0.05, 0.04]),
        np.array([0.01, 0.02]), {"source": "test"},
    )  # fmt: skip
    em = LineEmulator(ll, device="cpu")
    folder = em.save(tmp_path / "clone")
    back = load_model(folder)  # the registry loads any saved model folder by its kind
    assert isinstance(back, LineEmulator)
    np.testing.assert_array_equal(back.lines().amplitude, ll.amplitude)
    # A clone with an amplitude made infinite (issue: 'inf' amplitude) no longer loads.
    from safetensors.numpy import load_file, save_file

    arrays = load_file(str(folder / "weights.safetensors"))
    arrays["amplitude"][0] = np.inf
    save_file(arrays, str(folder / "weights.safetensors"))
    with pytest.raises(ModelFileError, match=r"weights\.safetensors: sha256"):
        LineEmulator.load(folder)


def test_npe_calibration_record_is_checksummed(rows, tmp_path: Path) -> None:
    from atmospec.posteriors.calibration import read_calibration

    assert read_calibration(model_path("npe_dback24")).passed  # the shipped record verifies
    folder = _copy("npe_dback24", tmp_path)
    path = folder / "calibration.json"
    cal = json.loads(path.read_text())
    assert cal["passed"] is True
    # An edit that makes the curve look even better must not pass unnoticed.
    cal["tolerance"] = 0.5
    path.write_text(json.dumps(cal))
    status = read_calibration(folder)
    assert (
        not status.passed and "checksum" in status.problem and "calibration.json" in status.problem
    )
    assert status.summary().startswith("calibration not usable")
