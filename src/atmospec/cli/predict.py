"""``atmospec predict``: parameters with intervals for files, a folder, a table or the library."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

__all__ = ["register"]

_MAX_DRAWS = 100_000
"""Upper bound of --draws: the Monte Carlo error of the 2.5 % percentile with N draws is
sqrt(0.025 * 0.975 / N) / phi(1.96) sigma = 0.0085 sigma at N = 100,000 (and memory grows as
chunk x draws x parameters)."""


def predict_cmd(
    files: Optional[list[Path]] = typer.Argument(  # noqa: UP045
        None, help="Spectrum files (FITS, ECSV, CSV, text)."
    ),
    model: str = typer.Option(
        "default",
        "--model",
        "-m",
        help="default (the NPE when calibrated and the spectrum is in its domain, else the "
        "CNN), a model name (dback24-spex, npe_dback24, t-dwarf) or a saved folder.",
    ),
    out: Path = typer.Option(Path("atmospec-predict"), "--out", "-o", help="Output folder."),
    library: bool = typer.Option(False, "--library", help="Predict SpeX library spectra."),
    spt: Optional[str] = typer.Option(None, "--spt", help="Library: type range, e.g. L0-T8."),  # noqa: UP045
    snr_min: Optional[float] = typer.Option(None, "--snr-min", help="Library: minimum S/N."),  # noqa: UP045
    quality: Optional[str] = typer.Option(None, "--quality", help="Library: OK, POOR, BG."),  # noqa: UP045
    limit: Optional[int] = typer.Option(None, "--limit", help="Library: at most this many."),  # noqa: UP045
    catalog: Optional[Path] = typer.Option(  # noqa: UP045
        None, "--catalog", help="Table with a column of spectrum files (file/path) or keys."
    ),
    column: Optional[str] = typer.Option(None, "--column", help="--catalog: column name."),  # noqa: UP045
    folder: Optional[Path] = typer.Option(None, "--folder", help="Every spectrum in a folder."),  # noqa: UP045
    grid: Optional[str] = typer.Option(  # noqa: UP045
        None, "--grid", help="Grid for chi2 and model plots (default: the model's grid)."
    ),
    coverage: str = typer.Option(
        "refuse", "--coverage", help="refuse: stop on gaps; mask: mask missing bins."
    ),
    max_masked: float = typer.Option(0.5, "--max-masked", help="mask: largest masked fraction."),
    assume_snr: Optional[float] = typer.Option(  # noqa: UP045
        None, "--assume-snr", help="Constant S/N for spectra without errors."
    ),
    draws: int = typer.Option(1000, "--draws", help="Monte Carlo draws per spectrum."),
    chunk: int = typer.Option(32, "--chunk", help="Spectra per chunk (memory bound)."),
    precision: str = typer.Option(
        "float32", "--precision", help="Noisy copies in float32 or bfloat16 (~2x faster)."
    ),
    threads: Optional[int] = typer.Option(None, "--threads", help="Worker threads."),  # noqa: UP045
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Per object PNG figures."),
    max_plots: int = typer.Option(100, "--max-plots", help="Figures for this many objects."),
    no_ood: bool = typer.Option(False, "--no-ood", help="Skip the out-of-distribution score."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Retry failed spectra."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
    scheduler: Optional[str] = typer.Option(  # noqa: UP045
        None,
        "--scheduler",
        help="--catalog on a Dask cluster: scheduler address (tcp://host:8786).",
    ),
    workers: Optional[int] = typer.Option(  # noqa: UP045
        None, "--workers", help="--catalog on a local Dask cluster with this many workers."
    ),
    partition_size: int = typer.Option(256, "--partition-size", help="Dask: rows per partition."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Discard an earlier run in --out (other options or inputs)."
    ),
    wave_unit: Optional[str] = typer.Option(  # noqa: UP045
        None, "--wave-unit", help="Wavelength unit of text/CSV/ECSV/FITS-table files (um, nm, AA)."
    ),
    wave_col: Optional[str] = typer.Option(None, "--wave-col", help="Wavelength column name."),  # noqa: UP045
    flux_col: Optional[str] = typer.Option(None, "--flux-col", help="Flux column name."),  # noqa: UP045
    err_col: Optional[str] = typer.Option(None, "--err-col", help="1-sigma error column name."),  # noqa: UP045
) -> None:
    """Predict parameters (median, 68 % and 95 % intervals), OOD flag and chi2_red per spectrum.

    Rows go to OUT/predictions.ecsv and .csv, figures to OUT/objects/. An interrupted run
    resumes where it stopped when rerun with the same --out and options; other options into
    the same --out are refused unless --overwrite, and one --out serves one run at a time.
    Exit status: 0 all spectra predicted, 3 some could not be used, 4 none could.
    """
    from rich.console import Console
    from rich.markup import escape

    from atmospec.inference.batch import (
        catalog_sources,
        file_sources,
        folder_sources,
        library_sources,
        run_batch,
    )
    from atmospec.inference.predict import Predictor

    if coverage not in ("refuse", "mask"):
        raise typer.BadParameter(f"--coverage must be refuse or mask, not {coverage!r}")
    if not 1 <= draws <= _MAX_DRAWS:
        raise typer.BadParameter(
            f"--draws must be between 1 and {_MAX_DRAWS:,}, not {draws} ({_MAX_DRAWS:,} draws "
            "already pin the 2.5 and 97.5 % percentiles to ~1 % of sigma)"
        )
    if not 0.0 <= max_masked <= 1.0:  # also refuses nan
        raise typer.BadParameter(f"--max-masked must be a fraction in [0, 1], not {max_masked}")
    if assume_snr is not None and not 0.0 < assume_snr < float("inf"):
        raise typer.BadParameter(f"--assume-snr must be a positive finite S/N, not {assume_snr}")
    if chunk < 1:
        raise typer.BadParameter(f"--chunk must be >= 1 spectra, not {chunk}")
    read_options = {
        k: v
        for k, v in {
            "wave_unit": wave_unit,
            "wave_col": wave_col,
            "flux_col": flux_col,
            "err_col": err_col,
        }.items()
        if v is not None
    }
    if precision not in ("float32", "bfloat16"):
        raise typer.BadParameter(f"--precision must be float32 or bfloat16, not {precision!r}")
    console = Console(quiet=quiet, stderr=False)
    if scheduler is not None or workers is not None:
        if catalog is None or files or folder is not None or library:
            raise typer.BadParameter("--scheduler / --workers apply to --catalog TABLE alone")
        from atmospec.cli.scale import run_catalog

        if read_options:
            raise typer.BadParameter("--wave-unit / --*-col do not apply to a Dask run")
        run_catalog(
            catalog,
            model,
            out,
            scheduler=scheduler,
            workers=workers,
            partition_size=partition_size,
            grid=grid,
            draws=draws,
            coverage=coverage,
            ood=not no_ood,
            seed=seed,
            quiet=quiet,
        )
        return
    sources = []
    if files:
        sources += file_sources(files, **read_options)
    if folder is not None:
        sources += folder_sources(folder, **read_options)
    if catalog is not None:
        sources += catalog_sources(catalog, column, **read_options)
    if library:
        sources += library_sources(spt=spt, snr_min=snr_min, quality=quality, limit=limit)
    elif any(v is not None for v in (spt, snr_min, quality, limit)):
        raise typer.BadParameter("--spt / --snr-min / --quality / --limit need --library")
    if not sources:
        raise typer.BadParameter("give spectrum FILEs, --folder, --catalog or --library")
    predictor = Predictor(
        model,
        grid=grid,
        ood=not no_ood,
        draws=draws,
        coverage=coverage,  # type: ignore[arg-type]
        max_masked_fraction=max_masked,
        assume_snr=assume_snr,
        seed=seed,
        quiet=quiet,
        num_threads=threads,
        precision=precision,  # type: ignore[arg-type]
    )
    options = {
        "model": model,
        "coverage": coverage,
        "draws": draws,
        "precision": precision,
        "chunk": chunk,
        "seed": seed,
        "library": library,
        "spt": spt,
        "snr_min": snr_min,
        "quality": quality,
        "catalog": None if catalog is None else str(catalog),
        "folder": None if folder is None else str(folder),
        "plots": plots,
        "grid": grid,
        "max_masked": max_masked,
        "assume_snr": assume_snr,
        "no_ood": no_ood,
        **read_options,
    }
    summary = run_batch(
        sources,
        out,
        predictor,
        chunk=chunk,
        plots=plots,
        max_plots=max_plots,
        quiet=quiet,
        retry_failed=retry_failed,
        options=options,
        overwrite=overwrite,
    )
    if summary.n_done_before:
        console.print(f"resumed: {summary.n_done_before} spectra were already done")
    failures = escape(str(out / "failures.csv"))
    console.print(
        f"{summary.n_predicted} predicted, {summary.n_failed} could not be used"
        f"{f' (see {failures})' if summary.n_failed_total else ''} in "
        f"{summary.wall_time_s:.1f} s: {summary.spectra_per_s:.1f} spectra/s with {draws} draws each"
    )
    if summary.n_failed:
        import pandas as pd

        reasons = pd.read_csv(out / "failures.csv", dtype=str, keep_default_na=False)
        for reason in reasons["error"].tail(summary.n_failed).head(5):
            console.print(f"  [red]failed:[/] {escape(reason)}", highlight=False)
    if summary.n_rows:
        table = escape(str(out / "predictions.ecsv"))
        console.print(f"model {predictor.model_id}; {summary.n_rows} rows in {table}")
    else:
        console.print(f"[bold red]no spectrum could be used[/]: every reason is in {failures}")
    if predictor.policy is not None:
        gate = predictor.policy.gate_problem()
        if gate:
            console.print(f"[yellow]default: {gate}; every row was served by the fallback[/]")
        counts = ", ".join(f"{n} by {m}" for m, n in (summary.rows_by_model or {}).items())
        console.print(f"default selection: rows served {counts or 'none'} (why: the notes column)")
    if summary.n_rows:
        console.print(f"[dim]write an HTML page with: atmospec report {escape(str(out))}[/]")
    if summary.exit_code:
        console.print(
            f"[yellow]{summary.n_failed_total} of {summary.n_rows + summary.n_failed_total} "
            f"spectra failed[/] (exit status {summary.exit_code})"
        )
        raise typer.Exit(summary.exit_code)


def register(app: typer.Typer) -> None:
    app.command("predict")(predict_cmd)
