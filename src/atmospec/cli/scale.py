"""``atmospec scale``: spectra stores, Dask batch prediction, sharded sets, shared tuning."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from atmospec.cli._checks import SEED_MAX, finite
from atmospec.cli.predict import (
    Aperture,
    AssumeSnr,
    Column,
    Coverage,
    Draws,
    ErrCol,
    FluxCol,
    FluxUnit,
    Grid,
    Grids,
    MaxMasked,
    MaxPlots,
    Model,
    NoCalibration,
    NoOod,
    Out,
    Overwrite,
    PartitionSize,
    Plots,
    Precision,
    Resolution,
    RetryFailed,
    Scheduler,
    Seed,
    Serial,
    Show,
    Threads,
    WaveCol,
    WaveUnit,
    Workers,
    run_batch_command,
    stated_resolution_option,
)

__all__ = ["register"]

scale_app = typer.Typer(
    name="scale",
    help="Survey scale: chunked stores, Dask batch prediction, sharded sets, shared tuning.",
    no_args_is_help=True,
)

_SCHED = "Dask scheduler address (tcp://host:8786) or scheduler file; default a local cluster."


@scale_app.command("predict")
def predict_cmd(
    catalog: str = typer.Argument(..., help="Spectra store (.zarr), folder, or table of files."),
    model: Model = "default",
    out: Out = Path("atmospec-predict"),
    column: Column = None,
    grid: Grid = None,
    coverage: Coverage = "gaps",
    max_masked: MaxMasked = 0.5,
    assume_snr: AssumeSnr = None,
    draws: Draws = 1000,
    partition_size: PartitionSize = 256,
    precision: Precision = "float32",
    threads: Threads = None,
    seed: Seed = 0,
    plots: Plots = True,
    max_plots: MaxPlots = 100,
    show: Show = 20,
    no_ood: NoOod = False,
    retry_failed: RetryFailed = False,
    scheduler: Scheduler = None,
    workers: Workers = None,
    serial: Serial = False,
    overwrite: Overwrite = False,
    wave_unit: WaveUnit = None,
    flux_unit: FluxUnit = None,
    wave_col: WaveCol = None,
    flux_col: FluxCol = None,
    err_col: ErrCol = None,
    resolution: Resolution = None,
    aperture: Aperture = None,
    grids: Grids = None,
    no_calibration: NoCalibration = False,
) -> None:
    """Predict every spectrum of a catalogue on a Dask cluster (default: a local one).

    The same run as ``atmospec predict --catalog CATALOG`` (same options, defaults, output
    folder and table) with the partitions on Dask workers; prints a JSON summary. Rerunning
    the same command skips finished partitions (resume after any interruption). The default
    model's multi-grid answer (``--grids``) runs on the workers too.
    """
    from atmospec.prediction.sources import Catalog

    run_batch_command(
        Catalog.open(catalog, column),
        out,
        model=model,
        grid=grid,
        coverage=coverage,
        max_masked=max_masked,
        assume_snr=assume_snr,
        draws=draws,
        partition_size=partition_size,
        precision=precision,
        threads=threads,
        seed=seed,
        plots=plots,
        max_plots=max_plots,
        show=show,
        no_ood=no_ood,
        retry_failed=retry_failed,
        scheduler=scheduler,
        workers=workers,
        serial=serial,
        summary_json=True,
        overwrite=overwrite,
        wave_unit=wave_unit,
        flux_unit=flux_unit,
        wave_col=wave_col,
        flux_col=flux_col,
        err_col=err_col,
        resolution=stated_resolution_option(resolution),
        aperture=aperture,
        grids=grids,
        calibration=not no_calibration,
    )


@scale_app.command("collect")
def collect_cmd(
    out: Path = typer.Argument(..., help="Output folder of `atmospec scale predict`."),
    to: Path = typer.Option(..., "--to", help="One table: .parquet, .csv or .ecsv."),
) -> None:
    """Join a run's partition files (predicted and failed rows) into one table, in order."""
    from atmospec._fileio import atomic_path
    from atmospec.prediction.batch import read_results

    frame = read_results(out)
    with atomic_path(to) as tmp:
        suffix = to.suffix.lower()
        if suffix == ".parquet":
            from atmospec._optional import require

            require("pyarrow", "scale")  # pandas writes Parquet through pyarrow
            frame.to_parquet(tmp, index=False)
        elif suffix == ".csv":
            frame.to_csv(tmp, index=False)
        elif suffix == ".ecsv":
            from astropy.table import Table

            Table.from_pandas(frame).write(tmp, format="ascii.ecsv", overwrite=True)
        else:
            raise typer.BadParameter(f"{to}: use .parquet, .csv or .ecsv")
    typer.echo(f"{len(frame)} rows -> {to}")


@scale_app.command("store")
def store_cmd(
    source: str = typer.Argument(..., help="A folder of spectra, or 'library' for SpeX."),
    out: Path = typer.Argument(..., help="Store folder to create, e.g. survey.zarr."),
    axis: str = typer.Option("spex-dense", "--axis", help="Wavelength axis preset."),
    pattern: str = typer.Option("*", "--pattern", help="Folder: file name pattern."),
    spt: Optional[str] = typer.Option(None, "--spt", help="Library: type range, e.g. L0-T8."),  # noqa: UP045
    snr_min: Optional[float] = typer.Option(  # noqa: UP045
        None, "--snr-min", help="Library: minimum S/N.", callback=finite(0.0)
    ),
    quality: Optional[str] = typer.Option(None, "--quality", help="Library: OK, POOR, BG."),  # noqa: UP045
    chunk_rows: int = typer.Option(512, "--chunk-rows", help="Spectra per chunk."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Folder: leave out unreadable files."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing store."),
) -> None:
    """Convert a folder of spectra or the SpeX library into a chunked Zarr store."""
    from atmospec.scale.store import store_from_folder, store_from_library

    if source == "library":
        store = store_from_library(
            out,
            axis,
            spt=spt,
            snr_min=snr_min,
            quality=quality,
            chunk_rows=chunk_rows,
            overwrite=overwrite,
        )
    else:
        store = store_from_folder(
            source,
            out,
            axis,
            pattern=pattern,
            on_error="skip" if skip_bad else "raise",
            chunk_rows=chunk_rows,
            overwrite=overwrite,
        )
    typer.echo(repr(store))


@scale_app.command("shards")
def shards_cmd(
    grid: str = typer.Argument(..., help="Grid name (dback24, btsettl08, burrows06) or .h5 path."),
    out: Path = typer.Argument(..., help="Folder for shard-NNNNN.h5 files."),
    n_samples: int = typer.Option(..., "--n-samples", "-n", help="Total spectra."),
    shards: Optional[int] = typer.Option(None, "--shards", help="Shard files (default: workers)."),  # noqa: UP045
    block_size: int = typer.Option(1024, "--block-size", help="Rows per seeded block."),
    axis: str = typer.Option("spex-dense", "--axis", help="Target wavelength axis preset."),
    seed: int = typer.Option(0, "--seed", min=0, max=SEED_MAX, help="Global seed."),
    merge: Optional[Path] = typer.Option(None, "--merge", help="Also join into this .h5 file."),  # noqa: UP045
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help=_SCHED),  # noqa: UP045
    workers: Optional[int] = typer.Option(None, "--workers", help="Local worker processes."),  # noqa: UP045
    serial: bool = typer.Option(False, "--serial", help="No Dask: build here."),
) -> None:
    """Build a training set as shards in parallel (same rows for any shard count)."""
    import contextlib

    from atmospec.scale.distributed import dask_client
    from atmospec.scale.shards import build_shards, merge_shards

    with contextlib.ExitStack() as stack:
        client = None if serial else stack.enter_context(dask_client(scheduler, workers=workers))
        paths = build_shards(
            grid,
            out,
            n_samples=n_samples,
            n_shards=shards,
            block_size=block_size,
            seed=seed,
            client=client,
            axis=axis,
        )
    typer.echo(f"{len(paths)} shard(s) in {out}")
    if merge is not None:
        ts = merge_shards(paths, merge)
        typer.echo(repr(ts))
        ts.close()


@scale_app.command("tune")
def tune_cmd(
    config: Path = typer.Option(..., "--config", "-c", help="TOML recipe (data and estimator)."),
    trials: int = typer.Option(20, "--trials", help="Trials in total, over all workers."),
    processes: int = typer.Option(2, "--processes", help="Local tuning processes."),
    storage: Optional[str] = typer.Option(  # noqa: UP045
        None,
        "--storage",
        help="RDB URL (postgresql://user@host/db) or SQLite file; default OUT/study.db.",
    ),
    study: Optional[str] = typer.Option(None, "--study", help="Study name (default: recipe)."),  # noqa: UP045
    out: Path = typer.Option(Path("tuning"), "--out", "-o", help="Output folder."),
    max_epochs: int = typer.Option(30, "--max-epochs", help="Epochs per trial (Hyperband)."),
    scheduler: Optional[str] = typer.Option(  # noqa: UP045
        None, "--scheduler", help="Run one tuning task per worker of this Dask cluster instead."
    ),
) -> None:
    """Tune with several processes (or Dask workers) sharing one Optuna study."""
    from atmospec.scale.distributed import dask_client
    from atmospec.scale.tuning import TuneJob, tune_dask, tune_processes

    job = TuneJob.from_recipe(
        config, out_dir=out, storage=storage, study_name=study, max_epochs=max_epochs
    )
    if scheduler:
        with dask_client(scheduler) as client:
            result, records = tune_dask(job, trials, client)
    else:
        result, records = tune_processes(job, trials, processes)
    typer.echo(
        json.dumps(
            {
                "study": job.study_name,
                "trials": len(result.trials),
                "workers": [r["worker"] for r in records],
                "best_value": result.best_value,
                "best_params": result.best_params,
            }
        )
    )


def register(app: typer.Typer) -> None:
    app.add_typer(scale_app, name="scale")
