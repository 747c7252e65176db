"""Benchmark of the transit detrenders on simulated Ariel-like planets (issue 7).

Simulates training planets (in memory) for the CNNs and the score's reference, and test
planets written to disk in the Ariel raw format, read back and calibrated, then measures per
method the Ariel 2024 GLL score, the depth RMSE, the 68% coverage and the seconds per planet.
Every method's sigma model is fitted on calibration planets of the training stream (never a
test planet): the likelihood fit (own, white-light and floor terms), then one factor that
brings the calibration planets' 68 % coverage to 68 % (``target="coverage"`` of
:func:`~atmospec.transit.detrenders.base.sigma_model_from`). The CNNs carry theirs in their
saved record, read back for the test planets. The test set's coverage is given with its
standard error from a bootstrap over planets (the bins of a planet share its white-light
error, so planets, not bins, are the independent draws); the likelihood-only calibration's
numbers are kept in the JSON file for comparison.
With ``--shipped`` the CNNs shipped with atmospec (``atmospec/pretrained/transit``, trained by
``atmospec transit train-cnn`` on their own planets and calibrated there) are scored on the
same test planets as ``cnn1d_shipped`` / ``cnn2d_shipped``, with the sigma model they carry.
The last printed line is one JSON object: {"methods": {name: {gll_score, rmse_ppm,
coverage68, seconds_per_planet}}, "transit_snr_min", "planets_below_detection"}. Every
method reduces every test planet (the transit-detection gate is off so the methods are
compared on the same planets); the detection S/N of each planet is recorded.

    python benchmarks/transit.py --quick --out transit.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

METHODS = ("poly", "pca", "gp", "cnn1d", "cnn2d")


def _init_worker() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)


def _train_item(args: tuple[int, int, dict[str, Any]]) -> tuple[Any, np.ndarray]:
    from atmospec.transit.calibration import calibrate
    from atmospec.transit.detrenders.cnn import cnn_features
    from atmospec.transit.simulator import SimulationConfig, simulate_planet

    seed, i, cfg = args
    raw, truth = simulate_planet(str(i), SimulationConfig(**cfg), np.random.default_rng([seed, i]))
    return cnn_features(calibrate(raw)), truth.depth


def _spec(r: dict[str, Any]) -> Any:
    """A calibration planet's reduction as a DepthSpectrum with its own / white-light sigmas."""
    from atmospec.transit.detrenders.base import DepthSpectrum

    n = len(r["depth"])
    return DepthSpectrum(
        np.arange(n, dtype=float),
        np.asarray(r["depth"]),
        np.hypot(r["own"], r["shared"]),
        meta={"sigma_relative": np.asarray(r["own"]), "white_depth_sigma": float(r["shared"][0])}
        if np.any(np.asarray(r["shared"]) > 0)
        else {},
    )


def _cal_item(args: tuple[int, int, dict[str, Any], str, list[str]]) -> dict[str, Any]:
    """A planet of the training stream (never a test planet), reduced by every method with
    sigma_scale = 1: the data on which each method's sigma scale is calibrated."""
    from atmospec.transit.calibration import calibrate
    from atmospec.transit.simulator import SimulationConfig, simulate_planet

    seed, i, cfg, model_root, methods = args
    raw, truth = simulate_planet(str(i), SimulationConfig(**cfg), np.random.default_rng([seed, i]))
    out = _reduce(calibrate(raw), 0.0, model_root, methods, {}, unit_sigma=True)
    out["truth"] = truth.depth
    return out


def _test_item(
    args: tuple[str, str, list[str], dict[str, tuple[float, float, float]]],
) -> dict[str, Any]:
    from atmospec.transit.calibration import calibrate
    from atmospec.transit.io import read_planet

    planet_dir, model_root, methods, scales = args
    t = time.perf_counter()
    obs = calibrate(read_planet(planet_dir))
    t_cal = time.perf_counter() - t
    out = _reduce(obs, t_cal, model_root, methods, scales)
    out["planet_id"] = Path(planet_dir).name
    return out


def _reduce(
    obs: Any,
    t_cal: float,
    model_root: str,
    methods: list[str],
    scales: dict[str, tuple[float, float, float]],
    unit_sigma: bool = False,
) -> dict[str, Any]:
    """Reduce one planet by every method (``unit_sigma``: the CNNs' sigma models reset, for
    the calibration planets). The CNNs reuse the GP detrender's common-mode fit
    (their white-light anchor) and share one feature computation; its time is counted in
    each CNN's seconds."""
    from atmospec.transit.detection import detect_transit
    from atmospec.transit.detrenders.base import split_sigma
    from atmospec.transit.detrenders.cnn import CNNDetrender, cnn_features
    from atmospec.transit.detrenders.gp import GPDetrender
    from atmospec.transit.detrenders.pca import PCADetrender
    from atmospec.transit.detrenders.polynomial import PolynomialDetrender

    # every method is run on every planet (side by side); whether the transit detection
    # would have let a spectrum out is recorded once per planet
    out: dict[str, Any] = {"calibration_s": t_cal, "transit_snr": detect_transit(obs).snr}
    common_mode, t_common = None, 0.0
    feats, t_feats = None, 0.0
    for m in sorted(methods, key=lambda name: name.startswith("cnn")):
        if m == "poly":
            det: Any = PolynomialDetrender()
        elif m == "pca":
            det = PCADetrender()
        elif m == "gp":
            det = GPDetrender()
        else:
            if m.endswith("_shipped"):  # the shipped network with the sigma model it carries
                det = CNNDetrender.pretrained(m.removeprefix("cnn").removesuffix("_shipped"))
            else:
                det = CNNDetrender.load(Path(model_root) / m)
            if unit_sigma:
                det.set_sigma_model(1.0, 1.0, 0.0)
            if feats is None:
                t = time.perf_counter()
                feats = cnn_features(obs, common_mode)
                t_feats = time.perf_counter() - t + t_common
        if not m.startswith("cnn"):  # a CNN's sigma model is its saved record's
            det.set_sigma_model(*scales.get(m, (1.0, 1.0, 0.0)))
        det.transit_threshold = None
        t = time.perf_counter()
        spec = det.fit(obs, feats) if m.startswith("cnn") else det.fit(obs)
        seconds = time.perf_counter() - t + t_cal
        if m == "gp":
            common_mode, t_common = det.common_mode_, seconds - t_cal
        own, shared = split_sigma(spec)
        out[m] = {
            "depth": spec.depth,
            "sigma": spec.sigma,
            "own": own,
            "shared": shared,
            "seconds": seconds + (t_feats if m.startswith("cnn") else 0.0),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="50 test planets, a small training set")
    ap.add_argument("--out", type=Path, default=None, help="write the JSON result here")
    ap.add_argument("--planets", type=int, default=None, help="test planets (default 50 / 100)")
    ap.add_argument("--train-planets", type=int, default=None, help="default 128 / 600")
    ap.add_argument("--epochs", type=int, default=None, help="CNN epochs (default 24 / 60)")
    ap.add_argument(
        "--cal-planets",
        type=int,
        default=None,
        help="planets for the sigma calibration (default 24 / 40; 0 turns it off)",
    )
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--data", type=Path, default=None, help="keep the simulated test set here")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument(
        "--shipped",
        action="store_true",
        help="also score the shipped CNNs (cnn1d_shipped, cnn2d_shipped) on the test planets",
    )
    args = ap.parse_args(argv)
    if args.quiet:  # progress bars follow the atmospec logger's level
        import logging

        logging.getLogger("atmospec").setLevel(logging.WARNING)

    _init_worker()
    from dataclasses import asdict

    from rich.console import Console
    from rich.table import Table

    from atmospec._fileio import provenance, write_json
    from atmospec.transit.detrenders.base import sigma_model_from
    from atmospec.transit.detrenders.cnn import CNNConfig, CNNDetrender
    from atmospec.transit.io import read_labels
    from atmospec.transit.scoring import ariel_score, coverage, rmse_ppm
    from atmospec.transit.simulator import SimulationConfig, simulate_dataset

    console = Console(stderr=True, quiet=args.quiet)
    n_test = args.planets or (50 if args.quick else 100)
    n_train = args.train_planets or (128 if args.quick else 600)
    epochs = args.epochs or (24 if args.quick else 60)
    methods = [m for m in args.methods.split(",") if m]
    shipped = ["cnn1d_shipped", "cnn2d_shipped"] if args.shipped else []
    sim = SimulationConfig()
    t_start = time.perf_counter()

    # 1. training planets (disjoint seed) -> CNN training and the score's reference
    # one pool for every stage: each worker imports torch and the detrenders once
    pool = ProcessPoolExecutor(args.workers, initializer=_init_worker)
    items = list(
        pool.map(
            _train_item, [(args.seed + 1, i, asdict(sim)) for i in range(n_train)], chunksize=4
        )
    )
    feats = [f for f, _ in items]
    train_depths = np.stack([d for _, d in items])
    console.print(f"simulated {n_train} training planets in {time.perf_counter() - t_start:.0f} s")

    tmp = tempfile.TemporaryDirectory()
    model_root = Path(tmp.name) / "models"
    train_s: dict[str, float] = {}
    for kind in ("1d", "2d"):
        if f"cnn{kind}" not in methods:
            continue
        t = time.perf_counter()
        det = CNNDetrender(CNNConfig(kind=kind, epochs=epochs, seed=args.seed))
        det.train_features(feats, list(train_depths))
        det.save(model_root / det.name, training_planets=n_train, simulation=asdict(sim))
        train_s[det.name] = time.perf_counter() - t
        console.print(f"trained {det.name} in {train_s[det.name]:.0f} s")

    # 2. sigma calibration on further planets of the training stream (not used in training)
    n_cal = args.cal_planets if args.cal_planets is not None else (40 if args.quick else 64)
    scales: dict[str, tuple[float, float, float]] = {}
    scales_lik: dict[str, tuple[float, float, float]] = {}
    if n_cal > 0:
        cal = list(
            pool.map(
                _cal_item,
                [
                    (args.seed + 1, n_train + i, asdict(sim), str(model_root), methods)
                    for i in range(n_cal)
                ],
            )
        )
        yc = np.concatenate([r["truth"] for r in cal])
        for m in methods:
            specs = [_spec(r[m]) for r in cal]
            scales_lik[m] = sigma_model_from(yc, specs, "likelihood")
            scales[m] = sigma_model_from(yc, specs, "coverage")
            if m.startswith("cnn"):  # stored in the model's own record
                det = CNNDetrender.load(model_root / m)
                det.set_sigma_model(*scales[m])
                det.save(
                    model_root / m,
                    training_planets=n_train,
                    simulation=asdict(sim),
                    sigma_calibration={
                        "planets": n_cal,
                        "stream": f"simulate_planet rng([{args.seed + 1}, i]) for i in "
                        f"{n_train}..{n_train + n_cal - 1} (the test planets use seed {args.seed})",
                        "target": "likelihood, then 68 % coverage",
                        "likelihood_only": list(scales_lik[m]),
                        "scale_own_shared_floor": list(scales[m]),
                    },
                )
        listed = ", ".join(
            f"{m} own x{a:.2f}, white x{b:.2f}, + {c * 1e6:.0f} ppm"
            for m, (a, b, c) in scales.items()
        )
        console.print(f"sigma models from {n_cal} calibration planets: {listed}")

    # 3. test planets on disk (Ariel raw format), read back, calibrated and reduced
    data = args.data or Path(tmp.name) / "test"
    simulate_dataset(data, n_test, sim, seed=args.seed)
    truth = read_labels(data)
    dirs = sorted(str(p) for p in (data / "train").iterdir())
    results = list(
        pool.map(_test_item, [(d, str(model_root), methods + shipped, scales) for d in dirs])
    )
    pool.shutdown()

    ref_mean, ref_sigma = float(train_depths.mean()), float(train_depths.std())
    y = np.stack([truth[r["planet_id"]] for r in results])
    rng = np.random.default_rng(args.seed)
    boot = rng.integers(0, len(results), size=(200, len(results)))
    summary: dict[str, dict[str, float]] = {}
    likelihood_only: dict[str, dict[str, float]] = {}
    for m in methods + shipped:
        mu = np.stack([r[m]["depth"] for r in results])
        sg = np.stack([r[m]["sigma"] for r in results])
        cov = np.abs(y - mu) <= sg
        summary[m] = {
            "gll_score": round(ariel_score(y, mu, sg, ref_mean=ref_mean, ref_sigma=ref_sigma), 4),
            "rmse_ppm": round(rmse_ppm(y, mu), 1),
            "coverage68": round(coverage(y, mu, sg), 4),
            "coverage68_se": round(float(np.std(cov.mean(axis=1)[boot].mean(axis=1))), 4),
            "seconds_per_planet": round(float(np.mean([r[m]["seconds"] for r in results])), 3),
        }
        if m in scales_lik:  # the same test planets, sigmas from the likelihood-only fit
            a, b_, c = scales_lik[m]
            own = np.stack([r[m]["own"] for r in results])
            shared = np.stack([r[m]["shared"] for r in results])
            s_lik = np.sqrt((a * own) ** 2 + (b_ * shared) ** 2 + c**2)
            likelihood_only[m] = {
                "gll_score": round(
                    ariel_score(y, mu, s_lik, ref_mean=ref_mean, ref_sigma=ref_sigma), 4
                ),
                "coverage68": round(coverage(y, mu, s_lik), 4),
            }
    table = Table(
        title=f"transit detrenders on {n_test} simulated planets "
        f"({y.shape[1]} bins; CNNs trained on {n_train} other planets)"
    )
    for col in ("method", "GLL score", "RMSE (ppm)", "68% coverage", "s / planet"):
        table.add_column(col)
    for m, s in summary.items():
        table.add_row(
            m,
            f"{s['gll_score']:.4f}",
            f"{s['rmse_ppm']:.1f}",
            f"{s['coverage68']:.3f} ± {s['coverage68_se']:.3f}",
            f"{s['seconds_per_planet']:.2f}",
        )
    Console(quiet=args.quiet).print(table)
    from atmospec.transit.detection import SNR_THRESHOLD

    snrs = np.array([r["transit_snr"] for r in results])
    refused = int((snrs < SNR_THRESHOLD).sum())
    console.print(
        f"transit detection: S/N min {snrs.min():.1f}, median {np.median(snrs):.1f}; "
        f"{refused} of {snrs.size} planets below {SNR_THRESHOLD:g} (reduce would refuse them)"
    )
    off = [m for m, s in summary.items() if abs(s["coverage68"] - 0.68) > 0.05]
    console.print(
        "68 % coverage within +-5 points for every method"
        if not off
        else f"68 % coverage off by more than 5 points: {', '.join(off)}"
    )
    if "cnn1d" in summary and "cnn2d" in summary:
        d = summary["cnn2d"]["gll_score"] - summary["cnn1d"]["gll_score"]
        console.print(f"cnn2d - cnn1d GLL score: {d:+.4f}")
    result = {
        "methods": summary,
        "transit_snr_min": round(float(snrs.min()), 2),
        "planets_below_detection": refused,
    }
    if args.out:
        write_json(
            args.out,
            {
                **result,
                "n_test": n_test,
                "n_train": n_train,
                "training_seconds": train_s,
                "sigma_scales": scales,
                "sigma_scales_likelihood_only": scales_lik,
                "likelihood_only": likelihood_only,
                "wall_seconds": time.perf_counter() - t_start,
                "simulation": asdict(sim),
                "provenance": provenance(seed=args.seed),
            },
        )
    tmp.cleanup()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
