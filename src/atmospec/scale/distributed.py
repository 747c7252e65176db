"""Batch prediction on a Dask cluster: the Dask executor of the one batch runner.

:func:`atmospec.prediction.batch.run_catalog` does the work (partitions, resumable
output folder, merged tables); this module only decides where partitions run: on the
workers of a Dask cluster (a running scheduler, or a LocalCluster started here).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from atmospec.prediction.batch import (
    BatchOptions,
    BatchRun,
    IncompleteRunError,
    PredictorSpec,
    WorkerSpec,
    predict_partition,
    read_results,
    run_catalog,
    shipping_spec,
)
from atmospec.prediction.sources import Catalog, Partition

if TYPE_CHECKING:
    from distributed import Client

    from atmospec.prediction.predictor import Predictor

__all__ = [
    "DaskExecutor",
    "predict_catalog",
    "read_results",
    "dask_client",
    "BatchRun",
    "IncompleteRunError",
    "PredictorSpec",
    "default_workers",
]

log = logging.getLogger(__name__)


def default_workers() -> int:
    """Worker processes a local cluster starts: the CPU cores this process may use.

    Example:
        >>> usable = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        >>> default_workers() == (len(usable) if usable else os.cpu_count() or 1)
        True
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def dask_client(
    scheduler: str | None = None,
    *,
    workers: int | None = None,
    threads_per_worker: int = 1,
    memory_limit: str | float | None = "auto",
) -> Iterator[Client]:
    """A Dask client: connected to ``scheduler`` (``"tcp://host:8786"``, or a scheduler
    file path), or to a new LocalCluster of ``workers`` single-threaded processes (default
    :func:`default_workers`) that is shut down on exit.

    Example:
        >>> with dask_client(workers=1) as client:  # doctest: +SKIP
        ...     client.ncores()
    """
    from atmospec._optional import require

    dist = require("distributed", "scale")
    Client, LocalCluster = dist.Client, dist.LocalCluster

    if scheduler:
        if Path(scheduler).is_file():
            client = Client(scheduler_file=scheduler)
        else:
            client = Client(scheduler)
        try:
            yield client
        finally:
            client.close()
        return
    n = default_workers() if workers is None else int(workers)
    if n < 1:
        raise ValueError(f"workers must be >= 1, not {n}")
    with (
        LocalCluster(
            n_workers=n,
            threads_per_worker=threads_per_worker,
            processes=True,
            dashboard_address=None,
            memory_limit=memory_limit,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def _warm(spec: WorkerSpec) -> str:
    """Build the predictor in this worker now (so timing excludes model loading)."""
    with contextlib.suppress(ImportError):
        import torch

        torch.set_num_threads(1)  # one torch thread per worker process: cores are the workers
    return spec.build().model_id


class DaskExecutor:
    """Partitions as tasks on the workers of a Dask ``client``.

    The predictor travels once per worker (its files, grid reference and calibrated OOD
    detectors as a :class:`~atmospec.prediction.batch.PredictorSpec`, or the multi-grid
    predictor's spec with one such spec per learned model) and is rebuilt there once. A lost worker costs only the partition it was computing: Dask reschedules it on a
    live worker up to ``retries`` extra times; partitions that still fail are reported.
    """

    def __init__(self, client: Client, *, retries: int = 2) -> None:
        self.client = client
        self.retries = retries
        self.workers = len(client.scheduler_info(n_workers=-1).get("workers", {}))
        self._key = ""

    def ship(self, predictor: Predictor, options: BatchOptions) -> Any:
        spec = shipping_spec(predictor, options)
        self.client.run(_warm, spec)  # every worker receives and loads the model once, now
        self._key = spec.key
        return self.client.scatter(spec, broadcast=True, hash=False)  # for restarted workers

    def map(
        self, parts: Sequence[Partition], shipped: Any, args: tuple[Any, ...]
    ) -> Iterator[tuple[Partition, dict[str, Any] | None, BaseException | None]]:
        from atmospec._optional import require

        as_completed = require("distributed", "scale").as_completed
        out = Path(str(args[0])).name
        futures = {
            self.client.submit(
                predict_partition,
                p,
                shipped,
                *args,
                key=f"predict-{p.name}-{self._key}-{out}",
                retries=self.retries,
                pure=False,
            ): p
            for p in parts
        }
        for fut in as_completed(futures):
            p = futures[fut]
            try:
                yield p, fut.result(), None
            except Exception as err:  # KilledWorker, task errors: the next run retries them
                yield p, None, err


def predict_catalog(
    catalog: Any,
    model: Any = "default",
    out: str | os.PathLike[str] = "predictions",
    *,
    options: BatchOptions | None = None,
    scheduler: str | None = None,
    client: Client | None = None,
    workers: int | None = None,
    serial: bool = False,
    column: str | None = None,
    **option_values: Any,
) -> BatchRun:
    """Predict every spectrum of a catalogue on a Dask cluster (or, ``serial``, here).

    The same run as ``atmospec predict`` (:func:`atmospec.prediction.batch.run_catalog`:
    same options and defaults, same output folder, same table), with the partitions computed
    by the workers of a Dask cluster: a running scheduler (``tcp://host:8786`` or a
    scheduler file), an existing ``client``, or a LocalCluster of ``workers`` processes. The
    model, its grid reference and its OOD calibration are resolved here once and broadcast.
    Results do not depend on the number of workers (each spectrum's Monte Carlo draws are
    seeded by its source).

    Args:
        catalog: a table of files (``column`` names the path column), a folder, a spectra
            store or a :class:`~atmospec.prediction.sources.Catalog`.
        model: an Estimator, a saved model folder, a registry name, or a predictor already
            built (a :class:`~atmospec.prediction.predictor.Predictor`, or the
            :class:`~atmospec.multigrid.MultiGridPredictor` that ``atmospec predict`` runs
            for the default model; its own options then decide the rows).
        out: output folder.
        options: the run's options; or give them as keywords (``draws=``, ``coverage=``,
            ``partition_size=``... see :class:`~atmospec.prediction.batch.BatchOptions`).
        serial: compute in this process without Dask (the single-process reference).

    Returns:
        A :class:`~atmospec.prediction.batch.BatchRun`; :func:`read_results` loads the table.

    Example:
        >>> run = predict_catalog("survey.zarr", "default", "preds/", workers=2)  # doctest: +SKIP
        >>> run.complete, read_results("preds/").shape  # doctest: +SKIP
    """
    from atmospec.prediction.predictor import Predictor

    if options is None:
        name = model if isinstance(model, str) else str(getattr(model, "name", "") or "")
        options = BatchOptions(model=name, **option_values)
    elif option_values:
        raise TypeError("give options= or option keywords, not both")
    cat = Catalog.open(catalog, column)
    built = callable(getattr(model, "prepare", None)) and callable(
        getattr(model, "predict_inputs", None)
    )
    predictor = model if built else Predictor(model, **options.predictor_kwargs())
    if serial:
        return run_catalog(cat, predictor, out, options)
    with contextlib.ExitStack() as stack:
        if client is None:
            client = stack.enter_context(dask_client(scheduler, workers=workers))
        return run_catalog(cat, predictor, out, options, executor=DaskExecutor(client))
