"""Output folders of batch runs: lock, run record, owned files, checksummed parts, exit codes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from atmospec.errors import ChecksumError
from atmospec.prediction.runfolder import (
    EXIT_ALL_FAILED,
    EXIT_OK,
    EXIT_SOME_FAILED,
    RunFolder,
    RunFolderError,
    exit_code,
    read_part,
    write_part_file,
)
from atmospec.prediction.sources import Partition


def _record(**options: object) -> dict[str, object]:
    return {"kind": "predict", "catalog": "abc", "n_rows": 2, "options": dict(options)}


def _part(index: int = 0) -> Partition:
    return Partition(index, 2 * index, 2 * index + 2, ("a.csv", "b.csv"), ("file", "file"))


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {"row": [0, 1], "source": ["a", "b"], "teff": [1200.0, 1300.0], "error": ["", ""]}
    )


def test_second_run_into_a_locked_folder_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = RunFolder(out)
    first.begin(_record(a=1))
    with pytest.raises(RunFolderError, match="another atmospec run"):
        RunFolder(out).begin(_record(a=1))
    first.finish(_record(a=1))
    # released by finish: the same run may resume
    again = RunFolder(out)
    again.begin(_record(a=1))
    again.release()


def test_lock_held_by_another_process_and_released_when_it_dies(tmp_path: Path) -> None:
    out = tmp_path / "run"
    code = (
        "import time; from atmospec.prediction.runfolder import RunFolder\n"
        f"rf = RunFolder({str(out)!r}); rf.begin({{'kind': 'predict', 'options': {{}}}})\n"
        "print('locked', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        with pytest.raises(RunFolderError, match=f"process {proc.pid}"):
            RunFolder(out).begin({"kind": "predict", "options": {}})
    finally:
        proc.kill()  # SIGKILL: no cleanup code runs, the OS drops the lock
        proc.wait()
    time.sleep(0.05)
    rf = RunFolder(out)
    rf.begin({"kind": "predict", "options": {}})
    rf.release()


def test_other_options_refused_unless_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "run"
    rf = RunFolder(out)
    rf.begin(_record(draws=100, seed=0))
    rf.write_part(_part(), _frame())
    (out / "objects").mkdir()
    (out / "objects" / "old_corner.png").write_bytes(b"png")
    rf.finish(_record(draws=100, seed=0))
    with pytest.raises(RunFolderError, match=r"draws: 100 -> 200") as err:
        RunFolder(out).begin(_record(draws=200, seed=0))
    assert "--overwrite" in str(err.value)
    rf = RunFolder(out, overwrite=True)
    rf.begin(_record(draws=200, seed=0))
    assert not rf.finished(_part())  # the earlier run's parts are gone, not mixed in
    assert not (out / "objects").exists()  # and its figures
    rf.release()


def test_foreign_output_never_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "predictions.csv").write_text("my own table\n")
    with pytest.raises(RunFolderError, match="predictions.csv not written by an atmospec run"):
        RunFolder(out).begin(_record())
    assert (out / "predictions.csv").read_text() == "my own table\n"


def test_output_edited_after_the_run_is_not_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "run"
    rf = RunFolder(out)
    rf.begin(_record())
    rf.write_part(_part(), _frame())
    rows, fails = rf.merge()
    assert len(rows) == 2 and len(fails) == 0
    rf.finish(_record())
    rf = RunFolder(out)
    rf.begin(_record())  # untouched since we wrote it: a resume may replace it
    rf.merge()
    rf.finish(_record())
    (out / "predictions.csv").write_text("hand-edited\n")
    with pytest.raises(RunFolderError, match="changed or replaced"):
        RunFolder(out).begin(_record())


def test_unreadable_record_refused_unless_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "run.json").write_text("{not json")
    with pytest.raises(RunFolderError, match="run record is unreadable.*--overwrite"):
        RunFolder(out).begin(_record())
    rf = RunFolder(out, overwrite=True)
    rf.begin(_record())
    rf.release()


def test_out_is_a_file_or_not_writable(tmp_path: Path) -> None:
    target = tmp_path / "file.txt"
    target.write_text("x")
    with pytest.raises(RunFolderError, match="existing file, not a folder"):
        RunFolder(target).begin(_record())
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        import os

        if os.access(ro, os.W_OK):  # running as root: permissions are not enforced
            pytest.skip("the file system grants write access regardless of mode (root)")
        with pytest.raises(RunFolderError, match="not writable"):
            RunFolder(ro).begin(_record())
    finally:
        ro.chmod(0o700)


def test_truncated_or_unsigned_part_is_an_error(tmp_path: Path) -> None:
    out = tmp_path / "run"
    rf = RunFolder(out)
    rf.begin(_record())
    rf.write_part(_part(), _frame())
    assert rf.finished(_part()) and len(rf.results()) == 2
    path = rf.part_path(_part())
    path.write_bytes(path.read_bytes()[:-6])  # cut, as a crash of a copy would
    with pytest.raises(ChecksumError, match="does not match the sha256"):
        rf.finished(_part())
    with pytest.raises(ChecksumError, match="does not match the sha256"):
        rf.merge()
    path.unlink()
    stray = rf.part_path(_part(1))
    write_part_file(stray, _frame())  # a part this run did not write
    with pytest.raises(ChecksumError, match="no checksum"):
        rf.results()
    rf.release()


def test_exit_codes() -> None:
    assert exit_code(5, 0) == EXIT_OK == 0
    assert exit_code(5, 1) == EXIT_SOME_FAILED != EXIT_ALL_FAILED
    assert exit_code(0, 5) == EXIT_ALL_FAILED
    assert exit_code(0, 0) == EXIT_OK  # nothing to do is not a failure


def test_part_tables_round_trip_exactly_without_pyarrow(tmp_path: Path) -> None:
    """A partition mixing predicted and failed rows (NaN estimates, an infinite chi2, flags,
    notes that are None or text) reads back bit for bit, dtypes included; the format is
    JSON, so reading it needs neither pyarrow nor pickle."""
    import json

    import numpy as np

    third = 1.0 / 3.0  # 17 significant digits are needed to write it exactly
    frame = pd.DataFrame(
        {
            "row": np.array([4, 5, 6], dtype=np.int64),
            "source": ["a.fits", "b.fits", "c.csv"],
            "teff_median": [1234.5678901234567, third, np.nan],
            "chi2_red": [np.inf, 1.0, np.nan],
            "ood_flag": np.array([False, True, False]),
            "draws": np.array([0.1, 2.5, 3.0], dtype=np.float32),
            "notes": [None, "served by dback24-spex", np.float64(2.0)],
            "error": ["", "", "FileFormatError: c.csv: no flux column"],
        }
    )
    path = tmp_path / "part-000001.json"
    write_part_file(path, frame)
    back = read_part(path)
    pd.testing.assert_frame_equal(back, frame, check_exact=True)
    assert back["teff_median"][1] == third and back["draws"].dtype == np.float32
    assert json.loads(path.read_text())["format"] == "atmospec-partition"

    # strict JSON: no bare NaN / Infinity, which other JSON readers refuse
    def refuse(name: str) -> None:
        raise ValueError(f"bare {name}")

    json.loads(path.read_text(), parse_constant=refuse)
    # a part written before (bare NaN / Infinity) still reads: a run resumes across versions
    old = json.loads(path.read_text())
    old["data"] = [
        [float(v["float"]) if isinstance(v, dict) else v for v in col] for col in old["data"]
    ]
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert "NaN" in (tmp_path / "old.json").read_text()
    pd.testing.assert_frame_equal(read_part(tmp_path / "old.json"), frame, check_exact=True)
    (tmp_path / "other.json").write_text('{"columns": []}')
    with pytest.raises(ValueError, match="other.json: not an atmospec partition table"):
        read_part(tmp_path / "other.json")


def test_option_added_since_the_run_resumes_while_unset(tmp_path: Path) -> None:
    # A run recorded before an option existed lacks its key: it resumes while the option is
    # not given (None), and is refused, naming it, when it is given.
    out = tmp_path / "run"
    rf = RunFolder(out)
    rf.begin(_record(draws=100))
    rf.write_part(_part(), _frame())
    rf.release()
    rf = RunFolder(out)
    rf.begin(_record(draws=100, resolution=None))
    assert rf.finished(_part())
    rf.release()
    with pytest.raises(RunFolderError, match=r"resolution: None -> 40.0"):
        RunFolder(out).begin(_record(draws=100, resolution=40.0))
