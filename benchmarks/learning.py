"""Benchmark: the default estimator against TelescopeCNN on the same grid-aware split.

Both train on Sonora Diamondback (dback24) spectra from the same training nodes, parameter
points, systematics, grid-interpolation-error augmentation and S/N draws (S/N per pixel of the
default's 300-pixel axis; the 104-pixel TelescopeML axis gets the noise of the same observation
binned to its wider pixels), held-out Teff slices for validation and testing, and the same CPU
budget (process CPU seconds). The default is the shipped recipe (``configs/dback24_spex.toml``:
its estimator hyperparameters and its training-set options); it stops when its epochs are done
or its validation loss stops improving, TelescopeCNN when the budget is spent or after 20 epochs
without improvement.

Speed-up ("reaches its final accuracy in N x less CPU time"): TelescopeCNN's process CPU
seconds up to its best epoch (its final accuracy: the weights it keeps) divided by the CPU
seconds the default needs for its final accuracy (every ensemble member up to its best epoch).
Printed beside it, for the record: the CPU seconds the default's first member alone needs to
reach TelescopeCNN's final validation RMSE on every parameter (inf if it never does).

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
    if args.quiet:  # progress bars follow the atmospec logger's level
        import logging

        logging.getLogger("atmospec").setLevel(logging.WARNING)

    from atmospec.estimators import TelescopeCNN
    from atmospec.grids import load_grid
    from atmospec.learning.evaluation import evaluate
    from atmospec.learning.recipe import load_recipe, make_estimator
    from atmospec.training.builder import TrainingSet, build_training_set, target_axis
    from atmospec.training.splits import grid_aware_split

    recipe = load_recipe(Path(__file__).resolve().parents[1] / "configs" / "dback24_spex.toml")
    params = dict(recipe.params)
    if args.quick:
        n_train, n_val, n_test, budget = 4000, 1000, 1500, 40.0
        params.update(n_members=2, max_epochs=min(int(params.get("max_epochs", 20)), 12))
    else:
        n_train, n_val, n_test, budget = 20000, 3000, 3000, 1800.0
    if args.budget is not None:
        budget = args.budget
    levels = [20.0, 50.0, 100.0]
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="atmospec-bench-"))
    grid = load_grid("dback24")
    split = grid_aware_split(grid)
    dense = target_axis("spex-dense")
    ref = float(np.median(np.diff(np.log(dense))))  # S/N quoted per pixel of the dense axis
    t0 = time.perf_counter()
    sets: dict[tuple[str, str], TrainingSet] = {}
    train_opts = {"snr": (10.0, 300.0), "interpolation_error": recipe.interpolation_error}
    for axis in ("spex-dense", "spex-prism"):
        for part, nodes, n, mode, noise, k in (
            ("train", split.train, n_train, "inside", train_opts, 0),
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
                off_node_fraction=recipe.off_node_fraction,
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
                seed=0,
            ),
        ),
        (
            "default",
            "spex-dense",
            make_estimator(
                recipe.estimator,
                {
                    **params,
                    "max_cpu_seconds": budget,
                    "num_threads": args.threads,
                },
            ),
        ),
    ):
        tr, va, te = (sets[axis, p] for p in ("train", "val", "test"))
        X, y, s = tr.arrays()
        w0, c0 = time.perf_counter(), time.process_time()
        clean = tr.clean() if recipe.fresh_noise else None  # the same for both estimators
        est.fit(X, y, sigma=s, validation=va.arrays(), clean=clean, **tr.fit_kwargs())
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        rep = evaluate(est, te, split=split.description)
        results[label] = {"est": est, "report": rep, "wall": wall, "cpu": cpu}
        if label == "default":  # coverage before the validation recalibration, for the record
            saved = (est.sigma_scale_, est.sigma_snr_slope_, est.sigma_tail_dof_)
            est.sigma_scale_, est.sigma_snr_slope_ = np.ones(len(names)), None
            est.sigma_tail_dof_ = None
            results[label]["raw"] = evaluate(est, te)
            est.sigma_scale_, est.sigma_snr_slope_, est.sigma_tail_dof_ = saved

    tele_hist = results["telescope_cnn"]["est"].history_[0]
    tele_final = {p: tele_hist["extra"][tele_hist["best_epoch"]][f"rmse_{p}"] for p in names}
    tele_cpu_final = float(tele_hist["cpu_seconds"][tele_hist["best_epoch"]])
    def_hists = results["default"]["est"].history_
    reach = _time_to_reach(def_hists[0], tele_final, names)
    def_cpu_own = float(def_hists[0]["cpu_seconds"][def_hists[0]["best_epoch"]])
    def_cpu_all = sum(float(h["cpu_seconds"][h["best_epoch"]]) for h in def_hists)
    speedup = tele_cpu_final / def_cpu_all
    better = all(
        results["default"]["report"]["overall"][p]["rmse"]
        < results["telescope_cnn"]["report"]["overall"][p]["rmse"]
        for p in names
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
        f"sets built in {build_s:.1f} s; TelescopeCNN reached its final accuracy (best epoch "
        f"{tele_hist['best_epoch'] + 1}) after {tele_cpu_final:.1f} CPU s; the default reached "
        f"its final accuracy ({'better' if better else 'NOT better'} than TelescopeCNN's on "
        f"every parameter) after {def_cpu_all:.1f} CPU s (all {len(def_hists)} members to their "
        f"best epochs): {speedup:.1f}x less CPU"
    )
    print(
        f"for the record: default member 1 alone reached its own final accuracy after "
        f"{def_cpu_own:.1f} CPU s ({tele_cpu_final / def_cpu_own:.1f}x less) and TelescopeCNN's "
        f"final validation RMSE on every parameter after {reach:.1f} CPU s"
    )
    cal = results["default"]["est"]
    print(
        "default sigma calibration (validation split): scale at S/N "
        f"{cal.sigma_snr_ref_:.0f} {np.round(cal.sigma_scale_, 3).tolist()}, "
        f"d ln(scale)/d ln(S/N) "
        f"{np.round(cal.sigma_snr_slope_, 3).tolist() if cal.sigma_snr_slope_ is not None else 0}"
        f", Student-t tail dof {np.round(cal.sigma_tail_dof_, 1).tolist()}"
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
            "default_cpu_to_final_accuracy": def_cpu_all,
            "cpu_speedup": speedup,
            "default_better_everywhere": better,
            "default_member1_cpu": {"own_final": def_cpu_own, "to_telescope_val_rmse": reach},
            "epochs": {
                lab: [len(h["train_loss"]) for h in results[lab]["est"].history_] for lab in results
            },
            "default_params": {k: v for k, v in params.items() if k != "quiet"},
            "interpolation_error": recipe.interpolation_error,
            "by_snr": {lab: results[lab]["report"]["by_snr"] for lab in results},
            "split": split.description,
            "quick": args.quick,
            "budget_cpu_s": budget,
        }
        Path(args.out).write_text(json.dumps(full, indent=2, default=float) + "\n")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
