"""Benchmark of the highres line-by-line model (issue 8).

1. Clone the muler PHOENIX 10,000 K template (continuum-normalised) on a stated band: RMS
   residual against the number of lines (blasé: 1.2 % with 9,028 lines on PHOENIX).
2. Seconds per training epoch (forward + backward) of the sparse emulator against the dense
   lines × pixels reference, same lines, same band, same CPU thread.
3. NSO/Kitt Peak solar atlas page wn5875 (1.70 µm): fit the total with the joint
   (star × telluric) model starting from a clone of the PSG telluric template, and compare the
   recovered components with the atlas's own solar and atmospheric columns (RMS, after
   dividing each by its 99th percentile since the atlas scales each column independently).

Usage: python benchmarks/highres.py [--quick] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small band and few epochs (< 5 min)")
    ap.add_argument("--out", default=None, help="write the summary JSON here")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch
    from rich.console import Console
    from rich.table import Table

    from atmospec._fileio import provenance, write_json
    from atmospec.highres.emulator import clone, dense_optical_depth
    from atmospec.highres.io import read_muler_template, read_solar_atlas
    from atmospec.highres.linefinder import continuum_envelope
    from atmospec.highres.telluric import decompose

    torch.set_num_threads(args.threads)
    console = Console()
    t_start = time.time()
    band = (8600.0, 8800.0) if args.quick else (8500.0, 9300.0)
    epochs = 150 if args.quick else 400
    profile = "pseudo-voigt" if args.quick else "voigt"

    # 1. clone RMS against the number of lines
    ph = read_muler_template("phoenix")
    w_all = ph.wavelength * 1e4
    m = (w_all > band[0]) & (w_all < band[1])
    w, f = w_all[m], ph.flux[m]
    fn = f / continuum_envelope(w, f, window=100.0, quantile=1.0, smooth=1)
    settings = (
        [(0.05, 1), (0.01, 1), (0.003, 2)]
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
            progress=False,
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

    # 2. sparse against dense, seconds per epoch
    assert em is not None
    wt = torch.as_tensor(w)
    target = torch.as_tensor(fn)

    def epoch_time(dense: bool, n: int = 3) -> float:
        opt = torch.optim.Adam(em.parameters(), lr=0.0)
        t0 = time.perf_counter()
        for _ in range(n):
            opt.zero_grad()
            tau = dense_optical_depth(em, wt) if dense else em.optical_depth(wt)
            loss = ((torch.exp(-tau) - target) ** 2).mean()
            loss.backward()
            opt.step()
        return (time.perf_counter() - t0) / n

    sparse_s = epoch_time(False, n=6)
    dense_s = epoch_time(True, n=2)
    speedup = dense_s / sparse_s
    console.print(
        f"epoch time on {w.size} px × {em.n_lines} lines ({profile}, 1 thread): "
        f"sparse {sparse_s:.3f} s, dense {dense_s:.3f} s, ratio {speedup:.1f}x"
    )

    # 3. solar atlas decomposition
    page = 5875
    atlas = read_solar_atlas(page)
    aw = atlas["total"].wavelength * 1e4
    psg = read_muler_template("psg")
    pw = psg.wavelength * 1e4
    pm = (pw > aw[0] - 5) & (pw < aw[-1] + 5)
    tel = clone(
        pw[pm],
        psg.flux[pm],
        prominence=0.003,
        rounds=2,
        epochs=150 if args.quick else 300,
        profile=profile,
        device="cpu",
        progress=False,
    )
    joint, info = decompose(
        aw,
        atlas["total"].flux,
        tel,
        prominence=0.005,
        epochs=300 if args.quick else 800,
        progress=False,
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
    console.print(
        f"solar atlas wn{page} ({aw[0]:.0f}-{aw[-1]:.0f} Å, {aw.size} px): "
        f"{info['n_star_lines']} solar + {info['n_telluric_lines']} telluric lines, total RMS "
        f"{info['rms_total']:.4f}; telluric RMS {telluric_rms:.4f} (flat-line baseline "
        f"{base_t:.4f}), solar RMS {solar_rms:.4f} (baseline {base_s:.4f})"
    )
    best = min(rows, key=lambda r: r["rms_percent"])
    summary = {
        "n_lines": int(best["n_lines"]),
        "clone_rms_percent": round(best["rms_percent"], 4),
        "sparse_speedup": round(speedup, 2),
        "telluric_rms": round(telluric_rms, 5),
        "solar_rms": round(solar_rms, 5),
    }
    console.print(f"total wall time {time.time() - t_start:.0f} s")
    if args.out:
        write_json(
            args.out,
            {
                **summary,
                "clone_curve": rows,
                "band_angstrom": band,
                "sparse_seconds": sparse_s,
                "dense_seconds": dense_s,
                "baseline_telluric_rms": base_t,
                "baseline_solar_rms": base_s,
                "decompose": info,
                "provenance": provenance(seed=None, quick=args.quick),
            },
        )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
