"""Rewrite the shipped molecule classifier and transit CNN in the one model format, and
add the checksum to the shipped NPE's calibration record.

Before atmospec.serialization served every model, two shipped models had their own layouts:
``pretrained/molecules`` (``model.json`` format ``atmospec.molecules.cnn/1`` +
``model.safetensors``) and ``pretrained/transit/cnn1d`` (``config.json`` +
``weights.safetensors``, no checksum). This script reads each old folder (checking the
molecule weights against their recorded sha256), writes the same weights and settings
through the classes' ``save`` (``model.json`` with checksums + ``weights.safetensors``), and
checks that every tensor is bitwise identical and the outputs on fixed inputs are equal.
Nothing is retrained. Run once from the repository root::

    python scripts/convert_models.py
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from atmospec._fileio import sha256_file

ROOT = Path(__file__).resolve().parents[1] / "src" / "atmospec" / "pretrained"


def _same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def _replace(folder: Path, new: Path, old_files: list[str]) -> None:
    for name in old_files:
        (folder / name).unlink()
    for f in new.iterdir():
        shutil.copy2(f, folder / f.name)


def convert_molecules(folder: Path) -> None:
    from atmospec.molecules.binning import Binning
    from atmospec.molecules.classifiers import MoleculeClassifier, _network

    meta = json.loads((folder / "model.json").read_text())
    if meta.get("format") != "atmospec.molecules.cnn/1":
        print(f"{folder}: already converted")
        return
    assert sha256_file(folder / "model.safetensors") == meta["weights_sha256"]
    b = meta["bins"]
    binning = Binning(*(np.array(b[k]) for k in ("centre", "half_width", "instrument", "error")))
    cfg = meta["config"]
    net = _network(len(binning), len(meta["molecules"]), cfg["width"], cfg["dropout"])
    net.load_state_dict(load_file(str(folder / "model.safetensors")))
    net.eval()
    old = MoleculeClassifier(
        net, tuple(meta["molecules"]), binning, np.array(meta["temperatures"]), cfg, meta["info"]
    )
    rng = np.random.default_rng(0)
    depth = 0.02 + 1e-4 * rng.standard_normal((16, len(binning)))
    error = np.full_like(depth, 1e-4)
    p_old = old.predict_proba(depth, error)
    with tempfile.TemporaryDirectory() as tmp:
        old.save(Path(tmp) / "m")
        new = MoleculeClassifier.load(Path(tmp) / "m")
        _same_state(old.network, new.network)
        assert np.array_equal(p_old, new.predict_proba(depth, error))
        _replace(folder, Path(tmp) / "m", ["model.json", "model.safetensors"])
    again = MoleculeClassifier.load(folder)
    assert np.array_equal(p_old, again.predict_proba(depth, error))
    print(f"{folder}: converted; probabilities on 16 fixed inputs identical")


def convert_transit(folder: Path) -> None:
    from atmospec.transit.detrenders.cnn import CNNConfig, CNNDetrender, _build

    if not (folder / "config.json").is_file():
        print(f"{folder}: already converted")
        return
    meta = json.loads((folder / "config.json").read_text())
    assert meta.get("format") == "atmospec.transit.cnn/1"
    old = CNNDetrender(CNNConfig(**meta["config"]))
    net = _build(old.config)
    net.load_state_dict(load_file(str(folder / "weights.safetensors")))
    net.eval()
    old.net_ = net
    old.white_scale_ = float(meta["white_sigma_scale"])
    old.set_sigma_model(*(float(v) for v in meta["sigma_model"]))
    from atmospec.serialization import save_arrays
    from atmospec.transit.detrenders.cnn import KIND, _forward

    record = {
        "kind": KIND,
        "config": meta["config"],
        "sigma_model": meta["sigma_model"],
        "white_sigma_scale": meta["white_sigma_scale"],
        "provenance": meta["provenance"],  # the original one: versions, seed, simulation
    }
    arrays = {f"net.{k}": v.numpy() for k, v in net.state_dict().items()}
    with tempfile.TemporaryDirectory() as tmp:
        save_arrays(Path(tmp) / "m", record, arrays)
        new = CNNDetrender.load(Path(tmp) / "m")
        _same_state(old.net_, new.net_)
        assert new.white_scale_ == old.white_scale_
        assert (new.sigma_scale, new.sigma_shared_scale, new.sigma_floor) == (
            old.sigma_scale,
            old.sigma_shared_scale,
            old.sigma_floor,
        )
        x = torch.randn(2, 3, 4, 50, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            assert torch.equal(_forward(old.net_, "1d", x), _forward(new.net_, "1d", x))
        _replace(folder, Path(tmp) / "m", ["config.json", "weights.safetensors"])
    print(f"{folder}: converted; weights bitwise identical, outputs on a fixed input equal")


def seal_calibration(folder: Path) -> None:
    """Add the checksum to an NPE's ``calibration.json`` (content otherwise unchanged)."""
    from atmospec._fileio import write_json
    from atmospec.posteriors.calibration import read_calibration
    from atmospec.serialization import is_sealed, seal

    path = folder / "calibration.json"
    record = json.loads(path.read_text())
    if is_sealed(record):
        print(f"{path}: already sealed")
        return
    sealed = seal(record)
    assert {k: v for k, v in sealed.items() if k != "checksum"} == record
    write_json(path, sealed)
    status = read_calibration(folder)
    assert status.passed == bool(record["passed"]), status
    print(f"{path}: sealed; calibration passed={status.passed} (max error {status.max_error:.4f})")


if __name__ == "__main__":
    convert_molecules(ROOT / "molecules")
    convert_transit(ROOT / "transit" / "cnn1d")
    seal_calibration(ROOT / "npe_dback24")
