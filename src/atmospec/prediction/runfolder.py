"""The output folder of a batch run: its record, lock, partition files and merged tables.

A :class:`RunFolder` guards the folder a resumable batch (``atmospec predict``) writes:

- :meth:`~RunFolder.begin` takes a lock (``.atmospec.lock``, an OS file lock released when
  the process ends, even on SIGKILL): a second run into the same folder is refused while the
  first is alive; :meth:`~RunFolder.finish` (or :meth:`~RunFolder.release`) releases it;
- ``run.json`` records what the run is (catalogue, model, the options that decide the
  rows); resuming with the same run continues, another run is refused unless
  ``overwrite=True`` (which removes the earlier run's files first);
- files the run did not write are never overwritten: every output is recorded in
  ``run.json`` with its sha256, and an output that exists without a matching record is
  refused (an existing *file* as the folder, or a folder that is not writable, too);
- partition files (``parts/part-NNNNNN.json``, :mod:`atmospec.prediction.partfile`: strict
  JSON, floats written exactly; no pyarrow needed) carry a sha256 sidecar, verified before
  they are used, so a truncated or edited part is an error, never a row of NaNs;
- :func:`exit_code` maps the counts of a batch to the process exit status.

Example:
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "run"
    >>> rf = RunFolder(out)
    >>> rf.begin({"kind": "predict", "options": {"draws": 10}})
    >>> rf.finish({"kind": "predict", "options": {"draws": 10}})
    >>> RunFolder(out).begin({"kind": "predict", "options": {"draws": 20}})
    Traceback (most recent call last):
    ...
    atmospec.prediction.runfolder.RunFolderError: ...(draws: 10 -> 20)...
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from atmospec.errors import AtmospecError
from atmospec.prediction.partfile import read_part, write_part_file

if TYPE_CHECKING:
    import pandas as pd

    from atmospec.prediction.sources import Partition

__all__ = [
    "RunFolder",
    "RunFolderError",
    "merge_parts",
    "read_results",
    "exit_code",
    "read_part",
    "write_part_file",
    "RUN_FILE",
    "EXIT_OK",
    "EXIT_SOME_FAILED",
    "EXIT_ALL_FAILED",
]

_PARTS = "parts"
_LOCK = ".atmospec.lock"
RUN_FILE = "run.json"
OUTPUTS: tuple[str, ...] = ("predictions.csv", "predictions.ecsv", "failures.csv")
"""The merged tables a run writes (recorded with their sha256 in ``run.json``)."""

EXIT_OK = 0
"""Every input gave a result."""
EXIT_SOME_FAILED = 3
"""Some inputs gave results, some failed (listed in failures.csv)."""
EXIT_ALL_FAILED = 4
"""No input gave a result."""

_FIX_PART = "delete it (and its .sha256) and rerun to recompute its spectra"


class RunFolderError(AtmospecError):
    """An output folder cannot be used: locked, holding another run, or holding foreign files.

    Example:
        >>> import tempfile
        >>> out = Path(tempfile.mkdtemp())
        >>> first = RunFolder(out)
        >>> first.begin({"kind": "predict"})
        >>> RunFolder(out).begin({"kind": "predict"})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        atmospec.prediction.runfolder.RunFolderError: ...another atmospec run (process ...
        >>> first.release()
    """


def exit_code(n_ok: int, n_failed: int) -> int:
    """The exit status of a batch: 0 all done, 3 some failed, 4 none done (all failed).

    Example:
        >>> exit_code(10, 0), exit_code(7, 3), exit_code(0, 3)
        (0, 3, 4)
    """
    if n_failed <= 0:
        return EXIT_OK
    return EXIT_SOME_FAILED if n_ok > 0 else EXIT_ALL_FAILED


class RunFolder:
    """The output folder of a batch run (see the module docstring).

    Args:
        out: the folder (created by :meth:`begin`; an existing *file* is refused).
        overwrite: :meth:`begin` discards an earlier run in the folder (its recorded outputs,
            parts and figures) instead of refusing another run's record or foreign files.

    Example:
        >>> import pandas as pd, tempfile
        >>> from atmospec.prediction.sources import Partition
        >>> folder = RunFolder(Path(tempfile.mkdtemp()) / "run")
        >>> folder.begin({"kind": "predict", "n_rows": 2})
        >>> part = Partition(0, 0, 2, ("a.fits", "b.fits"), ("file", "file"))
        >>> folder.finished(part)
        False
        >>> folder.write_part(part, pd.DataFrame({"row": [0, 1], "source": ["a.fits", "b.fits"],
        ...     "teff": [900.0, float("nan")], "error": ["", "unreadable"]}))
        >>> folder.finished(part), folder.finished(part, retry_failed=True)
        (True, False)
        >>> rows, fails = folder.merge()
        >>> rows["teff"].tolist(), fails["error"].tolist()
        ([900.0], ['unreadable'])
        >>> folder.finish({"kind": "predict", "n_rows": 2, "status": "complete"})
        >>> sorted(p.name for p in folder.out.iterdir() if p.name != ".atmospec.lock")
        ['failures.csv', 'parts', 'predictions.csv', 'predictions.ecsv', 'run.json']
    """

    IDENTITY = ("kind", "catalog", "n_rows", "model_id", "options")

    def __init__(self, out: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        self.out = Path(out)
        self.parts = self.out / _PARTS
        self.record_path = self.out / RUN_FILE
        self.objects = self.out / "objects"
        self.overwrite = overwrite
        self._lock_fh: Any = None
        self._record: dict[str, Any] = {}
        self._files: dict[str, str] = {}

    def part_path(self, part: Partition) -> Path:
        return self.parts / f"{part.name}.json"

    def read_record(self) -> dict[str, Any]:
        """The folder's ``run.json`` ({} when absent; an unreadable one raises)."""
        if not self.record_path.is_file():
            return {}
        try:
            record = json.loads(self.record_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise RunFolderError(
                f"{self.record_path}: the run record is unreadable ({err}); rerun with "
                "--overwrite to start this folder afresh"
            ) from None
        if not isinstance(record, dict):
            raise RunFolderError(
                f"{self.record_path}: not an atmospec run record; rerun with --overwrite to "
                "start afresh"
            )
        return record

    # ------------------------------------------------------------------ lifecycle
    def begin(self, record: dict[str, Any]) -> None:
        """Lock the folder, check a previous run in it is the same run, record this one.

        Raises:
            RunFolderError: ``out`` is a file or not writable; another process holds the
                lock; the folder holds another run or files no run recorded here wrote
                (unless ``overwrite``).
        """
        self._check_folder()
        self._acquire()
        try:
            self._check_record(record)
        except BaseException:
            self.release()
            raise
        self.parts.mkdir(parents=True, exist_ok=True)
        for stale in self.parts.glob(".part-*.tmp"):  # left by a process killed mid-write
            stale.unlink(missing_ok=True)
        self._record = {**record, "status": "running"}
        self._save()

    def finish(self, record: dict[str, Any]) -> None:
        """Write the final record and release the lock."""
        try:
            self._record = dict(record)
            self._save()
        finally:
            self.release()

    def release(self) -> None:
        """Release the lock (idempotent; the OS releases it too when the process ends)."""
        if self._lock_fh is not None:
            with contextlib.suppress(OSError):
                self._lock_fh.close()  # closing releases the OS lock
            self._lock_fh = None

    def _check_folder(self) -> None:
        out = self.out
        if out.exists() and not out.is_dir():
            raise RunFolderError(f"{out}: --out is an existing file, not a folder; name a folder")
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise RunFolderError(
                f"{out}: cannot create the output folder ({err.strerror})"
            ) from None
        if not os.access(out, os.W_OK | os.X_OK):
            raise RunFolderError(f"{out}: the output folder is not writable")

    def _acquire(self) -> None:
        path = self.out / _LOCK
        try:
            fh = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held until release
        except OSError as err:
            raise RunFolderError(
                f"{self.out}: cannot create the lock file ({err.strerror})"
            ) from None
        try:
            import fcntl

            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # pragma: no cover - Windows
            import msvcrt

            try:
                msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
            except OSError:
                fh.close()
                raise self._locked_error() from None
        except OSError:
            fh.close()
            raise self._locked_error() from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        self._lock_fh = fh

    def _locked_error(self) -> RunFolderError:
        try:
            pid = (self.out / _LOCK).read_text().strip() or "?"
        except OSError:
            pid = "?"
        return RunFolderError(
            f"{self.out}: another atmospec run (process {pid}) is writing this folder; wait "
            "for it to finish or use another --out"
        )

    def _check_record(self, record: dict[str, Any]) -> None:
        from atmospec._fileio import sha256_file

        try:
            old = self.read_record()
        except RunFolderError:
            if not self.overwrite:
                raise
            old = {"unreadable": True}
        if old and self.overwrite:
            self._clear(old)
            old = {}
        if not old:
            foreign = [n for n in OUTPUTS if (self.out / n).exists()]
            if self.objects.is_dir() and any(self.objects.iterdir()):
                foreign.append("objects/")
            if self.parts.is_dir() and any(self.parts.glob("part-*")):
                foreign.append(f"{_PARTS}/")
            if foreign and not self.overwrite:
                raise RunFolderError(
                    f"{self.out}: holds {', '.join(foreign)} not written by an atmospec run "
                    "recorded here; they are not overwritten. Use another --out, or "
                    "--overwrite to replace them"
                )
            if foreign:
                self._clear({})
            self._files = {}
            return
        diff = [k for k in self.IDENTITY if k in old and _differs(old.get(k), record.get(k))]
        if diff:
            raise RunFolderError(
                f"{self.out}: this folder holds a run made with different {', '.join(diff)} "
                f"({_describe(old, record, diff)})"
                f"{' (it would mix two models in one table)' if 'model_id' in diff else ''}; "
                "resuming would mix rows of both. Use another --out, or --overwrite to discard "
                "the earlier run"
            )
        files = old.get("files")
        self._files = dict(files) if isinstance(files, dict) else {}
        for name in OUTPUTS:  # outputs changed since the run wrote them are someone else's
            path = self.out / name
            recorded = self._files.get(name)
            if path.exists() and (recorded is None or sha256_file(path) != recorded):
                raise RunFolderError(
                    f"{path}: changed or replaced since this run wrote it; it is not "
                    "overwritten. Move it away, or rerun with --overwrite"
                )

    def _clear(self, old: dict[str, Any]) -> None:
        """Remove an earlier run's outputs, parts, figures and record."""
        recorded = old.get("files")
        files: dict[str, Any] = recorded if isinstance(recorded, dict) else {}
        for name in {*files, *OUTPUTS}:
            path = self.out / name
            if path.is_file():
                path.unlink()
        for folder in (self.parts, self.objects):
            if folder.is_dir():
                shutil.rmtree(folder)
        self.record_path.unlink(missing_ok=True)

    def _save(self) -> None:
        from atmospec._fileio import write_json

        write_json(self.record_path, {**self._record, "files": dict(self._files)})

    # ------------------------------------------------------------------ outputs
    @contextlib.contextmanager
    def output(self, name: str) -> Iterator[Path]:
        """A temporary path for the output ``name``; on success it replaces the file and is
        recorded (with its sha256) as written by this run."""
        from atmospec._fileio import atomic_path, sha256_file

        with atomic_path(self.out / name) as tmp:
            yield tmp
            digest = sha256_file(tmp)
        self._files[name] = digest
        if self._record:
            self._save()

    # ------------------------------------------------------------------ partitions
    def finished(self, part: Partition, *, retry_failed: bool = False) -> bool:
        """The partition's file exists, matches its sha256 and holds all its rows (and, with
        ``retry_failed``, no failure rows).

        Raises:
            ChecksumError: the file does not match its sha256 or has none (truncated,
                edited, or not written by this run).
        """
        path = self.part_path(part)
        if not path.is_file():
            return False
        self._verify(path)
        try:
            frame = read_part(path)
        except (OSError, ValueError, KeyError):
            return False
        if len(frame) != len(part):
            return False
        return not (retry_failed and any(frame["error"].astype(str) != ""))

    def write_part(self, part: Partition, frame: pd.DataFrame) -> None:
        """Write a partition's table atomically, its sha256 sidecar in place before it."""
        from atmospec._fileio import atomic_path, sha256_file, write_checksum

        path = self.part_path(part)
        with atomic_path(path) as tmp:
            write_part_file(tmp, frame)
            write_checksum(path, sha256_file(tmp))

    @staticmethod
    def _verify(path: Path) -> None:
        from atmospec._fileio import verify_checksum

        verify_checksum(path, required=True, fix=_FIX_PART)

    def results(self) -> pd.DataFrame:
        """All partition files as one table in catalogue order (``row``; ``error`` is empty
        for predicted rows). Every file is checked against its sha256 first."""
        import pandas as pd

        files = sorted(self.parts.glob("part-*.json"))
        if not files:
            raise FileNotFoundError(f"{self.out}: no partition results (parts/part-*.json)")
        for f in files:
            self._verify(f)
        frame = pd.concat([read_part(f) for f in files], ignore_index=True)
        return frame.sort_values("row", kind="stable").reset_index(drop=True)

    def merge(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Write ``predictions.ecsv`` / ``.csv`` and ``failures.csv`` from the parts.

        Idempotent and atomic; the outputs are recorded as this run's. Returns
        ``(predictions, failures)``.
        """
        import pandas as pd
        from astropy.table import Table

        try:
            table = self.results()
        except FileNotFoundError:
            table = pd.DataFrame(columns=["row", "source", "error"])
        bad = table["error"].astype(str) != ""
        rows = table[~bad].drop(columns=["error"]).reset_index(drop=True)
        rows = rows.infer_objects()  # the failure rows made some columns object / float
        for col in ("dof", "row"):
            if col in rows and len(rows):
                rows[col] = rows[col].astype("int64")
        fails = table.loc[bad, ["row", "source", "error"]].reset_index(drop=True)
        if len(rows):
            with self.output("predictions.csv") as tmp:
                rows.to_csv(tmp, index=False)
            with self.output("predictions.ecsv") as tmp:
                out = Table.from_pandas(rows)
                if self._record.get("intervals"):  # what the percentiles are, in the header
                    out.meta["intervals"] = str(self._record["intervals"])
                out.write(tmp, format="ascii.ecsv", overwrite=True)
        with self.output("failures.csv") as tmp:
            fails.to_csv(tmp, index=False)
        return rows, fails


def _differs(a: Any, b: Any) -> bool:
    """Whether two record values differ; in option dicts a key one side lacks reads as None,
    the value of an option not given (a run recorded before an option existed still
    resumes while the option stays unset).

    Example:
        >>> _differs({"draws": 100}, {"draws": 100, "resolution": None})
        False
        >>> _differs({"draws": 100}, {"draws": 100, "resolution": 40.0})
        True
    """
    if isinstance(a, dict) and isinstance(b, dict):
        return any(a.get(s) != b.get(s) for s in set(a) | set(b))
    return bool(a != b)


def _describe(old: dict[str, Any], new: dict[str, Any], keys: list[str]) -> str:
    """``key: old -> new`` for each differing key (options compared one by one)."""
    out = []
    for k in keys:
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += [
                f"{s}: {a.get(s)} -> {b.get(s)}"
                for s in sorted(set(a) | set(b))
                if a.get(s) != b.get(s)
            ]
        elif k == "catalog":
            out.append(f"catalog: {str(a)[:12]} -> {str(b)[:12]}")
        else:
            out.append(f"{k}: {a} -> {b}")
    return "; ".join(out)


def merge_parts(out: str | os.PathLike[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Merge the part files of a run folder (see :meth:`RunFolder.merge`); the outputs are
    recorded in the folder's ``run.json`` as the run's own.

    Example:
        >>> import pandas as pd, tempfile
        >>> from atmospec.prediction.sources import Partition
        >>> folder = RunFolder(Path(tempfile.mkdtemp()))
        >>> folder.begin({"kind": "predict"})
        >>> for i, teff in enumerate([900.0, 1200.0]):
        ...     folder.write_part(Partition(i, i, i + 1), pd.DataFrame(
        ...         {"row": [i], "source": [f"s{i}.fits"], "teff": [teff], "error": [""]}))
        >>> folder.release()
        >>> rows, fails = merge_parts(folder.out)
        >>> rows["teff"].tolist(), len(fails), sorted(folder.read_record()["files"])
        ([900.0, 1200.0], 0, ['failures.csv', 'predictions.csv', 'predictions.ecsv'])
    """
    folder = RunFolder(out)
    record = folder.read_record()
    files = record.pop("files", None)
    folder._record, folder._files = record, dict(files) if isinstance(files, dict) else {}
    return folder.merge()


def read_results(out: str | os.PathLike[str]) -> pd.DataFrame:
    """Every row of a run, predicted or failed, in catalogue order (columns ``row``,
    ``source``, the prediction columns and ``error``).

    Example:
        >>> table = read_results("predictions/")  # doctest: +SKIP
    """
    return RunFolder(out).results()
