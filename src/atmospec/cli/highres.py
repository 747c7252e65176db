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
    from matplotlib.figure import Figure  # no pyplot: no backend switch

    fig = Figure(figsize=(11, 5))
    ax = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    ax[0].plot(w, fn, lw=0.5, label=source)
    ax[0].plot(w, model, lw=0.5, label=f"clone, {em.n_lines} lines")
    ax[0].legend(loc="lower left")
    ax[1].plot(w, fn - model, lw=0.5)
    ax[1].set_xlabel("wavelength (Å)")
    with atomic_path(outdir / "clone.png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
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


@highres_app.command("transfer")
def transfer_cmd(
    file: str = typer.Argument(..., help="HPF FITS file (Goldilocks or one-order table)."),
    out: str = typer.Option("highres_transfer", "--out", "-o", help="Output folder."),
    clone_path: str | None = typer.Option(
        None,
        "--clone",
        help="A saved clone folder (`atmospec highres clone` writes clone/) of a template "
        "near the star's temperature (default: a PHOENIX 10,000 K clone of the order, the "
        "only stellar template shipped).",
    ),  # noqa: UP045
    order: Optional[int] = typer.Option(None, help="Echelle order (0-27) for Goldilocks files."),  # noqa: UP045
    rv_range: tuple[float, float] = typer.Option(
        (-150.0, 150.0), help="Radial-velocity scan range, km/s."
    ),
    rounds: int = typer.Option(3, help="Residual line-search rounds."),
    epochs: int = typer.Option(150, help="Adam steps per round."),
    teff: Optional[float] = typer.Option(  # noqa: UP045
        None,
        help="The star's Teff (K): every line's width is held between its physical floor "
        "and ceiling (thermal iron, microturbulence 0.5-1 km/s, radial-tangential "
        "macroturbulence up to 3 km/s), so the lines cannot take up the rotation; default: "
        "widths free above 0.7 km/s.",
    ),
    fit_resolution: bool = typer.Option(
        False, "--fit-resolution", help="Fit R with a 5 % prior about 55,000 (a nuisance)."
    ),
    vsini_scan: bool = typer.Option(
        False, "--vsini-scan", help="v sin i interval by profile likelihood (slower)."
    ),
    vsini_injections: bool = typer.Option(
        False,
        "--vsini-injections",
        help="Calibrate v sin i by injection-recovery (needs --teff; implies --vsini-scan): "
        "the fitted star rotated at 1, 2, 3, 3.5 km/s with macroturbulence 1 km/s, the "
        "Valenti & Fischer value at --teff and 3 km/s, re-run through the same transfer "
        "(12 more transfers: minutes). Writes transfer_vsini_calibration.json.",
    ),
    device: Optional[str] = typer.Option(None, help="cpu or cuda (default: cuda if available)."),  # noqa: UP045
) -> None:
    """Semi-empirical transfer to a real star: re-learn the lines with RV, vsini, R, continuum.

    Line positions, widths and strengths are re-learned (adding lines the template lacks,
    pruning those the star lacks) with RV, vsini, resolution and continuum. Writes
    transfer_params.json, transfer_lines.ecsv (model parameters), transfer_linetable.ecsv /
    .txt (wavelength, depth, equivalent width, FWHM, origin) and transfer.png.
    """
    from pathlib import Path

    from atmospec._fileio import atomic_path, provenance
    from atmospec.highres.emulator import LineEmulator
    from atmospec.highres.pipeline import transfer_file
    from atmospec.highres.transfer import TransferConfig, line_table

    if vsini_injections and teff is None:
        raise typer.BadParameter(
            "--vsini-injections needs --teff: the injected lines' widths follow the star's "
            "temperature",
            param_hint="--vsini-injections",
        )
    vsini_scan = vsini_scan or vsini_injections
    star = LineEmulator.load(clone_path, device=device) if clone_path else None
    if star is None and vsini_injections:  # the same clone must serve every injection
        from atmospec.highres.pipeline import order_template

        star = order_template(file, order=order, device=device)
    from atmospec.highres.transfer import intrinsic_width_range

    config = TransferConfig(
        rounds=rounds,
        epochs=epochs,
        intrinsic_range_kms=None if teff is None else intrinsic_width_range(teff),
        width_anchor="template" if teff is None else "shared",
        fit_resolution=fit_resolution,
        vsini_grid=(0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0) if vsini_scan else (),
    )
    result = transfer_file(
        file,
        star=star,
        order=order,
        rv_range=rv_range,
        config=config,
        device=device,
    )
    result.meta["provenance"] = provenance(
        file=file,
        clone=clone_path,
        order=order,
        rounds=rounds,
        epochs=epochs,
        teff=teff,
        fit_resolution=fit_resolution,
    )
    result.write(out, stem="transfer")
    table = line_table(result.lines)
    outdir = Path(out)
    with atomic_path(outdir / "transfer_linetable.ecsv") as tmp:
        table.write(tmp, format="ascii.ecsv", overwrite=True)
    with atomic_path(outdir / "transfer_linetable.txt") as tmp:
        table.write(tmp, format="ascii.fixed_width_two_line", overwrite=True)
    p, e, m = result.params, result.errors_scaled, result.meta
    lo, hi = m["vsini_interval_68"]
    typer.echo(
        f"RV {p['rv']:.3f} ± {e['rv']:.3f} km/s (frame of the file), vsini {p['vsini']:.2f} "
        f"km/s (68 %: {lo:.2f}-{hi:.2f}), R {p['resolution']:.0f} ± {e['resolution']:.0f}; "
        f"{m['n_lines_template']} template + {m['n_lines_data']} data lines; RMS residual "
        f"{result.rms_percent:.2f} %; written to {out}"
    )
    for msg in m["limits"]:
        typer.echo(f"note: {msg}", err=True)
    if vsini_injections:
        from atmospec._fileio import write_json
        from atmospec.highres.injection import vsini_by_injection

        assert star is not None and teff is not None
        cal = vsini_by_injection(result, star, teff, config, rv_range=rv_range, device=device)
        cal["provenance"] = result.meta["provenance"]
        write_json(outdir / "transfer_vsini_calibration.json", cal)
        lo, hi = cal["interval_68"]
        typer.echo(
            f"v sin i calibrated by injection: {cal['vsini']:.2f} km/s (68 %: {lo:.2f}-"
            f"{hi:.2f}, macroturbulence 1-3 km/s); the fit's own 68 % interval held the truth "
            f"in {cal['coverage']:.0%} of the injections"
        )
        for msg in cal["limits"]:
            typer.echo(f"note: {msg}", err=True)


def _parse_orders(text: str | None, n_max: int = 28) -> tuple[int, ...]:
    if not text:
        return tuple(range(n_max))
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return tuple(out)


@highres_app.command("echelle")
def echelle_cmd(
    file: str = typer.Argument(..., help="HPF Goldilocks file."),
    out: str = typer.Option("highres_echelle", "--out", "-o", help="Output folder."),
    orders: Optional[str] = typer.Option(  # noqa: UP045
        None, help="Orders to fit, e.g. '0-27' or '9-13,27' (default: all)."
    ),
    clone_path: Optional[str] = typer.Option(  # noqa: UP045
        None, "--clone", help="Star clone (default: PHOENIX 10,000 K cloned over the orders)."
    ),
    telluric: bool = typer.Option(
        True, "--telluric/--no-telluric", help="Fit a TelFit telluric model, one scale per order."
    ),
    rv_range: tuple[float, float] = typer.Option((-150.0, 150.0), help="RV scan range, km/s."),
    vsini: float = typer.Option(10.0, help="Initial v sin i, km/s."),
    epochs: int = typer.Option(100, help="Adam steps over all orders together."),
    device: Optional[str] = typer.Option(None, help="cpu or cuda (default: cuda if available)."),  # noqa: UP045
) -> None:
    """Fit all orders of an HPF file in one model: shared RV and v sin i.

    A continuum and a telluric scale per order. Writes echelle.json (with seconds per epoch
    on the device).
    """
    from pathlib import Path

    from atmospec._fileio import provenance, write_json
    from atmospec.highres.echelle import fit_echelle, order_bands, read_orders
    from atmospec.highres.emulator import LineEmulator
    from atmospec.highres.pipeline import clone_bands

    picked = _parse_orders(orders) if orders else None
    ech = read_orders(file, picked)
    kw = {"prominence": 0.005, "rounds": 2, "epochs": 150, "profile": "pseudo-voigt",
          "device": device}  # fmt: skip
    bands = order_bands(ech)
    star = (
        LineEmulator.load(clone_path, device=device)
        if clone_path
        else clone_bands("phoenix", bands, **kw)
    )
    tell = clone_bands("telfit", bands, **kw) if telluric else None
    res = fit_echelle(
        ech, star, telluric=tell, rv_range=rv_range, vsini=vsini, epochs=epochs, device=device
    )  # fmt: skip
    Path(out).mkdir(parents=True, exist_ok=True)
    write_json(
        Path(out) / "echelle.json",
        {
            "orders": list(picked) if picked else list(range(len(ech))),
            "rv": res.rv,
            "vsini": res.vsini,
            "rms_percent": res.rms_percent,
            "telluric_scale": res.telluric_scale,
            "seconds_per_epoch": res.seconds_per_epoch,
            "device": res.device,
            "meta": res.meta,
            "provenance": provenance(file=file, orders=orders, epochs=epochs, clone=clone_path),
        },
    )
    typer.echo(
        f"{len(ech)} orders: RV {res.rv:.2f} km/s (frame of the file), vsini {res.vsini:.1f} "
        f"km/s, median RMS {sorted(res.rms_percent)[len(ech) // 2]:.2f} %; "
        f"{res.seconds_per_epoch:.3f} s per epoch on {res.device}; written to {out}"
    )
    for msg in res.meta["limits"]:
        typer.echo(f"note: {msg}", err=True)


@highres_app.command("telluric")
def telluric_cmd(
    file: str = typer.Argument(..., help="HPF Goldilocks file of a telluric standard (A star)."),
    out: str = typer.Option("highres_telluric", "--out", "-o", help="Output folder."),
    orders: str = typer.Option(
        "0-2,7-13,19-25,27",
        help="Orders to fit (default: every order with telluric bands: water 0-2, 7-13, "
        "19-25, O2 a-band 27), e.g. '9-13,27'.",
    ),
    epochs: int = typer.Option(120, help="Adam steps over all orders together."),
    device: Optional[str] = typer.Option(None, help="cpu or cuda (default: cuda if available)."),  # noqa: UP045
) -> None:
    """Fit a telluric standard (star x telluric, all chosen orders at once); RMS per order.

    Reports, per order, the RMS in the telluric bands before and after correction and the
    fitted telluric scale (water column x airmass, airmass from the O2 order). Writes
    telluric.json.
    """
    from pathlib import Path

    from atmospec._fileio import provenance, write_json
    from atmospec.highres.standards import fit_telluric_standard

    res = fit_telluric_standard(file, _parse_orders(orders), epochs=epochs, device=device)
    data = {
        "orders": res.orders,
        "rms_before": res.rms_before,
        "rms_after": res.rms_after,
        "telluric_scale": res.scales,
        "flatness_ratio": res.flatness_ratio,
        "water_scale": res.water_scale,
        "airmass_scale": res.airmass_scale,
        "seconds_per_epoch": res.fit.seconds_per_epoch,
        "device": res.fit.device,
        "meta": res.meta,
        "provenance": provenance(file=file, orders=orders, epochs=epochs),
    }
    Path(out).mkdir(parents=True, exist_ok=True)
    write_json(Path(out) / "telluric.json", data)
    for k, b, a, sc in zip(res.orders, res.rms_before, res.rms_after, res.scales, strict=True):
        typer.echo(f"order {k:2d}: RMS {100 * b:6.2f} % -> {100 * a:5.2f} %, scale {sc:.2f}")
    typer.echo(
        f"flatness ratio {res.flatness_ratio:.3f}; water x airmass {res.water_scale:.2f}, "
        f"airmass {res.airmass_scale:.2f} (relative to the TelFit template), telluric velocity "
        f"{res.meta['telluric_rv']:+.2f} km/s; written to {out}"
    )
    for msg in res.meta["limits"]:
        typer.echo(f"note: {msg}", err=True)


def register(app: typer.Typer) -> None:
    app.add_typer(highres_app, name="highres")
