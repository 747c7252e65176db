"""Output folders of resumable runs: lock, options record, owned files, checksummed parts."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from atmospec.errors import ChecksumError
from atmospec.run_folder import (
    EXIT_ALL_FAILED,
    EXIT_OK,
    EXIT_SOME_FAILED,
    RunFolder,
    RunFolderError,
    exit_code,
    read_verified_part,
)

OUTPUTS = ("predictions.csv", "run.json")


def test_second_run_into_a_locked_folder_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with (
        RunFolder(out, kind="predict", options={"a": 1}, outputs=OUTPUTS),
        pytest.raises(RunFolderError, match="another atmospec run"),
        RunFolder(out, kind="predict", options={"a": 1}, outputs=OUTPUTS),
    ):
        pass
    # released at exit: the same options may resume
    with RunFolder(out, kind="predict", options={"a": 1}, outputs=OUTPUTS):
        pass


def test_lock_held_by_another_process_and_released_when_it_dies(tmp_path: Path) -> None:
    out = tmp_path / "run"
    code = (
        "import sys, time; from atmospec.run_folder import RunFolder\n"
        f"with RunFolder({str(out)!r}, kind='predict', options={{}}):\n"
        "    print('locked', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        with (
            pytest.raises(RunFolderError, match=f"process {proc.pid}"),
            RunFolder(out, kind="predict", options={}),
        ):
            pass
    finally:
        proc.kill()  # SIGKILL: no cleanup code runs, the OS drops the lock
        proc.wait()
    time.sleep(0.05)
    with RunFolder(out, kind="predict", options={}):
        pass


def test_other_options_refused_unless_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with RunFolder(out, kind="predict", options={"draws": 100, "seed": 0}) as rf:
        rf.write_part("rows-00000.csv", "source\na\n")
    with (
        pytest.raises(RunFolderError, match=r"draws: 100 -> 200") as err,
        RunFolder(out, kind="predict", options={"draws": 200, "seed": 0}),
    ):
        pass
    assert "--overwrite" in str(err.value)
    (out / "objects").mkdir()
    (out / "objects" / "old_corner.png").write_bytes(b"png")
    with RunFolder(
        out,
        kind="predict",
        options={"draws": 200, "seed": 0},
        outputs=("objects/",),
        overwrite=True,
    ) as rf:
        assert rf.parts() == []  # the earlier run's parts are gone, not mixed in
        assert not (out / "objects").exists()  # and its figures


def test_foreign_output_never_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "predictions.csv").write_text("my own table\n")
    with (
        pytest.raises(RunFolderError, match="predictions.csv not written by an atmospec run"),
        RunFolder(out, kind="predict", options={}, outputs=OUTPUTS),
    ):
        pass
    assert (out / "predictions.csv").read_text() == "my own table\n"


def test_output_edited_after_the_run_is_not_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with RunFolder(out, kind="predict", options={}, outputs=OUTPUTS) as rf:
        with rf.output("predictions.csv") as tmp:
            tmp.write_text("source\na\n")
    with RunFolder(out, kind="predict", options={}, outputs=OUTPUTS):
        pass  # untouched since we wrote it: a resume may replace it
    (out / "predictions.csv").write_text("hand-edited\n")
    with (
        pytest.raises(RunFolderError, match="changed or replaced"),
        RunFolder(out, kind="predict", options={}, outputs=OUTPUTS),
    ):
        pass


def test_out_is_a_file_or_not_writable(tmp_path: Path) -> None:
    target = tmp_path / "file.txt"
    target.write_text("x")
    with (
        pytest.raises(RunFolderError, match="existing file, not a folder"),
        RunFolder(target, kind="predict", options={}),
    ):
        pass
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        import os

        if os.access(ro, os.W_OK):  # running as root: permissions are not enforced
            pytest.skip("the file system grants write access regardless of mode (root)")
        with (
            pytest.raises(RunFolderError, match="not writable"),
            RunFolder(ro, kind="predict", options={}),
        ):
            pass
    finally:
        ro.chmod(0o700)


def test_truncated_or_unsigned_part_is_an_error(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with RunFolder(out, kind="predict", options={}) as rf:
        part = rf.write_part("rows-00000.csv", "source,teff\na,1200\nb,1300\n")
    assert read_verified_part(part).count("\n") == 3
    part.write_bytes(part.read_bytes()[:-6])  # cut mid-row, as a crash of a copy would
    with pytest.raises(ChecksumError, match="truncated or edited"):
        read_verified_part(part)
    stray = out / "parts" / "rows-00001.csv"
    stray.write_text("source,teff\nc,900\n")
    with pytest.raises(ChecksumError, match="without its checksum"):
        read_verified_part(stray)


def test_exit_codes() -> None:
    assert exit_code(5, 0) == EXIT_OK == 0
    assert exit_code(5, 1) == EXIT_SOME_FAILED != EXIT_ALL_FAILED
    assert exit_code(0, 5) == EXIT_ALL_FAILED
    assert exit_code(0, 0) == EXIT_OK  # nothing to do is not a failure
