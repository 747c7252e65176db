"""``atmospec highres``: clone high-resolution templates and fit observed spectra."""

from __future__ import annotations

from typing import Optional

import typer

__all__ = ["register"]

highres_app = typer.Typer(help="Line-by-line models of high-resolution spectra (blasé-like).")


@highres_app.command("clone")
def clone_cmd(
    source: str = typer.Argument(
        ..., help="muler template (phoenix, telfit, psg) or a CSV (Å, flux)."
    ),
    out: str = typer.Option("highres_clone", "--out", "-o", help="Output folder."),
    band: tuple[float, float] | None = typer.Option(
        None, help="Wavelength band in Å, e.g. 8600 8800."
    ),  # noqa: UP045
    prominence: float = typer.Option(0.005, help="Smallest line depth searched for."),
    rounds: int = typer.Option(2, help="Line-finding rounds (residual search)."),
    epochs: int = typer.Option(300, help="Adam steps per round."),
    profile: str = typer.Option("voigt", help="voigt (exact) or pseudo-voigt (faster)."),
    normalized: bool = typer.Option(False, help="The input is already continuum-normalised."),
    device: Optional[str] = typer.Option(None, help="cpu or cuda (default: cuda if available)."),  # noqa: UP045
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Clone a spectrum into a line table: writes the model folder clone/, clone_lines.ecsv, clone.json, clone.png."""
    from pathlib import Path

    import numpy as np
    import torch

    from atmospec._fileio import atomic_path, provenance, write_json
    from atmospec.highres.pipeline import clone_template

    em, w, fn = clone_template(
        source,
        band,
        prominence=prominence,
        rounds=rounds,
        epochs=epochs,
        profile=profile,
        normalized=normalized,
        device=device,
        progress=not quiet,
    )
    outdir = Path(out)
    outdir.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        model = em(torch.as_tensor(w, device=em.center0.device)).cpu().numpy()
    rms = float(100 * np.sqrt(np.mean((fn - model) ** 2)))
    prov = provenance(
        source=source,
        band=band,
        prominence=prominence,
        rounds=rounds,
        epochs=epochs,
        profile=profile,
    )
    em.save(outdir / "clone", provenance=prov)
    em.lines().write(outdir / "clone_lines.ecsv")
    write_json(
        outdir / "clone.json",
        {
            "n_lines": em.n_lines,
            "rms_percent": rms,
            "band_angstrom": [float(w[0]), float(w[-1])],
            "provenance": prov,
        },
    )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 1, figsize=(11, 5), sharex=True, height_ratios=(3, 1))
    ax[0].plot(w, fn, lw=0.5, label=source)
    ax[0].plot(w, model, lw=0.5, label=f"clone, {em.n_lines} lines")
    ax[0].legend(loc="lower left")
    ax[1].plot(w, fn - model, lw=0.5)
    ax[1].set_xlabel("wavelength (Å)")
    with atomic_path(outdir / "clone.png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    typer.echo(f"{em.n_lines} lines, RMS residual {rms:.3f} %; written to {outdir}")


@highres_app.command("fit")
def fit_cmd(
    file: str = typer.Argument(..., help="HPF FITS file (Goldilocks or one-order table)."),
    out: str = typer.Option("highres_fit", "--out", "-o", help="Output folder."),
    clone_path: str | None = typer.Option(
        None, "--clone", help="A saved clone folder (default: PHOENIX clone of the order)."
    ),  # noqa: UP045
    order: Optional[int] = typer.Option(None, help="Echelle order (0-27) for Goldilocks files."),  # noqa: UP045
    resolution: float = typer.Option(55_000.0, help="Initial (and prior mean) resolving power."),
    fix_resolution: bool = typer.Option(False, help="Keep the resolution fixed."),
    resolution_bounds: tuple[float, float] = typer.Option(
        (45_000.0, 65_000.0), help="Hard bounds on the fitted resolving power."
    ),
    rv_range: tuple[float, float] = typer.Option(
        (-150.0, 150.0), help="Radial-velocity scan range, km/s."
    ),
    l1: float = typer.Option(1.0, help="L1 weight on line-amplitude changes."),
    epochs: int = typer.Option(200, help="Adam steps per stage."),
    device: Optional[str] = typer.Option(None, help="cpu or cuda (default: cuda if available)."),  # noqa: UP045
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Fit RV, vsini, resolution and line corrections: writes fit_params.json, fit_lines.ecsv, fit.png."""
    from atmospec._fileio import provenance
    from atmospec.highres.emulator import LineEmulator
    from atmospec.highres.pipeline import fit_file

    star = LineEmulator.load(clone_path, device=device) if clone_path else None
    result = fit_file(
        file,
        star=star,
        order=order,
        device=device,
        progress=not quiet,
        resolution=resolution,
        fit_resolution=not fix_resolution,
        resolution_bounds=resolution_bounds,
        rv_range=rv_range,
        l1=l1,
        epochs=(epochs, epochs),
    )
    result.meta["provenance"] = provenance(
        file=file, clone=clone_path, order=order, resolution_bounds=resolution_bounds
    )
    result.write(out)
    p, e = result.params, result.errors_scaled
    typer.echo(
        f"RV {p['rv']:.3f} ± {e['rv']:.3f} km/s (frame of the file), vsini {p['vsini']:.2f} ± "
        f"{e['vsini']:.2f} km/s, R {p['resolution']:.0f} ± {e['resolution']:.0f}"
        f"{' (at its bound)' if result.meta.get('resolution_at_bound') else ''}; "
        f"reduced chi2 {result.reduced_chi2:.2f}; written to {out}"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(highres_app, name="highres")
