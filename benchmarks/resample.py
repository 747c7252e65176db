"""Benchmark: atmospec.transforms.resample against the spectres package on real spectra.

Two real workloads, each timed side by side in one run:

* library: N observed SpeX prism spectra (each on its own pixel grid, with errors) resampled onto
  one common wavelength grid -- spectres called once per spectrum, atmospec likewise (the
  overlap matrix must be built per spectrum, vectorised).
* grid: N model spectra of the Sonora Diamondback grid (one shared axis) resampled onto a real
  SpeX pixel grid -- spectres called once per spectrum (loop) and once on the whole batch (its
  own vectorised mode), atmospec as one cached sparse-matrix product.

The headline ``speedup_vs_spectres`` is the smaller of the two loop-vs-atmospec ratios
(conservative); ``max_rel_diff`` the largest relative difference of any flux or uncertainty.

Run: ``python benchmarks/resample.py [--quick] [--n 1000] [--out result.json]`` (``--quick``: 300
spectra per workload and one repeat instead of 1,000 and best of three).
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np

from atmospec._fileio import provenance, write_json
from atmospec.data import require
from atmospec.transforms import _MATRIX_CACHE, check_coverage, resample


def _library_spectra(splat: Path, n: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    from astropy.io import fits

    folder = splat / "resources" / "Spectra" / "Public" / "SPEX-PRISM"
    out = []
    for path in sorted(folder.glob("*.fits*")):
        with fits.open(path) as hdul:
            data = np.asarray(hdul[0].data, dtype=np.float64)
        if data.ndim != 2 or data.shape[0] < 3:
            continue
        wave, flux, err = data[0], data[1], data[2]
        good = np.isfinite(wave) & np.isfinite(flux) & np.isfinite(err) & (err > 0)
        wave, flux, err = wave[good], flux[good], err[good]
        if wave.size < 100 or np.any(np.diff(wave) <= 0) or wave[0] > 0.85 or wave[-1] < 2.45:
            continue
        out.append((wave, flux, err))
        if len(out) == n:
            break
    return out


def _grid_spectra(splat: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    try:  # the grid store when available (reads the converted HDF5)
        from atmospec.grids import load_grid

        grid = load_grid("dback24")
        return np.asarray(grid.wavelength), np.asarray(grid.flux(np.arange(min(n, len(grid)))))
    except Exception:  # noqa: BLE001 - fall back to the original text files
        folder = splat / "resources" / "SpectralModels" / "dback24" / "SPEX-PRISM"
        wave = None
        fluxes = []
        for path in sorted(folder.glob("*.txt.gz"))[:n]:
            with gzip.open(path, "rt") as fh:
                arr = np.loadtxt(fh, comments=("#", "wave"))
            wave = arr[:, 0] if wave is None else wave
            fluxes.append(arr[:, 1])
        assert wave is not None
        return wave, np.vstack(fluxes)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


def _best(fn: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="300 spectra per workload, one repeat (< 2 min)"
    )
    parser.add_argument("--n", type=int, default=None, help="spectra per workload (1000)")
    parser.add_argument("--out", type=Path, default=None, help="write the result JSON here")
    args = parser.parse_args()
    import spectres

    repeat = 1 if args.quick else 3
    n_spectra = args.n or (300 if args.quick else 1000)
    splat = require("splat")

    t0 = time.perf_counter()
    lib = _library_spectra(splat, n_spectra)
    wave_m, grid_flux = _grid_spectra(splat, n_spectra)
    load_s = time.perf_counter() - t0

    # --- workload 1: library spectra -> common grid (R ~ 150 over 0.9-2.4 um)
    target = np.geomspace(0.9, 2.4, 300)

    def ours_lib() -> list[tuple[np.ndarray, np.ndarray]]:
        _MATRIX_CACHE.clear()
        return [resample(target, w, f, e) for w, f, e in lib]

    def spectres_lib() -> list[tuple[np.ndarray, np.ndarray]]:
        return [spectres.spectres(target, w, f, e, verbose=False) for w, f, e in lib]

    t_ours_lib = _best(ours_lib, repeat)
    t_sp_lib = _best(spectres_lib, repeat)
    diff = 0.0
    for (a, ae), (b, be) in zip(ours_lib(), spectres_lib(), strict=True):
        diff = max(diff, _rel(a, b), _rel(ae, be))

    # --- workload 2: a batch of grid spectra -> a real SpeX pixel grid
    spex_wave = lib[0][0]
    new = spex_wave[check_coverage(wave_m, spex_wave, policy="mask")]

    def ours_grid() -> np.ndarray:
        _MATRIX_CACHE.clear()  # include building the matrix once
        return resample(new, wave_m, grid_flux)

    def spectres_grid_loop() -> np.ndarray:
        return np.vstack([spectres.spectres(new, wave_m, f, verbose=False) for f in grid_flux])

    def spectres_grid_batch() -> np.ndarray:
        return spectres.spectres(new, wave_m, grid_flux, verbose=False)

    t_ours_grid = _best(ours_grid, repeat)
    t_sp_grid_loop = _best(spectres_grid_loop, repeat)
    t_sp_grid_batch = _best(spectres_grid_batch, repeat)
    diff = max(diff, _rel(ours_grid(), spectres_grid_loop()))
    diff = max(diff, _rel(ours_grid(), spectres_grid_batch()))

    speed_lib = t_sp_lib / t_ours_lib
    speed_grid = t_sp_grid_loop / t_ours_grid
    rows = [
        ("library -> common grid", len(lib), "spectres loop", t_sp_lib, 1.0),
        ("library -> common grid", len(lib), "atmospec", t_ours_lib, speed_lib),
        ("grid batch -> SpeX axis", len(grid_flux), "spectres loop", t_sp_grid_loop, 1.0),
        (
            "grid batch -> SpeX axis",
            len(grid_flux),
            "spectres batched",
            t_sp_grid_batch,
            t_sp_grid_loop / t_sp_grid_batch,
        ),
        ("grid batch -> SpeX axis", len(grid_flux), "atmospec", t_ours_grid, speed_grid),
    ]
    try:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"resample: best of {repeat}, spectres {version('spectres')}")
        for col in ("workload", "n spectra", "method", "seconds", "speed-up vs loop"):
            table.add_column(col)
        for w, n, m, t, s in rows:
            table.add_row(w, str(n), m, f"{t:.4f}", f"{s:.1f}x")
        Console(width=110).print(table)
    except ImportError:  # pragma: no cover
        for row in rows:
            print(*row)
    print(f"loading {len(lib)} library + {len(grid_flux)} grid spectra took {load_s:.1f} s")
    result = {
        "speedup_vs_spectres": round(min(speed_lib, speed_grid), 2),
        "max_rel_diff": diff,
    }
    if args.out is not None:
        write_json(
            args.out,
            {
                **result,
                "speedup_library": speed_lib,
                "speedup_grid": speed_grid,
                "speedup_vs_spectres_batched": t_sp_grid_batch / t_ours_grid,
                "n_library": len(lib),
                "n_grid": len(grid_flux),
                "provenance": provenance(grid="dback24"),
            },
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
