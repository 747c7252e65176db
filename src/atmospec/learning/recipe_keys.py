"""The tables of a recipe and the keys each may hold: a key that no step reads is refused."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from atmospec.errors import FileFormatError
from atmospec.training.systematics import Systematics

__all__ = ["KEYS", "check_tables"]

#: The tables of a recipe and the keys each one may hold (what some step reads).
KEYS: dict[str, tuple[str, ...]] = {
    "model": ("name", "estimator", "description", "params"),
    "grid": ("name", "ranges"),
    "split": tuple("mode hold_out val_hold_out seed val_fraction test_fraction keep_edges".split()),
    "data": tuple(
        "axis n_train n_val n_test snr test_snr_levels off_node_fraction noise_shapes systematics "
        "mask_telluric interpolation_error discrepancy discrepancy_amplitude seed".split()
    ),
    "train": ("num_threads", "fresh_noise", "max_cpu_seconds"),
}


def check_tables(d: dict[str, Any], where: str) -> None:
    """FileFormatError naming ``where`` (the recipe file) for a table or key of the TOML
    tables ``d`` that no step reads (a typo such as ``n_trian`` would otherwise leave its
    default in place), and for ``[data.systematics]`` values out of their range (they would
    end as numpy errors after minutes of set building).

    Example:
        >>> check_tables({"model": {"name": "x"}, "data": {"systematics": {"slop": 0}}}, "a.toml")
        Traceback (most recent call last):
        ...
        atmospec.errors.FileFormatError: a.toml: unknown [data.systematics] keys ['slop']; valid ones are [...]
        >>> check_tables({"data": {"systematics": {"extra_R_range": [0, 10]}}}, "a.toml")
        Traceback (most recent call last):
        ...
        atmospec.errors.FileFormatError: a.toml: [data.systematics]: Systematics.extra_R_range must be ...
    """  # noqa: E501
    _check_keys(where, "", d, KEYS)
    for table in KEYS:
        _check_keys(where, table, d.get(table, {}), KEYS[table])
    systematics = d.get("data", {}).get("systematics", {})
    _check_keys(where, "data.systematics", systematics, [f.name for f in fields(Systematics)])
    try:
        Systematics.from_dict(systematics)
    except ValueError as err:
        raise FileFormatError(f"{where}: [data.systematics]: {err}") from None


def _check_keys(where: str, table: str, given: Any, allowed: Any) -> None:
    """Refuse keys of a recipe table that nothing reads (typos are not silently ignored)."""
    if not isinstance(given, dict):
        raise FileFormatError(f"{where}: [{table}] must be a table, not {given!r}")
    unknown = [k for k in given if k not in allowed]
    if unknown:
        what = f"[{table}] keys" if table else "tables"
        raise FileFormatError(
            f"{where}: unknown {what} {unknown}; valid ones are {sorted(allowed)}"
        )
