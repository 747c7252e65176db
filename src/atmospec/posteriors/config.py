"""NPEConfig: what defines a trained NPE, read from a TOML config and checked key by key."""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
from pathlib import Path
from typing import Any

from atmospec.errors import FileFormatError

__all__ = ["NPEConfig", "read_config", "check_config", "CALIBRATION_KEYS"]

#: The keys of ``[npe.calibration]`` (:func:`atmospec.posteriors.pipeline.calibrate_model`).
CALIBRATION_KEYS = ("n_tests", "n_samples", "tolerance")
#: NPEstimator arguments a config does not set in ``[npe.model]`` / ``[npe.training]``: the
#: prior box and noise come from the grid and ``[npe.noise]``, the seed from ``[npe] seed``.
_NOT_TABLE_KEYS = {"self", "param_names", "bounds", "noise", "seed"}


@dataclasses.dataclass
class NPEConfig:
    """Everything that defines a trained NPE (read from ``configs/*.toml``, section ``[npe]``).

    Example:
        >>> cfg = NPEConfig(name="demo", n_train=1000)
        >>> cfg.grid, cfg.noise["snr_range"]
        ('dback24', [3.0, 30.0])

    ``discrepancy`` names a model-discrepancy model (e.g. ``"dback24-spex"``, see
    :func:`atmospec.training.discrepancy_augment.resolve_discrepancy`; ``""``: off). Every
    training, validation and test spectrum then carries one realisation of it, drawn exactly
    as the training-set builder draws them for the CNNs, so the posteriors include the model
    error real spectra carry; ``discrepancy_amplitude`` scales those realisations.
    """

    name: str = "npe_dback24"
    grid: str = "dback24"
    wave_range: tuple[float, float] = (0.85, 2.45)
    n_train: int = 100_000
    n_val: int = 5_000
    seed: int = 0
    discrepancy: str = ""
    discrepancy_amplitude: float = 1.0
    noise: dict[str, Any] = dataclasses.field(
        default_factory=lambda: {
            "snr_range": [3.0, 30.0],
            "power_range": [0.0, 0.0],
            "tilt_range": [-1.0, 1.0],
            "scale_range": [0.1, 10.0],
            "floor": 0.05,
        }
    )
    model: dict[str, Any] = dataclasses.field(
        default_factory=lambda: {
            "n_features": 64,
            "width": 256,
            "depth": 2,
            "transforms": 4,
            "couplings": 0,
            "bins": 8,
            "n_components": 0,
            "n_sigma_components": 0,
        }
    )
    training: dict[str, Any] = dataclasses.field(
        default_factory=lambda: {
            "lr": 1e-3,
            "batch_size": 256,
            "max_epochs": 12,
            "patience": 15,
            "max_seconds": 660.0,
            "scheduler": "cosine",
            "num_threads": 1,
        }
    )
    calibration: dict[str, Any] = dataclasses.field(
        default_factory=lambda: {"n_tests": 2000, "n_samples": 1000, "tolerance": 0.03}
    )


def read_config(path: str | os.PathLike[str]) -> NPEConfig:
    """Read an NPE config (TOML, section ``[npe]`` plus ``[npe.noise]``, ``[npe.model]``...).

    Every key is checked (:func:`check_config`): an unknown one, in ``[npe]`` or any of its
    tables, is refused naming the file and the table rather than dropped or left to a
    traceback.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "npe.toml"
        >>> _ = path.write_text('[npe]\\nname = "toy"\\nn_train = 5000\\n'
        ...                     '[npe.noise]\\nsnr_range = [10.0, 50.0]\\n')
        >>> cfg = read_config(path)  # tables are merged into the defaults
        >>> cfg.name, cfg.n_train, cfg.grid, cfg.noise["snr_range"], cfg.noise["floor"]
        ('toy', 5000, 'dback24', [10.0, 50.0], 0.05)
        >>> _ = path.write_text('[npe]\\nepochs = 5\\n')
        >>> try:
        ...     read_config(path)
        ... except FileFormatError as err:
        ...     print(str(err).split(": ", 1)[1].split(";")[0])
        unknown keys in [npe]: ['epochs']
    """
    from atmospec._fileio import read_toml

    p = Path(path)
    data = read_toml(p)
    sec = data.get("npe")
    if not isinstance(sec, dict):
        raise FileFormatError(f"{p}: no [npe] section")
    cfg = NPEConfig()
    known = {f.name for f in dataclasses.fields(NPEConfig)}
    unknown = sorted(set(sec) - known)
    if unknown:
        raise FileFormatError(f"{p}: unknown keys in [npe]: {unknown}; known: {sorted(known)}")
    for key, value in sec.items():
        default = getattr(cfg, key)
        try:
            if isinstance(default, dict):
                if not isinstance(value, dict):
                    raise TypeError(f"a table [npe.{key}] expected")
                merged = dict(default)
                merged.update(value)
                setattr(cfg, key, merged)
            elif isinstance(default, tuple):
                setattr(cfg, key, tuple(value))
            else:
                setattr(cfg, key, type(default)(value))
        except (TypeError, ValueError, OverflowError) as err:
            raise FileFormatError(
                f"{p}: [npe] {key} = {value!r} is not a valid {type(default).__name__} ({err})"
            ) from None
    check_config(cfg, str(p))
    return cfg


def _table_keys() -> dict[str, set[str]]:
    """The keys each table of the config may hold."""
    from atmospec.posteriors.npe import NoiseModel, NPEstimator

    estimator = set(inspect.signature(NPEstimator.__init__).parameters) - _NOT_TABLE_KEYS
    return {
        "noise": {f.name for f in dataclasses.fields(NoiseModel)},
        "model": estimator,
        "training": estimator,
        "calibration": set(CALIBRATION_KEYS),
    }


def _pair(value: Any, positive: bool) -> str:
    """Why ``value`` is not a range ``[low, high]`` of finite numbers ('' when it is)."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        return "expected two numbers [low, high]"
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        return "expected finite numbers with low <= high"
    if positive and lo <= 0:
        return "expected positive numbers"
    return ""


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def check_config(cfg: NPEConfig, source: str) -> None:
    """Refuse a config with unknown or invalid keys, naming ``source`` and the table.

    Example:
        >>> cfg = NPEConfig(calibration={"n_test": 50})
        >>> try:
        ...     check_config(cfg, "my.toml")
        ... except FileFormatError as err:
        ...     print(str(err).split(";")[0])
        my.toml: unknown keys in [npe.calibration]: ['n_test']
    """
    problems: list[str] = []
    tables = _table_keys()
    for table, known in tables.items():
        unknown = sorted(set(getattr(cfg, table)) - known)
        if unknown:
            hint = " (the seed is [npe] seed)" if "seed" in unknown else ""
            raise FileFormatError(
                f"{source}: unknown keys in [npe.{table}]: {unknown}{hint}; known: {sorted(known)}"
            )
    both = sorted(set(cfg.model) & set(cfg.training))
    if both:
        problems.append(f"{both} set in both [npe.model] and [npe.training]")
    for key in ("n_train", "n_val"):
        if not _count(getattr(cfg, key)):
            problems.append(f"[npe] {key} = {getattr(cfg, key)!r}: expected an integer >= 1")
    if not (isinstance(cfg.seed, int) and cfg.seed >= 0):
        problems.append(f"[npe] seed = {cfg.seed!r}: expected an integer >= 0")
    why = _pair(cfg.wave_range, positive=True)
    if why or float(cfg.wave_range[0]) == float(cfg.wave_range[1]):
        problems.append(f"[npe] wave_range = {list(cfg.wave_range)}: {why or 'an empty range'}")
    amp = cfg.discrepancy_amplitude
    if not (math.isfinite(amp) and amp >= 0):
        problems.append(f"[npe] discrepancy_amplitude = {amp!r}: expected a finite number >= 0")
    for key in ("snr_range", "power_range", "tilt_range", "scale_range"):
        if key in cfg.noise:
            why = _pair(cfg.noise[key], positive=key in ("snr_range", "scale_range"))
            if why:
                problems.append(f"[npe.noise] {key} = {cfg.noise[key]!r}: {why}")
    floor = cfg.noise.get("floor", 0.0)
    if not (isinstance(floor, int | float) and math.isfinite(floor) and floor >= 0):
        problems.append(f"[npe.noise] floor = {floor!r}: expected a finite number >= 0")
    for key in ("n_tests", "n_samples"):
        if key in cfg.calibration and not _count(cfg.calibration[key]):
            problems.append(
                f"[npe.calibration] {key} = {cfg.calibration[key]!r}: expected an integer >= 1"
            )
    tol = cfg.calibration.get("tolerance", 0.03)
    if not (isinstance(tol, int | float) and not isinstance(tol, bool) and 0 < tol < 1):
        problems.append(f"[npe.calibration] tolerance = {tol!r}: expected a number in (0, 1)")
    if problems:
        raise FileFormatError(f"{source}: " + "; ".join(problems))
