"""The one registry of models shipped inside the package: list them, load one by name.

Every shipped model is a folder under ``atmospec/pretrained/`` in the one on-disk format of
:mod:`atmospec.serialization` (``model.json`` + ``weights.safetensors``, both checksummed).
Its record's ``kind`` says what it is and which class loads it:

======================  ==============================  ====================================
family                  record kinds                    loaded as
======================  ==============================  ====================================
``brown-dwarf``         ``cnn``, ``telescope_cnn``,     :class:`~atmospec.estimators.base.
                        ``mlp``, tree baselines          Estimator`
``npe``                 ``npe``                         :class:`~atmospec.posteriors.npe.
                                                         NPEstimator`
``molecules``           ``molecule_classifier``         :class:`~atmospec.molecules.
                                                         classifiers.MoleculeClassifier`
``molecules``           ``molecule_anybin_classifier``  :class:`~atmospec.molecules.
                                                         anybin.AnyBinningClassifier`
``molecules``           ``transit_retrieval_npe``       :class:`~atmospec.molecules.
                                                         abundances.TransitNPE`
``transit``             ``transit_cnn``                 :class:`~atmospec.transit.detrenders.
                                                         cnn.CNNDetrender`
``highres``             ``line_emulator``               :class:`~atmospec.highres.emulator.
                                                         LineEmulator`
======================  ==============================  ====================================

A model's name is its folder's path below ``pretrained/`` with ``/`` written ``-``
(``transit/cnn1d`` is ``transit-cnn1d``); :data:`ALIASES` adds short names.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from atmospec.errors import ModelFileError

__all__ = [
    "ALIASES",
    "COARSE_VARIANTS",
    "DEFAULT_CHAIN",
    "FAMILIES",
    "LOADERS",
    "ShippedModel",
    "list_models",
    "load_model",
    "model_path",
    "shipped_models",
]

ALIASES: dict[str, str] = {
    "default": "dback24-spex",
    "t-dwarf": "burrows06-spex",
    "transit": "transit-cnn1d",
}
"""Short names of shipped models. ``load_model("default")`` is the CNN; ``atmospec predict
--model default`` follows :data:`DEFAULT_CHAIN` instead."""

COARSE_VARIANTS: dict[str, str] = {
    "default": "dback24-spex-coarse",
    "dback24-spex": "dback24-spex-coarse",
    "burrows06-spex": "burrows06-spex-coarse",
}
"""Shipped model -> its variant trained on spectra of resolving power 25-75 (each training
spectrum smoothed further than the grid's R 120: ``configs/*_coarse.toml``). ``atmospec predict
--model default`` sends a spectrum coarser than the SpeX prism's (stated, or sampled so) to
the variant of each grid's model, since the prism-resolution models read its broader bands as
lower gravity."""

DEFAULT_CHAIN: tuple[str, str] = ("npe_dback24", "dback24-spex")
"""What ``--model default`` runs: the NPE (first) serves a spectrum when its shipped
calibration passes and the spectrum is inside its domain; otherwise the CNN (second) does.
See :class:`atmospec.prediction.routing.SelectionPolicy`."""

LOADERS: dict[str, str] = {
    "npe": "atmospec.posteriors.npe:NPEstimator",
    "molecule_classifier": "atmospec.molecules.classifiers:MoleculeClassifier",
    "molecule_anybin_classifier": "atmospec.molecules.anybin:AnyBinningClassifier",
    "transit_retrieval_npe": "atmospec.molecules.abundances:TransitNPE",
    "transit_cnn": "atmospec.transit.detrenders.cnn:CNNDetrender",
    "line_emulator": "atmospec.highres.emulator:LineEmulator",
}
"""Record kind -> ``module:Class`` whose ``load(folder)`` reads it; every other kind is an
estimator of :data:`atmospec.estimators.base.ESTIMATOR_KINDS`."""

FAMILIES: dict[str, str] = {
    "npe": "npe",
    "molecule_classifier": "molecules",
    "molecule_anybin_classifier": "molecules",
    "transit_retrieval_npe": "molecules",
    "transit_cnn": "transit",
    "line_emulator": "highres",
}
"""Record kind -> family shown by ``atmospec models`` (default: ``brown-dwarf``)."""


@dataclass(frozen=True)
class ShippedModel:
    """One shipped model: its registry name, folder and verified record.

    Attributes:
        name: registry name (``"dback24-spex"``, ``"transit-cnn1d"``...).
        kind: the record's kind (``"cnn"``, ``"npe"``, ``"molecule_classifier"``...).
        family: ``"brown-dwarf"``, ``"npe"``, ``"molecules"``, ``"transit"`` or ``"highres"``.
        folder: the model folder.
        record: the verified ``model.json`` content.

    Example:
        >>> m = shipped_models()["npe_dback24"]
        >>> m.kind, m.family, m.folder.name, m.record["param_names"]
        ('npe', 'npe', 'npe_dback24', ['teff', 'logg', 'mh', 'fsed'])
    """

    name: str
    kind: str
    family: str
    folder: Path
    record: dict[str, Any]


def _root() -> Path:
    return Path(str(resources.files("atmospec") / "pretrained"))


def _name_of(folder: Path, root: Path) -> str:
    return folder.relative_to(root).as_posix().replace("/", "-")


def shipped_models() -> dict[str, ShippedModel]:
    """Every shipped model by name, its record verified (sha256 of its canonical content).

    Raises:
        ModelFileError: a shipped record was modified or is corrupt (the file is named).

    Example:
        >>> shipped_models()["transit-cnn1d"].family
        'transit'
    """
    from atmospec.serialization import read_record

    root = _root()
    out: dict[str, ShippedModel] = {}
    if not root.is_dir():
        return out
    for rec_path in sorted(root.rglob("model.json")):
        folder = rec_path.parent
        record = read_record(folder)
        kind = str(record.get("kind", ""))
        name = _name_of(folder, root)
        out[name] = ShippedModel(name, kind, FAMILIES.get(kind, "brown-dwarf"), folder, record)
    return out


def model_path(name: str = "default") -> Path:
    """Folder of a shipped model (``"default"``, ``"dback24-spex"``, ``"transit-cnn1d"``...).

    Raises:
        ModelFileError: no shipped model has this name (the message lists the names).

    Example:
        >>> model_path().name, model_path("transit").parts[-2:]  # aliases of shipped models
        ('dback24-spex', ('transit', 'cnn1d'))
        >>> (model_path("t-dwarf") / "model.json").is_file()
        True
        >>> model_path("nope")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        atmospec.errors.ModelFileError: no pretrained model named 'nope'; available: [...]
    """
    real = ALIASES.get(name, name)
    root = _root()
    path = root / real
    if not (path / "model.json").is_file():
        models = shipped_models()
        if real in models:
            return models[real].folder
        known = sorted({*ALIASES, *models})
        raise ModelFileError(f"no pretrained model named {name!r}; available: {known}")
    return path


def list_models() -> list[dict[str, Any]]:
    """One summary per shipped model: name, aliases, kind, family, grid, parameters, bounds,
    axis, evaluation summary (RMSE and coverage on its held-out test split where the model
    has one), provenance (versions, seed) and size on disk.

    Example:
        >>> isinstance(list_models(), list)
        True
    """
    out: list[dict[str, Any]] = []
    for name, m in shipped_models().items():
        rec = m.record
        meta = rec.get("meta", {}) if isinstance(rec.get("meta"), dict) else {}
        prov = meta.get("provenance") or rec.get("provenance") or {}
        prov = prov if isinstance(prov, dict) else {}
        ev = meta.get("evaluation", {})
        out.append(
            {
                "name": name,
                "aliases": [a for a, n in ALIASES.items() if n == name],
                "description": meta.get("description", "") or rec.get("description", ""),
                "kind": m.kind,
                "family": m.family,
                "grid": meta.get("grid") or prov.get("grid"),
                "param_names": rec.get("param_names") or rec.get("molecules"),
                "bounds": rec.get("bounds"),
                "axis": meta.get("axis"),
                "rmse": {p: v.get("rmse") for p, v in ev.get("overall", {}).items()},
                "coverage68": ev.get("coverage68"),
                "coverage95": ev.get("coverage95"),
                "calibration": _calibration_summary(m.folder) if m.kind == "npe" else None,
                "seed": prov.get("seed"),
                "versions": prov.get("versions", {}),
                "bytes": sum(f.stat().st_size for f in m.folder.iterdir() if f.is_file()),
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


def _loader(kind: str) -> Any:
    from atmospec.estimators.base import ESTIMATOR_KINDS, load_estimator

    if kind in LOADERS:
        module, cls = LOADERS[kind].split(":")
        return getattr(importlib.import_module(module), cls).load
    if kind in ESTIMATOR_KINDS:
        return load_estimator
    raise ModelFileError(
        f"unknown model kind {kind!r} (known: {sorted({*LOADERS, *ESTIMATOR_KINDS})})"
    )


def load_model(name: str | os.PathLike[str] = "default", *, kind: str | None = None) -> Any:
    """Load a shipped model by name, or any saved model folder by path (verified by sha256,
    never executes code).

    The record's kind picks the class: learned estimators come back as an
    :class:`~atmospec.estimators.base.Estimator` (the NPE, ``"npe_dback24"``, as its
    subclass :class:`~atmospec.posteriors.npe.NPEstimator`), ``"molecules"`` as a
    :class:`~atmospec.molecules.classifiers.MoleculeClassifier` (the one for WASP-39b's
    bins), ``"molecules-any-binning"`` as an
    :class:`~atmospec.molecules.anybin.AnyBinningClassifier`, ``"transit-cnn1d"`` as a
    :class:`~atmospec.transit.detrenders.cnn.CNNDetrender`.

    Args:
        name: registry name or alias (``atmospec models``), or a model folder.
        kind: the record kind the caller needs (``"npe"``...); another kind is refused.

    Raises:
        ModelFileError: no such model, a modified or truncated file (named), or another kind.

    Example:
        >>> model = load_model("default")
        >>> model.param_names_, model.kind
        (('teff', 'logg', 'mh', 'fsed'), 'cnn')
    """
    from atmospec.serialization import read_record

    path = Path(name)
    folder = path if path.is_dir() or path.name == "model.json" else model_path(str(name))
    if folder.name == "model.json":
        folder = folder.parent
    found = str(read_record(folder).get("kind", ""))
    if kind is not None and found != kind:
        raise ModelFileError(f"{folder}: a {found!r} model, not the {kind!r} model asked for")
    return _loader(found)(folder)
