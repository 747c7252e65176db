"""Two tuning processes share one Optuna study in a real PostgreSQL server on localhost."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from atmospec.scale.tuning import TuneJob, split_shares, tune_processes


def _pg_bindir() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    dirs = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return Path(dirs[-1]).parent if dirs else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A throw-away PostgreSQL cluster (initdb in a temp dir, pg_ctl on a free port, unix
    socket in the temp dir, trust auth on 127.0.0.1), run as a non-root user."""
    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip(
            "PostgreSQL binaries (initdb, pg_ctl) are absent; scripts/ci-postgres.sh "
            "installs Debian's postgresql"
        )
    root = Path(tempfile.mkdtemp(prefix="atmospec-pg-"))
    as_user: dict[str, Any] = {}
    if os.geteuid() == 0:  # initdb refuses root: run the server as the 'postgres' account
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail("running as root and no 'postgres' user exists to own the test server")
        os.chown(root, pw.pw_uid, pw.pw_gid)
        as_user = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
    data, sock, log = root / "data", root / "sock", root / "server.log"
    port = _free_port()
    env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C", "HOME": str(root)}

    def run(*cmd: str) -> None:
        subprocess.run(
            cmd, check=True, cwd=root, env=env, capture_output=True, timeout=120, **as_user
        )

    try:
        run("mkdir", "-p", str(sock))
        run(
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        run(
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(log),
            "-w",
            "-t",
            "60",
            "-o",
            f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        )
    except subprocess.CalledProcessError as err:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"could not start PostgreSQL: {err.stderr.decode(errors='replace')}")
    try:
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE atmospec_tuning")
        conn.close()
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/atmospec_tuning"
    finally:
        subprocess.run(
            [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            cwd=root,
            env=env,
            capture_output=True,
            timeout=60,
            **as_user,
        )
        shutil.rmtree(root, ignore_errors=True)


def test_split_shares_sum_to_the_total() -> None:
    assert split_shares(5, 2) == [3, 2] and sum(split_shares(17, 4)) == 17


def test_two_processes_share_one_postgres_study(
    postgres_url: str, splat_dir: Path, tmp_path: Path
) -> None:
    import optuna

    from atmospec.grids import load_grid
    from atmospec.training.builder import build_training_set

    grid = load_grid("dback24")
    train = build_training_set(
        grid, tmp_path / "train.h5", n_samples=160, axis="spex-prism", seed=1
    )
    val = build_training_set(grid, tmp_path / "val.h5", n_samples=48, axis="spex-prism", seed=2)
    job = TuneJob(
        train=str(train.path),
        validation=str(val.path),
        estimator="mlp",
        params={"hidden": [16], "num_threads": 1, "n_members": 1},
        space={"lr": ["log", 1e-3, 1e-2], "batch_size": ["choice", 32, 64]},
        study_name="shared",
        storage=postgres_url,
        out_dir=str(tmp_path / "tune"),
        max_epochs=2,
        seed=0,
    )
    train.close()
    val.close()
    study, records = tune_processes(job, n_trials=4, n_processes=2)
    # The study lives in PostgreSQL (not a local SQLite file) ...
    assert not (tmp_path / "tune" / "study.db").exists()
    # ... and holds the 2 + 2 trials of two different processes, each trial exactly once.
    numbers = sorted(t.number for t in study.trials)
    assert numbers == [0, 1, 2, 3]
    assert len({r["worker"] for r in records}) == 2
    per = [set(r["trials"]) for r in records]
    assert all(len(s) == 2 for s in per) and per[0].isdisjoint(per[1])
    assert per[0] | per[1] == set(numbers)
    finished = [
        t
        for t in study.trials
        if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    ]
    assert len(finished) == 4
    # a third reader sees the same study through the server
    again = optuna.load_study(study_name="shared", storage=postgres_url)
    assert len(again.trials) == 4
