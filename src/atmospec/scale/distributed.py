"""Distributed batch inference on Dask: one Parquet file per partition, restartable."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from atmospec.errors import AtmospecError

from .catalog import Catalog, LoadedSpectrum, Partition

if TYPE_CHECKING:
    import pandas as pd
    from distributed import Client

    from atmospec.inference.predict import Predictor

__all__ = [
    "predict_catalog",
    "run_partitions",
    "read_results",
    "dask_client",
    "PredictorSpec",
    "BatchRun",
    "IncompleteRunError",
    "default_workers",
]

MANIFEST = "manifest.json"


class IncompleteRunError(AtmospecError):
    """Some partitions of a batch run failed; rerunning the same command completes them."""


def default_workers() -> int:
    """Worker processes a local cluster starts: the CPU cores this process may use."""
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


# ------------------------------------------------------------------------ the engine
@dataclass
class BatchRun:
    """What a batch run did: partitions computed, skipped (already done) and failed."""

    out: Path
    n_rows: int
    n_partitions: int
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    rows_computed: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    workers: int = 0

    @property
    def complete(self) -> bool:
        """True when every partition has its result file."""
        return not self.failed and len(self.done) + len(self.skipped) == self.n_partitions

    @property
    def spectra_per_s(self) -> float:
        """Rows computed in this run per wall-clock second."""
        return self.rows_computed / self.seconds if self.seconds > 0 else float("nan")

    @property
    def spectra_per_cpu_s(self) -> float:
        """Rows per CPU second spent in the partition tasks: the per-core rate, which other
        programs sharing the machine do not distort (wall-clock rates they do)."""
        return self.rows_computed / self.cpu_seconds if self.cpu_seconds > 0 else float("nan")

    def summary(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "n_rows": self.n_rows,
            "n_partitions": self.n_partitions,
            "done": len(self.done),
            "skipped": len(self.skipped),
            "failed": dict(self.failed),
            "rows_computed": self.rows_computed,
            "seconds": round(self.seconds, 3),
            "spectra_per_s": round(self.spectra_per_s, 2),
            "spectra_per_cpu_s": round(self.spectra_per_cpu_s, 2),
            "workers": self.workers,
            "complete": self.complete,
        }


def _part_path(out: Path, part: Partition) -> Path:
    return out / f"{part.name}.parquet"


def _finished(path: Path, n_rows: int) -> bool:
    """A partition is finished when its Parquet file exists and holds all its rows."""
    if not path.is_file():
        return False
    try:
        from atmospec._optional import require

        pq = require("pyarrow.parquet", "scale")
        return pq.read_metadata(path).num_rows == n_rows
    except (OSError, ValueError):
        return False


def _partition_job(
    part: Partition, out: str, task: Callable[..., pd.DataFrame], args: tuple[Any, ...]
) -> dict[str, Any]:
    """Run ``task`` on one partition in a worker and write its rows atomically."""
    from atmospec._fileio import atomic_path
    from atmospec._optional import require

    require("pyarrow", "scale")  # the engine pandas writes parquet with
    path = _part_path(Path(out), part)
    if _finished(path, len(part)):  # another attempt finished it meanwhile
        return {"name": part.name, "rows": 0, "seconds": 0.0, "skipped": True}
    t0, c0 = time.perf_counter(), time.process_time()
    frame = task(part, *args)
    if len(frame) != len(part):
        raise RuntimeError(f"{part.name}: task returned {len(frame)} rows for {len(part)}")
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)
    return {
        "name": part.name,
        "rows": len(frame),
        "seconds": time.perf_counter() - t0,
        "cpu_seconds": time.process_time() - c0,
        "skipped": False,
        "pid": os.getpid(),
    }


def _check_manifest(out: Path, manifest: dict[str, Any]) -> None:
    from atmospec._fileio import write_json

    path = out / MANIFEST
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        keys = ("catalog", "n_rows", "partition_size", "job")
        diff = [k for k in keys if old.get(k) != manifest.get(k)]
        if diff:
            raise AtmospecError(
                f"{out}: this folder holds a run with another {', '.join(diff)} "
                f"({', '.join(f'{k}={old.get(k)!r}' for k in diff)}); choose a new output "
                "folder, or delete this one to start again"
            )
        return
    write_json(path, manifest)


def run_partitions(
    catalog: Catalog,
    task: Callable[..., pd.DataFrame],
    out: str | os.PathLike[str],
    *,
    args: tuple[Any, ...] = (),
    client: Client | None = None,
    partition_size: int = 256,
    job: str = "task",
    serial: bool = False,
    retries: int = 2,
    quiet: bool = False,
) -> BatchRun:
    """Run ``task(partition, *args) -> DataFrame`` over every unfinished partition.

    Each partition's rows go atomically into ``out/part-NNNNNN.parquet``; partitions whose
    file is complete are skipped, so a rerun after any interruption finishes the catalogue
    and never duplicates a row (half-written temporary files of killed workers are removed;
    run one job per output folder at a time). A lost worker costs only the partition it was
    computing (Dask reschedules it on a live worker, up to ``retries`` extra times);
    partitions that still fail are listed in :attr:`BatchRun.failed` and left for the next run.

    Args:
        catalog: the rows, cut into partitions of ``partition_size``.
        task: a picklable function of a :class:`Partition` and ``args`` returning one row
            per catalogue row, in order.
        out: output folder (``manifest.json`` records catalogue, size and job).
        args: extra task arguments; Dask futures (e.g. a broadcast model) are resolved on
            the worker, so big objects travel once per worker.
        client: a Dask client; required unless ``serial``.
        job: a label of what the task computes (checked against the manifest on reruns).
        serial: run in this process, partition after partition (the reference run).
        quiet: no progress bar.
    """
    from tqdm.auto import tqdm

    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = catalog.partitions(partition_size)
    _check_manifest(
        out_dir,
        {
            "catalog": catalog.fingerprint(),
            "catalog_label": catalog.label,
            "n_rows": len(catalog),
            "partition_size": partition_size,
            "n_partitions": len(parts),
            "job": job,
        },
    )
    for stale in out_dir.glob(".part-*.parquet.*.tmp"):  # left by a worker killed mid-write
        stale.unlink(missing_ok=True)
    run = BatchRun(out_dir, len(catalog), len(parts))
    todo = []
    for p in parts:
        if _finished(_part_path(out_dir, p), len(p)):
            run.skipped.append(p.name)
        else:
            todo.append(p)
    bar = tqdm(
        total=sum(len(p) for p in todo),
        disable=quiet,
        unit="spec",
        desc=f"{job} ({len(todo)} of {len(parts)} partitions to do)",
    )
    t0 = time.perf_counter()

    def record(name: str, res: dict[str, Any] | None, err: BaseException | None, n: int) -> None:
        if err is not None:
            run.failed[name] = f"{type(err).__name__}: {err}"
        else:
            assert res is not None
            run.done.append(name)
            run.rows_computed += int(res["rows"])
            run.cpu_seconds += float(res.get("cpu_seconds", 0.0))
        bar.update(n)

    try:
        if serial or client is None:
            if not serial:
                raise ValueError("run_partitions needs a Dask client (or serial=True)")
            run.workers = 1
            for p in todo:
                try:
                    record(p.name, _partition_job(p, str(out_dir), task, args), None, len(p))
                except Exception as err:  # one bad partition must not stop the others
                    record(p.name, None, err, len(p))
        else:
            from atmospec._optional import require

            as_completed = require("distributed", "scale").as_completed

            run.workers = len(client.scheduler_info(n_workers=-1).get("workers", {}))
            futures = {
                client.submit(
                    _partition_job,
                    p,
                    str(out_dir),
                    task,
                    args,
                    key=f"{job}-{p.name}-{catalog.fingerprint()[:8]}-{out_dir.name}",
                    retries=retries,
                    pure=False,
                ): p
                for p in todo
            }
            for fut in as_completed(futures):
                p = futures[fut]
                try:
                    record(p.name, fut.result(), None, len(p))
                except Exception as err:  # KilledWorker, task errors: next run retries them
                    record(p.name, None, err, len(p))
    finally:
        bar.close()
    run.seconds = time.perf_counter() - t0
    return run


def read_results(out: str | os.PathLike[str]) -> pd.DataFrame:
    """All partition files of a run folder as one table, in catalogue order (column ``row``).

    Example:
        >>> table = read_results("predictions/")  # doctest: +SKIP
    """
    import pandas as pd

    from atmospec._optional import require

    require("pyarrow", "scale")  # the engine pandas reads parquet with
    files = sorted(Path(out).glob("part-*.parquet"))
    if not files:
        raise FileNotFoundError(f"{out}: no partition results (part-*.parquet)")
    frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    if "row" in frame.columns:
        frame = frame.sort_values("row", kind="stable").reset_index(drop=True)
    return frame


# ------------------------------------------------------------------ prediction task
@dataclass(frozen=True)
class PredictorSpec:
    """Everything a worker needs to rebuild a :class:`~atmospec.inference.predict.Predictor`:
    the model folder's files (bytes, sent once per worker; for ``"default"`` the files of
    every estimator of the selection, by relative path), the grid (path or name), the
    calibrated OOD detector (as its JSON record; ``{"by_model": {model_id: record}}`` when
    there are several) and the prediction options."""

    model_id: str
    model_files: dict[str, bytes]
    grid: tuple[str, str] | None
    detector: dict[str, Any] | None
    options: dict[str, Any]

    @property
    def key(self) -> str:
        """Cache key of the rebuilt predictor in a worker: model id plus options."""
        blob = json.dumps([self.model_id, self.grid, self.options], sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @classmethod
    def build(
        cls,
        model: Any = "default",
        *,
        grid: Any = None,
        ood: bool = True,
        draws: int = 1000,
        coverage: str = "mask",
        max_masked_fraction: float = 0.5,
        assume_snr: float | None = None,
        seed: int = 0,
        quiet: bool = True,
    ) -> PredictorSpec:
        """Resolve the model, grid and OOD calibration here, once, for shipping to workers."""
        from atmospec.inference.predict import Predictor

        pred = Predictor(
            model,
            grid=grid,
            ood=ood,
            draws=draws,
            coverage=coverage,  # type: ignore[arg-type]
            max_masked_fraction=max_masked_fraction,
            assume_snr=assume_snr,
            seed=seed,
            quiet=quiet,
        )
        files, detectors = pred.export_files()
        g = pred.grid
        grid_ref = None if g is None else (str(getattr(g, "path", "")), str(g.name))
        det: dict[str, Any] | None
        if len(pred.members) == 1 and pred.policy is None:
            det = next(iter(detectors.values()), None)
        else:
            det = {"by_model": detectors} if ood else None
        options = {
            "draws": draws,
            "coverage": coverage,
            "max_masked_fraction": max_masked_fraction,
            "assume_snr": assume_snr,
            "seed": seed,
        }
        return cls(pred.model_id, files, grid_ref, det, options)


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[None]:
    try:
        import torch
    except ImportError:  # pragma: no cover
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


_PREDICTORS: dict[str, Predictor] = {}
"""Predictors already rebuilt in this process (a worker builds each model once)."""


def _predictor(spec: PredictorSpec) -> Predictor:
    if spec.key in _PREDICTORS:
        return _PREDICTORS[spec.key]
    from atmospec.inference.ood import OODDetector
    from atmospec.inference.predict import Predictor

    with contextlib.suppress(ImportError):
        import torch

        torch.set_num_threads(1)  # one thread per worker process: cores are the workers
    from atmospec.inference.engine import keep_freed_memory

    keep_freed_memory()
    folder = Path(tempfile.mkdtemp(prefix=f"atmospec-{spec.model_id[:24]}-"))
    for name, blob in spec.model_files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(blob)
    grid: Any = None
    if spec.grid is not None:
        path, name = spec.grid
        grid = path if path and Path(path).is_file() else name
    ood: Any = False
    if spec.detector is not None and "by_model" in spec.detector:
        ood = {k: OODDetector.from_dict(v) for k, v in spec.detector["by_model"].items()}
    elif spec.detector is not None:
        ood = OODDetector.from_dict(spec.detector)
    try:
        # One inference thread per worker process: the workers are the parallelism.
        options = {"num_threads": 1, **spec.options}
        pred = Predictor(str(folder), grid=grid, ood=ood, quiet=True, **options)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if pred.model_id != spec.model_id:
        raise AtmospecError(
            f"model shipped to the worker changed: {pred.model_id} != {spec.model_id}"
        )
    _PREDICTORS[spec.key] = pred
    return pred


def _warm(spec: PredictorSpec) -> str:
    """Build the predictor in this worker now (so timing excludes model loading)."""
    return _predictor(spec).model_id


def predict_partition(part: Partition, spec: PredictorSpec) -> pd.DataFrame:
    """Predict one partition: a table row per catalogue row (``row``, ``source``, the
    prediction columns of :meth:`PredictionResult.table`, and ``error`` for rows that could
    not be read or prepared; such rows keep NaN estimates)."""
    import pandas as pd

    pred = _predictor(spec)
    loaded: list[LoadedSpectrum] = part.load()
    good, errors = [], {}
    for item in loaded:
        if item.spectrum is None:
            errors[item.row] = item.error or "unreadable"
            continue
        try:
            good.append((item, pred.prepare(item.spectrum)))
        except (AtmospecError, ValueError) as err:
            errors[item.row] = f"{type(err).__name__}: {err}"
    frames = []
    if good:
        result = pred.predict_inputs([inp for _, inp in good])
        table = result.table()
        table.meta.clear()
        df = table.to_pandas()
        df.insert(0, "row", [it.row for it, _ in good])
        df["error"] = ""
        frames.append(df)
    if errors:
        frames.append(
            pd.DataFrame(
                {
                    "row": list(errors),
                    "source": [loaded[r - part.start].source for r in errors],
                    "model_id": spec.model_id,
                    "error": list(errors.values()),
                }
            )
        )
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return frame.sort_values("row", kind="stable").reset_index(drop=True)


def predict_catalog(
    catalog: Any,
    model: Any = "default",
    out: str | os.PathLike[str] = "predictions",
    *,
    scheduler: str | None = None,
    client: Client | None = None,
    workers: int | None = None,
    partition_size: int = 256,
    grid: Any = None,
    draws: int = 1000,
    coverage: str = "mask",
    ood: bool = True,
    seed: int = 0,
    serial: bool = False,
    quiet: bool = False,
) -> BatchRun:
    """Predict every spectrum of a catalogue on a Dask cluster (or a local one).

    The catalogue (a table of file paths, a folder, a spectra store, or a :class:`Catalog`)
    is cut into partitions of ``partition_size`` rows. The model, its grid reference and its
    OOD calibration are resolved here once and broadcast, so each worker process receives
    and loads the model once. Each partition's table (the columns of
    ``atmospec predict`` plus ``row`` and ``error``) is written atomically to
    ``out/part-NNNNNN.parquet``; rerunning the same call skips finished partitions, so an
    interrupted run resumes and a lost worker costs one partition. Results do not depend on
    the number of workers (each spectrum's Monte Carlo draws are seeded by its source).

    Args:
        catalog: what to predict (see :meth:`Catalog.open`).
        model: an Estimator, a saved model folder, or a registry name.
        out: output folder.
        scheduler: address of a running Dask scheduler (``tcp://host:8786``) or a scheduler
            file; default a LocalCluster with ``workers`` processes sized to this machine.
        client: an existing Dask client (overrides ``scheduler``/``workers``).
        partition_size: spectra per partition (one task, one output file).
        grid: the model grid (default: the grid the model records).
        draws: Monte Carlo draws per spectrum, as in :func:`atmospec.predict`.
        coverage: ``"mask"`` (default here, so that one odd spectrum does not stop a survey)
            or ``"refuse"``; rows that still cannot be used carry an ``error``.
        ood: compute the out-of-distribution score (calibrated once, in the client).
        seed: base seed of the per-spectrum Monte Carlo draws.
        serial: compute in this process without Dask (the single-process reference).
        quiet: no progress bar.

    Returns:
        A :class:`BatchRun`; :func:`read_results` loads the table.

    Example:
        >>> run = predict_catalog("survey.zarr", "default", "preds/", workers=2)  # doctest: +SKIP
        >>> run.complete, read_results("preds/").shape  # doctest: +SKIP
    """
    cat = Catalog.open(catalog)
    spec = PredictorSpec.build(
        model, grid=grid, ood=ood, draws=draws, coverage=coverage, seed=seed, quiet=quiet
    )
    job = f"predict:{spec.key}"
    if serial:
        with _one_torch_thread():  # as in a worker: identical arithmetic, identical results
            _warm(spec)
            return run_partitions(
                cat,
                predict_partition,
                out,
                args=(spec,),
                serial=True,
                partition_size=partition_size,
                job=job,
                quiet=quiet,
            )
    with contextlib.ExitStack() as stack:
        if client is None:
            client = stack.enter_context(dask_client(scheduler, workers=workers))
        client.run(_warm, spec)  # every worker receives and loads the model once, now
        shipped = client.scatter(spec, broadcast=True, hash=False)  # for restarted workers
        run = run_partitions(
            cat,
            predict_partition,
            out,
            args=(shipped,),
            client=client,
            partition_size=partition_size,
            job=job,
            quiet=quiet,
        )
    return run
