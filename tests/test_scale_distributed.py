"""Dask batch prediction: identical to one process, restartable, a killed worker costs nothing."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest

from atmospec.scale.distributed import predict_catalog, read_results
from atmospec.scale.shards import build_shards, merge_shards

if TYPE_CHECKING:
    from distributed import Client

N_SPECTRA = 48
PART = 6
DRAWS = 200


@pytest.fixture(scope="module")
def work(splat_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny MLP trained on Diamondback and a store of real SpeX L/T dwarf spectra."""
    import torch

    from atmospec.estimators import SpectrumMLP
    from atmospec.grids import load_grid
    from atmospec.library import query
    from atmospec.scale.store import store_from_library
    from atmospec.training.builder import build_training_set

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("scale")
    ts = build_training_set(
        load_grid("dback24"),
        root / "train.h5",
        n_samples=300,
        axis="spex-prism",
        seed=3,
    )
    X, y, s = ts.arrays()
    model = SpectrumMLP(hidden=(32,), max_epochs=2, seed=0, num_threads=1)
    model.fit(X, y, sigma=s, **ts.fit_kwargs())
    model.meta_["grid"] = "dback24"
    model.save(root / "model")
    keys = query(spt="L0-T9", snr_min=30, quality="OK")["key"].astype(str).tolist()[:N_SPECTRA]
    store_from_library(root / "lt.zarr", "spex-prism", keys=keys)
    ref = root / "serial"
    run = predict_catalog(
        root / "lt.zarr",
        root / "model",
        ref,
        serial=True,
        ood=False,
        draws=DRAWS,
        coverage="mask",
        partition_size=PART,
        plots=False,
    )
    assert run.complete and run.rows_computed == N_SPECTRA
    return {"root": root, "model": root / "model", "store": root / "lt.zarr", "ref": ref}


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as c,
    ):
        yield c


def _predict(work: dict[str, Path], client: Client, out: Path):  # noqa: ANN202
    return predict_catalog(
        work["store"],
        work["model"],
        out,
        client=client,
        ood=False,
        draws=DRAWS,
        coverage="mask",
        partition_size=PART,
        plots=False,
    )


def test_two_workers_match_one_process_and_rerun_skips(
    work: dict[str, Path], client: Client, tmp_path: Path
) -> None:
    run = _predict(work, client, tmp_path / "out")
    assert run.complete and run.workers == 2
    assert len(run.done) == N_SPECTRA // PART and run.rows_computed == N_SPECTRA
    ref = read_results(work["ref"])
    got = read_results(tmp_path / "out")
    # Each spectrum's Monte Carlo draws are seeded by (seed, source), and each partition
    # holds the same rows in both runs: the tables must be bit-identical.
    pd.testing.assert_frame_equal(got, ref, check_exact=True)
    assert got["row"].tolist() == list(range(N_SPECTRA))
    # Two library files of this selection store S/N (~100-136), not errors, in their third
    # row; the sanity gate refuses them with the reason, every other row is predicted.
    bad = got["error"] != ""
    assert sorted(got.loc[bad, "source"].str.split("/").str[-1]) == ["10042_11301", "10043_11300"]
    assert got.loc[bad, "error"].str.contains("not 1-sigma errors").all()
    ok = got[~bad]
    # the median of the predictive samples lies inside the 68 % interval and the grid
    assert (ok["teff_p16"] <= ok["teff_median"]).all()
    assert (ok["teff_median"] <= ok["teff_p84"]).all()
    assert ok["teff_median"].between(900, 2400).all()
    again = _predict(work, client, tmp_path / "out")
    assert again.complete and again.done == [] and len(again.skipped) == N_SPECTRA // PART


def test_killed_worker_then_rerun_gives_every_row_once(
    work: dict[str, Path], client: Client, tmp_path: Path
) -> None:
    out = tmp_path / "kill"
    result: dict[str, object] = {}
    th = threading.Thread(target=lambda: result.update(run=_predict(work, client, out)))
    th.start()
    killed = None
    deadline = time.time() + 60
    while th.is_alive() and time.time() < deadline:
        busy = [w for w, keys in client.processing().items() if keys]
        if busy and list(out.glob("parts/part-*.json")):
            pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
            os.kill(pid, signal.SIGKILL)
            killed = pid
            break
        time.sleep(0.02)
    th.join(timeout=120)
    assert killed is not None, "the run finished before a worker could be killed"
    first = result["run"]
    # the worker's partition in flight was lost (and rescheduled or left for the rerun);
    # every partition written is complete
    again = _predict(work, client, out)
    assert again.complete
    assert len(again.skipped) >= len(first.done)  # type: ignore[attr-defined]
    table = read_results(out)
    assert table["row"].tolist() == list(range(N_SPECTRA))  # every row exactly once
    assert not table["source"].duplicated().any()
    pd.testing.assert_frame_equal(table, read_results(work["ref"]), check_exact=True)
    assert not list(out.glob("parts/.*.tmp"))  # no half-written partition left behind


def test_shards_on_two_workers_equal_one_serial_shard(
    work: dict[str, Path], client: Client, tmp_path: Path
) -> None:
    import h5py

    kw: dict[str, Any] = {"axis": "spex-prism", "block_size": 30, "seed": 9}
    par = build_shards("dback24", tmp_path / "par", n_samples=90, n_shards=2, client=client, **kw)
    ser = build_shards("dback24", tmp_path / "ser", n_samples=90, n_shards=1, **kw)
    assert len(par) == 2 and len(ser) == 1
    a = merge_shards(par, tmp_path / "a.h5")
    b = merge_shards(ser, tmp_path / "b.h5")
    with h5py.File(a.path) as ha, h5py.File(b.path) as hb:
        for key in ("flux", "sigma", "params", "snr"):
            assert np.array_equal(ha[key][:], hb[key][:], equal_nan=True), key


def test_cli_predict_serial_then_collect(work: dict[str, Path], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from atmospec.cli.main import app

    runner = CliRunner()
    out = tmp_path / "cli"
    res = runner.invoke(
        app,
        [
            "--quiet",
            "scale",
            "predict",
            str(work["store"]),
            "-m",
            str(work["model"]),
            "-o",
            str(out),
            "--serial",
            "--no-plots",
            "--coverage",
            "mask",
            "--no-ood",
            "--draws",
            str(DRAWS),
            "--partition-size",
            str(PART),
        ],
    )
    # exit 3: complete, but the two SpeX files with S/N in their error row were refused
    assert res.exit_code == 3, res.output
    assert '"complete": true' in res.output and '"unusable": 2' in res.output
    res = runner.invoke(app, ["scale", "collect", str(out), "--to", str(tmp_path / "all.csv")])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(tmp_path / "all.csv")
    assert len(table) == N_SPECTRA
    # same catalogue, model, draws and partitions as the reference: same medians
    np.testing.assert_array_equal(
        table["teff_median"].to_numpy(), read_results(work["ref"])["teff_median"].to_numpy()
    )


def test_predict_cli_with_scheduler_address(
    work: dict[str, Path], client: Client, tmp_path: Path
) -> None:
    """`atmospec predict --catalog STORE --scheduler ADDRESS` runs on that cluster, same rows."""
    from typer.testing import CliRunner

    from atmospec.cli.main import app

    address = client.scheduler.address
    out = tmp_path / "sched"
    args = [
        "--quiet",
        "predict",
        "--catalog",
        str(work["store"]),
        "-m",
        str(work["model"]),
        "-o",
        str(out),
    ]
    args += ["--scheduler", address, "--coverage", "mask", "--no-ood", "--draws", str(DRAWS)]
    args += ["--partition-size", str(PART), "--no-plots"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 3, res.output  # the two S/N-as-error files: "some failed"
    table = read_results(out)
    assert len(table) == N_SPECTRA
    np.testing.assert_array_equal(
        table["teff_median"].to_numpy(), read_results(work["ref"])["teff_median"].to_numpy()
    )
