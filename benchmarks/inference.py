"""Inference benchmark: interval coverage, ML vs nested sampling, throughput vs TelescopeML, OOD.

Usage: python benchmarks/inference.py [--quick] [--model default|DIR] [--threads 2] [--out F.json]

1. Coverage: held-out synthetic spectra (the model's own test slices of the grid, off-node
   points, real SpeX noise shapes and the training systematics) at S/N 20, 50 and 100: the
   fraction of truths inside the 68 % and 95 % predictive intervals (1,000 draws).
2. ML vs nested sampling: held-out synthetic spectra with known Gaussian noise (no
   systematics): the learned model's 68 % intervals against dynesty's on the same grid; the
   fraction of parameter-spectrum pairs whose intervals overlap, and the seconds per spectrum
   of each (ML: the whole ``Predictor.predict`` -- coverage checks, 1,000 draws, chi2 of the
   grid model, OOD score -- for a batch, divided by its size).
3. Throughput, printed side by side in one run: point estimates/s (one batched call),
   spectra/s with 1,000-draw intervals, and TelescopeML's approach as the reference (one
   network call per noise draw, batch size 1). Wall-clock rates depend on what else runs on
   the machine: the load average is printed, with the rates per CPU-second of this process.
4. OOD: flag rate on fresh in-grid synthetic spectra (false alarms) and on BT-Settl 2008 and
   Burrows 2006 spectra at 500-800 K (below Diamondback's 900 K floor; recall).

The model is the shipped default (``--model default``) or a saved model folder; if no
pretrained model is installed, a small CNN is trained here first (a few minutes).
The last printed line is one JSON object with the keys of issue 4.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def _load_model(name: str, grid: Any, tmp: Path, quick: bool) -> Any:
    from atmospec.errors import ModelFileError
    from atmospec.prediction.members import resolve_model

    try:
        return resolve_model(name)[0]
    except ModelFileError as err:
        print(f"{err}; training a small CNN here instead")
    from atmospec.estimators.cnn import SpectrumCNN
    from atmospec.training.builder import build_training_set

    n = 4000 if quick else 20000
    tr = build_training_set(grid, tmp / "train.h5", n_samples=n, seed=1)
    va = build_training_set(grid, tmp / "val.h5", n_samples=1000, seed=2)
    est = SpectrumCNN(n_members=3, max_epochs=6 if quick else 20, num_threads=1, seed=0)
    est.fit(*tr.arrays()[:2], sigma=tr.arrays()[2], validation=va.arrays(), **tr.fit_kwargs())
    est.meta_["grid"] = grid.name
    return est


def _held_out_nodes(est: Any, grid: Any) -> tuple[Any, str]:
    """The model's own test nodes (re-derived from its recipe), or None (all nodes)."""
    recipe = est.meta_.get("recipe") or {}
    if not recipe.get("split"):
        return None, "all grid nodes (the model records no split)"
    from atmospec.learning.recipe import recipe_split

    split, _ = recipe_split(grid, recipe["split"], recipe.get("ranges"))
    return split.test, f"held-out test nodes ({split.description})"


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller runs (< 5 minutes)")
    ap.add_argument("--model", default="default", help="registry name or saved model folder")
    ap.add_argument("--n-spectra", type=int, default=None, help="spectra for the nested test")
    ap.add_argument("--threads", type=int, default=2, help="worker threads (2 cores)")
    ap.add_argument(
        "--nested-nodes",
        choices=("test", "all"),
        default="test",
        help="nested comparison around the model's held-out test nodes (default, the harder "
        "case: the network never saw those Teff slices) or anywhere in the grid",
    )
    ap.add_argument("--out", default=None, help="write the JSON result here")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)  # the Engine runs its own worker threads
    from atmospec.fitting.nested import fit_nested
    from atmospec.grids import load_grid
    from atmospec.prediction.engine import Engine
    from atmospec.prediction.ood import grid_model_on_axis
    from atmospec.prediction.ood_calibration import calibrate_ood
    from atmospec.prediction.predictor import Predictor
    from atmospec.prediction.sampling import monte_carlo
    from atmospec.spectrum import Spectrum
    from atmospec.training.builder import build_training_set
    from atmospec.training.systematics import Systematics

    quick = args.quick
    load_start = _load()
    tmp = Path(tempfile.mkdtemp(prefix="atmospec-bench-"))
    t0 = time.perf_counter()
    grid0 = load_grid("dback24").load()
    est = _load_model(args.model, grid0, tmp, quick)
    grid = load_grid(est.meta_.get("grid") or "dback24").load()
    engine = Engine(est, num_threads=args.threads)
    print(f"model ready in {time.perf_counter() - t0:.1f} s; load average {load_start}")
    det = calibrate_ood(est, grid, n_samples=2000 if quick else 4000, seed=11)
    pred = Predictor(est, grid=grid, ood=det, draws=1000, num_threads=args.threads)
    names = est.param_names_

    # ---- 1. coverage on held-out synthetic spectra at several S/N ----------------------
    nodes, node_note = _held_out_nodes(est, grid)
    snr_levels = (20.0, 50.0, 100.0)
    n_cov = 300 if quick else 1200
    cov_set = build_training_set(
        grid,
        tmp / "coverage.h5",
        n_samples=n_cov,
        axis=est.wavelength_,
        nodes=nodes,
        cell_mode="touching",
        snr_levels=snr_levels,
        bounds=est.bounds_,
        seed=31,
    )
    Xc, yc, Sc = cov_set.arrays()
    snr_c = np.array(snr_levels)[np.arange(n_cov) % len(snr_levels)]
    samples_c, _, _, _ = monte_carlo(engine, Xc, Sc, draws=1000, seeds=list(range(n_cov)))
    cov: dict[str, dict[str, list[float]]] = {}
    for level in (68, 95):
        lo, hi = np.percentile(samples_c, [50 - level / 2, 50 + level / 2], axis=1)
        inside = (yc >= lo) & (yc <= hi)
        cov[str(level)] = {
            f"{s:g}": inside[snr_c == s].mean(axis=0).round(3).tolist() for s in snr_levels
        }
        cov[str(level)]["all"] = inside.mean(axis=0).round(3).tolist()

    # ---- 2. ML vs nested sampling on held-out spectra with known Gaussian noise ---------
    n_spec = args.n_spectra or (10 if quick else 24)
    held = build_training_set(
        grid,
        tmp / "held.h5",
        n_samples=n_spec,
        axis=est.wavelength_,
        nodes=nodes if args.nested_nodes == "test" else None,
        cell_mode="touching",
        seed=77,
        systematics=Systematics.none(),
        snr=(20.0, 100.0),
        off_node_fraction=0.9,
        noise_shapes="flat",
        bounds=est.bounds_,
    )
    X, y, S = held.arrays()
    specs = [
        Spectrum(held.wavelength, X[i], S[i], name=f"held{i}", meta={"source": f"held{i}"})
        for i in range(n_spec)
    ]
    pred.predict(specs[:2])  # warm-up (first-call allocations)
    t = time.perf_counter()
    ml = pred.predict(specs)
    ml_s = (time.perf_counter() - t) / n_spec
    q = ml.quantiles()
    # Full mode: the nested sampler as `atmospec fit --method nested` runs it (its default
    # live points); quick mode: fewer live points, to stay within minutes.
    nlive_default = inspect.signature(fit_nested).parameters["nlive"].default
    nlive, t_nest, pairs, hits, ml_cov, ns_cov = (60 if quick else nlive_default), 0.0, 0, 0, 0, 0
    per_param: dict[str, list[int]] = {p: [0, 0] for p in names}
    for i, spec in enumerate(specs):
        t = time.perf_counter()
        # synthetic spectra: grid model + known noise, so the reference is noise-only
        fit = fit_nested(spec, grid, nlive=nlive, seed=i, n_samples=2000, discrepancy=None)
        t_nest += time.perf_counter() - t
        assert fit.samples is not None
        for j, p in enumerate(names):
            if p not in fit.samples.columns:
                continue
            a = (q[f"{p}_p16"][i], q[f"{p}_p84"][i])
            b = tuple(np.percentile(fit.samples[p], [16, 84]))
            pairs += 1
            hits += _overlap(a, b)
            per_param[p][0] += _overlap(a, b)
            per_param[p][1] += 1
            ml_cov += a[0] <= y[i, j] <= a[1]
            ns_cov += b[0] <= y[i, j] <= b[1]
        print(f"  nested {i + 1}/{n_spec}: {time.perf_counter() - t:.1f} s", flush=True)
    nest_s = t_nest / n_spec
    overlap = hits / pairs

    # ---- 3. throughput ------------------------------------------------------------------
    n_point = 4000 if quick else 20000
    reps = int(np.ceil(n_point / n_spec))
    Xt = np.repeat(X, reps, axis=0)[:n_point]
    St = np.repeat(S, reps, axis=0)[:n_point]
    engine.predict(Xt[:512], St[:512])
    t, c = time.perf_counter(), time.process_time()
    engine.predict(Xt, St)
    point_rate = n_point / (time.perf_counter() - t)
    point_cpu = n_point / (time.process_time() - c)
    n_int = 32 if quick else 128
    flux = np.array([pred.prepare(specs[i % n_spec]).flux for i in range(n_int)])
    sig = np.array([pred.prepare(specs[i % n_spec]).sigma for i in range(n_int)])
    t, c = time.perf_counter(), time.process_time()
    monte_carlo(engine, flux, sig, draws=1000, seeds=list(range(n_int)))
    interval_rate = n_int / (time.perf_counter() - t)
    interval_cpu = n_int / (time.process_time() - c)
    t, c = time.perf_counter(), time.process_time()
    monte_carlo(engine, flux, sig, draws=1000, seeds=list(range(n_int)), precision="bfloat16")
    bf16_rate = n_int / (time.perf_counter() - t)
    bf16_cpu = n_int / (time.process_time() - c)
    # TelescopeML's Predictor: for each of 1,000 noise draws, one model call on one spectrum.
    n_ref = 1 if quick else 3
    rng = np.random.default_rng(0)
    t, c = time.perf_counter(), time.process_time()
    with torch.inference_mode():
        for i in range(n_ref):
            out = []
            for _ in range(1000):
                noisy = flux[i] + sig[i] * rng.standard_normal(flux.shape[1])
                out.append(est.predict(noisy[None], sig[i][None]).mean[0])
            np.percentile(np.array(out), [16, 50, 84], axis=0)
    ref_rate = n_ref / (time.perf_counter() - t)
    ref_cpu = n_ref / (time.process_time() - c)

    # ---- 4. OOD ---------------------------------------------------------------------------
    def flags(g: Any, path: Path, **kw: Any) -> np.ndarray:
        ts = build_training_set(g, path, axis=est.wavelength_, **kw)
        Xo, _, So = ts.arrays()
        ts.close()
        mean, std = engine.predict(Xo, So)
        gm = grid_model_on_axis(grid, mean, names, est.wavelength_)
        return det.score(det.raw_scores(Xo, So, mean, std, gm))[1]

    n_ood = 300 if quick else 1000
    inside = flags(grid, tmp / "in.h5", n_samples=n_ood, seed=123, bounds=est.bounds_)
    outside = []
    floor = est.bounds_["teff"][0]
    for gname in ("btsettl08", "burrows06"):
        g = load_grid(gname)
        rows = np.flatnonzero(g.params["teff"].to_numpy() < floor - 50)
        rows = rows[g.params["teff"].to_numpy()[rows] >= 500]
        if rows.size == 0:
            continue
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
    load_end = _load()

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
        title=f"atmospec inference benchmark ({'quick' if quick else 'full'}; model "
        f"{pred.model_id}; {args.threads} worker threads; load average {load_start} -> "
        f"{load_end} on {os.cpu_count()} cores)"
    )
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_column("target / note")
    for pct in ("68", "95"):
        for key, vals in cov[pct].items():
            table.add_row(
                f"coverage {pct} % intervals, S/N {key}",
                " ".join(f"{v:.3f}" for v in vals),
                f"{'/'.join(names)}; nominal 0.{pct}",
            )
    table.add_row("coverage set", f"{n_cov} spectra", node_note)
    table.add_row(
        "68 % interval overlap ML vs nested",
        f"{overlap:.3f}",
        f">= 0.90 ({pairs} pairs, {n_spec} spectra, nlive {nlive}, "
        f"{'held-out test slices' if args.nested_nodes == 'test' else 'whole grid'})",
    )
    table.add_row(
        "  overlap per parameter",
        " ".join(f"{h / max(n, 1):.2f}" for h, n in per_param.values()),
        "/".join(per_param),
    )
    table.add_row("truth inside ML 68 % interval", f"{ml_cov / pairs:.3f}", "calibrated: ~0.68")
    table.add_row("truth inside nested 68 % interval", f"{ns_cov / pairs:.3f}", "")
    table.add_row("seconds per spectrum: ML (1,000 draws, chi2, OOD)", f"{ml_s:.4f}", "")
    table.add_row("seconds per spectrum: nested sampling", f"{nest_s:.2f}", "")
    table.add_row("speed ratio nested / ML", f"{nest_s / ml_s:.0f}x", ">= 1,000x")
    table.add_row(
        "point estimates / s", f"{point_rate:.0f}", f">= 20,000 ({point_cpu:.0f} per CPU-s)"
    )
    table.add_row(
        "spectra / s with 1,000-draw intervals",
        f"{interval_rate:.1f}",
        f">= 100 ({interval_cpu:.1f} per CPU-s)",
    )
    table.add_row(
        "  same, noisy copies in bfloat16 (--precision)",
        f"{bf16_rate:.1f}",
        f"opt-in ({bf16_cpu:.1f} per CPU-s); not in the JSON",
    )
    table.add_row(
        "reference (TelescopeML loop) spectra / s",
        f"{ref_rate:.3f}",
        f"speed-up {interval_rate / ref_rate:.0f}x ({ref_cpu:.3f} per CPU-s)",
    )
    table.add_row(
        "OOD recall (BT-Settl/Burrows06 below the grid's Teff)",
        f"{out_flags.mean():.3f}",
        f">= 0.95 ({out_flags.size} spectra)",
    )
    table.add_row(
        "OOD false alarms (in-grid)",
        f"{inside.mean():.3f}",
        f"<= 0.05 ({inside.size} spectra; detector's own held-out {det.false_alarm:.3f})",
    )
    Console(width=160).print(table)
    print(f"wall time {time.perf_counter() - t0:.0f} s")
    if args.out:
        from atmospec._fileio import write_json

        write_json(args.out, result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
