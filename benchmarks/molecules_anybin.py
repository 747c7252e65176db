"""Benchmark: the one any-binning molecule classifier against classifiers trained for one binning.

    python benchmarks/molecules_anybin.py --quick --native runs/native.h5 --model DIR

or, to build everything (population set, any-binning classifier, references) in one go, e.g.
on a GPU machine (the shipped classifier was made this way; see its model.json):

    python benchmarks/molecules_anybin.py --n 40000 --seed 11 --workers 16 --device cuda \
        --train-out DIR [--simulator sim.npz --binnings binnings.json]

`--simulator` is the forward model saved by `atmospec.molecules.native.save_simulator` and
`--binnings` the real binnings saved by `--dump-binnings`, for a machine without the data.

For each real binning (the bins and error bars of a published spectrum in the shared data:
WASP-39b JWST multi-instrument, WASP-39b NIRISS SOSS, HD 189733b HST/Spitzer; without --quick
also WASP-107b HST+JWST and WASP-80b NIRCam), a CNN is trained for exactly those bins
(`train_cnn`, the per-binning reference, on the same simulated planets binned to those bins)
and both are scored on the held-out test planets of the fine-axis population set, observed
with those bins at the published error bars (noise seed fixed). The any-binning classifier never
saw these binnings: it was trained on random instrument sets.

Target: for every molecule with >= 20 positives and negatives, ROC-AUC(any-binning) >=
ROC-AUC(per-binning) - 0.02. The last printed line is one JSON object:
{"binnings": {name: {"n_bins": n, "general": {mol: auc}, "fixed": {mol: auc},
"worst_gap": g}}, "max_gap": g, "passes": bool}
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from atmospec.molecules.binning import Binning
    from atmospec.molecules.classifiers import MoleculeClassifier
    from atmospec.molecules.dataset import MoleculeTrainingSet

QUICK = ("wasp39b_jwst", "wasp39b_niriss", "hd189733b_hst")


class _BinningResult(TypedDict):
    """One binning's entry of the summary's "binnings"."""

    n_bins: int
    n_test: int
    general: dict[str, float]
    fixed: dict[str, float]
    worst_gap: float | None


def _binnings(shared: Path | None, quick: bool, saved: Path | None) -> dict[str, Binning]:
    from atmospec.molecules.binning import Binning

    if saved is not None:
        raw = json.loads(saved.read_text())
        return {
            k: Binning(*(np.asarray(v[f]) for f in ("centre", "half_width", "instrument", "error")))
            for k, v in raw.items()
            if not quick or k in QUICK
        }
    from atmospec.molecules.io import combine, read_transmission

    assert shared is not None
    t = shared / "transmission"
    specs = {
        "wasp39b_jwst": lambda: read_transmission(t / "wasp39b_jwst_transit.dat"),
        "wasp39b_niriss": lambda: read_transmission(t / "WASP-39b_NIRISS-SOSS.csv"),
        "hd189733b_hst": lambda: read_transmission(t / "HD189733b_HST-STIS-WFC3-Spitzer.txt"),
        "wasp107b_hst_jwst": lambda: combine(
            [read_transmission(f) for f in sorted(t.glob("WASP-107b_*.tsv"))]
        ),
        "wasp80b_nircam": lambda: read_transmission(
            t / "WASP-80b_NIRCam-F322W2.csv", width="contiguous"
        ),
    }
    out = {}
    for name, make in specs.items():
        if quick and name not in QUICK:
            continue
        spec = make().within(0.46, 12.4)  # the canonical axis; HD 189733b starts at 0.32 um
        out[name] = Binning.from_spectrum(spec)
    return out


def _reference(
    ts: MoleculeTrainingSet,
    obs: NDArray[np.float64],
    err: NDArray[np.float64],
    args: argparse.Namespace,
    minutes: float,
    train_cnn: Callable[..., MoleculeClassifier],
) -> NDArray[np.float64]:
    """Train the CNN for exactly these bins and score the test observations."""
    fixed = train_cnn(
        ts,
        seed=args.seed,
        max_seconds=60 * (args.ref_minutes or minutes),
        max_epochs=args.epochs,
        device=args.device,
    )
    return fixed.predict_proba(obs, err)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3 binnings, 4-minute reference budgets")
    ap.add_argument("--native", type=Path, default=None, help="fine-axis population set (HDF5)")
    ap.add_argument("--n", type=int, default=12000, help="planets to simulate without --native")
    ap.add_argument("--workers", type=int, default=1, help="processes for the simulation")
    ap.add_argument("--simulator", type=Path, default=None, help="saved forward model (.npz)")
    ap.add_argument("--binnings", type=Path, default=None, help="saved real binnings (JSON)")
    ap.add_argument("--dump-binnings", type=Path, default=None, help="write the binnings, exit")
    ap.add_argument("--model", type=Path, default=None, help="any-binning classifier folder")
    ap.add_argument("--train-out", type=Path, default=None, help="train the classifier here")
    ap.add_argument("--epochs", type=int, default=60, help="epochs (early stopping)")
    ap.add_argument("--minutes", type=float, default=None, help="training budget per network")
    ap.add_argument("--ref-minutes", type=float, default=None, help="budget per reference")
    ap.add_argument("--device", default="cpu", help="torch device for training")
    ap.add_argument(
        "--finetune",
        action="store_true",
        help="with --train-out: start from the shipped classifier (lr 1e-3) instead of scratch",
    )
    ap.add_argument(
        "--reference-json",
        type=Path,
        default=None,
        help="take the per-binning references' ROC-AUCs from an earlier run's JSON on the same "
        "population set (same --n, --seed) instead of training them again",
    )
    ap.add_argument("--out", type=Path, default=None, help="write the results to this JSON file")
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from rich.console import Console
    from rich.table import Table
    from sklearn.metrics import roc_auc_score

    from atmospec._fileio import provenance, write_json
    from atmospec.data import shared_data
    from atmospec.molecules.anybin import AnyBinningClassifier, load_pretrained_anybin
    from atmospec.molecules.anybin_training import train_anybin
    from atmospec.molecules.classifiers import train_cnn
    from atmospec.molecules.native import NativeSet, load_simulator, simulate_native

    console = Console(stderr=True)
    shared = shared_data()
    if shared is None and args.binnings is None:
        print("the shared data folder (published spectra) is absent", file=sys.stderr)
        return 2
    binnings = _binnings(shared, args.quick, args.binnings)
    if args.dump_binnings:
        blob = {
            k: {
                "centre": b.centre.tolist(),
                "half_width": b.half_width.tolist(),
                "instrument": b.instrument.tolist(),
                "error": b.error.tolist(),
            }
            for k, b in binnings.items()
        }
        write_json(args.dump_binnings, blob)
        return 0
    t0 = time.perf_counter()
    if args.native is not None and args.native.is_file():
        native = NativeSet.load(args.native)
    else:
        sim = load_simulator(args.simulator) if args.simulator else None
        native = simulate_native(args.n, seed=args.seed, simulator=sim, workers=args.workers)
        if args.native is not None:
            native.save(args.native)
    console.print(f"population set: {len(native)} planets ({time.perf_counter() - t0:.0f} s)")
    minutes = args.minutes or (4.0 if args.quick else 10.0)
    if args.train_out is not None:
        init = load_pretrained_anybin() if args.finetune else None
        general = train_anybin(
            native,
            seed=args.seed,
            max_epochs=args.epochs,
            max_seconds=60 * minutes,
            device=args.device,
            init=init,
            lr=1e-3 if init is not None else 2e-3,
            patience=12 if init is not None else 10,
        )
        general.info["trained_by"] = (
            f"benchmarks/molecules_anybin.py --n {len(native)} --seed {args.seed} "
            f"--epochs {args.epochs} --minutes {minutes:g} --device {args.device}"
            + (" --finetune" if init is not None else "")
        )
        general.save(args.train_out)
        console.print(f"any-binning classifier: {general.info['history']}")
    else:
        general = AnyBinningClassifier.load(args.model) if args.model else load_pretrained_anybin()
    test_rows = np.nonzero(native.split == 2)[0]
    results: dict[str, _BinningResult] = {}
    for name, binning in binnings.items():
        ts = native.bin(binning, slice(None) if args.reference_json is None else test_rows)
        test = ts.subset(2)
        rng = np.random.default_rng(args.seed)
        err = np.broadcast_to(binning.error, test.depth.shape)
        obs = test.depth + err * rng.standard_normal(err.shape)
        labels = test.labels(1.0)
        p_general = general.predict_proba(binning, obs, err)
        if args.reference_json is not None:
            ref = json.loads(args.reference_json.read_text())["binnings"][name]["fixed"]
            p_fixed = None
        else:
            console.print(f"{name}: {len(binning)} bins; training the per-binning reference")
            p_fixed = _reference(ts, obs, err, args, minutes, train_cnn)
        gen: dict[str, float] = {}
        fix: dict[str, float] = {}
        gaps: list[float] = []
        for j, m in enumerate(native.molecules):
            y = labels[:, j]
            if min(y.sum(), (~y).sum()) < 20:
                continue
            gen[m] = float(roc_auc_score(y, p_general[:, j]))
            fix[m] = float(roc_auc_score(y, p_fixed[:, j])) if p_fixed is not None else ref[m]
            gaps.append(fix[m] - gen[m])
        results[name] = {
            "n_bins": len(binning),
            "n_test": int(test_rows.size),
            "general": gen,
            "fixed": fix,
            "worst_gap": float(max(gaps)) if gaps else None,
        }
    table = Table(title="ROC-AUC on held-out planets at the published error bars")
    for col in ("binning", "bins", "molecule", "any-binning", "per-binning", "gap"):
        table.add_column(col)
    for name, row in results.items():
        for m, g in row["general"].items():
            f = row["fixed"][m]
            table.add_row(name, str(row["n_bins"]), m, f"{g:.3f}", f"{f:.3f}", f"{f - g:+.3f}")
    console.print(table)
    gaps_all = [float(r["worst_gap"]) for r in results.values() if r["worst_gap"] is not None]
    max_gap = max(gaps_all) if gaps_all else None
    summary = {
        "binnings": results,
        "max_gap": max_gap,
        "passes": max_gap is not None and max_gap <= 0.02,
        "minutes_per_reference": args.ref_minutes or minutes,
        "seconds": round(time.perf_counter() - t0, 1),
        "provenance": provenance(seed=args.seed, native=str(args.native), n=len(native)),
    }
    if args.out:
        write_json(args.out, summary)
    print(json.dumps({k: summary[k] for k in ("binnings", "max_gap", "passes")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
