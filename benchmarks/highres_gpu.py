"""Seconds per epoch of the echelle fit (all orders of an HPF-sized spectrum) on CPU and CUDA.

A synthetic HPF spectrum (28 orders x 2048 pixels at HPF's order wavelengths, R = 55,000,
S/N 300) is made from a random star of ``--lines-per-order`` lines per order and a telluric
model of a third as many lines, then :func:`atmospec.highres.echelle.fit_echelle` fits all
orders together (shared RV and v sin i, per-order continuum and telluric scale) on each
device. Synthetic data so that it runs where neither the embedded templates nor the shared
HPF files are present (a bare GPU machine); the timing depends only on the sizes.

    PYTHONPATH=src python3 benchmarks/highres_gpu.py --devices cpu,cuda --out result.json

The last printed line is one JSON object: {"seconds_per_epoch": {device: s}, ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from atmospec.highres.echelle import EchelleOrder
    from atmospec.highres.emulator import LineEmulator

# HPF order edges (Å) as in the Goldilocks files (first and last pixel of each order)
HPF_ORDERS = [
    (8079, 8184), (8188, 8294), (8300, 8408), (8416, 8525), (8534, 8645), (8656, 8768),
    (8782, 8895), (8911, 9026), (9044, 9161), (9181, 9299), (9322, 9442), (9468, 9590),
    (9618, 9742), (9773, 9899), (9934, 10062), (10099, 10229), (10270, 10403),
    (10447, 10582), (10631, 10768), (10821, 10960), (11017, 11159), (11222, 11366),
    (11433, 11580), (11653, 11803), (11882, 12034), (12120, 12275), (12367, 12525),
    (12625, 12786),
]  # fmt: skip


def synthetic(
    n_orders: int, lines_per_order: int, seed: int
) -> tuple[list[EchelleOrder], LineEmulator, LineEmulator]:
    import torch

    from atmospec.highres.echelle import EchelleOrder
    from atmospec.highres.emulator import LineEmulator
    from atmospec.highres.extrinsic import ExtrinsicModel
    from atmospec.highres.linefinder import LineList

    rng = np.random.default_rng(seed)
    edges = HPF_ORDERS[:n_orders]

    def lines(n_per: int, width_kms: float) -> LineList:
        c = np.concatenate([rng.uniform(lo - 2, hi + 2, n_per) for lo, hi in edges])
        sig = c * width_kms / 299792.458
        return LineList(c, rng.lognormal(np.log(0.01), 0.8, c.size), sig, 0.1 * sig)

    star = LineEmulator(lines(lines_per_order, 1.2), profile="pseudo-voigt", device="cpu")
    tell = LineEmulator(lines(lines_per_order // 3, 0.8), profile="pseudo-voigt", device="cpu")
    orders: list[EchelleOrder] = []
    with torch.no_grad():
        for lo, hi in edges:
            w = np.linspace(lo, hi, 2048)
            f = ExtrinsicModel(w, rv=-9.6, vsini=2.2, device="cpu")(star).numpy()
            f = f * np.exp(-0.8 * tell.optical_depth(torch.as_tensor(w)).numpy())
            f = f + rng.normal(0, 1 / 300, w.size)
            orders.append(EchelleOrder(w, f, np.full(w.size, 1 / 300)))
    return orders, star, tell


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", default="cpu,cuda", help="comma-separated torch devices")
    ap.add_argument("--orders", type=int, default=28)
    ap.add_argument("--lines-per-order", type=int, default=600)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="write the JSON here too")
    args = ap.parse_args()

    import torch

    from atmospec.highres.echelle import fit_echelle

    if args.threads:
        torch.set_num_threads(args.threads)
    orders, star, tell = synthetic(args.orders, args.lines_per_order, args.seed)
    # per device; the same dictionaries are in ``result``
    seconds_per_epoch: dict[str, float | None] = {}
    wall_seconds: dict[str, float] = {}
    rv: dict[str, float] = {}
    vsini: dict[str, float] = {}
    result: dict[str, object] = {
        "orders": args.orders,
        "pixels": 2048 * args.orders,
        "star_lines": star.n_lines,
        "telluric_lines": tell.n_lines,
        "epochs": args.epochs,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_threads": torch.get_num_threads(),
        "seconds_per_epoch": seconds_per_epoch,
        "wall_seconds": wall_seconds,
        "rv": rv,
        "vsini": vsini,
    }
    for dev in [d for d in args.devices.split(",") if d]:
        if dev.startswith("cuda") and not torch.cuda.is_available():
            seconds_per_epoch[dev] = None
            continue
        if dev.startswith("cuda"):
            result["gpu"] = torch.cuda.get_device_name(0)
        t0 = time.perf_counter()
        res = fit_echelle(
            orders, star, telluric=tell, rv_range=(-15.0, 5.0), epochs=args.epochs,
            device=dev,
        )  # fmt: skip
        seconds_per_epoch[dev] = round(res.seconds_per_epoch, 4)
        wall_seconds[dev] = round(time.perf_counter() - t0, 1)
        rv[dev] = round(res.rv, 3)
        vsini[dev] = round(res.vsini, 3)
        print(f"{dev}: {res.seconds_per_epoch:.4f} s per epoch ({args.orders} orders)", flush=True)
        if args.out:  # after each device, so a later one running out of time loses nothing
            os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
            with open(args.out, "w") as fh:
                fh.write(json.dumps(result) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
