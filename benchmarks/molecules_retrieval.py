"""Benchmark: abundance posteriors of transmission spectra, NPE against nested sampling.

    python benchmarks/molecules_retrieval.py --quick [--out DIR]

For each real spectrum (WASP-39b JWST multi-instrument and WASP-80b NIRCam F322W2; without
--quick also WASP-107b NIRCam F322W2+F444W), with the planet's literature gravity and stellar
radius:

1. an NPE is trained for the spectrum's bins and error bars
   (:func:`atmospec.molecules.abundances.train_abundance_npe`, planets drawn from the
   retrieval prior, same forward model and binning as the likelihood), and its latent
   temperature is fitted on a second set of simulations (its own seed stream);
2. its coverage is measured on a third set of held-out simulations (another seed stream),
   untempered (tau = 1, the NPE as trained) and at the fitted tau, side by side: SBC ranks
   (marginal central intervals, mean over parameters), TARP and HPD expected coverage at
   68 % and 95 %; target within +-3 points;
3. dynesty nested sampling runs on the real spectrum with the same likelihood (offsets
   marginalised); the fraction of parameters whose NPE and nested 68 % intervals overlap is
   reported (target >= 0.9);
4. the Bayes factor of molecules removed one at a time (``ln B``, equivalent sigma) is printed
   beside the shipped any-binning classifier's probability.

Wall times are measured on a shared machine and are noisy. The last printed line is one JSON
object with keys ``sbc_coverage_68``, ``sbc_coverage_95``, ``tarp_coverage_68``,
``tarp_coverage_95``, ``hpd_coverage_68``, ``hpd_coverage_95`` (calibrated NPE; the same keys
ending in ``_untempered`` for tau = 1), ``nested_overlap_fraction``, ``wasp39b_lnB_CO2``, ...
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np

if TYPE_CHECKING:
    from atmospec.molecules.spectrum import TransmissionSpectrum


class _PlanetRequired(TypedDict):
    files: list[str]
    gravity: float
    star_radius: float


class _Planet(_PlanetRequired, total=False):
    """A planet's spectrum files, literature gravity and stellar radius, reading options."""

    width: str


# literature gravity (m/s^2, from mass and radius) and stellar radius (R_sun)
PLANETS: dict[str, _Planet] = {
    # Faedi et al. 2011 / Mancini et al. 2018: 0.28 M_J, 1.27 R_J; R_s 0.939
    "wasp39b": {"files": ["wasp39b_jwst_transit.dat"], "gravity": 4.3, "star_radius": 0.939},
    # Triaud et al. 2015: 0.54 M_J, 0.95 R_J; R_s 0.586
    "wasp80b": {
        "files": ["WASP-80b_NIRCam-F322W2.csv"],
        "gravity": 14.8,
        "star_radius": 0.586,
        "width": "contiguous",
    },
    # Piaulet et al. 2021: 0.096 M_J, 0.94 R_J; R_s 0.67
    "wasp107b": {
        "files": ["WASP-107b_NIRCam-F322W2.tsv", "WASP-107b_NIRCam-F444W.tsv"],
        "gravity": 2.7,
        "star_radius": 0.67,
    },
}
EVIDENCE = {"wasp39b": ("CO2", "H2O", "CH4", "CO", "Na", "K"), "wasp80b": ("CH4", "H2O", "CO2")}
QUICK_EVIDENCE = {"wasp39b": ("CO2", "CH4", "CO"), "wasp80b": ("CH4", "H2O")}
COLUMNS = (
    "sbc_coverage_68",
    "sbc_coverage_95",
    "worst_marginal_error",
    "tarp_coverage_68",
    "tarp_coverage_95",
    "hpd_coverage_68",
    "hpd_coverage_95",
)


def _summary(d: dict[str, Any]) -> dict[str, Any]:
    """The benchmark's coverage numbers from a calibration report's dictionary."""
    marg = d["coverage_marginal"].values()
    return {
        "sbc_coverage_68": float(np.mean([c["0.68"] for c in marg])),
        "sbc_coverage_95": float(np.mean([c["0.95"] for c in marg])),
        "worst_marginal_error": max(
            max(abs(c["0.68"] - 0.68), abs(c["0.95"] - 0.95)) for c in marg
        ),
        "tarp_coverage_68": d["coverage_tarp"]["0.68"],
        "tarp_coverage_95": d["coverage_tarp"]["0.95"],
        "hpd_coverage_68": d["coverage_hpd"]["0.68"],
        "hpd_coverage_95": d["coverage_hpd"]["0.95"],
        "uniformity": d["meta"]["sbc_rank_uniformity_p"],
    }


def _spectrum(shared: Path, planet: str) -> TransmissionSpectrum:
    from atmospec.molecules.io import combine, read_transmission

    cfg = PLANETS[planet]
    t = shared / "transmission"
    specs = [read_transmission(t / f, width=cfg.get("width")) for f in cfg["files"]]
    return combine(specs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="two planets, fewer runs (minutes)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="folder for per-planet results")
    ap.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="keep the trained NPEs here and reuse them on a rerun (default: train afresh)",
    )
    ap.add_argument(
        "--recalibrate",
        action="store_true",
        help="fit the latent temperature again on a cached NPE (after a change of the fit)",
    )
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from atmospec.data import shared_data
    from atmospec.molecules.abundances import calibrate, coverage, load_or_train
    from atmospec.molecules.dataset import build_simulator
    from atmospec.molecules.nested import detection_significance
    from atmospec.molecules.retrieval import Retrieval
    from atmospec.molecules.retrieve import RetrievalResult, classifier_probabilities

    shared = shared_data()
    if shared is None:
        print("the shared real data are absent; nothing to benchmark", file=sys.stderr)
        return 2
    quick = args.quick
    planets = ["wasp39b", "wasp80b"] if quick else ["wasp39b", "wasp80b", "wasp107b"]
    # epochs fix the training (the time cap is only a safety net, so results do not depend on load)
    n_sim, minutes, epochs = (10000, 15.0, 20) if quick else (20000, 40.0, 40)
    n_tests, nlive = (1000, 75) if quick else (2000, 150)
    evidence = QUICK_EVIDENCE if quick else EVIDENCE
    sim = build_simulator(t_max=2600.0)
    out: dict[str, object] = {"quick": quick, "seed": args.seed}
    overlaps: list[bool] = []
    cov_rows = []
    tmp = tempfile.mkdtemp(prefix="molecules-retrieval-")
    for planet in planets:
        cfg = PLANETS[planet]
        spec = _spectrum(shared, planet)
        ret = Retrieval.build(
            spec, sim, gravity=float(cfg["gravity"]), star_radius_rsun=float(cfg["star_radius"])
        )
        t0 = time.perf_counter()
        est = load_or_train(
            ret,
            folder=args.cache if args.cache is not None else Path(tmp) / planet,
            n=n_sim,
            seed=args.seed,
            max_minutes=minutes,
            max_epochs=epochs,
        )
        if args.recalibrate:
            calibrate(est, ret, seed=args.seed)
        train_s = time.perf_counter() - t0
        cal = est.meta_["calibration"]
        # the third set: same seed for both temperatures (same planets, same latent draws)
        summary = {}
        for label, tau in (("untempered", 1.0), ("calibrated", est.temperature_)):
            rep = coverage(
                est, ret, n_tests=n_tests, n_samples=300, seed=args.seed + 100, temperature=tau
            )
            summary[label] = _summary(rep.to_dict())
        d = summary["calibrated"]
        uni = d["uniformity"]
        out[f"{planet}_sbc_uniformity_min_p"] = round(min(uni.values()), 4)
        out[f"{planet}_temperature"] = est.temperature_
        out[f"{planet}_calibration_n"] = cal["n_calibration"]
        out[f"{planet}_calibration_seed"] = cal["seed"]
        cov_rows.append([summary[k][c] for k in ("calibrated", "untempered") for c in COLUMNS])
        t1 = time.perf_counter()
        draws = est.sample(ret.data_residual, spec.error, n=5000, seed=args.seed)
        npe_ms = 1e3 * (time.perf_counter() - t1)
        full, table = detection_significance(
            ret, evidence.get(planet, ()), nlive=nlive, seed=args.seed
        )
        res = RetrievalResult(spec.name, ret.param_names, {"npe": draws, "nested": full.samples})
        ov = res.overlap68()
        overlaps += list(ov.values())
        probs = classifier_probabilities(ret.spec, ret.molecules)
        print(f"\n== {planet}: {len(spec)} bins, {len(spec.instruments)} instrument(s)")
        print(
            f"NPE: {n_sim} planets, trained in {train_s:.0f} s; 5000 draws in {npe_ms:.0f} ms; "
            f"nested: {full.ncall} calls, {full.wall_s:.0f} s, ln Z = {full.logz:.1f}"
        )
        print(
            f"latent temperature {est.temperature_:.2f} fitted on {cal['n_calibration']} "
            f"calibration simulations (seed {cal['seed']}, disjoint from training and test); "
            f"coverage on {n_tests} further held-out simulations:"
        )
        print(f"{'':22s} {'tau = 1 (as trained)':>22s} {f'tau = {est.temperature_:.2f}':>22s}")
        for c in COLUMNS:
            a, b = summary["untempered"][c], summary["calibrated"][c]
            print(f"{c:22s} {a:22.3f} {b:22.3f}")
        print(
            f"SBC rank uniformity (chi-square, 10 bins, calibrated) smallest p "
            f"{min(uni.values()):.3g} ({min(uni, key=uni.get)})"
        )
        iv = res.intervals
        print(f"{'parameter':18s} {'NPE 68 %':>24s} {'nested 68 %':>24s} overlap")
        for p in ret.param_names:
            a, b = iv["npe"][p], iv["nested"][p]
            print(
                f"{p:18s} {a['p16']:11.4g}..{a['p84']:<11.4g} {b['p16']:11.4g}..{b['p84']:<11.4g}"
                f" {ov[p]}"
            )
        print(f"{'molecule':8s} {'ln B':>14s} {'sigma':>6s} {'classifier p':>13s}")
        for m in ret.molecules:
            prob = probs[m]
            ptxt = f"{prob:.3f}" if isinstance(prob, float) else str(prob)[:40]
            if m in table:
                v = table[m]
                print(
                    f"{m:8s} {v['ln_B']:8.1f} +- {v['ln_B_err']:3.1f} {v['sigma']:6.1f} {ptxt:>13s}"
                )
                out[f"{planet}_lnB_{m}"] = round(v["ln_B"], 2)
                out[f"{planet}_sigma_{m}"] = round(v["sigma"], 2)
            else:
                print(f"{m:8s} {'(not run)':>14s} {'':6s} {ptxt:>13s}")
            if isinstance(prob, float):
                out[f"{planet}_classifier_{m}"] = round(prob, 3)
        out[f"{planet}_overlap_fraction"] = round(float(np.mean(list(ov.values()))), 3)
        for label, suffix in (("calibrated", ""), ("untempered", "_untempered")):
            for c in COLUMNS:
                out[f"{planet}_{c}{suffix}"] = round(summary[label][c], 3)
        out[f"{planet}_npe_train_s"] = round(train_s, 1)
        out[f"{planet}_nested_s"] = round(full.wall_s, 1)
        if args.out is not None:
            res.evidence = table
            res.write(args.out / planet)
    shutil.rmtree(tmp, ignore_errors=True)
    c = np.array(cov_rows).mean(axis=0)
    k = len(COLUMNS)
    for suffix, vals in (("", c[:k]), ("_untempered", c[k:])):
        for name, v in zip(COLUMNS, vals, strict=True):
            if name != "worst_marginal_error":
                out[f"{name}{suffix}"] = round(float(v), 3)
    out["nested_overlap_fraction"] = round(float(np.mean(overlaps)), 3)

    def within(keys: tuple[str, ...], suffix: str = "") -> bool:
        return all(
            abs(float(out[f"{key}{suffix}"]) - float(key[-2:]) / 100) <= 0.03  # type: ignore[arg-type]
            for key in keys
        )

    sbc_tarp = ("sbc_coverage_68", "sbc_coverage_95", "tarp_coverage_68", "tarp_coverage_95")
    joint = (*sbc_tarp, "hpd_coverage_68", "hpd_coverage_95")
    out["coverage_within_3pts"] = within(sbc_tarp)
    out["joint_coverage_within_3pts"] = within(joint)
    out["coverage_within_3pts_untempered"] = within(sbc_tarp, "_untempered")
    out["joint_coverage_within_3pts_untempered"] = within(joint, "_untempered")
    out["overlap_passes"] = bool(out["nested_overlap_fraction"] >= 0.9)  # type: ignore[operator]
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
