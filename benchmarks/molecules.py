"""Benchmark: molecule classifiers (CNN, random forest, MLP) on held-out simulated spectra binned
like the WASP-39b JWST data, at three S/N levels, and the real WASP-39b spectrum.

    python benchmarks/molecules.py --quick --out molecules.json

Held-out spectra are drawn with a different seed from the shipped CNN's training set (seed 1).
S/N levels: the WASP-39b error bars times 0.5 (high S/N), 1 (as observed) and 2 (low S/N);
labels are "present and detectable" at that noise (Delta chi^2 > 25 when the molecule is
removed). The CNN is the shipped one unless --retrain-cnn; the baselines are trained here.
The last printed line is one JSON object:
{"roc_auc": {"cnn": {mol: f}, "rf": ..., "mlp": ...}, "pr_auc": {...}, "wasp39b": {mol: p}}
with the AUCs at the WASP-39b error bars.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

LEVELS = (0.5, 1.0, 2.0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--quick", action="store_true", help="5,000 test / 3,000 baseline-training spectra"
    )
    ap.add_argument("--out", type=Path, default=None, help="write all metrics to this JSON file")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-test", type=int, default=None)
    ap.add_argument("--n-train", type=int, default=None, help="baseline training-set size")
    ap.add_argument("--train-set", type=Path, default=None, help="HDF5 training set to reuse")
    ap.add_argument("--retrain-cnn", action="store_true", help="train the CNN here too")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    if args.quiet:  # progress bars follow the atmospec logger's level
        import logging

        logging.getLogger("atmospec").setLevel(logging.WARNING)

    import torch

    torch.set_num_threads(1)
    from rich.console import Console
    from rich.table import Table

    from atmospec._fileio import provenance, write_json
    from atmospec.data import shared_data
    from atmospec.molecules.binning import Binning
    from atmospec.molecules.classifiers import (
        BaselineClassifier,
        MoleculeClassifier,
        evaluate,
        load_pretrained,
        train_baseline,
        train_cnn,
    )
    from atmospec.molecules.dataset import MoleculeTrainingSet, build_simulator, generate
    from atmospec.molecules.io import read_transmission

    console = Console(stderr=True)
    t0 = time.perf_counter()
    shared = shared_data()
    if shared is None:
        print(
            "the shared data folder (WASP-39b spectrum, HITRAN CO, CIA) is absent", file=sys.stderr
        )
        return 2
    wasp = read_transmission(shared / "transmission" / "wasp39b_jwst_transit.dat")
    binning = Binning.from_spectrum(wasp)
    n_test = args.n_test or 5000
    n_train = args.n_train or (3000 if args.quick else 24000)
    sim = build_simulator()
    console.print(
        f"simulator: {sim.species}, {len(sim.cia)} CIA tables, {sim.wavelength.size} wavelengths"
    )

    test = generate(
        n_test,
        binning,
        simulator=sim,
        seed=1000 + args.seed,
        fractions=(0.0, 0.0, 1.0),
    )
    if args.train_set is not None and args.train_set.is_file():
        train = MoleculeTrainingSet.load(args.train_set)
    else:
        train = generate(n_train, binning, simulator=sim, seed=2000 + args.seed)
        if args.train_set is not None:
            train.save(args.train_set)
    t_sim = time.perf_counter() - t0

    cnn = train_cnn(train, seed=args.seed) if args.retrain_cnn else load_pretrained()
    classifiers: dict[str, MoleculeClassifier | BaselineClassifier] = {
        "cnn": cnn,
        "rf": train_baseline(train, "rf", seed=args.seed),
        "mlp": train_baseline(train, "mlp", seed=args.seed),
    }
    molecules = cnn.molecules
    rng = np.random.default_rng(3000 + args.seed)
    results: dict[str, dict[str, dict]] = {k: {} for k in classifiers}
    for level in LEVELS:
        err = level * binning.error[None, :] * np.ones((len(test), 1))
        obs = test.depth + err * rng.standard_normal(err.shape)
        labels = test.labels(level)
        for name, clf in classifiers.items():
            results[name][f"{level:g}"] = evaluate(clf.predict_proba(obs, err), labels, molecules)

    wasp_p = cnn.predict_spectrum(wasp)
    elapsed = time.perf_counter() - t0

    table = Table(title=f"molecule classifiers on {n_test} held-out spectra (WASP-39b bins)")
    for col in (
        "molecule",
        "noise x",
        "positives",
        "classifier",
        "ROC-AUC",
        "PR-AUC",
        "recall@5%FPR",
    ):
        table.add_column(col)
    for m in molecules:
        for level in LEVELS:
            for name in classifiers:
                r = results[name][f"{level:g}"][m]
                table.add_row(
                    m,
                    f"{level:g}",
                    str(r["n_positive"]),
                    name,
                    f"{r['roc_auc']:.3f}",
                    f"{r['pr_auc']:.3f}",
                    f"{r['recall_at_5pct_fpr']:.3f}",
                )
    Console().print(table)
    wt = Table(title="real WASP-39b spectrum (CNN)")
    for col in ("molecule", "probability", "90% interval"):
        wt.add_column(col)
    for m, v in wasp_p.items():
        wt.add_row(m, f"{v['probability']:.3f}", f"{v['low']:.3f}-{v['high']:.3f}")
    Console().print(wt)
    print(
        f"simulation {t_sim:.0f} s, total {elapsed:.0f} s; train {len(train)} spectra, test {n_test}"
    )

    summary = {
        "roc_auc": {
            k: {m: round(results[k]["1"][m]["roc_auc"], 4) for m in molecules} for k in classifiers
        },
        "pr_auc": {
            k: {m: round(results[k]["1"][m]["pr_auc"], 4) for m in molecules} for k in classifiers
        },
        "wasp39b": {m: round(v["probability"], 4) for m, v in wasp_p.items()},
    }
    if args.out is not None:
        write_json(
            args.out,
            {
                "summary": summary,
                "levels": list(LEVELS),
                "metrics": results,
                "wasp39b": wasp_p,
                "n_test": n_test,
                "n_train_baselines": len(train),
                "seconds": elapsed,
                "provenance": provenance(seed=args.seed, quick=args.quick),
            },
        )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
