"""Batch prediction over a catalogue: one partition runner, a local or a Dask executor.

A run cuts a :class:`~atmospec.prediction.sources.Catalog` into partitions, predicts each
partition with one :class:`~atmospec.prediction.predictor.Predictor` and writes its rows
atomically to ``OUT/parts/part-NNNNNN.json``; at the end the parts are merged into
``predictions.ecsv`` / ``.csv`` (rows that were predicted) and ``failures.csv`` (rows that
could not be used, with the reason). Finished partitions are skipped on a rerun, so an
interrupted run resumes. The executor decides only *where* partitions run:
:class:`LocalExecutor` (this process) or :class:`atmospec.scale.distributed.DaskExecutor`.
Both produce the same table.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from atmospec.errors import AtmospecError
from atmospec.prediction.options import BatchOptions
from atmospec.prediction.runfolder import (
    RunFolder,
    RunFolderError,
    exit_code,
    merge_parts,
    read_results,
)
from atmospec.prediction.sources import ROW_ERRORS, Catalog, Partition

if TYPE_CHECKING:
    from atmospec.prediction.predictor import Predictor

__all__ = [
    "BatchOptions",
    "BatchRun",
    "RunFolder",
    "RunFolderError",
    "exit_code",
    "PredictorSpec",
    "WorkerSpec",
    "shipping_spec",
    "Executor",
    "LocalExecutor",
    "IncompleteRunError",
    "run_catalog",
    "predict_partition",
    "merge_parts",
    "read_results",
]

log = logging.getLogger(__name__)


class IncompleteRunError(AtmospecError):
    """Some partitions of a batch run failed; rerunning the same command completes them."""


# ----------------------------------------------------------------- shipping a predictor
@dataclass(frozen=True)
class PredictorSpec:
    """A :class:`~atmospec.prediction.predictor.Predictor` as data, to rebuild in another
    process: the model folder's files (for ``"default"`` every member's, by relative path),
    the grid (path or name), the calibrated OOD detectors (JSON records) and the options."""

    model_id: str
    model_files: dict[str, bytes]
    grid: tuple[str, str] | None
    detector: dict[str, Any] | None
    options: dict[str, Any]
    ood_notes: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Cache key of the rebuilt predictor in a process: model id plus options."""
        import hashlib

        blob = json.dumps([self.model_id, self.grid, self.options], sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @classmethod
    def of(cls, predictor: Predictor, options: BatchOptions) -> PredictorSpec:
        """The spec of a built predictor (its OOD detectors already calibrated)."""
        files, detectors = predictor.export_files()
        g = predictor.grid
        grid_ref = None if g is None else (str(getattr(g, "path", "") or ""), str(g.name))
        det: dict[str, Any] | None = {"by_model": detectors} if options.ood else None
        kwargs = options.predictor_kwargs()
        kwargs.pop("grid")
        kwargs.pop("ood")
        # One engine thread per worker process unless told: the workers are the parallelism.
        kwargs["num_threads"] = options.threads or 1
        notes = dict(predictor.ood_notes) if options.ood else {}
        return cls(predictor.model_id, files, grid_ref, det, kwargs, notes)

    def build(self) -> Predictor:
        """The predictor, rebuilt here (once per process and spec)."""
        if self.key in _PREDICTORS:
            return _PREDICTORS[self.key]
        from atmospec.prediction.engine import keep_freed_memory
        from atmospec.prediction.ood import OODDetector
        from atmospec.prediction.predictor import Predictor

        keep_freed_memory()
        folder = Path(tempfile.mkdtemp(prefix=f"atmospec-{self.model_id[:24]}-"))
        for name, blob in self.model_files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(blob)
        grid: Any = None
        if self.grid is not None:
            path, name = self.grid
            grid = path if path and Path(path).is_file() else name
        ood: Any = False
        if self.detector is not None:
            ood = {k: OODDetector.from_dict(v) for k, v in self.detector["by_model"].items()}
        try:
            pred = Predictor(str(folder), grid=grid, ood=ood, **self.options)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        pred.ood_notes.update(self.ood_notes)  # why a member has no OOD score, as at home
        if pred.model_id != self.model_id:
            raise AtmospecError(
                f"model shipped to the worker changed: {pred.model_id} != {self.model_id}"
            )
        _PREDICTORS[self.key] = pred
        return pred


_PREDICTORS: dict[str, Predictor] = {}
"""Predictors already rebuilt in this process (a worker builds each model once)."""


class WorkerSpec(Protocol):
    """A predictor as data for another process: :class:`PredictorSpec`, or what a predictor's
    own ``shipping_spec(options)`` returns (e.g. the multi-grid predictor's)."""

    @property
    def model_id(self) -> str: ...

    @property
    def key(self) -> str: ...

    def build(self) -> Any: ...


def shipping_spec(predictor: Any, options: BatchOptions) -> WorkerSpec:
    """The spec a worker rebuilds ``predictor`` from: the predictor's own
    ``shipping_spec(options)`` when it has one, else :meth:`PredictorSpec.of`."""
    own = getattr(predictor, "shipping_spec", None)
    return own(options) if callable(own) else PredictorSpec.of(predictor, options)


# ------------------------------------------------------------------- partition task
def predict_partition(
    part: Partition,
    predictor: Predictor | WorkerSpec,
    out: str,
    max_plots: int | None = None,
    read_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Predict one partition and write its table atomically; returns what it did.

    The table has a row per catalogue row: ``row``, ``source``, the columns of
    :meth:`~atmospec.prediction.result.PredictionResult.table` and ``error`` (empty, or why
    the spectrum could not be read or prepared; such rows keep NaN estimates). Figures go to
    ``OUT/objects/`` for rows below ``max_plots`` (None: no figures). ``read_options`` go to
    :func:`atmospec.io.read` for every file (``wave_unit=``, ``err_col=`` ...).
    """
    import pandas as pd

    folder = RunFolder(out)
    t0, c0 = time.perf_counter(), time.process_time()
    pred: Any = predictor.build() if _is_spec(predictor) else predictor  # type: ignore[union-attr]
    loaded = part.load(**(read_options or {}))
    good, errors = [], {}
    for item in loaded:
        if item.spectrum is None:
            errors[item.row] = item.error or "unreadable"
            continue
        try:
            good.append((item, pred.prepare(item.spectrum)))
        except ROW_ERRORS as err:
            errors[item.row] = f"{type(err).__name__}: {err}"
    frames = []
    if good:
        result = pred.predict_inputs([inp for _, inp in good])
        if max_plots is not None and part.start < max_plots:
            from atmospec.prediction.result import subset_rows, write_object_figures

            keep = [k for k, (it, _) in enumerate(good) if it.row < max_plots]
            write_object_figures(subset_rows(result, keep), folder.objects)
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
                    "model_id": pred.model_id,
                    "error": list(errors.values()),
                }
            )
        )
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    frame = frame.sort_values("row", kind="stable").reset_index(drop=True)
    if len(frame) != len(part):
        raise RuntimeError(f"{part.name}: {len(frame)} rows for {len(part)} spectra")
    folder.write_part(part, frame)
    return {
        "name": part.name,
        "rows": len(frame),
        "failed": len(errors),
        "seconds": time.perf_counter() - t0,
        "cpu_seconds": time.process_time() - c0,
        "pid": os.getpid(),
    }


def _is_spec(predictor: Any) -> bool:
    """A spec to build here (it has ``build()``), not a predictor to use as it is."""
    return isinstance(predictor, PredictorSpec) or callable(getattr(predictor, "build", None))


# ------------------------------------------------------------------------ executors
Outcome = tuple[Partition, "dict[str, Any] | None", "BaseException | None"]


class Executor(Protocol):
    """Where partitions run: :meth:`ship` readies the predictor for the workers, :meth:`map`
    runs ``predict_partition(part, shipped, *args)`` on every partition and yields
    ``(partition, result, error)`` as they finish."""

    workers: int

    def ship(self, predictor: Predictor, options: BatchOptions) -> Any: ...

    def map(
        self, parts: Sequence[Partition], shipped: Any, args: tuple[Any, ...]
    ) -> Iterator[Outcome]: ...


class LocalExecutor:
    """Partitions one after another in this process (the predictor is used as it is).

    A partition that raises is reported and the others go on; KeyboardInterrupt stops the
    run (finished partitions are kept).
    """

    workers = 1

    def ship(self, predictor: Predictor, options: BatchOptions) -> Any:
        return predictor

    def map(
        self, parts: Sequence[Partition], shipped: Any, args: tuple[Any, ...]
    ) -> Iterator[Outcome]:
        for p in parts:
            try:
                yield p, predict_partition(p, shipped, *args), None
            except Exception as err:  # one bad partition must not stop the others
                yield p, None, err


# ------------------------------------------------------------------------- the runner
@dataclass
class BatchRun:
    """What a batch run did: partitions computed, skipped (already done) and failed.

    Example:
        >>> BatchRun(Path("o"), 5, 1, done=["part-000000"], n_predicted=4, n_unusable=1).exit_code
        3
    """

    out: Path
    n_rows: int
    n_partitions: int
    model_id: str = ""
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    rows_computed: int = 0
    rows_failed: int = 0
    n_rows_done_before: int = 0
    n_predicted: int = 0
    n_unusable: int = 0
    rows_by_model: dict[str, int] = field(default_factory=dict)
    rows_masked: int = 0  # rows answered with some model bins masked (masked_fraction > 0)
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    workers: int = 0
    written: tuple[Path, ...] = ()

    @property
    def exit_code(self) -> int:
        """The process exit status: 0 every row predicted, 3 some could not be used, 4 none
        could (see :func:`~atmospec.prediction.runfolder.exit_code`)."""
        return exit_code(self.n_predicted, self.n_unusable)

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
            "model_id": self.model_id,
            "n_rows": self.n_rows,
            "n_partitions": self.n_partitions,
            "done": len(self.done),
            "skipped": len(self.skipped),
            "failed": dict(self.failed),
            "rows_computed": self.rows_computed,
            "predicted": self.n_predicted,
            "unusable": self.n_unusable,
            "rows_by_model": dict(self.rows_by_model),
            "rows_masked": self.rows_masked,
            "seconds": round(self.seconds, 3),
            "spectra_per_s": round(self.spectra_per_s, 2),
            "spectra_per_cpu_s": round(self.spectra_per_cpu_s, 2),
            "workers": self.workers,
            "complete": self.complete,
            "exit_code": self.exit_code,
            "written": [str(p) for p in self.written],
        }


def run_catalog(
    catalog: Catalog,
    predictor: Predictor,
    out: str | os.PathLike[str],
    options: BatchOptions,
    *,
    executor: Executor | None = None,
) -> BatchRun:
    """Predict every row of ``catalog`` into ``out``, resuming an earlier run there.

    Partitions whose file is complete are skipped (with ``options.retry_failed`` also those
    holding failure rows are redone); the others run on ``executor`` (default
    :class:`LocalExecutor`). A partition that fails as a whole (a lost worker, a bug) is
    listed in :attr:`BatchRun.failed` and left for the next run. At the end the parts are
    merged (:meth:`RunFolder.merge`) and ``run.json`` records model, options, counts,
    throughput and provenance. Progress shows on the ``atmospec`` logger's INFO level.

    The folder is locked for the run (:class:`RunFolder`): a second run into it at the same
    time, a rerun with another catalogue, model or row options (unless
    ``options.overwrite``, which discards the earlier run) and files in it that no run
    recorded there wrote are refused with :class:`RunFolderError`; part files carry a sha256
    verified before they are used.

    Returns:
        A :class:`BatchRun`; :func:`read_results` loads the whole table.
    """
    import dataclasses

    from atmospec._fileio import provenance

    # The predictor is the truth about the options it was built with.
    options = dataclasses.replace(
        options,
        draws=predictor.draws,
        coverage=predictor.coverage,
        max_masked_fraction=predictor.max_masked_fraction,
        assume_snr=predictor.assume_snr,
        seed=predictor.seed,
        precision=predictor.precision,
    )
    if catalog.store is None and len(set(catalog.items)) != len(catalog.items):
        seen: set[str] = set()
        twice = sorted({i for i in catalog.items if i in seen or seen.add(i)})  # type: ignore[func-returns-value]
        raise AtmospecError(f"the batch lists some spectra twice: {', '.join(twice[:5])}")
    executor = executor or LocalExecutor()
    folder = RunFolder(out, overwrite=options.overwrite)
    parts = catalog.partitions(options.partition_size)
    record: dict[str, Any] = {
        "kind": "predict",
        "catalog": catalog.fingerprint(),
        "catalog_label": catalog.label,
        "n_rows": len(catalog),
        "n_partitions": len(parts),
        "model_id": predictor.model_id,
        "grid": predictor.grid.name if predictor.grid is not None else "",
        "draws": predictor.draws,
        "coverage": predictor.coverage,
        "options": options.row_options(),
        "run_options": options.to_dict(),
        "selection": None if predictor.policy is None else predictor.policy.to_dict(),
        "intervals": getattr(predictor, "intervals", ""),
        "provenance": provenance(
            seed=options.seed, job="atmospec predict (batch)", model_id=predictor.model_id
        ),
    }
    folder.begin(record)
    try:
        return _run_locked(folder, record, parts, catalog, predictor, options, executor)
    finally:
        folder.release()


def _run_locked(
    folder: RunFolder,
    record: dict[str, Any],
    parts: list[Partition],
    catalog: Catalog,
    predictor: Predictor,
    options: BatchOptions,
    executor: Executor,
) -> BatchRun:
    """The body of :func:`run_catalog`, run while ``folder`` is locked."""
    from tqdm.auto import tqdm

    run = BatchRun(folder.out, len(catalog), len(parts), predictor.model_id)
    todo = []
    for p in parts:
        if folder.finished(p, retry_failed=options.retry_failed):
            run.skipped.append(p.name)
            run.n_rows_done_before += len(p)
        else:
            todo.append(p)
    shipped = executor.ship(predictor, options)
    run.workers = executor.workers
    max_plots = None if not options.plots else options.max_plots
    if options.plots and max_plots is None:
        max_plots = len(catalog)
    bar = tqdm(
        total=len(catalog),
        initial=run.n_rows_done_before,
        unit="spec",
        desc="predicting",
        dynamic_ncols=True,
        disable=not logging.getLogger("atmospec").isEnabledFor(logging.INFO),
    )
    t0 = time.perf_counter()
    try:
        args = (str(folder.out), max_plots, options.read_options())
        for p, res, err in executor.map(todo, shipped, args):
            if err is not None:
                run.failed[p.name] = f"{type(err).__name__}: {err}"
                log.warning("%s failed (left for the next run): %s", p.name, run.failed[p.name])
            else:
                assert res is not None
                run.done.append(p.name)
                run.rows_computed += int(res["rows"])
                run.rows_failed += int(res["failed"])
                run.cpu_seconds += float(res.get("cpu_seconds", 0.0))
            bar.update(len(p))
    finally:
        bar.close()
    run.seconds = time.perf_counter() - t0
    rows, fails = folder.merge()
    run.n_predicted, run.n_unusable = len(rows), len(fails)
    run.written = tuple(
        folder.out / n
        for n in ("predictions.ecsv", "predictions.csv", "failures.csv")
        if (folder.out / n).exists()
    )
    if "model_id" in rows:
        run.rows_by_model = {str(k): int(v) for k, v in rows["model_id"].value_counts().items()}
    if "masked_fraction" in rows:
        run.rows_masked = int((rows["masked_fraction"].astype(float) > 0).sum())
    folder.finish(
        {
            **record,
            "status": "complete" if run.complete else "incomplete",
            "n_predicted": run.n_predicted,
            "n_failed": run.n_unusable,
            "failed_partitions": dict(run.failed),
            "rows_computed_this_run": run.rows_computed,
            "n_rows_done_before": run.n_rows_done_before,
            "wall_time_s": run.seconds,
            "spectra_per_s": run.spectra_per_s,
            "rows_by_model": run.rows_by_model,
            "rows_masked": run.rows_masked,
            "workers": run.workers,
        }
    )
    return run
