"""``atmospec predict``: parameters with intervals for files, a folder, a table or the library."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from atmospec.cli._checks import SEED_MAX, finite

__all__ = ["register", "run_batch_command"]

# The options of a batch prediction, shared by `atmospec predict` and `atmospec scale predict`
# so that both take the same options with the same defaults.
Model = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        help="default (the NPE when calibrated and the spectrum is in its domain, else the "
        "CNN), a model name (dback24-spex, npe_dback24, t-dwarf) or a saved folder.",
    ),
]
Out = Annotated[Path, typer.Option("--out", "-o", help="Output folder.")]
Column = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--column", help="Table: the column of spectrum files (default: path, file...)."),
]
Grid = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--grid", help="Grid for chi2 and model plots (default: the model's grid)."),
]
Coverage = Annotated[
    str,
    typer.Option(
        "--coverage",
        help="gaps: mask holes between valid pixels, refuse bins beyond them; refuse: "
        "refuse both; mask: mask both.",
    ),
]
MaxMasked = Annotated[
    float, typer.Option("--max-masked", help="gaps, mask: largest masked fraction.")
]
AssumeSnr = Annotated[
    Optional[float],  # noqa: UP045
    typer.Option(
        "--assume-snr",
        help="Constant S/N for spectra without errors.",
        callback=finite(0.0, low_open=True),
    ),
]
Draws = Annotated[int, typer.Option("--draws", help="Monte Carlo draws per spectrum.")]
PartitionSize = Annotated[
    int,
    typer.Option(
        "--partition-size", "--chunk", help="Spectra per partition (one task, one part file)."
    ),
]
Precision = Annotated[
    str, typer.Option("--precision", help="Noisy copies in float32 or bfloat16 (~2x faster).")
]
Threads = Annotated[
    Optional[int],  # noqa: UP045
    typer.Option("--threads", min=1, max=1024, help="Engine threads (per Dask worker: default 1)."),
]
Seed = Annotated[int, typer.Option("--seed", min=0, max=SEED_MAX, help="Random seed.")]
Plots = Annotated[bool, typer.Option("--plots/--no-plots", help="Per object PNG figures.")]
MaxPlots = Annotated[int, typer.Option("--max-plots", min=0, help="Figures for this many objects.")]
Show = Annotated[
    int, typer.Option("--show", min=0, help="Print the answers of this many objects (0: none).")
]
NoOod = Annotated[bool, typer.Option("--no-ood", help="Skip the out-of-distribution score.")]
RetryFailed = Annotated[
    bool, typer.Option("--retry-failed", help="Redo partitions with failed spectra.")
]
Scheduler = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--scheduler", help="Run on this Dask cluster: address (tcp://host:8786) or file."
    ),
]
Workers = Annotated[
    Optional[int],  # noqa: UP045
    typer.Option(
        "--workers", min=1, max=1024, help="Run on a local Dask cluster of this many processes."
    ),
]
Grids = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--grids",
        help="With --model default: the grids asked, comma separated, primary first; grid names "
        "or files, GRID=MODEL for a learned model, GRID=FOLDER for a model of mismatch from "
        "`atmospec discrepancy fit` (default dback24=default,burrows06=burrows06-spex,btsettl08)"
        ". 'none': the primary model alone.",
    ),
]
NoCalibration = Annotated[
    bool,
    typer.Option(
        "--no-calibration",
        help="With several grids: leave out the correction for the grids' shared systematic "
        "error learned from labelled real objects (the combined estimate is then the grids' "
        "answers alone).",
    ),
]
Serial = Annotated[bool, typer.Option("--serial", help="No Dask: run in this process.")]
Overwrite = Annotated[
    bool,
    typer.Option("--overwrite", help="Discard an earlier run in --out (other options or inputs)."),
]
WaveUnit = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--wave-unit",
        help="Wavelength unit of text/CSV/ECSV/IPAC/VOTable/FITS-table files (um, nm, AA).",
    ),
]
FluxUnit = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--flux-unit",
        help="Flux unit of text/CSV/ECSV/IPAC/VOTable/FITS-table files that give none (e.g. Jy for F_nu, "
        "'W m-2 um-1' for F_lambda; any scale). Without it such a flux is read as F_lambda "
        "and the answers say so.",
    ),
]
Resolution = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--resolution",
        help="The spectra's resolving power (lambda / FWHM), when known: one number, or a "
        "table file of R against wavelength (columns wavelength [um] and R; CSV, ECSV or FITS, "
        "as an instrument's dispersion file) for an instrument whose R varies. Below the "
        "models' (R 75 for the SpeX prism grids) the chi-square grids smooth their models to "
        "it (and predict --model default answers with models trained at R 25-75); above the "
        "prism's (R 250) the spectra are smoothed to the models' R 120 (as they are, with R "
        "taken from the pixels, when sampled finer than lambda/dlambda 1000).",
    ),
]


def stated_resolution_option(text: str | None) -> float | dict[str, list[float]] | None:
    """``--resolution``'s value as :func:`atmospec.resolution.read_resolution` reads it (None:
    not given); a bad value or file is a usage error naming it."""
    if text is None:
        return None
    from atmospec.errors import AtmospecError
    from atmospec.resolution import read_resolution

    try:
        return read_resolution(text)
    except (ValueError, AtmospecError) as err:
        raise typer.BadParameter(str(err)) from None


Aperture = Annotated[
    Optional[int],  # noqa: UP045
    typer.Option(
        "--aperture",
        help="Which spectrum of a FITS file holding several (IRAF apertures or echelle orders, "
        "counted from 0); such a file is refused without it.",
    ),
]
WaveCol = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--wave-col", help="Wavelength column name."),
]
FluxCol = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--flux-col", help="Flux column name."),
]
ErrCol = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--err-col", help="1-sigma error column name."),
]

_MAX_DRAWS = 100_000
"""Upper bound of --draws: the Monte Carlo error of the 2.5 % percentile with N draws is
sqrt(0.025 * 0.975 / N) / phi(1.96) sigma = 0.0085 sigma at N = 100,000 (and memory grows as
chunk x draws x parameters)."""


def predict_cmd(
    files: Optional[list[Path]] = typer.Argument(  # noqa: UP045
        None,
        help="Spectrum files (FITS, ECSV, IPAC, VOTable, CSV, text), or SpeX library keys (10703_10070).",
    ),
    model: Model = "default",
    out: Out = Path("atmospec-predict"),
    library: bool = typer.Option(False, "--library", help="Predict SpeX library spectra."),
    spt: Optional[str] = typer.Option(None, "--spt", help="Library: type range, e.g. L0-T8."),  # noqa: UP045
    snr_min: Optional[float] = typer.Option(  # noqa: UP045
        None, "--snr-min", help="Library: minimum S/N.", callback=finite(0.0)
    ),
    quality: Optional[str] = typer.Option(None, "--quality", help="Library: OK, POOR, BG."),  # noqa: UP045
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Library: at most this many."),  # noqa: UP045
    catalog: Optional[Path] = typer.Option(  # noqa: UP045
        None,
        "--catalog",
        help="Table with a column of spectrum files (path/file...) or keys, or a spectra store.",
    ),
    folder: Optional[Path] = typer.Option(None, "--folder", help="Every spectrum in a folder."),  # noqa: UP045
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
    """Predict parameters (median, 68 % and 95 % intervals), OOD flag and chi2_red per spectrum.

    The first --show objects (20) are printed with their 68 % intervals and warnings.
    Rows go to OUT/predictions.ecsv and .csv, spectra that could not be used to
    OUT/failures.csv, figures to OUT/objects/. An interrupted run resumes where it stopped
    when rerun with the same --out and options; other options or inputs into the same --out
    are refused unless --overwrite, and one --out serves one run at a time. With --scheduler
    or --workers the partitions run on a Dask cluster: same options, same table.

    Exit status: 0 all spectra predicted, 3 some could not be used, 4 none could.

    With the default model every grid that covers the object answers too (per-grid columns,
    a combined estimate, ``outside_grid`` / ``misfit_flag`` / ``grids_disagree``); ``--grids``
    chooses them, here and on Dask alike.
    """
    from atmospec.prediction.sources import Catalog

    parts: list[Catalog] = []
    if files:
        parts.append(Catalog.from_files(files))
    if folder is not None:
        parts.append(Catalog.from_folder(folder))
    if catalog is not None:
        parts.append(Catalog.open(catalog, column))
    if library:
        parts.append(Catalog.from_library(spt=spt, snr_min=snr_min, quality=quality, limit=limit))
    elif any(v is not None for v in (spt, snr_min, quality, limit)):
        raise typer.BadParameter("--spt / --snr-min / --quality / --limit need --library")
    if not parts:
        raise typer.BadParameter("give spectrum FILEs, --folder, --catalog or --library")
    if column is not None and catalog is None:
        raise typer.BadParameter("--column names a column of the --catalog table")
    cat = parts[0] if len(parts) == 1 else Catalog.concat(parts)
    run_batch_command(
        cat,
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
        serial=scheduler is None and workers is None,
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


def run_batch_command(
    catalog: Any,
    out: Path,
    *,
    model: str,
    grid: str | None,
    coverage: str,
    max_masked: float,
    assume_snr: float | None,
    draws: int,
    partition_size: int,
    precision: str,
    threads: int | None,
    seed: int,
    plots: bool,
    max_plots: int,
    no_ood: bool,
    retry_failed: bool,
    scheduler: str | None,
    workers: int | None,
    serial: bool,
    summary_json: bool = False,
    show: int = 0,
    overwrite: bool = False,
    wave_unit: str | None = None,
    flux_unit: str | None = None,
    wave_col: str | None = None,
    flux_col: str | None = None,
    err_col: str | None = None,
    resolution: float | dict[str, list[float]] | None = None,
    aperture: int | None = None,
    grids: str | None = "none",
    calibration: bool = True,
) -> None:
    """Run one batch prediction (here or on Dask), print its summary, fail if incomplete.

    Exits with :attr:`~atmospec.prediction.batch.BatchRun.exit_code` (3: some spectra could
    not be used, 4: none could) when the run is complete but not every spectrum has a row.
    ``grids`` other than ``"none"`` with ``model="default"`` and no ``grid``: several grids
    (:class:`~atmospec.multigrid.MultiGridPredictor`, ``None``: its default grids), on either
    executor (the Dask workers rebuild it from its shipped spec)."""
    import contextlib

    from rich.markup import escape

    from atmospec.cli._console import problem_console, summary_console
    from atmospec.prediction.batch import (
        BatchOptions,
        IncompleteRunError,
        LocalExecutor,
        run_catalog,
    )
    from atmospec.prediction.predictor import Predictor

    if not 1 <= draws <= _MAX_DRAWS:
        raise typer.BadParameter(
            f"--draws must be between 1 and {_MAX_DRAWS:,}, not {draws} ({_MAX_DRAWS:,} draws "
            "already pin the 2.5 and 97.5 % percentiles to ~1 % of sigma)"
        )
    if partition_size < 1:
        raise typer.BadParameter(f"--chunk / --partition-size must be >= 1, not {partition_size}")
    if not 0.0 <= max_masked <= 1.0:  # also refuses nan
        raise typer.BadParameter(f"--max-masked must be a fraction in [0, 1], not {max_masked}")
    try:
        options = BatchOptions(
            model=model,
            grid=grid,
            draws=draws,
            coverage=coverage,
            max_masked_fraction=max_masked,
            assume_snr=assume_snr,
            ood=not no_ood,
            seed=seed,
            precision=precision,
            partition_size=partition_size,
            threads=threads,
            plots=plots,
            max_plots=max_plots,
            retry_failed=retry_failed,
            overwrite=overwrite,
            wave_unit=wave_unit,
            flux_unit=flux_unit,
            wave_col=wave_col,
            flux_col=flux_col,
            err_col=err_col,
            resolution=resolution,
            aperture=aperture,
        )
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    console = summary_console(stderr=False)
    problems = problem_console()
    multi = model == "default" and grid is None and grids != "none"
    if grids not in (None, "none") and not multi:
        raise typer.BadParameter("--grids applies to --model default (without --grid)")
    predictor: Any
    if multi:
        from atmospec.multigrid.predictor import MultiGridPredictor, parse_routes

        kwargs = options.predictor_kwargs()
        kwargs.pop("grid")
        try:
            predictor = MultiGridPredictor(
                parse_routes(grids), calibration="shipped" if calibration else None, **kwargs
            )
        except ValueError as err:  # how the grids are listed (the errors of files name them)
            raise typer.BadParameter(str(err), param_hint="--grids") from None
    else:
        predictor = Predictor(model, **options.predictor_kwargs())
    with contextlib.ExitStack() as stack:
        executor: Any = LocalExecutor()
        if not serial:
            from atmospec.scale.distributed import DaskExecutor, dask_client

            client = stack.enter_context(dask_client(scheduler, workers=workers))
            executor = DaskExecutor(client)
        run = run_catalog(catalog, predictor, out, options, executor=executor)
    if summary_json:
        typer.echo(json.dumps(run.summary()))
    if run.n_rows_done_before:
        console.print(f"resumed: {run.n_rows_done_before} spectra were already done")
    failures = escape(str(out / "failures.csv"))
    console.print(
        f"{run.n_predicted} predicted, {run.n_unusable} could not be used"
        f"{f' (see {failures})' if run.n_unusable else ''} in {run.seconds:.1f} s: "
        f"{run.spectra_per_s:.1f} spectra/s with {draws} draws each"
        + (f" on {run.workers} Dask workers" if not serial else ""),
        highlight=False,
    )
    if run.rows_failed and (out / "failures.csv").is_file():
        import pandas as pd

        reasons = pd.read_csv(out / "failures.csv", dtype=str, keep_default_na=False)
        for reason in reasons["error"].tail(run.rows_failed).head(5):
            problems.print(f"  [red]failed:[/] {escape(reason)}", highlight=False)
    if run.n_predicted:
        table, rows = escape(str(out / "predictions.ecsv")), run.n_predicted
        used = "default over several grids (its id: run.json)" if multi else predictor.model_id
        said = f"model {escape(used)}; {rows} row{'s' * (rows != 1)} in {table}"
        console.print(said, highlight=False)
        if show > 0:
            import pandas as pd
            from astropy.table import Table

            from ._results_table import results_table

            # only the first rows: a survey's table is not read whole to print a few
            head = pd.read_csv(out / "predictions.csv", nrows=show, keep_default_na=True)
            console.print(
                results_table(
                    Table.from_pandas(head),
                    show,
                    title="median [68 % interval] per object",
                    total=run.n_predicted,
                )
            )
    else:
        problems.print(f"[bold red]no spectrum could be used[/]: every reason is in {failures}")
    if predictor.policy is not None and run.n_predicted:
        gate = predictor.policy.gate_problem()
        if gate:
            problems.print(
                f"[yellow]default: {escape(gate)}; every row was served by the fallback[/]"
            )
        counts = ", ".join(f"{n} by {m}" for m, n in run.rows_by_model.items())
        console.print(
            f"default selection, rows served: {escape(counts or 'none')} (why: the notes column)"
        )
    if run.rows_masked:
        console.print(
            f"{run.rows_masked} of {run.n_predicted} rows answered with some model bins masked "
            f"(--coverage {coverage}: the masked_fraction column; which bins and why: the notes "
            "column)",
            highlight=False,
        )
    if run.n_predicted:  # what the intervals are: several grids, or what one leaves out
        what = (
            "grids: " + ", ".join(r.describe() for r in predictor.routes) + " (per-grid columns, "
            "outside_grid, misfit_flag, grids_disagree: the table)"
            if multi
            else f"intervals: {predictor.scope}"
        )
        console.print(escape(what))
        console.print(f"[dim]write an HTML page with: atmospec report {escape(str(out))}[/]")
    if not run.complete:
        raise IncompleteRunError(
            f"{len(run.failed)} partition(s) failed ({', '.join(sorted(run.failed)[:5])}); "
            "rerun the same command to complete them"
        )
    if run.exit_code:
        problems.print(
            f"[yellow]{run.n_unusable} of {run.n_predicted + run.n_unusable} spectra could not "
            f"be used[/] (exit status {run.exit_code})"
        )
        raise typer.Exit(run.exit_code)


def register(app: typer.Typer) -> None:
    app.command("predict")(predict_cmd)
