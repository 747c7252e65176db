"""Benchmark: the default estimator against TelescopeCNN on the same grid-aware split.

Both train on Sonora Diamondback (dback24) spectra from the same training nodes, parameter
points, systematics and S/N draws (S/N per pixel of the default's 300-pixel axis; the 104-pixel
TelescopeML axis gets the noise of the same observation binned to its wider pixels), held-out
Teff slices for validation and testing, and the same CPU budget (process CPU seconds). The
default stops early when its validation loss stops improving.

Speed-up ("reaches its final accuracy in N x less CPU time"): TelescopeCNN's process CPU
seconds up to its best epoch (its final validation RMSE, the weights it keeps) divided by the
CPU seconds the default's first ensemble member needs until its validation RMSE is at or below
that for every parameter (epoch granularity, so a conservative ratio). Both are measured in the
same run, on the same machine, under the same budget.

Prints a table and, last, one JSON line:
{"rmse": {"default": {...}, "telescope_cnn": {...}}, "r2": {...},
 "train_seconds": {"default": s, "telescope_cnn": s}, "coverage68": f, "coverage95": f}

Usage: python benchmarks/learning.py [--quick] [--out FILE.json] [--work DIR] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def _time_to_reach(history: dict[str, Any], target: dict[str, float], names: list[str]) -> float:
    """CPU seconds after which every validation RMSE is at or below ``target`` (inf if never)."""
    for cpu, extra in zip(history["cpu_seconds"], history["extra"], strict=True):
        if all(extra[f"rmse_{p}"] <= target[p] for p in names):
            return float(cpu)
    return float("inf")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sets and budget (< 5 min)")
    ap.add_argument("--out", help="write the JSON result here")
    ap.add_argument("--work", help="folder for the training sets (default: a temp folder)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--budget", type=float, help="CPU budget (s) per estimator (override)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()

    from atmospec.estimators import SpectrumCNN, TelescopeCNN
    from atmospec.grids import load_grid
    from atmospec.training.builder import build_training_set, target_axis
    from atmospec.training.evaluation import evaluate
    from atmospec.training.splits import grid_aware_split

    if args.quick:
        n_train, n_val, n_test, budget, members, max_epochs = 4000, 1000, 1500, 40.0, 2, 12
    else:
        n_train, n_val, n_test, budget, members, max_epochs = 20000, 3000, 3000, 1800.0, 3, 20
    if args.budget is not None:
        budget = args.budget
    levels = [20.0, 50.0, 100.0]
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="atmospec-bench-"))
    grid = load_grid("dback24")
    split = grid_aware_split(grid)
    dense = target_axis("spex-dense")
    ref = float(np.median(np.diff(np.log(dense))))  # S/N quoted per pixel of the dense axis
    t0 = time.perf_counter()
    sets: dict[str, Any] = {}
    for axis in ("spex-dense", "spex-prism"):
        for part, nodes, n, mode, noise, k in (
            ("train", split.train, n_train, "inside", {"snr": (10.0, 300.0)}, 0),
            ("val", split.val, n_val, "touching", {"snr": (10.0, 300.0)}, 1),
            ("test", split.test, n_test, "touching", {"snr_levels": levels}, 2),
        ):
            sets[axis, part] = build_training_set(
                grid,
                work / f"{axis}-{part}-{n}.h5",
                n_samples=n,
                axis=axis,
                nodes=nodes,
                cell_mode=mode,
                seed=args.seed * 10 + k,
                snr_reference_dlnw=ref,
                quiet=args.quiet,
                **noise,
            )
    build_s = time.perf_counter() - t0
    names = list(sets["spex-dense", "train"].param_names)

    results: dict[str, Any] = {}
    for label, axis, est in (
        (
            "telescope_cnn",
            "spex-prism",
            TelescopeCNN(
                max_cpu_seconds=budget,
                max_epochs=10_000,
                patience=20,
                num_threads=args.threads,
                quiet=args.quiet,
                seed=0,
            ),
        ),
        (
            "default",
            "spex-dense",
            SpectrumCNN(
                n_members=members,
                max_cpu_seconds=budget,
                max_epochs=max_epochs,
                patience=5,
                num_threads=args.threads,
                quiet=args.quiet,
                seed=0,
            ),
        ),
    ):
        tr, va, te = (sets[axis, p] for p in ("train", "val", "test"))
        X, y, s = tr.arrays()
        w0, c0 = time.perf_counter(), time.process_time()
        est.fit(X, y, sigma=s, validation=va.arrays(), **tr.fit_kwargs())
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        rep = evaluate(est, te, split=split.description)
        results[label] = {"est": est, "report": rep, "wall": wall, "cpu": cpu}
        if label == "default":  # coverage before the validation recalibration, for the record
            saved = (est.sigma_scale_, est.sigma_snr_slope_)
            est.sigma_scale_, est.sigma_snr_slope_ = np.ones(len(names)), None
            results[label]["raw"] = evaluate(est, te)
            est.sigma_scale_, est.sigma_snr_slope_ = saved

    tele_hist = results["telescope_cnn"]["est"].history_[0]
    tele_final = {p: tele_hist["extra"][tele_hist["best_epoch"]][f"rmse_{p}"] for p in names}
    tele_cpu_final = float(tele_hist["cpu_seconds"][tele_hist["best_epoch"]])
    def_hist = results["default"]["est"].history_[0]
    reach = _time_to_reach(def_hist, tele_final, names)
    speedup = tele_cpu_final / reach if reach > 0 else float("inf")
    def_cpu_own = float(def_hist["cpu_seconds"][def_hist["best_epoch"]])
    def_cpu_all = sum(
        float(h["cpu_seconds"][h["best_epoch"]]) for h in results["default"]["est"].history_
    )

    rows = []
    for p in names:
        d = results["default"]["report"]["overall"][p]
        t = results["telescope_cnn"]["report"]["overall"][p]
        rows.append((p, d["rmse"], t["rmse"], d["r2"], t["r2"], d["coverage68"], d["coverage95"]))
    try:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"dback24, {split.description}; test S/N {levels}")
        for c in (
            "param",
            "RMSE default",
            "RMSE TelescopeCNN",
            "R2 default",
            "R2 TelescopeCNN",
            "cov68 default",
            "cov95 default",
        ):
            table.add_column(c)
        for r in rows:
            table.add_row(r[0], *(f"{v:.4g}" for v in r[1:]))
        Console().print(table)
        cov = Table(title="default: interval coverage per S/N (target 0.63-0.73 / 0.92-0.98)")
        for c in ("S/N", *[f"{p} 68/95" for p in names]):
            cov.add_column(c)
        for lev, m in results["default"]["report"]["by_snr"].items():
            r = results["default"]["raw"]["by_snr"][lev]
            cov.add_row(
                f"{lev} raw",
                *(f"{r[p]['coverage68']:.3f}/{r[p]['coverage95']:.3f}" for p in names),
            )
            cov.add_row(
                f"{lev} calibrated",
                *(f"{m[p]['coverage68']:.3f}/{m[p]['coverage95']:.3f}" for p in names),
            )
        Console().print(cov)
        rm = Table(title="RMSE per S/N (default | TelescopeCNN)")
        for c in ("S/N", *names):
            rm.add_column(c)
        for lev, m in results["default"]["report"]["by_snr"].items():
            mt = results["telescope_cnn"]["report"]["by_snr"][lev]
            rm.add_row(lev, *(f"{m[p]['rmse']:.4g} | {mt[p]['rmse']:.4g}" for p in names))
        Console().print(rm)
    except ImportError:  # pragma: no cover
        print(rows)
    for label in ("default", "telescope_cnn"):
        r = results[label]
        h = r["est"].history_
        print(
            f"{label}: {len(h)} member(s), epochs {[len(x['train_loss']) for x in h]}, "
            f"wall {r['wall']:.1f} s, CPU {r['cpu']:.1f} s"
        )
    print(
        f"sets built in {build_s:.1f} s; TelescopeCNN reached its final validation RMSE "
        f"(best epoch {tele_hist['best_epoch'] + 1}) after {tele_cpu_final:.1f} CPU s; "
        f"default member 1 reached it after {reach:.1f} CPU s: {speedup:.1f}x less CPU"
    )
    print(
        f"default to its own final accuracy: member 1 {def_cpu_own:.1f} CPU s "
        f"({tele_cpu_final / def_cpu_own:.1f}x less), whole ensemble {def_cpu_all:.1f} CPU s "
        f"({tele_cpu_final / def_cpu_all:.1f}x less)"
    )
    cal = results["default"]["est"]
    print(
        "default sigma calibration (validation split): scale at S/N "
        f"{cal.sigma_snr_ref_:.0f} {np.round(cal.sigma_scale_, 3).tolist()}, "
        f"d ln(scale)/d ln(S/N) "
        f"{np.round(cal.sigma_snr_slope_, 3).tolist() if cal.sigma_snr_slope_ is not None else 0}"
    )
    rep_d = results["default"]["report"]
    out = {
        "rmse": {
            lab: {p: results[lab]["report"]["overall"][p]["rmse"] for p in names}
            for lab in ("default", "telescope_cnn")
        },
        "r2": {
            lab: {p: results[lab]["report"]["overall"][p]["r2"] for p in names}
            for lab in ("default", "telescope_cnn")
        },
        "train_seconds": {lab: results[lab]["wall"] for lab in ("default", "telescope_cnn")},
        "coverage68": rep_d["coverage68"],
        "coverage95": rep_d["coverage95"],
    }
    if args.out:
        full = {
            **out,
            "cpu_seconds": {lab: results[lab]["cpu"] for lab in results},
            "telescope_cpu_to_final_accuracy": tele_cpu_final,
            "default_cpu_to_telescope_accuracy": reach,
            "cpu_speedup": speedup,
            "default_cpu_to_own_final": {"member1": def_cpu_own, "ensemble": def_cpu_all},
            "by_snr": {lab: results[lab]["report"]["by_snr"] for lab in results},
            "split": split.description,
            "quick": args.quick,
            "budget_cpu_s": budget,
        }
        Path(args.out).write_text(json.dumps(full, indent=2, default=float) + "\n")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
