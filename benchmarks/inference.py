"""Inference benchmark: ML intervals vs nested sampling, throughput vs TelescopeML's loop, OOD.

Usage: python benchmarks/inference.py [--quick] [--model DIR] [--out FILE.json]

1. Held-out synthetic Diamondback spectra with known Gaussian noise (no systematics, off-node
   points): the learned estimator's 68 % intervals (Monte Carlo over the flux errors x sigma
   heads, 1,000 draws) against dynesty nested-sampling 68 % intervals on the same grid; the
   fraction of parameter-spectrum pairs whose intervals overlap, and the time per spectrum.
2. Throughput on 2 threads: point estimates/s (one batched call), spectra/s with full
   1,000-draw intervals (one batched call per chunk), and TelescopeML's approach as the
   reference (one network call per noise draw, batch size 1), in spectra/s with 1,000 draws.
3. OOD: flag rate on fresh in-grid synthetic spectra (false alarms) and on BT-Settl 2008 and
   Burrows 2006 spectra at 500-800 K (below Diamondback's 900 K floor; recall).

Without --model a small MLP is trained here on the grid (until pretrained models ship).
The last printed line is one JSON object with the keys of issue 4.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

AXIS = "spex-prism"


def _train(grid: Any, tmp: Path, quick: bool) -> Any:
    from atmospec.estimators.mlp import SpectrumMLP
    from atmospec.training.builder import build_training_set

    n = 3000 if quick else 20000
    tr = build_training_set(grid, tmp / "train.h5", n_samples=n, axis=AXIS, seed=1, quiet=True)
    va = build_training_set(grid, tmp / "val.h5", n_samples=1500, axis=AXIS, seed=2, quiet=True)
    X, y, s = tr.arrays()
    Xv, yv, sv = va.arrays()
    est = SpectrumMLP(
        hidden=(128, 128), max_epochs=15 if quick else 80, patience=6, seed=0, num_threads=2
    )
    est.fit(X, y, sigma=s, validation=(Xv, yv, sv), **tr.fit_kwargs())
    est.meta_["grid"] = grid.name
    return est


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller runs (< 5 minutes)")
    ap.add_argument("--model", default=None, help="saved estimator folder (else train one)")
    ap.add_argument("--n-spectra", type=int, default=None, help="spectra for the nested test")
    ap.add_argument("--out", default=None, help="write the JSON result here")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(2)
    from atmospec.estimators.base import load_estimator
    from atmospec.grids import load_grid
    from atmospec.inference.nested import fit_nested
    from atmospec.inference.ood import calibrate_ood, grid_model_on_axis
    from atmospec.inference.predict import Predictor
    from atmospec.spectrum import Spectrum
    from atmospec.training.builder import build_training_set
    from atmospec.training.systematics import Systematics

    quick = args.quick
    grid = load_grid("dback24").load()
    tmp = Path(tempfile.mkdtemp(prefix="atmospec-bench-"))
    t0 = time.perf_counter()
    est = load_estimator(args.model) if args.model else _train(grid, tmp, quick)
    print(f"model ready in {time.perf_counter() - t0:.1f} s")
    det = calibrate_ood(est, grid, n_samples=2000 if quick else 4000, seed=11)
    pred = Predictor(est, grid=grid, ood=det, draws=1000)
    names = est.param_names_

    # ---- 1. ML vs nested sampling on held-out spectra with known noise -----------------
    n_spec = args.n_spectra or (8 if quick else 20)
    held = build_training_set(
        grid,
        tmp / "held.h5",
        n_samples=n_spec,
        axis=est.wavelength_,
        seed=77,
        quiet=True,
        systematics=Systematics.none(),
        snr=(20.0, 100.0),
        off_node_fraction=0.95,
        noise_shapes="flat",
    )
    X, y, S = held.arrays()
    specs = [
        Spectrum(held.wavelength, X[i], S[i], name=f"held{i}", meta={"source": f"held{i}"})
        for i in range(n_spec)
    ]
    t = time.perf_counter()
    ml = pred.predict(specs)
    ml_s = (time.perf_counter() - t) / n_spec
    q = ml.quantiles()
    nlive, t_nest, pairs, hits, ml_cov, ns_cov = (60 if quick else 150), 0.0, 0, 0, 0, 0
    for i, spec in enumerate(specs):
        t = time.perf_counter()
        fit = fit_nested(spec, grid, nlive=nlive, seed=i, n_samples=2000)
        t_nest += time.perf_counter() - t
        assert fit.samples is not None
        for j, p in enumerate(names):
            a = (q[f"{p}_p16"][i], q[f"{p}_p84"][i])
            b = tuple(np.percentile(fit.samples[p], [16, 84]))
            pairs += 1
            hits += _overlap(a, b)  # type: ignore[arg-type]
            ml_cov += a[0] <= y[i, j] <= a[1]
            ns_cov += b[0] <= y[i, j] <= b[1]
        print(f"  nested {i + 1}/{n_spec}: {time.perf_counter() - t:.1f} s", flush=True)
    nest_s = t_nest / n_spec
    overlap = hits / pairs

    # ---- 2. throughput -------------------------------------------------------------------
    Xt = np.repeat(X, int(np.ceil(4000 / n_spec)), axis=0)[:4000]
    St = np.repeat(S, int(np.ceil(4000 / n_spec)), axis=0)[:4000]
    est.predict(Xt[:256], St[:256])
    t = time.perf_counter()
    est.predict(Xt, St)
    point_rate = Xt.shape[0] / (time.perf_counter() - t)
    n_int = 16 if quick else 48
    inputs = [pred.prepare(specs[i % n_spec]) for i in range(n_int)]
    for k, m in enumerate(inputs):
        m.source = f"tp{k}"
    from atmospec.inference.predict import _spectrum_seed, monte_carlo

    flux = np.array([m.flux for m in inputs])
    sig = np.array([m.sigma for m in inputs])
    t = time.perf_counter()
    monte_carlo(est, flux, sig, draws=1000, rngs=[_spectrum_seed(0, m.source) for m in inputs])
    interval_rate = n_int / (time.perf_counter() - t)
    # TelescopeML's Predictor: for each of 1,000 noise draws, one model call on one spectrum.
    n_ref = 2 if quick else 4
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    for i in range(n_ref):
        out = []
        for _ in range(1000):
            noisy = flux[i] + sig[i] * rng.standard_normal(flux.shape[1])
            out.append(est.predict(noisy[None], sig[i][None]).mean[0])
        np.percentile(np.array(out), [16, 50, 84], axis=0)
    ref_rate = n_ref / (time.perf_counter() - t)

    # ---- 3. OOD ----------------------------------------------------------------------------
    def flags(g: Any, path: Path, **kw: Any) -> np.ndarray:
        ts = build_training_set(g, path, axis=est.wavelength_, quiet=True, **kw)
        Xo, _, So = ts.arrays()
        ts.close()
        p = est.predict(Xo, So)
        gm = grid_model_on_axis(grid, p.mean, names, est.wavelength_)
        return det.score(det.raw_scores(Xo, So, p.mean, p.std, gm))[1]

    n_ood = 300 if quick else 1000
    inside = flags(grid, tmp / "in.h5", n_samples=n_ood, seed=123)
    outside = []
    for gname in ("btsettl08", "burrows06"):
        g = load_grid(gname)
        rows = np.flatnonzero(g.params["teff"].to_numpy() <= 800)
        outside.append(
            flags(
                g,
                tmp / f"{gname}.h5",
                n_samples=n_ood // 2,
                seed=124,
                nodes=rows,
                off_node_fraction=0.0,
            )
        )
    out_flags = np.concatenate(outside)

    result = {
        "interval_overlap_68": float(overlap),
        "seconds_per_spectrum": {"ml": float(ml_s), "nested": float(nest_s)},
        "throughput_point_per_s": float(point_rate),
        "throughput_intervals_per_s": float(interval_rate),
        "throughput_reference_per_s": float(ref_rate),
        "ood_recall": float(out_flags.mean()),
        "ood_false_alarm": float(inside.mean()),
    }
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"atmospec inference benchmark ({'quick' if quick else 'full'}; "
        f"model {pred.model_id})"
    )
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_column("target / note")
    table.add_row(
        "68 % interval overlap ML vs nested",
        f"{overlap:.3f}",
        f">= 0.90 ({pairs} pairs, {n_spec} spectra, nlive {nlive})",
    )
    table.add_row("truth inside ML 68 % interval", f"{ml_cov / pairs:.3f}", "calibrated: ~0.68")
    table.add_row("truth inside nested 68 % interval", f"{ns_cov / pairs:.3f}", "")
    table.add_row("seconds per spectrum: ML (1,000 draws, chi2, OOD)", f"{ml_s:.4f}", "")
    table.add_row("seconds per spectrum: nested sampling", f"{nest_s:.2f}", "")
    table.add_row("speed ratio nested / ML", f"{nest_s / ml_s:.0f}x", ">= 1,000x")
    table.add_row("point estimates / s (2 threads)", f"{point_rate:.0f}", ">= 20,000")
    table.add_row("spectra / s with 1,000-draw intervals", f"{interval_rate:.1f}", ">= 100")
    table.add_row(
        "reference (TelescopeML loop) spectra / s",
        f"{ref_rate:.2f}",
        f"speed-up {interval_rate / ref_rate:.0f}x",
    )
    table.add_row(
        "OOD recall (BT-Settl/Burrows06 500-800 K)",
        f"{out_flags.mean():.3f}",
        f">= 0.95 ({out_flags.size} spectra)",
    )
    table.add_row(
        "OOD false alarms (in-grid)",
        f"{inside.mean():.3f}",
        f"<= 0.05 ({inside.size} spectra; detector's own held-out {det.false_alarm:.3f})",
    )
    Console().print(table)
    if args.out:
        from atmospec._fileio import write_json

        write_json(args.out, result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
