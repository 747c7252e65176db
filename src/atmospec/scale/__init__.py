"""Survey scale: spectra stores, Dask batch inference, sharded training sets, shared tuning."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "SpectraStore",
    "store_from_folder",
    "store_from_library",
    "store_from_spectra",
    "Catalog",
    "Partition",
    "predict_catalog",
    "read_results",
    "dask_client",
    "DaskExecutor",
    "BatchRun",
    "build_shards",
    "merge_shards",
    "plan_shards",
    "block_seeds",
    "TuneJob",
    "tune_processes",
    "tune_dask",
    "storage_url",
]

_WHERE = {
    "SpectraStore": "store",
    "store_from_folder": "store",
    "store_from_library": "store",
    "store_from_spectra": "store",
    "Catalog": "atmospec.prediction.sources",
    "Partition": "atmospec.prediction.sources",
    "predict_catalog": "distributed",
    "read_results": "distributed",
    "dask_client": "distributed",
    "DaskExecutor": "distributed",
    "BatchRun": "distributed",
    "build_shards": "shards",
    "merge_shards": "shards",
    "plan_shards": "shards",
    "block_seeds": "shards",
    "tune_processes": "tuning",
    "tune_dask": "tuning",
    "TuneJob": "tuning",
    "storage_url": "tuning",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        where = _WHERE[name]
        module = where if where.startswith("atmospec.") else f"{__name__}.{where}"
        return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
