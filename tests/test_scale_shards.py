"""Sharded training-set generation: the shard count never changes the rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from atmospec.errors import FileFormatError
from atmospec.scale.shards import block_seeds, build_shards, merge_shards, plan_shards
from atmospec.training.builder import TrainingSet

KW: dict[str, Any] = {"axis": "spex-prism", "block_size": 40}


def _arrays(path: Path) -> dict[str, np.ndarray]:
    import h5py

    with h5py.File(path, "r") as h5:
        return {k: h5[k][:] for k in ("flux", "sigma", "params", "snr", "node", "cell", "clean")}


def test_block_seeds_follow_seedsequence_spawn() -> None:
    # The i-th child of SeedSequence(seed).spawn(n) is SeedSequence(seed, spawn_key=(i,)),
    # independent of n: that is what makes the shard count irrelevant.
    direct = np.random.SeedSequence(11, spawn_key=(2,)).generate_state(1, np.uint64)[0]
    assert block_seeds(11, 3)[2] == int(direct) == block_seeds(11, 9)[2]
    assert len(set(block_seeds(11, 50))) == 50


def test_plan_covers_every_row_once() -> None:
    plan = plan_shards(1001, 4, block_size=100)
    rows = [r for s in range(len(plan.shards)) for r in range(*plan.shard_rows(s))]
    assert rows == list(range(1001)) and plan.n_blocks == 11


def test_one_or_three_shards_give_identical_rows(splat_dir: Path, tmp_path: Path) -> None:
    one = build_shards("dback24", tmp_path / "one", n_samples=100, n_shards=1, seed=5, **KW)
    three = build_shards("dback24", tmp_path / "three", n_samples=100, n_shards=3, seed=5, **KW)
    assert len(one) == 1 and len(three) == 3
    a = _arrays(merge_shards(one, tmp_path / "a.h5").path)
    b = _arrays(merge_shards(tmp_path / "three", tmp_path / "b.h5").path)
    for key in a:
        assert a[key].shape[0] == 100
        assert np.array_equal(a[key], b[key], equal_nan=True), key
    # the noise-free fluxes travel too (fit(clean=...), a recipe's fresh_noise): once dropped
    assert TrainingSet(tmp_path / "b.h5").has_clean
    assert np.nanmax(np.abs(a["flux"] - a["clean"])) > 0  # noisy and clean differ
    # different blocks really are different draws (not one seed reused)
    assert not np.allclose(a["snr"][:40], a["snr"][40:80])
    # another global seed gives another set
    other = build_shards("dback24", tmp_path / "other", n_samples=40, seed=6, **KW)
    assert not np.array_equal(_arrays(other[0])["snr"], a["snr"][:40])


def test_rerun_skips_complete_shards_and_merge_detects_gaps(
    splat_dir: Path, tmp_path: Path
) -> None:
    paths = build_shards("dback24", tmp_path / "s", n_samples=80, n_shards=2, seed=1, **KW)
    stamp = [p.stat().st_mtime_ns for p in paths]
    again = build_shards("dback24", tmp_path / "s", n_samples=80, n_shards=2, seed=1, **KW)
    assert [p.stat().st_mtime_ns for p in again] == stamp  # not rebuilt
    paths[0].unlink()
    with pytest.raises(FileFormatError, match="missing"):
        merge_shards(tmp_path / "s", tmp_path / "m.h5")


def test_merge_refuses_shards_holding_different_datasets(splat_dir: Path, tmp_path: Path) -> None:
    # A shard without the noise-free fluxes (built by other options) cannot join one that has
    # them: the merge names the file and what each holds instead of writing a set without them.
    import h5py

    paths = build_shards("dback24", tmp_path / "s", n_samples=80, n_shards=2, seed=1, **KW)
    with h5py.File(paths[1], "a") as h5:
        del h5["clean"]
    with pytest.raises(FileFormatError) as err:
        merge_shards(tmp_path / "s", tmp_path / "m.h5")
    said = str(err.value)
    assert said.startswith(f"{paths[1]}: holds flux, sigma, params, snr, node, cell but ")
    assert "holds flux, sigma, params, snr, node, cell, clean" in said and "rebuild" in said
    assert not (tmp_path / "m.h5").exists()  # nothing written half-way
