"""Pretrained models shipped inside the package: list them, load one by name."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from atmospec.errors import ModelFileError

if TYPE_CHECKING:
    from atmospec.estimators.base import Estimator

__all__ = ["list_models", "load_model", "model_path", "ALIASES"]

ALIASES: dict[str, str] = {
    "default": "dback24-spex",
    "t-dwarf": "burrows06-spex",
}


def _root() -> Path:
    return Path(str(resources.files("atmospec") / "pretrained"))


def model_path(name: str = "default") -> Path:
    """Folder of a shipped model (``"default"``, ``"dback24-spex"``, ``"t-dwarf"``...).

    Raises:
        ModelFileError: no shipped model has this name (the message lists the names).
    """
    real = ALIASES.get(name, name)
    path = _root() / real
    if not (path / "model.json").is_file():
        known = sorted({*ALIASES, *(m["name"] for m in list_models())})
        raise ModelFileError(f"no pretrained model named {name!r}; available: {known}")
    return path


def list_models() -> list[dict[str, Any]]:
    """One summary per shipped model: name, aliases, kind, grid, parameters, bounds, axis,
    evaluation summary (RMSE and coverage on its held-out test split) and size on disk.

    Example:
        >>> isinstance(list_models(), list)
        True
    """
    root = _root()
    out: list[dict[str, Any]] = []
    if not root.is_dir():
        return out
    for rec_path in sorted(root.glob("*/model.json")):
        try:
            rec = json.loads(rec_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        meta = rec.get("meta", {})
        folder = rec_path.parent
        ev = meta.get("evaluation", {})
        out.append(
            {
                "name": folder.name,
                "aliases": [a for a, n in ALIASES.items() if n == folder.name],
                "description": meta.get("description", ""),
                "kind": rec.get("kind"),
                "grid": meta.get("grid"),
                "param_names": rec.get("param_names"),
                "bounds": rec.get("bounds"),
                "axis": meta.get("axis"),
                "rmse": {p: m.get("rmse") for p, m in ev.get("overall", {}).items()},
                "coverage68": ev.get("coverage68"),
                "coverage95": ev.get("coverage95"),
                "bytes": sum(f.stat().st_size for f in folder.iterdir() if f.is_file()),
            }
        )
    return out


def load_model(name: str = "default") -> Estimator:
    """Load a shipped pretrained model by name (verified by sha256, never executes code).

    Example:
        >>> model = load_model("default")  # doctest: +SKIP
        >>> model.param_names_  # doctest: +SKIP
        ('teff', 'logg', 'mh', 'fsed')
    """
    from atmospec.estimators.base import load_estimator

    return load_estimator(model_path(name))
