"""Flux-unit benchmark: a table without a flux unit, read as F_lambda; do the grids catch F_nu?

Usage: python benchmarks/flux_units.py [--quick] [--half evaluation|fit] [--workers N] [--out F.json]

A spectrum table that gives no flux unit is read as F_lambda (the models' unit). When the file
holds F_nu instead, the shape is tilted by lambda^2 and the grids answer for a cooler, redder
object (GD 165B, L4 at ~1860 K: ~1270 K, log g 3.9) without necessarily misfitting. The
multi-grid prediction therefore asks each grid, under its model of mismatch, whether the F_nu
reading fits decisively better (:func:`atmospec.multigrid.flux_reading.flux_reading`: tempered
2 ln Bayes factor above 2 ln 100 for most of the grids that cover the object) and flags
``flux_unit_suspect``. This benchmark runs that prediction (``MultiGridPredictor``, the
default grids and models, as ``atmospec predict --model default``).

Measured on real data only: SpeX prism library spectra (F_lambda) of M0-T9 dwarfs with S/N >= 20,
one per object, of objects outside the fit half of every grid's model of mismatch (``--half
fit``: inside it; the rule has no fitted parameter, its threshold is set a priori).
``--fit-grid GRID`` measures instead the check ``atmospec fit --grid GRID`` makes: the same
rule with that one grid. Each
spectrum is written as a CSV without a flux unit twice: as it is (F_lambda: a flag is a false
alarm) and as F_nu (flux and errors times lambda^2: a flag is a catch); both are read back with
:func:`atmospec.io.read`, as a user's file is.

The last printed line is one JSON object with ``false_alarm`` (F_lambda spectra flagged),
``recall`` (F_nu spectra flagged), ``n_spectra`` and the same per spectral class.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

GRIDS = ("dback24", "burrows06", "btsettl08")
CLASSES = {"M0-M6": (10.0, 16.9), "M7-L9": (17.0, 29.9), "T0-T9": (30.0, 39.9)}


def _objects(quick: bool, seed: int, half: str) -> Any:
    from atmospec import library
    from atmospec.discrepancy import load_discrepancy

    fit_objects: set[int] = set()
    for g in GRIDS:
        fit_objects |= set(load_discrepancy(g).meta["split"]["fit_objects"])
    cat = library.catalogue()
    ok = cat["quality"].eq("OK").fillna(False) & ~(cat["binary"] | cat["spectral_binary"])
    ok &= cat["spt_num"].between(10, 39.9) & cat["snr"].ge(20).fillna(False)
    inside = cat["source_key"].isin(fit_objects)
    ok &= inside if half == "fit" else ~inside
    sel = cat[ok].sort_values("snr", ascending=False).drop_duplicates("source_key")
    if quick and len(sel) > 150:
        rng = np.random.default_rng(seed)
        sel = sel.iloc[np.sort(rng.choice(len(sel), 150, replace=False))]
    return sel


def _write(path: Path, wave: np.ndarray, flux: np.ndarray, err: np.ndarray) -> None:
    keep = np.isfinite(flux) & np.isfinite(err) & (err > 0)
    rows = np.column_stack([wave[keep], flux[keep], err[keep]])
    np.savetxt(path, rows, delimiter=",", header="wavelength_um,flux,error", comments="")


_PREDICTOR = None
_FIT_GRID = None


def _start(fit_grid: str | None = None) -> None:
    """One predictor per worker process: the default grids and models, as `predict` uses;
    or, with ``fit_grid``, that one grid, as `atmospec fit --grid` checks the flux unit."""
    global _PREDICTOR, _FIT_GRID
    if fit_grid is not None:
        from atmospec.grids import load_grid

        _FIT_GRID = load_grid(fit_grid)
        return
    from atmospec.multigrid import MultiGridPredictor

    _PREDICTOR = MultiGridPredictor(draws=200, coverage="mask")


def _verdict(spectrum: Any) -> Any:
    """The flux reading of the route measured (None: nothing to decide)."""
    if _FIT_GRID is not None:
        from atmospec.discrepancy.route import shipped_model
        from atmospec.multigrid.flux_reading import flux_reading

        g = _FIT_GRID
        return flux_reading(spectrum, {g.name: g}, {g.name: shipped_model(g.name)})
    assert _PREDICTOR is not None
    return _PREDICTOR.predict(spectrum).flux_readings[0]


def _one(obj: tuple[str, str, str, float]) -> dict[str, object] | None:
    """One library object written as a unit-less CSV twice (F_lambda, F_nu), each read back
    as a user's file is and predicted; None when its spectrum is refused."""
    from atmospec import io, library
    from atmospec.errors import AtmospecError

    key, name, gravity, spt = obj
    spec = library.load(key)
    if spec.uncertainty is None:
        return None
    lam = spec.wavelength
    verdicts = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind, tilt in (("flambda", np.ones_like(lam)), ("fnu", lam**2)):
            path = Path(tmp) / f"{key}_{kind}.csv"
            _write(path, lam, spec.flux * tilt, spec.uncertainty * tilt)
            try:
                verdicts[kind] = _verdict(io.read(path))
            except AtmospecError:
                return None
    a, b = verdicts["flambda"], verdicts["fnu"]
    if a is None or b is None:
        return None
    return {
        "key": key,
        "name": name,
        "gravity": gravity,
        "spt": float(spt),
        "false_alarm": bool(a.suspect),
        "caught": bool(b.suspect),
        "evidence_flambda": a.evidence,
        "evidence_fnu": b.evidence,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="150 objects (a few minutes)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--half",
        choices=("evaluation", "fit"),
        default="evaluation",
        help="objects outside (default) or inside the models of mismatch's fit half",
    )
    ap.add_argument("--workers", type=int, default=1, help="processes (one predictor each)")
    ap.add_argument(
        "--fit-grid",
        default=None,
        help="measure the check `atmospec fit --grid GRID` makes (that grid alone, under its "
        "model of mismatch) instead of the multi-grid prediction",
    )
    ap.add_argument("--out", type=Path, default=None, help="write the JSON result here")
    args = ap.parse_args(argv)

    from tqdm import tqdm

    from atmospec.multigrid.flux_reading import DECISIVE

    t0 = time.perf_counter()
    sel = _objects(args.quick, args.seed, args.half)
    objs = [
        (str(o["key"]), str(o.get("name", "")), str(o.get("gravity_class", "")), o["spt_num"])
        for _, o in sel.iterrows()
    ]
    with ProcessPoolExecutor(args.workers, initializer=_start, initargs=(args.fit_grid,)) as pool:
        done = list(tqdm(pool.map(_one, objs), total=len(objs), desc="objects", unit="obj"))
    rows = [r for r in done if r is not None]
    skipped = len(done) - len(rows)  # refused by the sanity checks (errors not 1-sigma)
    spt = np.array([r["spt"] for r in rows])
    fa = np.array([r["false_alarm"] for r in rows])
    caught = np.array([r["caught"] for r in rows])
    result: dict[str, object] = {
        "false_alarm": round(float(fa.mean()), 4),
        "recall": round(float(caught.mean()), 4),
        "n_spectra": len(rows),
        "n_skipped": skipped,
        "decisive_2lnB": round(float(DECISIVE), 2),
        "by_class": {},
        "quick": args.quick,
        "half": args.half,
        "route": f"fit --grid {args.fit_grid}" if args.fit_grid else "predict --model default",
    }
    print(f"{'class':8s} {'n':>5s} {'false alarm':>12s} {'recall (F_nu)':>14s}")
    for name, (lo, hi) in CLASSES.items():
        m = (spt >= lo) & (spt <= hi)
        if not m.any():
            continue
        result["by_class"][name] = {  # type: ignore[index]
            "n": int(m.sum()),
            "false_alarm": round(float(fa[m].mean()), 4),
            "recall": round(float(caught[m].mean()), 4),
        }
        print(f"{name:8s} {m.sum():5d} {fa[m].mean():12.3f} {caught[m].mean():14.3f}")
    print(f"{'all':8s} {len(rows):5d} {fa.mean():12.3f} {caught.mean():14.3f}")
    for r in rows:
        if r["false_alarm"] or not r["caught"]:
            what, ev = (
                ("false alarm", r["evidence_flambda"])
                if r["false_alarm"]
                else ("missed", r["evidence_fnu"])
            )
            print(
                f"  {what}: {r['key']} {r['name']} (SpT {r['spt']:.0f}, {r['gravity']}) "
                f"2 ln B(F_nu : F_lambda) {ev}"
            )
    result["false_alarms"] = [r["key"] for r in rows if r["false_alarm"]]
    result["missed"] = [r["key"] for r in rows if not r["caught"]]
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    text = json.dumps(result)
    if args.out is not None:
        from atmospec._fileio import write_json

        write_json(args.out, result)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
