"""Benchmark: molecule probabilities on real published transmission spectra against the papers.

    python benchmarks/molecules_real.py --quick [--model DIR] [--out real.json]

For every (planet, molecule) pair whose paper states a detection or a non-detection, the
shipped classifier (any binning; bins beyond its 0.46-12.4 um axis are left out and counted)
gives a probability; it agrees when p >= 0.7 for a detection and p <= 0.3 for a non-detection.
A confident false detection is p >= 0.9 where the paper rules the molecule out.

Pairs the bins cannot test (`atmospec.molecules.testability`: no opacity for the molecule here,
as for SO2 and NH3, or no bin covering its bands) are listed as "not testable" with the reason
and counted apart, never dropped: agreement is reported over the testable pairs
(`fraction_agree`) and over all pairs (`fraction_agree_all`, untestable ones counting as not
agreeing). Each pair also says what limits the answer (bin widths over the alkali doublets, the
median error in the bands) and how strongly these data ask for the molecule: the forward model
fitted to the same bins (`atmospec.molecules.bestfit`), its chi-square rise when the molecule
is removed and the rest refitted (`data_dchi2`). Where that rise is below the classifier's
detection threshold (25) for a published detection, the detection rests on other data or
analyses than these bins and the forward model (`data_support` false); agreement over the pairs
where the fitted model agrees with the paper is `fraction_agree_data_supported`. A rise of
16-49 (4-7 sigma) is named "at the detection threshold", and a fit at chi2/dof above 2
(`fit_chi2_dof`) a forward-model misfit. `p_from_fit` turns that rise into the probability a
calibrated answer to the classifier's own question (a 5-sigma feature) would give from the fit
alone (:func:`p_from_fit`); `n_agree_from_fit` counts the pairs it already puts on the paper's
side: about what a calibrated classifier of the same forward model is expected to reach on
these bins (a single-amplitude approximation, not a bound).
Target: >= 85 % of testable pairs agree, none confidently wrong.

The last printed line is one JSON object:
{"n_pairs_all": N, "n_pairs": n, "n_agree": k, "fraction_agree": k/n,
 "fraction_agree_ci95": [lo, hi] (Clopper-Pearson, over the n testable pairs),
 "fraction_agree_all": k/N,
 "n_data_supported": m, "fraction_agree_data_supported": f, "n_agree_from_fit": a,
 "fraction_agree_from_fit": a/n, "confident_false": c, "not_testable": [...], "pairs": [...]}
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

import numpy as np

if TYPE_CHECKING:
    from atmospec.molecules.spectrum import TransmissionSpectrum


class _ReadOptions(TypedDict, total=False):
    """Keyword arguments for ``read_transmission`` that a case needs."""

    width: str


class _Pair(TypedDict):
    """One (planet, molecule) row of the results."""

    planet: str
    molecule: str
    published: str
    probability: float | None
    interval: list[float] | None
    agrees: bool | None
    testable: bool
    data_dchi2: float | None
    data_support: bool | None
    confident_false: bool
    p_from_fit: float | None
    limit: str
    fit_chi2_dof: float
    bins_used: int
    bins_left_out: int
    reference: str


# (planet, files, reading options, {molecule: True detected / False not detected}, reference)
CASES: list[tuple[str, list[str], _ReadOptions, dict[str, bool], str]] = [
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


def _limit(
    spec: TransmissionSpectrum,
    molecule: str,
    testable: bool,
    reason: str,
    dchi2: float | None,
    chi2_dof: float | None = None,
) -> str:
    """What limits the answer: not testable (opacity, coverage), resolution, the data, S/N.

    Two limits of the data themselves are named: a chi-square rise between 4 and 7 sigma
    (16-49) is "at the detection threshold" (the classifier's label asks for a rise of 25,
    5 sigma, of the noiseless feature, so noise alone moves such a pair across it and
    probabilities near 0.5 are the calibrated answer), and a best fit with chi2/dof above 2
    is a forward-model misfit (the classifier is trained on the same forward model and white
    noise at the stated errors, so structure it cannot fit lowers its confidence).
    """
    from atmospec.molecules.dataset import DETECTION_THRESHOLD
    from atmospec.molecules.testability import BANDS

    if not testable:
        return reason
    lam, half, err = spec.wavelength, spec.half_width, spec.error
    inside = np.zeros(lam.size, bool)
    for lo, hi in BANDS[molecule]:
        inside |= (lam + half > lo) & (lam - half < hi)
    text = f"S/N: median error {np.median(err[inside]) * 1e6:.0f} ppm in its bands"
    if molecule in ("Na", "K"):
        text = (
            f"resolution: bins >= {np.min(2 * half[inside]) * 1e3:.1f} nm over the doublet; {text}"
        )
    if dchi2 is not None:
        text += f"; data: chi2 +{dchi2:.1f} without it"
        if 16.0 <= dchi2 < 49.0:
            text += (
                f" ({np.sqrt(dchi2):.1f} sigma: at the detection threshold, "
                f"{np.sqrt(DETECTION_THRESHOLD):.0f} sigma)"
            )
    if chi2_dof is not None and chi2_dof > 2.0:
        text += f"; forward-model misfit: best fit chi2/dof {chi2_dof:.1f}"
    return text


def p_from_fit(dchi2: float | None) -> float | None:
    """The probability that the molecule's feature passes the classifier's detection threshold,
    from the forward-model fit alone: with one amplitude, ``sqrt(dchi2)`` of the refit scatters
    by 1 about the feature's true significance, so ``P = Phi(sqrt(dchi2) - sqrt(threshold))``
    (flat prior on the significance). It is what a calibrated classifier answering the same
    question with the same model would say, so the pairs it already puts on the wrong side
    of 0.7 / 0.3 are limited by the data, the forward model or the 5-sigma definition, not by
    the network.

    Example:
        >>> p_from_fit(25.0), round(p_from_fit(36.0), 3), p_from_fit(None) is None
        (0.5, 0.841, True)
    """
    from scipy.stats import norm

    from atmospec.molecules.dataset import DETECTION_THRESHOLD

    if dchi2 is None:
        return None
    return float(norm.cdf(np.sqrt(max(dchi2, 0.0)) - np.sqrt(DETECTION_THRESHOLD)))


def agreement_interval(k: int, n: int) -> list[float] | None:
    """The exact (Clopper-Pearson) 95 % interval of an agreeing fraction k / n: what so few
    pairs allow the true fraction to be.

    Example:
        >>> [round(x, 3) for x in agreement_interval(10, 18)]
        [0.308, 0.785]
    """
    if n <= 0:
        return None
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    return [float(ci.low), float(ci.high)]


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
    from atmospec.molecules.bestfit import best_fit, removal_dchi2
    from atmospec.molecules.dataset import build_simulator
    from atmospec.molecules.io import combine, read_transmission
    from atmospec.molecules.pipeline import load_classifier
    from atmospec.molecules.testability import testability

    shared = shared_data()
    if shared is None:
        print("the shared data folder (published spectra) is absent", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    clf = load_classifier(args.model)
    sim = build_simulator(t_max=2600.0)
    n_mc = 20 if args.quick else 100
    pairs: list[_Pair] = []
    for planet, files, options, truth, ref in CASES:
        spec = combine([read_transmission(shared / "transmission" / f, **options) for f in files])
        lo, hi = clf.coverage
        used = spec.within(lo, hi)
        probs = clf.predict_spectrum(used, n_mc=n_mc)
        fit = best_fit(used, sim)
        support = removal_dchi2(used, fit)  # what these data ask for
        chi2_dof = fit.chi2 / max(fit.dof, 1)
        for mol, detected in truth.items():
            test = testability(used, mol, modelled=set(probs), dchi2_refit=support)
            p = probs[mol]["probability"] if mol in probs else None
            agrees = None
            if p is not None and test.testable:
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
                    "testable": test.testable,
                    "data_dchi2": None if test.dchi2_refit is None else round(test.dchi2_refit, 1),
                    "data_support": None
                    if test.dchi2_refit is None
                    else bool(test.dchi2_refit >= 25.0) == detected,
                    "confident_false": bool(p is not None and not detected and p >= 0.9),
                    "p_from_fit": None
                    if test.dchi2_refit is None or not test.testable
                    else round(p_from_fit(test.dchi2_refit) or 0.0, 3),
                    "limit": _limit(
                        used, mol, test.testable, test.reason, test.dchi2_refit, chi2_dof
                    ),
                    "fit_chi2_dof": round(chi2_dof, 2),
                    "bins_used": len(used),
                    "bins_left_out": len(spec) - len(used),
                    "reference": ref,
                }
            )
    scored = [r for r in pairs if r["agrees"] is not None]
    n_agree = sum(bool(r["agrees"]) for r in scored)
    supported = [r for r in scored if r["data_support"]]
    n_agree_supported = sum(bool(r["agrees"]) for r in supported)

    def fit_agrees(r: _Pair) -> bool:
        q = r["p_from_fit"]
        return q is not None and (q >= 0.7 if r["published"] == "detected" else q <= 0.3)

    n_agree_fit = sum(fit_agrees(r) for r in scored)
    table = Table(title="published detections vs the classifier (agree: p >= 0.7 / <= 0.3)")
    for col in ("planet", "molecule", "paper", "p", "p from fit", "agrees", "what limits it"):
        table.add_column(col)
    for r in pairs:
        table.add_row(
            r["planet"],
            r["molecule"],
            r["published"],
            "-" if r["probability"] is None else f"{r['probability']:.3f}",
            "-" if r["p_from_fit"] is None else f"{r['p_from_fit']:.2f}",
            "not testable" if r["agrees"] is None else ("yes" if r["agrees"] else "NO"),
            r["limit"],
        )
    console = Console(stderr=True)
    console.print(table)

    def frac(k: int, n: int) -> float | None:
        return round(k / n, 4) if n else None

    ci95 = agreement_interval(n_agree, len(scored))
    summary = {
        "n_pairs_all": len(pairs),
        "n_pairs": len(scored),
        "n_agree": n_agree,
        "fraction_agree": frac(n_agree, len(scored)),
        "fraction_agree_ci95": ci95,
        "fraction_agree_all": frac(n_agree, len(pairs)),
        "n_data_supported": len(supported),
        "fraction_agree_data_supported": frac(n_agree_supported, len(supported)),
        "n_agree_from_fit": n_agree_fit,
        "fraction_agree_from_fit": frac(n_agree_fit, len(scored)),
        "confident_false": sum(r["confident_false"] for r in pairs),
        "not_testable": [
            f"{r['planet']}: {r['molecule']} ({r['limit']})" for r in pairs if r["agrees"] is None
        ],
        "pairs": pairs,
    }
    console.print(
        f"agree: {n_agree}/{len(scored)} testable pairs ({summary['fraction_agree']}), "
        f"{n_agree}/{len(pairs)} of all pairs ({summary['fraction_agree_all']}; "
        f"{len(pairs) - len(scored)} not testable, counted as not agreeing), "
        f"{n_agree_supported}/{len(supported)} where the forward model fitted to these bins "
        "agrees with the paper"
    )
    ci_lo, ci_hi = ci95 or (float("nan"), float("nan"))
    target_side = "inside" if ci_lo <= 0.85 <= ci_hi else "outside"
    console.print(
        f"95 % interval of the agreeing fraction over {len(scored)} pairs (Clopper-Pearson): "
        f"{ci_lo:.2f}-{ci_hi:.2f}; the 0.85 target is {target_side} it"
    )
    console.print(
        f"from the forward-model fit alone (p from fit, the same 5-sigma question): "
        f"{n_agree_fit}/{len(scored)} testable pairs would agree"
    )
    if args.out:
        write_json(
            args.out,
            {**summary, "seconds": round(time.perf_counter() - t0, 1), "provenance": provenance()},
        )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
