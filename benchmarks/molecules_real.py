"""Benchmark: molecule probabilities on real published transmission spectra against the papers.

    python benchmarks/molecules_real.py --quick [--model DIR] [--out real.json]

For every (planet, molecule) pair whose paper states a detection or a non-detection, the
shipped classifier (any binning; bins beyond its 0.46-12.4 um axis are left out and counted)
gives a probability; it agrees when p >= 0.7 for a detection and p <= 0.3 for a non-detection.
A confident false detection is p >= 0.9 where the paper rules the molecule out. Each pair says
what limits the answer: molecules without opacities here (SO2, NH3) are listed but not scored;
a molecule none of whose bands the bins cover is "wavelength not covered"; a doublet narrower
than the bins is "resolution"; otherwise the median error in the molecule's bands (S/N).
Target: >= 85 % of scored pairs agree, none confidently wrong.

The last printed line is one JSON object:
{"n_pairs": n, "n_agree": k, "fraction_agree": f, "confident_false": c, "pairs": [...]}
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

# (planet, files, reading options, {molecule: True detected / False not detected}, reference)
CASES = [
    (
        "WASP-39b JWST",
        ["wasp39b_jwst_transit.dat"],
        {},
        {"H2O": True, "CO2": True, "CO": True, "Na": True, "K": True, "CH4": False, "SO2": True},
        "JWST ERS 2023 (Rustamkulov+, Alderson+, Ahrer+, Feinstein+, Tsai+)",
    ),
    (
        "WASP-39b NIRISS SOSS",
        ["WASP-39b_NIRISS-SOSS.csv"],
        {},
        {"H2O": True, "K": True},
        "Feinstein et al. 2023",
    ),
    (
        "WASP-80b NIRCam",
        ["WASP-80b_NIRCam-F322W2.csv"],
        {"width": "contiguous"},
        {"CH4": True, "H2O": True},
        "Bell et al. 2023",
    ),
    (
        "WASP-107b HST+JWST",
        [
            "WASP-107b_HST-WFC3-G102.tsv",
            "WASP-107b_HST-WFC3-G141.tsv",
            "WASP-107b_NIRCam-F322W2.tsv",
            "WASP-107b_NIRCam-F444W.tsv",
            "WASP-107b_MIRI-LRS.tsv",
        ],
        {},
        {"H2O": True, "CO2": True, "CO": True, "CH4": True, "SO2": True, "NH3": True},
        "Welbanks et al. 2024",
    ),
    (
        "HD 189733b HST+Spitzer",
        ["HD189733b_HST-STIS-WFC3-Spitzer.txt"],
        {},
        {"Na": True, "H2O": True},
        "Redfield+2008, Huitson+2012 (Na); McCullough+2014 (H2O)",
    ),
    (
        "HD 209458b HST+Spitzer",
        ["HD209458b_HST-STIS-WFC3-Spitzer.txt"],
        {},
        {"Na": True, "H2O": True},
        "Charbonneau+2002 (Na); Deming+2013 (H2O)",
    ),
]

BANDS: dict[str, list[tuple[float, float]]] = {
    "H2O": [(1.1, 1.2), (1.3, 1.5), (1.8, 2.0), (2.6, 3.0), (5.5, 7.5)],
    "CO2": [(1.95, 2.1), (2.65, 2.85), (4.15, 4.45)],
    "CH4": [(1.6, 1.8), (2.2, 2.45), (3.1, 3.5), (7.3, 8.2)],
    "CO": [(2.28, 2.45), (4.5, 5.0)],
    "Na": [(0.585, 0.595)],
    "K": [(0.762, 0.774)],
}
"""The strongest bands of each molecule (micron), for saying what limits an answer."""


def _limit(spec: object, molecule: str, modelled: bool) -> str:
    if not modelled:
        return "opacity missing (not modelled)"
    lam, half, err = spec.wavelength, spec.half_width, spec.error  # type: ignore[attr-defined]
    inside = np.zeros(lam.size, bool)
    for lo, hi in BANDS[molecule]:
        inside |= (lam + half > lo) & (lam - half < hi)
    if not inside.any():
        return "wavelength not covered"
    if molecule in ("Na", "K") and np.min(2 * half[inside]) > 0.01:
        return f"resolution: doublet in bins >= {np.min(2 * half[inside]) * 1e3:.0f} nm wide"
    return f"S/N: median error {np.median(err[inside]) * 1e6:.0f} ppm in its bands"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="20 dropout passes instead of 100")
    ap.add_argument("--model", type=Path, default=None, help="classifier folder (default: shipped)")
    ap.add_argument("--out", type=Path, default=None, help="write the results to this JSON file")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from rich.console import Console
    from rich.table import Table

    from atmospec._fileio import provenance, write_json
    from atmospec.data import shared_data
    from atmospec.molecules.io import combine, read_transmission
    from atmospec.molecules.pipeline import load_classifier

    shared = shared_data()
    if shared is None:
        print("the shared data folder (published spectra) is absent", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    clf = load_classifier(args.model)
    n_mc = 20 if args.quick else 100
    pairs = []
    for planet, files, options, truth, ref in CASES:
        spec = combine([read_transmission(shared / "transmission" / f, **options) for f in files])
        lo, hi = clf.coverage
        used = spec.within(lo, hi)
        probs = clf.predict_spectrum(used, n_mc=n_mc)
        for mol, detected in truth.items():
            modelled = mol in probs
            p = probs[mol]["probability"] if modelled else None
            agrees = None
            if p is not None:
                agrees = p >= 0.7 if detected else p <= 0.3
            pairs.append(
                {
                    "planet": planet,
                    "molecule": mol,
                    "published": "detected" if detected else "not detected",
                    "probability": None if p is None else round(p, 4),
                    "interval": None
                    if p is None
                    else [round(probs[mol]["low"], 4), round(probs[mol]["high"], 4)],
                    "agrees": agrees,
                    "confident_false": bool(p is not None and not detected and p >= 0.9),
                    "limit": _limit(used, mol, modelled),
                    "bins_used": len(used),
                    "bins_left_out": len(spec) - len(used),
                    "reference": ref,
                }
            )
    scored = [r for r in pairs if r["agrees"] is not None]
    n_agree = sum(bool(r["agrees"]) for r in scored)
    table = Table(title="published detections vs the classifier (agree: p >= 0.7 / <= 0.3)")
    for col in ("planet", "molecule", "paper", "p", "agrees", "what limits it"):
        table.add_column(col)
    for r in pairs:
        table.add_row(
            r["planet"],
            r["molecule"],
            r["published"],
            "-" if r["probability"] is None else f"{r['probability']:.3f}",
            "-" if r["agrees"] is None else ("yes" if r["agrees"] else "NO"),
            r["limit"],
        )
    Console(stderr=True).print(table)
    summary = {
        "n_pairs": len(scored),
        "n_agree": n_agree,
        "fraction_agree": round(n_agree / len(scored), 4) if scored else None,
        "confident_false": sum(r["confident_false"] for r in pairs),
        "not_modelled": [f"{r['planet']}: {r['molecule']}" for r in pairs if r["agrees"] is None],
        "pairs": pairs,
    }
    if args.out:
        write_json(
            args.out,
            {**summary, "seconds": round(time.perf_counter() - t0, 1), "provenance": provenance()},
        )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
