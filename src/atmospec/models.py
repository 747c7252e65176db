"""Pretrained models shipped inside the package: list them, load one by name."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from atmospec.errors import ModelFileError

if TYPE_CHECKING:
    from atmospec.estimators.base import Estimator
    from atmospec.posteriors.npe import NPEstimator

__all__ = ["list_models", "load_model", "model_path", "ALIASES", "DEFAULT_CHAIN"]

ALIASES: dict[str, str] = {
    "default": "dback24-spex",
    "t-dwarf": "burrows06-spex",
}
"""Short names of shipped models. ``load_model("default")`` is the CNN; ``atmospec predict
--model default`` follows :data:`DEFAULT_CHAIN` instead."""

DEFAULT_CHAIN: tuple[str, str] = ("npe_dback24", "dback24-spex")
"""What ``--model default`` runs: the NPE (first) serves a spectrum when its shipped
calibration passes and the spectrum is inside its domain; otherwise the CNN (second) does.
See :class:`atmospec.prediction.routing.SelectionPolicy`."""


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
                "calibration": _calibration_summary(folder) if rec.get("kind") == "npe" else None,
                "bytes": sum(f.stat().st_size for f in folder.iterdir() if f.is_file()),
            }
        )
    return out


def _calibration_summary(folder: Path) -> dict[str, Any]:
    from atmospec.posteriors.calibration import read_calibration

    status = read_calibration(folder)
    return {
        "passed": status.passed,
        "max_coverage_error": status.max_error,
        "tolerance": status.tolerance,
    }


def load_model(name: str = "default") -> Estimator | NPEstimator:
    """Load a shipped pretrained model by name (verified by sha256, never executes code).

    Learned estimators come back as an :class:`~atmospec.estimators.base.Estimator`, neural
    posterior estimators (kind ``"npe"``, e.g. ``"npe_dback24"``) as an
    :class:`~atmospec.posteriors.npe.NPEstimator`.

    Example:
        >>> model = load_model("default")  # doctest: +SKIP
        >>> model.param_names_  # doctest: +SKIP
        ('teff', 'logg', 'mh', 'fsed')
    """
    from atmospec.estimators.base import load_estimator

    path = model_path(name)
    try:
        kind = json.loads((path / "model.json").read_text(encoding="utf-8")).get("kind")
    except (OSError, json.JSONDecodeError) as err:
        raise ModelFileError(f"{path}: unreadable model.json ({err})") from None
    if kind == "npe":
        from atmospec.posteriors.npe import NPEstimator

        return NPEstimator.load(path)
    return load_estimator(path)
