"""Benchmark: Dask batch prediction over one catalogue on 1 and 2 local workers.

Runs the same catalogue of real SpeX prism library spectra (converted once into a chunked
Zarr store on the model's axis) three times: in this process (the reference), on a
LocalCluster with 1 worker process and with 2 worker processes (one thread each). Prints
the steady-state throughput (each run is done twice on the same cluster and the second
pass is timed: cluster start-up, model loading and first-call compilation in every worker
are reported apart, as the first pass), the 2-worker scaling, whether both cluster runs are
bit-identical to the single-process run, and what the per-core rate implies for 10^6 and
10^8 spectra. The last printed line is one JSON object:

    {"spectra_per_s": {"1": f, "2": f}, "scaling_2_workers": f, "identical_results": bool}

Usage:
    python benchmarks/scale.py --quick            # < 5 minutes on 2 cores
    python benchmarks/scale.py --out scale.json   # whole library (3,089 spectra)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any


def _model(name: str, work: Path, quiet: bool) -> tuple[Any, str]:
    """The model to benchmark: ``name`` if it resolves, else a small MLP trained here."""
    from atmospec.errors import AtmospecError
    from atmospec.prediction.members import resolve_model

    try:
        est, mid = resolve_model(name)
        return name, f"{mid} (registry/folder)"
    except (AtmospecError, FileNotFoundError, KeyError, ValueError) as err:
        if not quiet:
            print(f"model {name!r} unavailable ({err}); training a small MLP on dback24 instead")
    import torch

    from atmospec.estimators import SpectrumMLP
    from atmospec.grids import load_grid
    from atmospec.training.builder import build_training_set

    torch.set_num_threads(1)
    ts = build_training_set(
        load_grid("dback24"),
        work / "train.h5",
        n_samples=3000,
        axis="spex-dense",
        seed=0,
    )
    X, y, s = ts.arrays()
    est = SpectrumMLP(hidden=(256, 256), max_epochs=4, seed=0, num_threads=1)
    est.fit(X, y, sigma=s, **ts.fit_kwargs())
    est.meta_["grid"] = "dback24"
    est.save(work / "model")
    ts.close()
    return str(work / "model"), "fallback SpectrumMLP(256, 256) on spex-dense (benchmark-trained)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--quick", action="store_true", help="400 spectra in 16 partitions (about a minute)."
    )
    ap.add_argument("--out", type=Path, default=None, help="Write the full record as JSON.")
    ap.add_argument("--model", default="default", help="Model name or folder.")
    ap.add_argument("--n", type=int, default=None, help="Spectra (default 400 quick / all 3,089).")
    ap.add_argument("--draws", type=int, default=1000, help="Monte Carlo draws per spectrum.")
    ap.add_argument("--partition-size", type=int, default=None, help="Spectra per partition.")
    ap.add_argument(
        "--ood",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="OOD score (default: off with --quick, on otherwise).",
    )
    ap.add_argument("--workdir", type=Path, default=None, help="Scratch folder (kept).")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    if args.quiet:  # progress bars follow the atmospec logger's level
        import logging

        logging.getLogger("atmospec").setLevel(logging.WARNING)

    import pandas as pd
    from distributed import Client, LocalCluster

    from atmospec.library import catalogue
    from atmospec.prediction.members import resolve_model
    from atmospec.scale.distributed import predict_catalog, read_results
    from atmospec.scale.store import store_from_library

    n = args.n or (400 if args.quick else None)
    part = args.partition_size or (25 if args.quick else 128)
    ood = (not args.quick) if args.ood is None else args.ood
    work = args.workdir or Path(tempfile.mkdtemp(prefix="atmospec-bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    model, model_note = _model(args.model, work, args.quiet)
    est, model_id = resolve_model(model)
    keys = catalogue()["key"].astype(str).tolist()
    keys = keys[:n] if n else keys
    store_path = work / "catalogue.zarr"
    if not store_path.exists():
        store_from_library(store_path, est.wavelength_, keys=keys)
    prep_s = time.perf_counter() - t0
    # As before the batch engines were one: no figures, the mask coverage policy, one engine
    # thread per process (the single-process reference computes like a worker).
    common = {
        "draws": args.draws,
        "partition_size": part,
        "ood": ood,
        "coverage": "mask",
        "threads": 1,
        "plots": False,
    }

    def timed(out: Path, **kw: Any) -> tuple[Any, float]:
        """A first pass (cold: start-up, model loading, first-call compilation and
        allocations in every worker), then the timed steady-state pass into ``out``."""
        warm_out = out.with_name(out.name + "-warmup")
        for folder in (warm_out, out):
            shutil.rmtree(folder, ignore_errors=True)
        tc = time.perf_counter()
        predict_catalog(store_path, model, warm_out, **kw, **common)
        first = time.perf_counter() - tc
        shutil.rmtree(warm_out, ignore_errors=True)
        return predict_catalog(store_path, model, out, **kw, **common), first

    runs: dict[str, Any] = {}
    cold: dict[str, float] = {}
    out_ref = work / "serial"
    runs["serial"], cold["serial"] = timed(out_ref, serial=True)
    for w in (1, 2):
        tc = time.perf_counter()
        with (
            LocalCluster(
                n_workers=w, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            Client(cluster) as client,
        ):
            started = time.perf_counter() - tc
            runs[str(w)], first = timed(work / f"workers{w}", client=client)
        cold[str(w)] = started + first  # cluster start-up plus the first (cold) pass
    load_after = os.getloadavg()

    ref = read_results(out_ref)
    identical = True
    for n_workers in ("1", "2"):
        try:
            pd.testing.assert_frame_equal(
                read_results(work / f"workers{n_workers}"), ref, check_exact=True
            )
        except AssertionError:
            identical = False
    complete = all(r.complete for r in runs.values())
    rate = {k: r.spectra_per_s for k, r in runs.items()}
    cpu_rate = {k: r.spectra_per_cpu_s for k, r in runs.items()}
    scaling = rate["2"] / rate["1"]
    # What the 2 workers would give on 2 otherwise idle cores: each worker's CPU-time rate
    # relative to the lone worker's (a projection, reported apart from the measured ratio).
    projected = 2 * cpu_rate["2"] / cpu_rate["1"]
    # Per-core rate from the CPU time the workers' tasks used: unlike wall-clock rates it is
    # not distorted by other programs sharing the cores.
    per_core = cpu_rate["1"]
    implied = {
        f"{m:.0e}": {
            "core_hours": m / per_core / 3600,
            "hours_on_2_cores": m / rate["2"] / 3600,
            "hours_on_100_cores": m / (per_core * 100) / 3600,
        }
        for m in (1e6, 1e8)
    }

    try:
        from rich.console import Console
        from rich.table import Table

        table = Table(
            title=f"atmospec scale: {len(ref)} SpeX spectra, {args.draws} draws, "
            f"partitions of {part}, OOD {'on' if ood else 'off'}"
        )
        for col in (
            "run",
            "spectra/s (warm, wall)",
            "spectra per CPU-s",
            "first pass incl. start (s)",
            "partitions",
        ):
            table.add_column(col)
        for k, r in runs.items():
            table.add_row(
                "1 process, no Dask" if k == "serial" else f"{k} worker(s)",
                f"{r.spectra_per_s:.1f}",
                f"{r.spectra_per_cpu_s:.1f}",
                f"{cold.get(k, r.seconds):.1f}",
                f"{len(r.done)}/{r.n_partitions}",
            )
        Console().print(table)
    except ImportError:  # pragma: no cover
        pass
    print(f"model: {model_id} -- {model_note}")
    print(
        f"scaling 2 vs 1 worker: {scaling:.2f}x (target >= 1.7x on 2 free cores); "
        f"identical to the single-process run: {identical}; complete: {complete}"
    )
    print(f"projected 2-worker scaling on idle cores (CPU time per spectrum): {projected:.2f}x")
    print(
        f"load average before {load_before[0]:.1f}, after {load_after[0]:.1f} "
        f"(on {os.cpu_count()} cores; above ~0.5 the scaling is not measured on free cores)"
    )
    for m, v in implied.items():
        print(
            f"{m} spectra: {v['core_hours']:.1f} core-hours at {per_core:.1f} spectra/s per "
            f"core (CPU time); {v['hours_on_2_cores']:.1f} h on this machine at the measured "
            "2-worker wall rate, "
            f"{v['hours_on_100_cores']:.2f} h on 100 cores"
        )
    record = {
        "spectra_per_s": {"1": round(rate["1"], 3), "2": round(rate["2"], 3)},
        "scaling_2_workers": round(scaling, 3),
        "identical_results": identical,
    }
    if args.out:
        from atmospec._fileio import provenance, write_json

        write_json(
            args.out,
            {
                **record,
                "serial_spectra_per_s": rate["serial"],
                "spectra_per_cpu_s": cpu_rate,
                "per_core_spectra_per_s": per_core,
                "projected_scaling_idle_cores": projected,
                "n_spectra": len(ref),
                "draws": args.draws,
                "partition_size": part,
                "ood": ood,
                "model": model_id,
                "model_note": model_note,
                "cold_seconds": cold,
                "prep_seconds": prep_s,
                "complete": complete,
                "implied": implied,
                "loadavg_before": load_before,
                "loadavg_after": load_after,
                "provenance": provenance(job="benchmarks/scale.py"),
            },
        )
    print(json.dumps(record))


if __name__ == "__main__":
    main()
