"""``atmospec predict``: parameters with intervals for files, a folder, a table or the library."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

__all__ = ["register"]


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
    grids: Optional[str] = typer.Option(  # noqa: UP045
        None,
        "--grids",
        help="With --model default: the grids asked, comma separated, primary first; grid "
        "names or folders, NAME=MODEL to use a learned model (default "
        "dback24=default,burrows06=burrows06-spex,btsettl08). 'none': the primary model alone.",
    ),
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
) -> None:
    """Predict parameters (median, 68 % and 95 % intervals), OOD flag and chi2_red per spectrum.

    Rows go to OUT/predictions.ecsv and .csv, figures to OUT/objects/. An interrupted run
    resumes where it stopped when rerun with the same --out.
    """
    from rich.console import Console

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
    if draws < 1:
        raise typer.BadParameter("--draws must be >= 1")
    if precision not in ("float32", "bfloat16"):
        raise typer.BadParameter(f"--precision must be float32 or bfloat16, not {precision!r}")
    console = Console(quiet=quiet, stderr=False)
    if scheduler is not None or workers is not None:
        if catalog is None or files or folder is not None or library:
            raise typer.BadParameter("--scheduler / --workers apply to --catalog TABLE alone")
        from atmospec.cli.scale import run_catalog

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
        sources += file_sources(files)
    if folder is not None:
        sources += folder_sources(folder)
    if catalog is not None:
        sources += catalog_sources(catalog, column)
    if library:
        sources += library_sources(spt=spt, snr_min=snr_min, quality=quality, limit=limit)
    elif any(v is not None for v in (spt, snr_min, quality, limit)):
        raise typer.BadParameter("--spt / --snr-min / --quality / --limit need --library")
    if not sources:
        raise typer.BadParameter("give spectrum FILEs, --folder, --catalog or --library")
    common = dict(
        draws=draws,
        coverage=coverage,
        max_masked_fraction=max_masked,
        assume_snr=assume_snr,
        seed=seed,
        quiet=quiet,
        num_threads=threads,
        precision=precision,
    )
    if model == "default" and grid is None and grids != "none":
        from atmospec.multigrid import MultiGridPredictor
        from atmospec.multigrid.predictor import parse_routes

        predictor: Any = MultiGridPredictor(parse_routes(grids), ood=not no_ood, **common)
    else:
        if grids not in (None, "none"):
            raise typer.BadParameter("--grids applies to --model default (without --grid)")
        predictor = Predictor(model, grid=grid, ood=not no_ood, **common)  # type: ignore[arg-type]
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
        "grids": grids,
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
    )
    if summary.n_done_before:
        console.print(f"resumed: {summary.n_done_before} spectra were already done")
    console.print(
        f"{summary.n_predicted} predicted, {summary.n_failed} could not be used "
        f"(see {out / 'failures.csv'}) in {summary.wall_time_s:.1f} s: "
        f"{summary.spectra_per_s:.1f} spectra/s with {draws} draws each"
    )
    console.print(f"model {predictor.model_id}; results in {out / 'predictions.ecsv'}")
    if predictor.policy is not None:
        gate = predictor.policy.gate_problem()
        if gate:
            console.print(f"[yellow]default: {gate}; every row was served by the fallback[/]")
        counts = ", ".join(f"{n} by {m}" for m, n in (summary.rows_by_model or {}).items())
        console.print(f"default selection: rows served {counts or 'none'} (why: the notes column)")
    if hasattr(predictor, "routes"):
        console.print(
            "grids: "
            + ", ".join(r.describe() for r in predictor.routes)
            + " (per-grid columns, outside_grid, misfit_flag, grids_disagree: the table)"
        )
    console.print(f"[dim]write an HTML page with: atmospec report {out}[/]")


def register(app: typer.Typer) -> None:
    app.command("predict")(predict_cmd)
