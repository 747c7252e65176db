"""Benchmark of the highres line-by-line model (issue 8).

1. Clone the muler PHOENIX 10,000 K template (continuum-normalised) on a stated band
   (--quick: 8400-9000 Å; full: 8100-9300 Å; blasé's 1.2 % with 9,028 lines was on the whole
   HPF range): RMS residual against the number of lines.
2. Seconds per training epoch (forward + backward + Adam step) of the sparse emulator against
   the dense lines × pixels reference, same lines (the last clone), same band, one CPU thread,
   pseudo-Voigt profile for both (the dense exact Voigt does not fit in memory).
3. NSO/Kitt Peak solar atlas page wn6325 (1.5748-1.5810 µm: the CO2 1.575 µm band, water and
   strong solar Mg I / Si I / Fe I lines): fit the atlas's total with the joint model, star
   emulator × one telluric emulator per molecule cloned from the PSG columns (H2O, CO2), and
   compare the recovered components with the atlas's own solar and atmospheric columns (RMS,
   after dividing each by its 99th percentile since the atlas scales each column
   independently), beside the flat-line (transmission 1) baseline.

4. WASP-69 (real HPF order, K5 dwarf, Teff 4715 K; RV -9.63 km/s, Triaud et al. 2013; v sin i
   2.2 +- 0.4 km/s, Anderson et al. 2014): semi-empirical transfer from the PHOENIX 10,000 K
   clone (the only stellar template shipped), every line's width held between the physical
   floor and ceiling at 4715 K (thermal iron, microturbulence 0.5-1 km/s, radial-tangential
   macroturbulence up to 3 km/s as a Gaussian sigma zeta / 2), R fixed at 55,000 and (full
   run) fitted with a 5 % prior, and macroturbulence as its own radial-tangential profile at
   the Valenti & Fischer (2005) value (2.4 km/s): RMS residual, RV, v sin i from the profile
   likelihood with its 68 % interval, the line counts. Then injection-recovery: the R-fixed
   fit's star (its learned lines, thermal + microturbulence wide) rotated at known v sin i
   (quick: 1, 2, 3, 3.5 km/s; full: 1-4 km/s) with radial-tangential macroturbulence 1, 2.4 and
   3 km/s, noise at the data's S/N, re-run through the same transfer: bias and coverage of the
   fit's interval, and the observed v sin i read back through the recovery curves
   (``wasp69_vsini``, ``wasp69_vsini_interval_68``; the profile's own value is
   ``wasp69_vsini_fit``).
5. The two HPF A-star telluric standards: star x TelFit telluric (the template's own
   instrumental broadening removed, one shared telluric velocity) fitted over every order
   with telluric bands (--quick: orders 11 and 27); RMS in the telluric pixels before and
   after, per order, the water and O2 (airmass) scales and the pixel-weighted ratio after /
   before (``telluric_flatness_ratio``).

Usage: python benchmarks/highres.py [--quick] [--cases synthetic,wasp69,astars] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import TypedDict

import numpy as np


class _TransferCommon(TypedDict):
    """The ``TransferConfig`` arguments shared by the WASP-69 variants."""

    rounds: int
    epochs: int
    width_anchor: str
    vsini_grid: tuple[float, ...]
    profile_epochs: int


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small band and few epochs (< 5 min)")
    ap.add_argument("--out", default=None, help="write the summary JSON here")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    ap.add_argument(
        "--cases", default="synthetic,wasp69,astars", help="which parts to run (comma list)"
    )
    args = ap.parse_args()
    if args.quiet:  # progress bars follow the atmospec logger's level
        import logging

        logging.getLogger("atmospec").setLevel(logging.WARNING)
    cases = set(args.cases.split(","))
    summary: dict[str, object] = {}
    extra: dict[str, object] = {}
    if "synthetic" in cases:
        _synthetic(args, summary, extra)
    if "wasp69" in cases:
        _wasp69(args, summary, extra)
    if "astars" in cases:
        _astars(args, summary, extra)
    if args.out:
        from atmospec._fileio import provenance, write_json

        write_json(
            args.out,
            {**summary, **extra, "provenance": provenance(seed=None, quick=args.quick)},
        )
    print(json.dumps(summary))


def _wasp69(args: argparse.Namespace, summary: dict, extra: dict) -> None:
    """Semi-empirical transfer on the real WASP-69 order, and its v sin i calibrated by
    injection-recovery."""

    import torch
    from rich.console import Console

    from atmospec.data import shared_data
    from atmospec.highres.injection import macroturbulence_vf05, vsini_by_injection
    from atmospec.highres.io import read_hpf
    from atmospec.highres.pipeline import clone_template, normalize_order, transfer_file
    from atmospec.highres.transfer import (
        TransferConfig,
        intrinsic_width_range,
        vsini_width_budget,
    )

    torch.set_num_threads(args.threads)
    root = shared_data()
    path = None if root is None else root / "hpf" / "WASP_69_hpf_stack.fits"
    if path is None or not path.is_file():
        Console().print("WASP-69: the shared HPF file is absent; skipped")
        return
    teff = 4715.0
    # the template clone over the order (as transfer_file makes it), kept for the injections
    w = normalize_order(read_hpf(path)[0]).wavelength * 1e4
    tmpl, _, _ = clone_template("phoenix", (w[0] - 20.0, w[-1] + 20.0), prominence=0.005,
                                rounds=2, epochs=200, profile="pseudo-voigt", device="cpu")  # fmt: skip
    grid: tuple[float, ...] = (1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0)
    if not args.quick:
        grid = (0.5, *grid, 6.0)
    common: _TransferCommon = {"rounds": 3, "epochs": 100, "width_anchor": "shared",
                               "vsini_grid": grid,
                               "profile_epochs": 100 if args.quick else 150}  # fmt: skip
    # 1. the lines' Gaussian widths stand for macroturbulence (up to 3 km/s, sigma zeta / 2),
    #    R fixed and fitted; 2. macroturbulence as its own radial-tangential profile at the
    #    Valenti & Fischer (2005) value for this Teff, the lines thermal + microturbulence only
    zeta_vf05 = macroturbulence_vf05(teff)
    variants = {
        "R fixed": TransferConfig(intrinsic_range_kms=intrinsic_width_range(teff), **common),
        "R fitted": TransferConfig(
            intrinsic_range_kms=intrinsic_width_range(teff), fit_resolution=True, **common
        ),
        f"R fixed, RT macroturbulence {zeta_vf05:.1f}": TransferConfig(
            intrinsic_range_kms=intrinsic_width_range(teff, macroturbulence=(0.0, 0.0)),
            macroturbulence_kms=round(zeta_vf05, 1),
            **common,
        ),
    }
    runs: dict[str, dict] = {}
    results = {}
    for name, cfg in variants.items():
        if args.quick and cfg.fit_resolution:
            continue
        t0 = time.time()
        res = transfer_file(path, star=tmpl, rv_range=(-60.0, 60.0), config=cfg, device="cpu")
        results[name] = res
        lo, hi = res.meta["vsini_interval_68"]
        Console().print(
            f"WASP-69 transfer ({name}): RMS {res.rms_percent:.3f} %, RV {res.params['rv']:.3f} "
            f"+- {res.errors_scaled['rv']:.3f} km/s (literature -9.63), v sin i "
            f"{res.params['vsini']:.2f} km/s (68 % {lo:.2f}-{hi:.2f}; literature 2.2 +- 0.4), "
            f"R {res.params['resolution']:.0f}, shared width {res.meta['intrinsic_sigma_kms']:.2f}"
            f" km/s, residual correlation {res.meta['residual_correlation_px']:.1f} px, "
            f"{res.meta['n_lines_template']} template + {res.meta['n_lines_data']} data lines, "
            f"limits: {res.meta['limits'] or 'none'}; {time.time() - t0:.0f} s"
        )
        sensitivity = {}
        if not cfg.macroturbulence_kms:
            # how the interval moves with the macroturbulence allowed (same fit, same total
            # broadening): zeta_RT up to 2, 3 (the run's), 4 km/s
            for zeta in (2.0, 3.0, 4.0):
                c = TransferConfig(
                    intrinsic_range_kms=intrinsic_width_range(teff, macroturbulence=(0.0, zeta))
                )
                sensitivity[f"zeta_max_{zeta:g}"] = vsini_width_budget(
                    res.params, res.meta["intrinsic_sigma_kms"], c
                )
            Console().print(
                "  v sin i range by the width budget for macroturbulence up to 2 / 3 / 4 km/s: "
                + ", ".join(f"{a:.2f}-{b:.2f}" for a, b in sensitivity.values())
            )
        runs[name] = {
            "vsini_width_budget_by_zeta_max": sensitivity,
            "macroturbulence_kms": cfg.macroturbulence_kms,
            "vsini_interval_statistical": res.meta["vsini_interval_statistical"],
            "vsini_interval_parts": res.meta["vsini_interval_parts"],
            "rms_percent": res.rms_percent,
            "rv": res.params["rv"],
            "rv_err": res.errors_scaled["rv"],
            "vsini": res.params["vsini"],
            "vsini_interval_68": [lo, hi],
            "vsini_joint_fit": res.meta["vsini_joint_fit"],
            "vsini_profile": res.meta["vsini_profile"],
            "resolution": res.params["resolution"],
            "intrinsic_sigma_kms": res.meta["intrinsic_sigma_kms"],
            "intrinsic_range_kms": res.meta["intrinsic_range_kms"],
            "residual_correlation_px": res.meta["residual_correlation_px"],
            "n_lines_template": res.meta["n_lines_template"],
            "n_lines_data": res.meta["n_lines_data"],
            "limits": res.meta["limits"],
            "rounds": res.meta["rounds"],
            "seconds": time.time() - t0,
        }
    main_run = runs["R fixed"]
    fit_lo, fit_hi = main_run["vsini_interval_68"]
    if "R fitted" in runs:  # the instrument's width is a nuisance: the interval spans both
        fit_lo = min(fit_lo, runs["R fitted"]["vsini_interval_68"][0])
        fit_hi = max(fit_hi, runs["R fitted"]["vsini_interval_68"][1])

    # 3. injection-recovery: the R-fixed fit's star (its learned lines, thermal +
    #    microturbulence 0.75 km/s wide) rotated at known v sin i with radial-tangential
    #    macroturbulence 1, 2.4 (VF05) and 3 km/s, noise at the data's S/N, re-run through the
    #    same transfer; the observed v sin i read back through the recovery curves
    t0 = time.time()
    res = results["R fixed"]
    cfg = variants["R fixed"]
    v_true = (1.0, 2.0, 3.0, 3.5) if args.quick else (1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0)
    zetas = (1.0, round(zeta_vf05, 1), 3.0)
    cal = vsini_by_injection(res, tmpl, teff, cfg, vsini_true=v_true, rv_range=(-60.0, 60.0),
                             seed=1)  # fmt: skip
    rows = cal.pop("rows")
    for r in rows:
        Console().print(
            f"  injected v sin i {r['vsini_true']:.1f}, zeta {r['macroturbulence_true']:.1f}: "
            f"recovered {r['vsini']:.2f} (68 % {r['interval_68'][0]:.2f}-"
            f"{r['interval_68'][1]:.2f}, statistical {r['interval_statistical'][0]:.2f}-"
            f"{r['interval_statistical'][1]:.2f}), shared width {r['shared_width_kms']:.2f}"
            + (" - FAILED: no interior minimum" if r["at_scan_floor"] else "")
        )
    coverage = float(np.mean([r["covered"] for r in rows]))
    coverage_stat = float(np.mean([r["covered_statistical"] for r in rows]))
    bias = [r["bias"] for r in rows if not r["at_scan_floor"]]
    Console().print(
        f"injections: the fit's 68 % interval holds the truth in {coverage:.0%} "
        f"(statistical part alone: {coverage_stat:.0%}), bias {min(bias):+.2f} to "
        f"{max(bias):+.2f} km/s; recovery slope per zeta {cal['slopes']}; {time.time() - t0:.0f} s"
    )
    Console().print(
        f"WASP-69 v sin i calibrated by injection: {cal['vsini']:.2f} km/s at zeta "
        f"{zetas[1]} (by zeta: {cal['by_macroturbulence']}), 68 % {cal['interval_68'][0]:.2f}-"
        f"{cal['interval_68'][1]:.2f} km/s over zeta 1-3 km/s; {cal['limits'] or 'no limits'}"
    )
    summary.update(
        {
            "wasp69_rms_percent": round(main_run["rms_percent"], 4),
            "wasp69_rv": round(main_run["rv"], 4),
            "wasp69_vsini": round(cal["vsini"], 3),
            "wasp69_vsini_interval_68": [round(x, 3) for x in cal["interval_68"]],
            "wasp69_vsini_fit": round(main_run["vsini"], 3),
            "wasp69_vsini_fit_interval_68": [round(fit_lo, 3), round(fit_hi, 3)],
            "wasp69_injection_coverage": round(coverage, 3),
            "wasp69_injection_failed": cal["failed"],
        }
    )
    extra["wasp69"] = runs
    extra["wasp69_injections"] = {"rows": rows, "calibration": cal}


def _astars(args: argparse.Namespace, summary: dict, extra: dict) -> None:
    """Telluric correction of the two HPF A-star standards."""
    import torch
    from rich.console import Console
    from rich.table import Table

    from atmospec.data import shared_data
    from atmospec.highres.echelle import order_bands, read_orders
    from atmospec.highres.pipeline import clone_bands
    from atmospec.highres.standards import TELLURIC_ORDERS, fit_telluric_standard

    torch.set_num_threads(args.threads)
    root = shared_data()
    files = [] if root is None else sorted((root / "hpf").glob("Goldilocks_*.fits"))
    if not files:
        Console().print("A stars: the shared Goldilocks files are absent; skipped")
        return
    orders = (11, 27) if args.quick else TELLURIC_ORDERS
    # the star and telluric clones depend only on the orders' wavelengths: made once, shared
    t0 = time.time()
    bands = order_bands(read_orders(str(files[0]), orders))
    kw = {"prominence": 0.005, "rounds": 2, "epochs": 150, "profile": "pseudo-voigt",
          "device": "cpu"}  # fmt: skip
    star, tell = clone_bands("phoenix", bands, **kw), clone_bands("telfit", bands, **kw)
    Console().print(
        f"clones over {len(bands)} bands: {star.n_lines} star and {tell.n_lines} telluric "
        f"lines, {time.time() - t0:.0f} s"
    )
    table = Table(title="telluric standards: RMS in the telluric pixels before -> after")
    for c in ("file", "order", "pixels", "before %", "after %", "scale"):
        table.add_column(c)
    sum_b = sum_a = 0.0
    n = 0
    stars = {}
    for f in files:
        t0 = time.time()
        res = fit_telluric_standard(f, orders, epochs=80 if args.quick else 60, star=star,
                                    telluric=tell, device="cpu")  # fmt: skip
        for k, b, a, sc, npx in zip(res.orders, res.rms_before, res.rms_after, res.scales,
                                    res.meta["telluric_pixels"], strict=True):  # fmt: skip
            table.add_row(f.name[:30], str(k), str(npx), f"{100 * b:.2f}", f"{100 * a:.2f}",
                          f"{sc:.2f}")  # fmt: skip
        Console().print(
            f"{f.name}: water x airmass {res.water_scale:.2f}, O2 (airmass) "
            f"{res.airmass_scale:.2f} (both relative to the TelFit template), telluric velocity "
            f"{res.meta['telluric_rv']:+.2f} km/s, flatness ratio {res.flatness_ratio:.3f}, "
            f"{res.fit.seconds_per_epoch:.2f} s/epoch, {time.time() - t0:.0f} s"
        )
        npix = sum(res.meta["telluric_pixels"])
        sum_b += res.meta["rms_before_all"] ** 2 * npix
        sum_a += res.meta["rms_after_all"] ** 2 * npix
        n += npix
        stars[f.name] = {
            "orders": res.orders,
            "rms_before": res.rms_before,
            "rms_after": res.rms_after,
            "telluric_scale": res.scales,
            "water_scale": res.water_scale,
            "airmass_scale": res.airmass_scale,
            "flatness_ratio": res.flatness_ratio,
            "rv": res.meta["rv"],
            "vsini": res.meta["vsini"],
            "telluric_rv": res.meta["telluric_rv"],
            "saturated_pixels": res.meta["saturated_pixels"],
            "telluric_pixels": res.meta["telluric_pixels"],
            "seconds_per_epoch": res.fit.seconds_per_epoch,
            "seconds": time.time() - t0,
        }
    Console().print(table)
    ratio = float(np.sqrt(sum_a / max(n, 1)) / np.sqrt(sum_b / max(n, 1)))
    Console().print(f"telluric flatness ratio (after / before, both stars): {ratio:.3f}")
    summary["telluric_flatness_ratio"] = round(ratio, 4)
    extra["astars"] = stars


def _synthetic(args: argparse.Namespace, summary: dict, extra: dict) -> None:
    """Parts 1-3: clone curve, sparse vs dense, solar atlas decomposition."""

    import torch
    from rich.console import Console
    from rich.table import Table

    from atmospec.highres.emulator import LineEmulator, clone, dense_optical_depth
    from atmospec.highres.io import read_muler_template, read_psg_molecules, read_solar_atlas
    from atmospec.highres.linefinder import continuum_envelope
    from atmospec.highres.telluric import clone_molecules, decompose

    torch.set_num_threads(args.threads)
    console = Console()
    t_start = time.time()
    band = (8400.0, 9000.0) if args.quick else (8100.0, 9300.0)
    epochs = 150 if args.quick else 400
    profile = "pseudo-voigt" if args.quick else "voigt"

    # 1. clone RMS against the number of lines
    ph = read_muler_template("phoenix")
    w_all = ph.wavelength * 1e4
    m = (w_all > band[0]) & (w_all < band[1])
    w, f = w_all[m], ph.flux[m]
    fn = f / continuum_envelope(w, f, window=100.0, quantile=1.0, smooth=1)
    settings = (
        [(0.03, 1), (0.01, 1), (0.003, 2)]
        if args.quick
        else [(0.05, 1), (0.01, 1), (0.003, 2), (0.001, 3)]
    )
    rows = []
    em = None
    for prom, rounds in settings:
        t0 = time.time()
        em = clone(
            w,
            fn,
            prominence=prom,
            rounds=rounds,
            epochs=epochs,
            profile=profile,
            max_window=60.0,
            device="cpu",
        )
        with torch.no_grad():
            model = em(torch.as_tensor(w)).numpy()
        rms = float(100.0 * np.sqrt(np.mean((fn - model) ** 2)))
        rows.append(
            {
                "prominence": prom,
                "rounds": rounds,
                "n_lines": em.n_lines,
                "rms_percent": rms,
                "seconds": time.time() - t0,
            }
        )
    table = Table(
        title=f"PHOENIX 10 kK clone, {band[0]:.0f}-{band[1]:.0f} Å ({w.size} px, "
        f"{profile}, {epochs} epochs/round)"
    )
    for c in ("prominence", "rounds", "n_lines", "RMS %", "s"):
        table.add_column(c)
    for r in rows:
        table.add_row(
            f"{r['prominence']:g}",
            str(r["rounds"]),
            str(r["n_lines"]),
            f"{r['rms_percent']:.3f}",
            f"{r['seconds']:.1f}",
        )
    console.print(table)

    # 2. sparse against dense, seconds per epoch (same lines, same windows rule)
    assert em is not None
    em_t = LineEmulator(em.lines(), **{**em.settings(), "profile": "pseudo-voigt"}, device="cpu")
    wt = torch.as_tensor(w)
    target = torch.as_tensor(fn)

    def epoch_time(dense: bool, n: int = 3) -> float:
        opt = torch.optim.Adam(em_t.parameters(), lr=0.0)
        t0 = time.perf_counter()
        for _ in range(n):
            opt.zero_grad()
            tau = dense_optical_depth(em_t, wt) if dense else em_t.optical_depth(wt)
            loss = ((torch.exp(-tau) - target) ** 2).mean()
            loss.backward()
            opt.step()
        return (time.perf_counter() - t0) / n

    epoch_time(False, n=1)  # warm-up
    sparse_s = epoch_time(False, n=10)
    dense_s = epoch_time(True, n=2)
    speedup = dense_s / sparse_s
    with torch.no_grad():
        sp_rms = float(100 * torch.sqrt(((em_t(wt) - target) ** 2).mean()))
        de_rms = float(
            100 * torch.sqrt(((torch.exp(-dense_optical_depth(em_t, wt)) - target) ** 2).mean())
        )
    tt = Table(
        title=f"seconds per epoch, {band[0]:.0f}-{band[1]:.0f} Å, {w.size} px, pseudo-Voigt, 1 thread"
    )
    for c in ("implementation", "n_lines", "s / epoch", "clone RMS %"):
        tt.add_column(c)
    tt.add_row("sparse (windows, index_add)", str(em_t.n_lines), f"{sparse_s:.4f}", f"{sp_rms:.3f}")
    tt.add_row("dense (lines × pixels)", str(em_t.n_lines), f"{dense_s:.4f}", f"{de_rms:.3f}")
    tt.add_row("ratio dense / sparse", "", f"{speedup:.1f}x", "")
    console.print(tt)

    # 3. solar atlas decomposition
    page = 6325
    atlas = read_solar_atlas(page)
    aw = atlas["total"].wavelength * 1e4
    cols = read_psg_molecules((aw[0] / 1e4 - 5e-4, aw[-1] / 1e4 + 5e-4))
    pw = cols["Total"].wavelength * 1e4
    molecules = {k: v.flux for k, v in cols.items() if k not in ("Total", "Rayleigh", "CIA")}
    t0 = time.time()
    priors = clone_molecules(
        pw,
        molecules,
        prominence=0.003,
        epochs=150 if args.quick else 300,
        profile=profile,
        device="cpu",
    )
    joint, info = decompose(
        aw,
        atlas["total"].flux,
        priors,
        epochs=(150, 400) if args.quick else (300, 1000),
    )
    with torch.no_grad():
        awt = torch.as_tensor(aw)
        tell_rec = joint.telluric(awt).numpy()
        sol_rec = joint.star(awt).numpy()

    def nrms(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.sqrt(np.mean((a / np.percentile(a, 99) - b / np.percentile(b, 99)) ** 2)))

    telluric_rms = nrms(tell_rec, atlas["telluric"].flux)
    solar_rms = nrms(sol_rec, atlas["solar"].flux)
    base_t = nrms(np.ones_like(aw), atlas["telluric"].flux)
    base_s = nrms(np.ones_like(aw), atlas["solar"].flux)
    psg_t = nrms(np.interp(aw, pw, cols["Total"].flux), atlas["telluric"].flux)
    ta = Table(
        title=f"NSO solar atlas wn{page}, {aw[0]:.1f}-{aw[-1]:.1f} Å ({aw.size} px): "
        f"{info['n_star_lines']} solar + {sum(info['n_telluric_lines'].values())} telluric "
        f"lines {info['n_telluric_lines']}, total RMS {info['rms_total']:.4f}, "
        f"{time.time() - t0:.0f} s"
    )
    for c in ("component", "RMS recovered vs atlas", "flat-line baseline", "ratio"):
        ta.add_column(c)
    ta.add_row("telluric", f"{telluric_rms:.4f}", f"{base_t:.4f}", f"{telluric_rms / base_t:.2f}")
    ta.add_row("solar", f"{solar_rms:.4f}", f"{base_s:.4f}", f"{solar_rms / base_s:.2f}")
    ta.add_row(
        "(PSG total as is, telluric)", f"{psg_t:.4f}", f"{base_t:.4f}", f"{psg_t / base_t:.2f}"
    )
    console.print(ta)
    console.print(f"fitted molecule scales {info['telluric_scales']}")
    best = min(rows, key=lambda r: r["rms_percent"])
    summary.update(
        {
            "n_lines": int(best["n_lines"]),
            "clone_rms_percent": round(best["rms_percent"], 4),
            "sparse_speedup": round(speedup, 2),
            "telluric_rms": round(telluric_rms, 5),
            "solar_rms": round(solar_rms, 5),
        }
    )
    console.print(f"total wall time {time.time() - t_start:.0f} s")
    extra.update(
        {
            "clone_curve": rows,
            "band_angstrom": band,
            "sparse_seconds": sparse_s,
            "dense_seconds": dense_s,
            "baseline_telluric_rms": base_t,
            "baseline_solar_rms": base_s,
            "psg_as_is_telluric_rms": psg_t,
            "atlas_page": page,
            "sparse_rms_percent": sp_rms,
            "dense_rms_percent": de_rms,
            "decompose": info,
        }
    )


if __name__ == "__main__":
    main()
