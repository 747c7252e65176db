"""One on-disk format for every model atmospec saves: a JSON record plus safetensors arrays.

A model folder holds ``model.json`` (what the model is: kind, hyperparameters, learned scalars,
provenance with versions, seed and grid) and ``weights.safetensors`` (every array). The record
carries the sha256 of the weights file and a sha256 of its own canonical content (sorted keys,
compact separators), so loading detects a truncated, flipped or edited byte in either file and
names the file. Nothing is pickled; loading never executes code. The CNN and tree estimators,
the NPE, the molecule classifiers and the transit CNN all save and load through this module.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from atmospec._fileio import _json_default, atomic_path, sha256_file
from atmospec.errors import ModelFileError

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "save_arrays",
    "load_arrays",
    "read_record",
    "model_paths",
    "record_checksum",
    "seal",
    "is_sealed",
    "weights_digest",
]

FORMAT = "atmospec-model"
FORMAT_VERSION = 1
_RECORD = "model.json"
_WEIGHTS = "weights.safetensors"


def model_paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Return ``(record, weights)`` paths of a model folder (or of its ``model.json``).

    Example:
        >>> [p.as_posix() for p in model_paths("models/cnn/model.json")]
        ['models/cnn/model.json', 'models/cnn/weights.safetensors']
        >>> model_paths("models/cnn") == model_paths("models/cnn/model.json")
        True
    """
    p = Path(path)
    folder = p.parent if p.name == _RECORD else p
    return folder / _RECORD, folder / _WEIGHTS


def record_checksum(record: Mapping[str, Any]) -> str:
    """sha256 of a record's canonical JSON (sorted keys, compact), its ``checksum`` left out.

    Example:
        >>> record_checksum({"checksum": "left out"})  # the sha256 of the text "{}"
        '44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a'
        >>> record_checksum({"b": 1, "a": 2}) == record_checksum({"a": 2, "b": 1})
        True
    """
    body = {k: v for k, v in record.items() if k != "checksum"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=_json_default)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def weights_digest(
    arrays: Mapping[str, NDArray[Any]], *extra: NDArray[Any], length: int = 10
) -> str:
    """The first ``length`` hex digits of a sha256 over a model's arrays: the id of its weights.

    Named arrays are hashed in name order (name, then raw bytes), then the ``extra`` arrays
    (raw bytes, in the order given; e.g. input scalings and the wavelength axis). The bytes
    are hashed as stored, so callers pass arrays in their saved dtype. Model ids in prediction
    outputs end with this digest, so a result names the exact weights that made it.

    Example:
        >>> w = {"b": np.zeros(2, np.float32), "a": np.ones(3, np.float32)}
        >>> d = weights_digest(w, np.linspace(1.0, 2.0, 5))
        >>> len(d), d == weights_digest(dict(reversed(list(w.items()))), np.linspace(1.0, 2.0, 5))
        (10, True)
        >>> d == weights_digest({**w, "a": np.full(3, 2.0, np.float32)}, np.linspace(1.0, 2.0, 5))
        False
    """
    h = hashlib.sha256()
    for key in sorted(arrays):
        h.update(key.encode())
        h.update(np.ascontiguousarray(arrays[key]).tobytes())
    for arr in extra:
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()[:length]


def seal(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record as it reads back from JSON, with its ``checksum`` added: for side files of a
    model folder (e.g. an NPE's ``calibration.json``) written after the model itself.

    Example:
        >>> rec = seal({"tolerance": 0.03, "coverage": {"0.5": 0.49}})
        >>> is_sealed(rec), is_sealed({**rec, "tolerance": 0.3})
        (True, False)
    """
    plain = json.loads(json.dumps(dict(record), default=_json_default))
    plain.pop("checksum", None)
    plain["checksum"] = record_checksum(plain)
    return plain


def is_sealed(record: Mapping[str, Any]) -> bool:
    """True when ``record`` carries a ``checksum`` matching its content (see :func:`seal`).

    Example:
        >>> rec = seal({"kind": "demo"})
        >>> is_sealed(rec), is_sealed({**rec, "kind": "edited"}), is_sealed({"kind": "demo"})
        (True, False, False)
    """
    return bool(record.get("checksum")) and record.get("checksum") == record_checksum(record)


def save_arrays(
    path: str | os.PathLike[str], record: Mapping[str, Any], arrays: Mapping[str, NDArray[Any]]
) -> Path:
    """Write a model folder: ``weights.safetensors`` (arrays) and ``model.json`` (record).

    The JSON carries the sha256 of the weights file and a checksum of its own content, so
    that :func:`load_arrays` detects truncation or tampering of either file. Nothing is
    pickled; loading never executes code.

    Example:
        >>> import tempfile, numpy as np
        >>> d = tempfile.mkdtemp()
        >>> _ = save_arrays(d, {"kind": "demo"}, {"w": np.arange(3.0)})
        >>> rec, arr = load_arrays(d)
        >>> rec["kind"], arr["w"].tolist()
        ('demo', [0.0, 1.0, 2.0])
    """
    from safetensors.numpy import save_file

    rec_path, w_path = model_paths(path)
    rec_path.parent.mkdir(parents=True, exist_ok=True)
    clean = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    with atomic_path(w_path) as tmp:
        save_file(clean, str(tmp))
    full: dict[str, Any] = {"format": FORMAT, "format_version": FORMAT_VERSION, **record}
    full["weights_file"] = _WEIGHTS
    full["weights_sha256"] = sha256_file(w_path)
    full["checksum"] = record_checksum(full)
    with atomic_path(rec_path) as tmp:
        tmp.write_text(json.dumps(full, indent=2, default=_json_default) + "\n", encoding="utf-8")
    return rec_path.parent


def read_record(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and verify a model folder's ``model.json`` (not its weights).

    Raises:
        ModelFileError: the record is missing, not valid JSON, of an unknown or newer format,
            or was modified after saving (its content does not match its own checksum).

    Example:
        >>> import tempfile, numpy as np
        >>> d = tempfile.mkdtemp()
        >>> _ = save_arrays(d, {"kind": "demo", "seed": 3}, {"w": np.zeros(2)})
        >>> read_record(d)["seed"]
        3
    """
    rec_path, _ = model_paths(path)
    if not rec_path.is_file():
        raise ModelFileError(
            f"{rec_path}: no model record found (expected a folder with {_RECORD})"
        )
    try:
        record = json.loads(rec_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelFileError(
            f"{rec_path}: not a valid model record (truncated or corrupt JSON: {err})"
        ) from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ModelFileError(f"{rec_path}: not an atmospec model record (format field missing)")
    try:
        version = int(record.get("format_version", -1))
    except (TypeError, ValueError):
        version = FORMAT_VERSION + 1
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{rec_path}: format version {record.get('format_version')!r} is newer than this "
            f"atmospec reads ({FORMAT_VERSION}); upgrade atmospec"
        )
    if record.get("checksum") != record_checksum(record):
        raise ModelFileError(
            f"{rec_path}: the record was modified after saving (checksum mismatch)"
        )
    return record


def load_arrays(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, NDArray[Any]]]:
    """Read and verify a model folder written by :func:`save_arrays`.

    Raises:
        ModelFileError: a file is missing, truncated, not valid JSON/safetensors, of an
            unknown format, or does not match its recorded sha256 (the message names the file).

    Example:
        >>> import tempfile
        >>> d = save_arrays(tempfile.mkdtemp(), {"kind": "demo"}, {"w": np.arange(3.0)})
        >>> rec, arrays = load_arrays(d)
        >>> rec["format"], arrays["w"].tolist()
        ('atmospec-model', [0.0, 1.0, 2.0])
        >>> weights = model_paths(d)[1]
        >>> _ = weights.write_bytes(weights.read_bytes()[:-8])  # truncate the weights file
        >>> load_arrays(d)
        Traceback (most recent call last):
        ...
        atmospec.errors.ModelFileError: ...weights.safetensors: sha256 ... does not match ...
    """
    from safetensors.numpy import load_file

    record = read_record(path)
    _, w_path = model_paths(path)
    if not w_path.is_file():
        raise ModelFileError(f"{w_path}: weights file missing")
    found = sha256_file(w_path)
    if found != record.get("weights_sha256"):
        raise ModelFileError(
            f"{w_path}: sha256 {found[:12]}... does not match the recorded "
            f"{str(record.get('weights_sha256'))[:12]}...; the file is truncated or was modified"
        )
    try:
        arrays = load_file(str(w_path))
    except Exception as err:  # safetensors raises its own error types
        raise ModelFileError(f"{w_path}: unreadable safetensors file ({err})") from None
    return record, arrays
