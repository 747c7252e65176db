"""The output folder of a run (``--out``): one run at a time, one set of options, owned files.

A :class:`RunFolder` guards a folder that a resumable command (``atmospec predict``) writes:

- a lock (``.atmospec.lock``, an OS file lock released when the process ends, even on
  SIGKILL): a second run into the same folder is refused while the first is alive;
- the options that decide the results (model, draws, coverage, seed, the list of inputs ...)
  are recorded in ``.atmospec-run.json``; resuming with the same options continues, other
  options are refused unless ``overwrite=True`` (which removes the previous run's files);
- files the run did not write are never overwritten: every output is recorded with its
  sha256, and an output name that exists without a matching record is refused;
- part files are written with their sha256 and verified before they are merged, so a
  truncated or edited part is an error, never a row of NaNs;
- :func:`exit_code` maps the counts of a batch to the process exit status.

Example:
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "run"
    >>> with RunFolder(out, kind="predict", options={"draws": 10}) as rf:
    ...     part = rf.write_part("rows-00000.csv", "source,x\\na,1\\n")
    ...     rf.read_part(part)
    'source,x\\na,1\\n'
    >>> with RunFolder(out, kind="predict", options={"draws": 20}) as rf:
    ...     pass
    Traceback (most recent call last):
    ...
    atmospec.run_folder.RunFolderError: ...: this folder holds a predict run with other options (draws: 10 -> 20); ...
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from atmospec._fileio import atomic_path, sha256_file, write_json
from atmospec.errors import AtmospecError, ChecksumError

__all__ = [
    "RunFolder",
    "RunFolderError",
    "exit_code",
    "EXIT_OK",
    "EXIT_SOME_FAILED",
    "EXIT_ALL_FAILED",
    "digest_of",
]

EXIT_OK = 0
"""Every input gave a result."""
EXIT_SOME_FAILED = 3
"""Some inputs gave results, some failed (listed in failures.csv)."""
EXIT_ALL_FAILED = 4
"""No input gave a result."""

_LOCK = ".atmospec.lock"
_RECORD = ".atmospec-run.json"
_PARTS = "parts"


class RunFolderError(AtmospecError):
    """An output folder cannot be used: locked, holding another run, or holding foreign files."""


def exit_code(n_ok: int, n_failed: int) -> int:
    """The exit status of a batch: 0 all done, 3 some failed, 4 none done (all failed).

    Example:
        >>> exit_code(10, 0), exit_code(7, 3), exit_code(0, 3)
        (0, 3, 4)
    """
    if n_failed <= 0:
        return EXIT_OK
    return EXIT_SOME_FAILED if n_ok > 0 else EXIT_ALL_FAILED


def digest_of(items: Any) -> str:
    """A short sha256 of a JSON-serialisable value (e.g. the ordered list of input ids).

    Example:
        >>> digest_of(["a.fits", "b.fits"]) == digest_of(["a.fits", "b.fits"])
        True
    """
    text = json.dumps(items, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class RunFolder:
    """A locked output folder for one run (see the module docstring).

    Args:
        out: the folder (created if absent; an existing *file* is refused).
        kind: what writes it (``"predict"``); another kind in the same folder is refused.
        options: the options that decide the results; JSON-serialisable.
        outputs: names (relative to ``out``) of the files the run writes (a name ending in
            ``/`` is a folder of its own, e.g. figures); any of them that exists without a
            record from an earlier run here is foreign: refused.
        overwrite: start afresh: remove the earlier run's recorded files and parts.
    """

    def __init__(
        self,
        out: str | os.PathLike[str],
        *,
        kind: str,
        options: Mapping[str, Any],
        outputs: tuple[str, ...] = (),
        overwrite: bool = False,
    ) -> None:
        self.out = Path(out)
        self.kind = kind
        self.options = json.loads(json.dumps(dict(options), default=str))
        self.outputs = outputs
        self.overwrite = overwrite
        self._lock_fh: Any = None
        self._record: dict[str, Any] = {}

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> RunFolder:
        self._check_folder()
        self._acquire()
        try:
            self._check_record()
        except BaseException:
            self._release()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._release()

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

    def _release(self) -> None:
        if self._lock_fh is not None:
            with contextlib.suppress(OSError):
                self._lock_fh.close()  # closing releases the OS lock
            self._lock_fh = None

    # ------------------------------------------------------------------ the record
    @property
    def record_path(self) -> Path:
        return self.out / _RECORD

    def _read_record(self) -> dict[str, Any] | None:
        path = self.record_path
        if not path.exists():
            return None
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise RunFolderError(
                f"{path}: the run record is unreadable ({err}); rerun with --overwrite to "
                "start this folder afresh"
            ) from None
        if not isinstance(record, dict) or not isinstance(record.get("options"), dict):
            raise RunFolderError(
                f"{path}: not an atmospec run record; rerun with --overwrite to start afresh"
            )
        return record

    def _check_record(self) -> None:
        previous = self._read_record()
        if previous is not None and self.overwrite:
            self._clear(previous)
            previous = None
        if previous is None:
            foreign = [n for n in self.outputs if (self.out / n).exists()]
            if (self.out / _PARTS).is_dir() and any((self.out / _PARTS).iterdir()):
                foreign.append(f"{_PARTS}/")
            if foreign:
                raise RunFolderError(
                    f"{self.out}: holds {', '.join(foreign)} not written by an atmospec run "
                    "recorded here; they are not overwritten. Use another --out, or "
                    "--overwrite to replace them"
                )
            self._record = {"kind": self.kind, "options": self.options, "files": {}}
            self._save()
            return
        if previous.get("kind") != self.kind:
            raise RunFolderError(
                f"{self.out}: this folder holds an `atmospec {previous.get('kind')}` run, not "
                f"{self.kind}; use another --out"
            )
        if previous["options"] != self.options and not self.overwrite:
            keys = sorted(set(previous["options"]) | set(self.options))
            diff = [
                f"{k}: {previous['options'].get(k)} -> {self.options.get(k)}"
                for k in keys
                if previous["options"].get(k) != self.options.get(k)
            ]
            raise RunFolderError(
                f"{self.out}: this folder holds a {self.kind} run with other options "
                f"({'; '.join(diff)}); resuming would mix rows of both. Use another --out, "
                "or --overwrite to discard the earlier run"
            )
        self._record = previous
        for name in self.outputs:  # outputs changed since we wrote them are someone else's
            if name.endswith("/"):
                continue
            path = self.out / name
            recorded = self._record["files"].get(name)
            if path.exists() and (recorded is None or sha256_file(path) != recorded):
                raise RunFolderError(
                    f"{path}: changed or replaced since this run wrote it; it is not "
                    "overwritten. Move it away, or rerun with --overwrite"
                )

    def _clear(self, previous: dict[str, Any]) -> None:
        for name in list(previous.get("files", {})) + list(self.outputs):
            path = self.out / name
            if name.endswith("/") and path.is_dir():
                shutil.rmtree(path)
            elif path.is_file():
                path.unlink()
        if (self.out / _PARTS).is_dir():
            shutil.rmtree(self.out / _PARTS)
        with contextlib.suppress(FileNotFoundError):
            self.record_path.unlink()

    def _save(self) -> None:
        write_json(self.record_path, self._record)

    # ------------------------------------------------------------------ files
    @contextlib.contextmanager
    def output(self, name: str) -> Iterator[Path]:
        """A temporary path for the output ``name``; on success it replaces it and is recorded."""
        target = self.out / name
        with atomic_path(target) as tmp:
            yield tmp
            digest = sha256_file(tmp)
        self._record["files"][name] = digest
        self._save()

    def write_part(self, name: str, text: str) -> Path:
        """Write a part file (``parts/NAME``) atomically with its sha256 beside it."""
        folder = self.out / _PARTS
        folder.mkdir(exist_ok=True)
        path = folder / name
        with atomic_path(path.with_name(name + ".sha256")) as tmp:
            tmp.write_text(_sha256_text(text) + "\n", encoding="utf-8")
        with atomic_path(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
        return path

    def read_part(self, path: str | os.PathLike[str]) -> str:
        """The text of a part file, verified against its sha256 (ChecksumError if it differs)."""
        return read_verified_part(path)

    def parts(self) -> list[Path]:
        """The part files of the run, sorted by name."""
        return sorted((self.out / _PARTS).glob("*.csv"))


def read_verified_part(path: str | os.PathLike[str]) -> str:
    """Read a part file written by :meth:`RunFolder.write_part` and check its sha256."""
    p = Path(path)
    side = p.with_name(p.name + ".sha256")
    try:
        raw = p.read_bytes()
    except OSError as err:
        raise ChecksumError(f"{p}: cannot read the part file ({err.strerror})") from None
    if not side.exists():
        raise ChecksumError(
            f"{p}: part file without its checksum ({side.name}); it was not written by this "
            "run. Delete it to recompute its spectra"
        )
    expected = side.read_text(encoding="utf-8").strip()
    if hashlib.sha256(raw).hexdigest() != expected:
        raise ChecksumError(
            f"{p}: part file does not match its sha256 (truncated or edited); delete it (and "
            f"{side.name}) and rerun to recompute its spectra"
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:  # pragma: no cover - the checksum matched
        raise ChecksumError(f"{p}: part file is not UTF-8 text ({err})") from None
