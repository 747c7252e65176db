"""Benchmark: calibration, agreement with nested sampling and speed of the shipped NPE.

    python benchmarks/posteriors.py --quick            # < 5 min, shipped npe_dback24
    python benchmarks/posteriors.py --out bench.json   # more tests and spectra
    python benchmarks/posteriors.py --train            # first retrain from configs/npe_dback24.toml

Prints a table and, as the very last line, one JSON object:
{"coverage": {"<level>": f, ...}, "max_coverage_error": f, "median_jsd_bits": f,
 "posterior_ms": f, "nested_seconds": f}

- coverage: expected coverage of the joint highest-posterior-density regions at 10 levels
  (0.1 ... 0.95) on held-out simulated test spectra (test seed stream, parameters uniform over
  the dback24 box, S/N drawn over the model's training range);
- median_jsd_bits: median over parameter x spectrum of the Jensen-Shannon divergence (bits)
  between the NPE's 1-D marginals and dynesty nested sampling's on the same spectrum,
  interpolated grid, noise and priors (atmospec.fitting.fit_nested);
- posterior_ms: wall time of one 10,000-sample NPE posterior (best of 9 repeats with 1 and
  with 2 torch threads);
- nested_seconds: median wall time of one nested-sampling posterior.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small run (< 5 minutes)")
    ap.add_argument("--out", type=Path, default=None, help="write the result JSON here")
    ap.add_argument("--model", default="npe_dback24", help="shipped NPE name or model folder")
    ap.add_argument("--train", action="store_true", help="retrain from --config first")
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "npe_dback24.toml")
    ap.add_argument("--n-tests", type=int, default=None)
    ap.add_argument("--n-samples", type=int, default=None)
    ap.add_argument("--n-compare", type=int, default=None)
    ap.add_argument("--nlive", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1, help="torch threads for the NPE")
    ap.add_argument("--workers", type=int, default=2, help="processes for nested sampling")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument(
        "--nested-cache",
        type=Path,
        default=None,
        help="npz file of nested-sampling results to reuse (written when absent); valid "
        "for the same test spectra (same noise config, seed, n-compare and nlive)",
    )
    args = ap.parse_args(argv)
    if args.quiet:  # progress bars follow the atmospec logger's level
        import logging

        logging.getLogger("atmospec").setLevel(logging.WARNING)

    import torch

    from atmospec.models import load_model
    from atmospec.posteriors.compare import compare, model_error_name
    from atmospec.posteriors.pipeline import _simulator, calibrate_model, test_split, train_npe

    torch.set_num_threads(args.threads)
    n_tests = args.n_tests or (1000 if args.quick else 4000)
    n_samples = args.n_samples or (500 if args.quick else 1000)
    n_compare = args.n_compare or (20 if args.quick else 40)
    nlive = args.nlive or (100 if args.quick else 250)
    t_start = time.perf_counter()

    if args.train:
        import tempfile

        folder = Path(tempfile.mkdtemp(prefix="npe_bench_"))
        est, _ = train_npe(args.config, folder, calibrate=False)
    else:
        est = load_model(args.model, kind="npe")

    # 1. calibration on the held-out simulation split (with the model-error realisations the
    # NPE was trained with, if any: its own simulator), and without them (exact grid spectra)
    rep = calibrate_model(est, n_tests=n_tests, n_samples=n_samples, seed=args.seed)
    clean = None
    if est.meta_.get("model_error"):
        clean = calibrate_model(
            est, n_tests=n_tests, n_samples=n_samples, seed=args.seed, model_error=False
        )

    # 2. speed of one 10,000-sample posterior (best of 9; first call warms up)
    from atmospec.posteriors.pipeline import NPEConfig

    cfg_dict = est.meta_.get("config", {})
    cfg = NPEConfig(**{k: v for k, v in cfg_dict.items() if k in NPEConfig.__dataclass_fields__})
    cfg.wave_range = tuple(cfg.wave_range)  # type: ignore[assignment]
    sim = _simulator(cfg)
    theta, noisy, sigma = test_split(est, sim, max(n_compare, 1), args.seed + 1)
    spectrum = sim.spectrum(noisy[0], sigma[0], name="timing")
    wall: dict[int, list[float]] = {}
    cpu: list[float] = []
    for threads in (1, 2):  # the machine budget is 2 cores; report the better setting
        torch.set_num_threads(threads)
        est.sample(spectrum, n=10_000, seed=0)  # warm-up
        wall[threads] = []
        for i in range(9):
            c0, w0 = time.process_time(), time.perf_counter()
            est.sample(spectrum, n=10_000, seed=i)
            wall[threads].append(1e3 * (time.perf_counter() - w0))
            if threads == 1:
                cpu.append(1e3 * (time.process_time() - c0))
    torch.set_num_threads(args.threads)
    posterior_ms = min(min(v) for v in wall.values())

    # 3. side by side with nested sampling on the same grid and noise
    spectra = [sim.spectrum(noisy[i], sigma[i], name=f"test{i:03d}") for i in range(n_compare)]
    disc = model_error_name(est)
    refs = _load_cache(args.nested_cache, n_compare, nlive, args.seed, disc)
    if refs is None and args.nested_cache is not None:
        refs = _nested_all(spectra, sim.grid.name, list(est.param_names_), nlive, args, disc)
        _save_cache(args.nested_cache, refs, nlive, args.seed, disc)
    table, summary = compare(
        est,
        spectra,
        sim.grid,
        truths=theta[:n_compare],
        nlive=nlive,
        seed=args.seed,
        workers=args.workers,
        references=refs,
    )
    nested_seconds = float(table["nested_seconds"].median())

    result = {
        "coverage": {k: round(v, 4) for k, v in rep.hpd.items()},
        "max_coverage_error": round(rep.max_error, 4),
        "median_jsd_bits": round(summary["median_jsd_bits"], 4),
        "posterior_ms": round(posterior_ms, 2),
        "nested_seconds": round(nested_seconds, 2),
    }
    details = {
        "coverage_tarp": rep.tarp,
        "coverage_marginal": rep.marginal,
        "coverage_regions": {k: v["max_error"] for k, v in rep.regions.items()},
        "model_error": est.meta_.get("model_error"),
        "without_model_error": None
        if clean is None
        else {"coverage_hpd": clean.hpd, "coverage_tarp": clean.tarp, "max_error": clean.max_error},
        "binomial_sd": rep.binomial_sd,
        "n_tests": rep.n_tests,
        "n_samples": rep.n_samples,
        "compare": {k: v for k, v in summary.items()},
        "posterior_ms_by_threads": {k: [round(x, 1) for x in v] for k, v in wall.items()},
        "posterior_cpu_ms_median": statistics.median(cpu),
        "nlive": nlive,
        "threads": args.threads,
        "total_seconds": time.perf_counter() - t_start,
        "model": str(args.model),
        "snr_range": list(est.noise.snr_range),
    }
    _print_table(result, details, table, list(est.param_names_))
    if args.out is not None:
        from atmospec._fileio import write_json

        write_json(args.out, {**result, "details": details})
    print(json.dumps(result))
    return result


def _nested_all(
    spectra: list, grid: str, names: list[str], nlive: int, args, discrepancy: str
) -> list:
    from concurrent.futures import ProcessPoolExecutor

    from atmospec.posteriors.compare import nested_reference

    with ProcessPoolExecutor(max_workers=max(1, args.workers)) as pool:
        futs = [
            pool.submit(
                nested_reference,
                sp,
                grid,
                names,
                nlive=nlive,
                seed=args.seed + i,
                discrepancy=discrepancy,
            )
            for i, sp in enumerate(spectra)
        ]
        return [f.result() for f in futs]


def _load_cache(path: Path | None, n: int, nlive: int, seed: int, disc: str) -> list | None:
    if path is None or not path.is_file():
        return None
    data = np.load(path)
    if int(data["n"]) != n or int(data["nlive"]) != nlive or int(data["seed"]) != seed:
        return None
    cached = str(data["discrepancy"]) if "discrepancy" in data else ""
    if cached != disc:
        return None
    return [(data[f"s{i}"], float(data["seconds"][i]), float(data["logz"][i])) for i in range(n)]


def _save_cache(path: Path, refs: list, nlive: int, seed: int, disc: str) -> None:
    from atmospec._fileio import atomic_path

    arrays = {f"s{i}": r[0] for i, r in enumerate(refs)}
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(
            fh,
            n=len(refs),
            nlive=nlive,
            seed=seed,
            discrepancy=disc,
            seconds=np.array([r[1] for r in refs]),
            logz=np.array([r[2] for r in refs]),
            **arrays,
        )


def _print_table(result: dict, details: dict, table, names: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console()
    t = Table(title="NPE expected coverage (held-out simulations)")
    t.add_column("level")
    t.add_column("HPD")
    t.add_column("TARP")
    for n in names:
        t.add_column(n)
    clean = details.get("without_model_error")
    if clean:
        t.add_column("HPD, no model error")
    for lev, cov in result["coverage"].items():
        t.add_row(
            lev,
            f"{cov:.3f}",
            f"{details['coverage_tarp'][lev]:.3f}",
            *[f"{details['coverage_marginal'][n][lev]:.3f}" for n in names],
            *([f"{clean['coverage_hpd'][lev]:.3f}"] if clean else []),
        )
    con.print(t)
    con.print(
        f"max |coverage - level| (HPD) = {result['max_coverage_error']:.3f}; binomial sd "
        f"{details['binomial_sd']:.3f} with {details['n_tests']} tests"
    )
    t2 = Table(title=f"NPE vs nested sampling ({len(table)} spectra, nlive={details['nlive']})")
    t2.add_column("parameter")
    t2.add_column("median JSD [bits] NPE")
    t2.add_column("median JSD [bits] NPE+IS")
    t2.add_column("68% overlap")
    for n in names:
        t2.add_row(
            n,
            f"{table[f'{n}_jsd_bits'].median():.4f}",
            f"{table[f'{n}_jsd_bits_is'].median():.4f}" if f"{n}_jsd_bits_is" in table else "-",
            f"{table[f'{n}_overlap68'].mean():.0%}",
        )
    con.print(t2)
    comp = details["compare"]
    if "median_jsd_bits_is" in comp:
        con.print(
            f"median JSD {comp['median_jsd_bits']:.4f} bits (importance-corrected "
            f"{comp['median_jsd_bits_is']:.4f}; median IS efficiency "
            f"{comp['is_efficiency_median']:.2f})"
        )
    else:
        con.print(
            f"median JSD {comp['median_jsd_bits']:.4f} bits against nested sampling with the "
            "NPE's model error (no importance correction: its grid likelihood has none)"
        )
    con.print(
        f"time per posterior: NPE {result['posterior_ms']:.1f} ms for 10,000 samples "
        f"(CPU {details['posterior_cpu_ms_median']:.1f} ms), nested sampling "
        f"{result['nested_seconds']:.1f} s; ratio "
        f"{1e3 * result['nested_seconds'] / max(result['posterior_ms'], 1e-9):.0f}x"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
