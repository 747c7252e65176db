"""Fuzz benchmark: every reader and the CLI entry points on random, mutated and edge inputs.

Each case writes one generated file and hands it to one target (a reader, a config or
manifest reader, or a CLI command run in-process). The outcome is one of

* ``ok``: the target returned; its result is checked for NaN leaks (a spectrum with NaN flux
  or non-positive errors where unmasked; a fit or a written table holding NaN/inf numbers);
* ``refused``: an atmospec error (the package's error hierarchy): the intended answer to
  bad input;
* ``traceback``: any other exception: a bug (its type, message and target are listed).

Inputs come from real files (SpeX prism spectra of the embedded data, the shared transmission,
HPF and Ariel files when present, the repository's configs and shipped model records) mutated
at byte level (bit flips, truncation, deleted / repeated / inserted chunks, gzip-wrapped
noise) and at value level (numbers replaced by nan, inf, 1e308, 1e-320, -0, huge integers;
whole columns scaled by 0, -1, 1e300; column names swapped for ``signal_to_noise``,
``flux_uncorrected``, ``[/b]``; FITS data and unit cards edited), plus random bytes.

The summary table gives cases, refusals, tracebacks and NaN leaks per target; the last line
printed is one JSON object with ``cases``, ``tracebacks``, ``nan_leaks`` (and per-target
counts). ``--atheris SECONDS`` adds a coverage-guided run of the byte-level targets (when the
optional ``atheris`` package is installed).

Run: ``python benchmarks/fuzz.py [--quick] [--cases N] [--seed S] [--atheris SECONDS]
[--out result.json]`` (default 12,000 cases, a few minutes on 2 cores; ``--quick``: 1,500).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import json
import logging
import re
import shutil
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from atmospec.errors import AtmospecError

EDGE_NUMBERS = (
    "nan",
    "NaN",
    "inf",
    "-inf",
    "0",
    "-0",
    "1e308",
    "-1e308",
    "1e-320",
    "1e300",
    "-1",
    "9" * 40,
    "",
    "1,5",
    "0x1p3",
    "[/b]",
    "1e",
    "10703_10070",  # Python's float() takes digit separators; numpy's table reader does not
)
EDGE_NAMES = (
    "signal_to_noise",
    "flux_uncorrected",
    "[/b]",
    "err",
    "flux",
    "wavelength [furlong]",
    "S/N",
    "",
    "wave wave",
    "error [um]",
)
SCALES = (0.0, -1.0, 1e300, 1e-300, np.nan, np.inf)
_NUMBER = re.compile(rb"-?\d+\.?\d*(?:[eE][+-]?\d+)?")


# ------------------------------------------------------------------------------ mutations
def mutate_bytes(data: bytes, rng: np.random.Generator) -> bytes:
    """One byte-level mutation: bit flips, truncation, deletion, repetition or insertion."""
    b = bytearray(data)
    kind = int(rng.integers(6))
    if not b or kind == 0:  # insert random bytes
        pos = int(rng.integers(len(b) + 1))
        b[pos:pos] = rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
    elif kind == 1:  # flip bits
        for _ in range(int(rng.integers(1, 9))):
            i = int(rng.integers(len(b)))
            b[i] ^= 1 << int(rng.integers(8))
    elif kind == 2:  # truncate
        del b[int(rng.integers(len(b))) :]
    elif kind == 3:  # delete a chunk
        i = int(rng.integers(len(b)))
        del b[i : i + int(rng.integers(1, 512))]
    elif kind == 4:  # repeat a chunk
        i = int(rng.integers(len(b)))
        chunk = b[i : i + int(rng.integers(1, 512))]
        b[i:i] = chunk
    else:  # overwrite with a chunk from elsewhere
        i, j = (int(x) for x in rng.integers(len(b), size=2))
        n = int(rng.integers(1, 64))
        b[i : i + n] = b[j : j + n]
    return bytes(b)


def mutate_text(data: bytes, rng: np.random.Generator) -> bytes:
    """A value-level mutation of a text table: edge numbers, scaled columns, swapped names."""
    lines = data.split(b"\n")
    kind = int(rng.integers(4))
    if kind == 0:  # replace numbers by edge values
        matches = list(_NUMBER.finditer(data))
        if not matches:
            return mutate_bytes(data, rng)
        out = bytearray(data)
        for m in sorted(
            (matches[int(i)] for i in rng.integers(len(matches), size=int(rng.integers(1, 6)))),
            key=lambda m: -m.start(),
        ):
            new = EDGE_NUMBERS[int(rng.integers(len(EDGE_NUMBERS)))].encode()
            out[m.start() : m.end()] = new
        return bytes(out)
    if kind == 1:  # scale one whole column
        scale = SCALES[int(rng.integers(len(SCALES)))]
        col = int(rng.integers(4))
        out_lines = []
        for line in lines:
            parts = re.split(rb"([,\s]+)", line)
            nums = [i for i, p in enumerate(parts) if _NUMBER.fullmatch(p)]
            if len(nums) > col and not line.lstrip().startswith(b"#"):
                i = nums[col]
                parts[i] = repr(float(parts[i]) * scale).encode()
            out_lines.append(b"".join(parts))
        return b"\n".join(out_lines)
    if kind == 2:  # rename a header field
        for i, line in enumerate(lines):
            if re.search(rb"[A-Za-z]", line) and not line.startswith(b"# %ECSV"):
                words = re.findall(rb"[A-Za-z_]+", line)
                if words:
                    old = words[int(rng.integers(len(words)))]
                    new = EDGE_NAMES[int(rng.integers(len(EDGE_NAMES)))].encode()
                    lines[i] = line.replace(old, new, 1)
                    return b"\n".join(lines)
        return mutate_bytes(data, rng)
    # kind 3: shuffle / drop / duplicate data lines
    idx = np.arange(len(lines))
    choice = int(rng.integers(3))
    if choice == 0:
        rng.shuffle(idx[len(idx) // 2 :])
    elif choice == 1:
        idx = np.delete(idx, rng.integers(len(idx), size=max(1, len(idx) // 10)))
    else:
        idx = np.insert(idx, int(rng.integers(len(idx))), idx[: int(rng.integers(1, 5))])
    return b"\n".join(lines[int(i)] for i in idx)


def mutate_fits(data: bytes, rng: np.random.Generator) -> bytes:
    """A value-level mutation of a FITS file: data scaled / NaN-filled, unit cards edited."""
    from astropy.io import fits

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hdul = fits.HDUList.fromstring(
                gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
            )
            hdu = hdul[int(rng.integers(len(hdul)))]
            kind = int(rng.integers(4))
            if kind == 0 and hdu.data is not None and hdu.header.get("XTENSION") is None:
                arr = np.array(hdu.data, dtype=np.float64)
                row = int(rng.integers(arr.shape[0])) if arr.ndim > 1 else 0
                target = arr[row] if arr.ndim > 1 else arr
                target *= SCALES[int(rng.integers(len(SCALES)))]
                hdu.data = arr
            elif kind == 1 and getattr(hdu, "columns", None) is not None and len(hdu.data):
                name = hdu.columns.names[int(rng.integers(len(hdu.columns.names)))]
                col = hdu.data[name]
                if np.issubdtype(np.asarray(col).dtype, np.floating):
                    col *= SCALES[int(rng.integers(len(SCALES)))]
            elif kind == 2:
                for card in ("XUNITS", "YUNITS", "TUNIT1", "TUNIT2", "TUNIT3"):
                    if card in hdu.header:
                        hdu.header[card] = EDGE_NAMES[int(rng.integers(len(EDGE_NAMES)))]
            elif kind == 3 and getattr(hdu, "columns", None) is not None:
                i = int(rng.integers(len(hdu.columns)))
                hdu.columns[i].name = EDGE_NAMES[int(rng.integers(len(EDGE_NAMES)))] or "X"
            buf = io.BytesIO()
            hdul.writeto(buf, output_verify="silentfix")
        out = buf.getvalue()
        return gzip.compress(out) if data[:2] == b"\x1f\x8b" else out
    except Exception:  # an unparseable seed or an edit astropy refuses: fall back to bytes
        return mutate_bytes(data, rng)


def random_bytes(rng: np.random.Generator) -> bytes:
    raw = rng.integers(0, 256, int(rng.integers(0, 4096)), dtype=np.uint8).tobytes()
    kind = int(rng.integers(4))
    if kind == 0:
        return gzip.compress(raw)
    if kind == 1:
        return b"SIMPLE  =                    T" + raw
    if kind == 2:  # random printable numbers
        n = int(rng.integers(1, 40))
        vals = rng.choice(EDGE_NUMBERS + ("1.0", "2.5", "0.3"), size=(n, int(rng.integers(1, 5))))
        return "\n".join(" ".join(r) for r in vals).encode()
    return raw


# ------------------------------------------------------------------------------ targets
@dataclass
class Target:
    """One thing to fuzz: how a case's bytes become a call, and how its result is checked."""

    name: str
    filename: str
    seeds: list[bytes]
    call: Callable[[Path], Any]
    kind: str = "text"  # text | fits | binary: which value-level mutator applies
    weight: float = 1.0
    leak: Callable[[Any, Path], str | None] | None = None
    setup: Callable[[Path, bytes], Path] | None = None  # place the bytes, return the argument
    stats: Counter[str] = field(default_factory=Counter)  # outcome -> number of cases
    seconds: float = 0.0  # wall time of this target's cases in the last run
    failures: list[str] = field(default_factory=list)


def spectrum_leak(spec: Any, _: Path) -> str | None:
    """A NaN leak in a returned Spectrum: non-finite values where it claims to be usable."""
    if not np.isfinite(spec.wavelength).all():
        return "non-finite wavelength"
    use = ~np.asarray(spec.mask, dtype=bool)
    if not np.isfinite(spec.flux[use]).all():
        return "NaN/inf flux in unmasked pixels"
    if spec.uncertainty is not None:
        u = spec.uncertainty[use]
        if not (np.isfinite(u).all() and (u > 0).all()):
            return "non-positive or NaN uncertainty in unmasked pixels"
    return None


def transmission_leak(spec: Any, _: Path) -> str | None:
    """A NaN leak in a transmission spectrum: non-finite, negative-error or absurd bins."""
    values = np.concatenate([spec.wavelength, spec.half_width, spec.depth, spec.error])
    if not np.isfinite(values).all():
        return "non-finite wavelength, width, depth or error"
    if (spec.error <= 0).any():
        return "non-positive depth error"
    return None


def linelist_leak(lines: Any, _: Path) -> str | None:
    """A NaN leak in a line list: non-finite wavenumbers, energies or intensities."""
    values = np.concatenate([lines.wavenumber, lines.e_lower, lines.intensity_ref])
    return None if np.isfinite(values).all() else "non-finite wavenumber, energy or intensity"


def fit_leak(grid: Any) -> Callable[[Any, Path], str | None]:
    """Spectrum check, then the sanity gates and a chi-square fit: no NaN in what it reports."""

    def check(spec: Any, path: Path) -> str | None:
        problem = spectrum_leak(spec, path)
        if problem or spec.uncertainty is None:
            return problem
        from atmospec.fitting.chi2 import fit_chi2

        try:
            result = fit_chi2(spec, grid)
        except AtmospecError:
            return None
        numbers = [result.chi2, result.scale, result.chi2_red, *result.best.values()]
        if not np.isfinite(numbers).all():
            return f"fit reported non-finite numbers {numbers}"
        return None

    return check


def _written_leak(out: Path) -> str | None:
    """NaN or inf numbers in the tables and JSON a command wrote under ``out``."""
    import pandas as pd

    for path in sorted(out.rglob("*")):
        if path.suffix == ".json":
            text = path.read_text(encoding="utf-8", errors="replace")
            if re.search(r"(?<![\w\"])(NaN|-?Infinity)(?![\w\"])", text):
                return f"{path.name}: bare NaN/Infinity in JSON"
        elif path.suffix == ".csv" and "parts" not in path.parts:
            frame = pd.read_csv(path)
            numbers = frame.select_dtypes("number")
            for col in ("chi2_red", "chi2", "snr", "ood_score", "scale"):
                if col in numbers and not np.isfinite(numbers[col]).all():
                    return f"{path.name}: non-finite {col}"
            if path.name.endswith("_samples.csv") and not np.isfinite(numbers.to_numpy()).all():
                return f"{path.name}: non-finite posterior samples"
            medians = [c for c in numbers if c.endswith("_median")]
            if medians and not np.isfinite(numbers[medians].to_numpy()).all():
                return f"{path.name}: non-finite parameter medians"
    return None


def _toy_grid(folder: Path) -> Path:
    """A 5x2 node grid (Teff, log g) of smooth positive spectra over 0.6-2.6 um."""
    from atmospec.grids.store import GridWriter

    wave = np.linspace(0.6, 2.6, 300)
    path = folder / "toy-grid.h5"
    with GridWriter(path, wave, ("teff", "logg"), name="toy", flux_unit="") as w:
        for teff in (800.0, 1000.0, 1200.0, 1400.0, 1600.0):
            for logg in (4.5, 5.0):
                shape = np.exp(-(((wave - 1.2 * 1000 / teff) / 0.5) ** 2)) + 0.1 * logg / 5
                w.add([teff, logg], shape * teff / 1000, label=f"t{teff:g}g{logg:g}")
    return path


def _spectrum_seeds(splat: Path | None, work: Path) -> dict[str, list[bytes]]:
    """Real seed files per format: SpeX FITS, and the same spectra written as text/CSV/ECSV/
    IPAC/VOTable/fluxcal/FITS table/JWST x1d layouts (the x1d built as the JWST pipeline lays it out)."""
    from astropy.io import fits

    from atmospec.io import read

    seeds: dict[str, list[bytes]] = defaultdict(list)
    spectra = []
    if splat is not None:
        folder = splat / "resources/Spectra/Public/SPEX-PRISM"
        for key in ("10703_10070", "10020_11100", "11576_11050"):
            gz = folder / f"{key}.fits.gz"
            if gz.exists():
                seeds["fits.gz"].append(gz.read_bytes())
                seeds["fits"].append(gzip.decompress(gz.read_bytes()))
                spectra.append(read(gz, invalid="mask"))
    if not spectra:  # no embedded data: a synthetic T-dwarf-like spectrum
        from atmospec.spectrum import Spectrum

        w = np.linspace(0.7, 2.5, 400)
        f = np.exp(-(((w - 1.27) / 0.2) ** 2)) + 0.05
        spectra.append(Spectrum(w, f, 0.02 * f + 1e-3, name="synthetic"))
    for spec in spectra:
        good = ~spec.mask
        w, f = spec.wavelength[good], spec.flux[good]
        e = spec.uncertainty[good] if spec.uncertainty is not None else 0.05 * np.abs(f)
        rows = "\n".join(f"{a:.6f} {b:.6e} {c:.6e}" for a, b, c in zip(w, f, e, strict=True))
        seeds["txt"].append(
            f"# wavelength [um] flux [W m-2 um-1] error [W m-2 um-1]\n{rows}\n".encode()
        )
        seeds["fluxcal"].append(f"{rows}\n".encode())
        csv = "\n".join(f"{a:.6f},{b:.6e},{c:.6e}" for a, b, c in zip(w, f, e, strict=True))
        seeds["csv"].append(f"wavelength [um],flux,error\n{csv}\n".encode())
        for suffix in ("ecsv", "fits-table"):
            path = work / f"seed.{'ecsv' if suffix == 'ecsv' else 'fits'}"
            spec.write(path)
            seeds[suffix].append(path.read_bytes())
        from astropy.table import Table

        table = Table({"wave": w, "flux": f, "flux_err": e}, meta={"keywords": {}})
        table["wave"].unit = "um"
        table["flux"].unit = table["flux_err"].unit = "W m-2 um-1"
        table.meta["keywords"]["OBJECT"] = {"value": str(spec.name)}
        for suffix, fmt in (("ipac", "ipac"), ("votable", "votable")):
            path = work / f"seed.{suffix}"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # VOUnit remarks
                table.write(path, format=fmt, overwrite=True)
            seeds[suffix].append(path.read_bytes())
        cols = [
            fits.Column("WAVELENGTH", "D", unit="um", array=w),
            fits.Column("FLUX", "D", unit="Jy", array=np.abs(f) * 1e-3 + 1e-6),
            fits.Column("FLUX_ERROR", "D", unit="Jy", array=np.abs(e) * 1e-3 + 1e-7),
            fits.Column("DQ", "J", array=np.zeros(w.size, dtype=np.int32)),
        ]
        ext = fits.BinTableHDU.from_columns(cols, name="EXTRACT1D")
        buf = io.BytesIO()
        fits.HDUList([fits.PrimaryHDU(), ext]).writeto(buf)
        seeds["x1d"].append(buf.getvalue())
    return seeds


def _planet_setup(root_src: Path) -> Callable[[Path, bytes], Path]:
    """Place a case as one small CSV of a copy of the Ariel sample (big parquet files linked)."""
    names = ("adc_info.csv", "wavelengths.csv", "train_star_info.csv")

    def setup(case_dir: Path, data: bytes) -> Path:
        root = case_dir / "raw"
        for src in root_src.rglob("*"):
            dest = root / src.relative_to(root_src)
            if src.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
            elif src.name not in names:
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.symlink_to(src)
        which = names[data[0] % len(names)] if data else names[0]
        for n in names:
            (root / n).write_bytes(data[1:] if n == which else (root_src / n).read_bytes())
        return next(p for p in (root / "train").iterdir() if p.is_dir())

    return setup


def _model_setup(model_src: Path) -> Callable[[Path, bytes], Path]:
    """Place a case as the ``model.json`` of a copy of a shipped model (weights linked)."""

    def setup(case_dir: Path, data: bytes) -> Path:
        folder = case_dir / "model"
        folder.mkdir()
        for src in model_src.iterdir():
            if src.name != "model.json" and src.is_file():
                (folder / src.name).symlink_to(src)
        (folder / "model.json").write_bytes(data)
        return folder

    return setup


def build_targets(work: Path) -> list[Target]:
    """Every reader and entry point with its seeds (real files where they exist)."""
    from atmospec import io as aio
    from atmospec.data import require, shared_data
    from atmospec.errors import DataNotFoundError

    try:
        splat: Path | None = require("splat")
    except DataNotFoundError:
        splat = None
    shared = shared_data()
    grid_path = _toy_grid(work)
    from atmospec.grids.grid import ModelGrid

    grid = ModelGrid(grid_path)
    seeds = _spectrum_seeds(splat, work)
    leak = fit_leak(grid)
    t: list[Target] = [
        Target("read auto .fits.gz", "s.fits.gz", seeds["fits.gz"], aio.read, "fits", 2, leak),
        Target("read auto .fits", "s.fits", seeds["fits"], aio.read, "fits", 1, leak),
        Target("read_spex", "s.fits", seeds["fits"], aio.read_spex, "fits", 1, leak),
        Target("read_text", "s.txt", seeds["txt"], aio.read_text, "text", 2, leak),
        Target("read_csv", "s.csv", seeds["csv"], aio.read_csv, "text", 2, leak),
        Target("read_ecsv", "s.ecsv", seeds["ecsv"], aio.read_ecsv, "text", 1.5, leak),
        Target("read_ipac", "s.tbl", seeds["ipac"], aio.read_ipac, "text", 1.5, leak),
        Target("read_votable", "s.xml", seeds["votable"], aio.read_votable, "text", 1.5, leak),
        Target(
            "read_fluxcal", "s_fluxcal.dat", seeds["fluxcal"], aio.read_fluxcal, "text", 1, leak
        ),
        Target(
            "read_fits_table", "t.fits", seeds["fits-table"], aio.read_fits_table, "fits", 1.5, leak
        ),
        Target("read_jwst_x1d", "x1d.fits", seeds["x1d"], aio.read_jwst_x1d, "fits", 1.5, leak),
        Target(
            "read auto (text seeds)",
            "s.dat",
            seeds["txt"] + seeds["csv"],
            aio.read,
            "text",
            1,
            leak,
        ),
    ]
    from atmospec._fileio import read_toml

    configs = sorted(Path(__file__).parents[1].glob("configs/*.toml"))
    toml_seeds = [p.read_bytes() for p in configs] or [b"[npe]\nseed = 1\n"]
    from atmospec.learning.recipe import load_recipe
    from atmospec.posteriors.pipeline import read_config

    t += [
        Target("read_toml", "c.toml", toml_seeds, read_toml, "text", 0.5),
        Target("load_recipe", "c.toml", toml_seeds, load_recipe, "text", 0.5),
        Target("npe read_config", "c.toml", toml_seeds, read_config, "text", 0.5),
    ]
    t.append(_manifest_target(splat))
    t.append(_run_record_target())
    pretrained = Path(__file__).parents[1] / "src/atmospec/pretrained/dback24-spex"
    if (pretrained / "model.json").exists():
        from atmospec.estimators.base import load_estimator

        t.append(
            Target(
                "load_estimator model.json",
                "model",
                [(pretrained / "model.json").read_bytes()],
                load_estimator,
                "text",
                0.5,
                setup=_model_setup(pretrained),
            )
        )
    if shared is not None:
        t += _shared_targets(shared)
    t += _cli_targets(work, grid_path, seeds)
    return t


def _manifest_target(splat: Path | None) -> Target:
    from atmospec import data

    seed = (splat / "manifest.json").read_bytes() if splat else b'{"name": "splat"}'

    def call(path: Path) -> Any:
        import os

        old = os.environ.get("ATMOSPEC_DATA_DIR")
        os.environ["ATMOSPEC_DATA_DIR"] = str(path.parent.parent)
        try:
            return data.read_manifest("splat")
        finally:
            if old is None:
                del os.environ["ATMOSPEC_DATA_DIR"]
            else:
                os.environ["ATMOSPEC_DATA_DIR"] = old

    def setup(case_dir: Path, raw: bytes) -> Path:
        folder = case_dir / "cache" / f"splat-{data.DISTRIBUTIONS['splat'].version}"
        folder.mkdir(parents=True)
        (folder / "manifest.json").write_bytes(raw)
        return folder / "manifest.json"

    return Target("data manifest", "manifest.json", [seed], call, "text", 0.5, setup=setup)


def _run_record_target() -> Target:
    from atmospec.prediction.runfolder import RunFolder

    record = {"kind": "predict", "options": {"draws": 100}}
    seed = json.dumps({**record, "files": {}}).encode()

    def call(path: Path) -> Any:
        rf = RunFolder(path.parent)
        rf.begin(record)
        rf.release()
        return rf

    return Target("run folder record", "run.json", [seed], call, "text", 0.5)


def _shared_targets(shared: Path) -> list[Target]:
    """Readers of the molecules, highres and transit areas on the shared real files."""
    out: list[Target] = []
    trans = shared / "transmission"
    if trans.is_dir():
        from atmospec.molecules.cia import read_cia
        from atmospec.molecules.io import read_transmission
        from atmospec.molecules.linelist import read_line_list

        dat = [p for p in sorted(trans.glob("*.dat")) if not p.name.startswith("CIA")]
        csv = [p.read_bytes() for p in sorted(trans.glob("*.csv"))]
        for p in dat:  # the same real spectrum in the CSV layout the reader documents
            t = read_transmission(p)
            rows = zip(
                t.wavelength, t.half_width, t.depth * 1e6, t.error * 1e6, t.instrument, strict=True
            )
            body = "\n".join(f"{a:.6g},{b:.6g},{c:.6g},{d:.6g},{e}" for a, b, c, d, e in rows)
            csv.insert(0, f"wavelength,half_width,depth_ppm,error,instrument\n{body}\n".encode())
        other = [p.read_bytes() for p in sorted(trans.glob("*.tsv")) + sorted(trans.glob("*.txt"))]
        for name, fname, seeds in (
            ("molecules read_transmission .dat", "t.dat", [p.read_bytes() for p in dat]),
            ("molecules read_transmission .csv", "t.csv", csv),
            ("molecules read_transmission (archive tables)", "t.tsv", other),
        ):
            if seeds:
                out.append(
                    Target(name, fname, seeds, read_transmission, "text", 1, transmission_leak)
                )
        cia = sorted(trans.glob("CIA_*.dat"))
        if cia:
            head = b"\n".join(cia[0].read_bytes().split(b"\n")[:400])
            out.append(Target("molecules read_cia", "cia.dat", [head], read_cia, "text", 0.5))
        par = trans / "hitran2020_CO.par"
        if par.exists():  # a shortened copy: Q(T) at 1-3000 K, the first 150 lines
            lines = par.read_bytes().split(b"\n")
            start = next(i for i, x in enumerate(lines) if x.startswith(b"Number of lines"))
            head = b"\n".join(
                [
                    *lines[:4],
                    b"3000",
                    *lines[5:3007],
                    lines[start],
                    b"150",
                    *lines[start + 2 : start + 154],
                ]
            )
            out.append(
                Target(
                    "molecules read_line_list",
                    "co.par",
                    [head],
                    read_line_list,
                    "text",
                    0.5,
                    linelist_leak,
                )
            )
    hpf = shared / "hpf"
    if hpf.is_dir():
        from atmospec.highres.io import read_hpf

        stack = hpf / "WASP_69_hpf_stack.fits"
        if stack.exists():
            out.append(
                Target(
                    "highres read_hpf (stack)", "h.fits", [stack.read_bytes()], read_hpf, "fits", 1
                )
            )
        gold = sorted(hpf.glob("Goldilocks_*.fits"))
        if gold:
            out.append(
                Target(
                    "highres read_hpf (Goldilocks)",
                    "g.fits",
                    [gold[0].read_bytes()],
                    read_hpf,
                    "fits",
                    0.3,
                )
            )
    ariel = shared / "ariel_sample" / "raw"
    if (ariel / "axis_info.parquet").exists():
        from atmospec.transit.io import read_planet

        seed_bytes = [
            bytes([i]) + (ariel / n).read_bytes()
            for i, n in enumerate(("adc_info.csv", "wavelengths.csv", "train_star_info.csv"))
        ]
        out.append(
            Target(
                "transit read_planet",
                "planet",
                seed_bytes,
                read_planet,
                "text",
                0.15,
                setup=_planet_setup(ariel),
            )
        )
    return out


def _cli_targets(work: Path, grid_path: Path, seeds: dict[str, list[bytes]]) -> list[Target]:
    """CLI entry points run in-process (typer's CliRunner) on generated files and options."""
    from typer.testing import CliRunner

    from atmospec.cli.main import app

    runner = CliRunner()

    def invoke(args: list[str]) -> Any:
        result = runner.invoke(app, args, catch_exceptions=True)
        exc = result.exception
        if exc is not None and not isinstance(exc, (SystemExit, AtmospecError)):
            raise exc
        if isinstance(exc, AtmospecError):
            raise exc
        if result.exit_code != 0:  # a usage error, or every input failed: a clean refusal
            raise AtmospecError(f"exit status {result.exit_code}")
        return result

    def fit_cli(path: Path) -> Any:
        out = path.parent / "fit-out"
        invoke(
            ["--quiet", "fit", str(path), "--grid", str(grid_path), "--out", str(out), "--top", "0"]
        )
        return out

    def predict_cli(path: Path) -> Any:
        out = path.parent / "predict-out"
        invoke(["--quiet", "predict", str(path), "--out", str(out), "--no-plots", "--draws", "64"])
        return out

    def posterior_cli(path: Path) -> Any:
        out = path.parent / "posterior-out"
        invoke(["--quiet", "posterior", "sample", str(path), "--n", "64", "--out", str(out)])
        return out

    option_values = (
        "0",
        "-1",
        "nan",
        "inf",
        "1e308",
        "-0",
        "3",
        "x",
        "1.5",
        "99999999999999999999",
    )

    def predict_options(path: Path) -> Any:
        """Edge values for predict's numeric options (on a valid spectrum file)."""
        rng = np.random.default_rng(int.from_bytes(path.read_bytes()[:8].ljust(8, b"\0"), "little"))
        out = path.parent / "opts-out"
        spec = path.parent / "spec.txt"
        spec.write_bytes(seeds["txt"][0])
        args = ["--quiet", "predict", str(spec), "--out", str(out), "--no-plots"]
        for opt in ("--chunk", "--draws", "--max-masked", "--assume-snr", "--max-plots"):
            if rng.random() < 0.4:
                args += [opt, option_values[int(rng.integers(len(option_values)))]]
        if "--draws" not in args:
            args += ["--draws", "32"]
        invoke(args)
        return out

    def options_of(command: list[str], opts: tuple[str, ...], last: list[str]) -> Any:
        """Edge values for a command's numeric options (on a valid spectrum file)."""

        def call(path: Path) -> Any:
            seed = int.from_bytes(path.read_bytes()[:8].ljust(8, b"\0"), "little")
            rng = np.random.default_rng(seed)
            out = path.parent / "opts-out"
            spec = path.parent / "spec.txt"
            spec.write_bytes(seeds["txt"][0])
            args = ["--quiet", *command, str(spec), "--out", str(out)]
            for opt in opts:
                if rng.random() < 0.4:
                    args += [opt, option_values[int(rng.integers(len(option_values)))]]
            invoke(args + last)
            return out

        return call

    fit_options = options_of(
        ["fit", "--grid", str(grid_path)],
        ("--distance-pc", "--sys-floor", "--top", "--assume-snr", "--resolution", "--seed"),
        [],
    )
    posterior_options = options_of(
        ["posterior", "sample"], ("--n", "--seed", "--assume-snr", "--resolution"), ["--n", "64"]
    )
    written = lambda out, _path: _written_leak(out) if Path(out).exists() else None  # noqa: E731
    return [
        Target("cli fit", "spec.txt", seeds["txt"], fit_cli, "text", 0.4, written),
        Target(
            "cli predict",
            "spec.fits.gz",
            seeds["fits.gz"] or seeds["txt"],
            predict_cli,
            "fits",
            0.15,
            written,
        ),
        Target(
            "cli predict options", "seed.bin", [b"\0" * 8], predict_options, "binary", 0.1, written
        ),
        Target(
            "cli posterior sample", "spec.txt", seeds["txt"], posterior_cli, "text", 0.15, written
        ),
        Target("cli fit options", "seed.bin", [b"\0" * 8], fit_options, "binary", 0.1, written),
        Target(
            "cli posterior options",
            "seed.bin",
            [b"\0" * 8],
            posterior_options,
            "binary",
            0.1,
            written,
        ),  # fmt: skip
    ]


# ------------------------------------------------------------------------------ running
def generate(target: Target, rng: np.random.Generator) -> bytes:
    """One case for ``target``: mostly mutated real seeds, some random bytes, some stacked."""
    r = rng.random()
    if r < 0.08 or not target.seeds:
        return random_bytes(rng)
    data = target.seeds[int(rng.integers(len(target.seeds)))]
    for _ in range(1 + int(rng.integers(3)) * (rng.random() < 0.3)):
        value_level = rng.random() < 0.6
        if value_level and target.kind == "text":
            data = mutate_text(data, rng)
        elif value_level and target.kind == "fits":
            data = mutate_fits(data, rng)
        elif target.kind == "binary":
            data = rng.integers(0, 256, 8, dtype=np.uint8).tobytes()
        else:
            data = mutate_bytes(data, rng)
    return data


def run_case(target: Target, data: bytes, work: Path, save: Path | None = None) -> str:
    """Run one case; return its outcome (ok, refused, traceback, nan_leak).

    With ``save``, the input of every traceback or leak is kept there to reproduce it.
    """
    outcome = _run_case(target, data, work)
    if save is not None and outcome in ("traceback", "nan_leak"):
        save.mkdir(parents=True, exist_ok=True)
        slug = re.sub(r"\W+", "_", target.name)
        (save / f"{slug}-{len(target.failures):04d}-{target.filename}").write_bytes(data)
    return outcome


def _run_case(target: Target, data: bytes, work: Path) -> str:
    case_dir = Path(tempfile.mkdtemp(dir=work))
    try:
        if target.setup is not None:
            arg = target.setup(case_dir, data)
        else:
            arg = case_dir / target.filename
            arg.write_bytes(data)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = target.call(arg)
        except AtmospecError:
            return "refused"
        except Exception as err:  # noqa: BLE001 - every other type is the bug being counted
            tb = traceback.extract_tb(err.__traceback__)
            where = next(
                (
                    f"{Path(f.filename).name}:{f.lineno}"
                    for f in reversed(tb)
                    if "atmospec" in f.filename
                ),
                "?",
            )
            target.failures.append(f"{type(err).__name__} at {where}: {str(err)[:160]}")
            return "traceback"
        if target.leak is not None:
            problem = target.leak(result, arg)
            if problem:
                target.failures.append(f"NaN leak: {problem}")
                return "nan_leak"
        return "ok"
    finally:
        shutil.rmtree(case_dir, ignore_errors=True)


def run(
    n_cases: int,
    seed: int = 0,
    *,
    work: Path | None = None,
    quiet: bool = False,
    save: Path | None = None,
    exclude: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Run ``n_cases`` cases spread over the targets by weight; return the summary.

    ``exclude``: name prefixes of targets to leave out (e.g. the slow ``"cli predict"``).
    """
    logging.disable(logging.WARNING)
    rng = np.random.default_rng(seed)
    with contextlib.ExitStack() as stack:
        if work is None:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="atmospec-fuzz-")))
        targets = [t for t in build_targets(work) if not t.name.startswith(exclude)]
        weights = np.array([t.weight for t in targets])
        counts = np.floor(n_cases * weights / weights.sum()).astype(int)
        counts[: n_cases - counts.sum()] += 1
        t0 = time.perf_counter()
        for target, n in zip(targets, counts, strict=True):
            t1 = time.perf_counter()
            for _ in range(int(n)):
                target.stats[run_case(target, generate(target, rng), work, save)] += 1
            target.seconds = round(time.perf_counter() - t1, 2)
            if not quiet:
                shown = {**target.stats, "seconds": target.seconds}
                print(f"  {target.name}: {shown}", file=sys.stderr, flush=True)
        wall = time.perf_counter() - t0
    logging.disable(logging.NOTSET)
    total: Counter[str] = Counter()
    for t in targets:
        total.update(t.stats)
    return {
        "cases": int(sum(total.values())),
        "tracebacks": int(total["traceback"]),
        "nan_leaks": int(total["nan_leak"]),
        "refused": int(total["refused"]),
        "ok": int(total["ok"]),
        "wall_time_s": round(wall, 1),
        "seed": seed,
        "targets": {
            t.name: {
                **{k: int(v) for k, v in t.stats.items()},
                "s": t.seconds,
            }
            for t in targets
        },
        "failures": {
            t.name: sorted(Counter(t.failures).items())[:10] for t in targets if t.failures
        },
    }


def _atheris(seconds: int, work: Path) -> dict[str, Any]:
    """A coverage-guided atheris run of the byte-level targets, in a child process."""
    import subprocess

    try:
        import atheris  # noqa: F401
    except ImportError:
        return {"atheris": "not installed (pip install atheris)"}
    report = work / "atheris.json"
    code = f"""
import sys, json, atheris, tempfile
from pathlib import Path
sys.path.insert(0, {str(Path(__file__).parent)!r})
with atheris.instrument_imports(include=["atmospec"]):
    import fuzz
work = Path(tempfile.mkdtemp())
targets = [t for t in fuzz.build_targets(work) if not t.name.startswith("cli") and t.setup is None]
stats = {{"cases": 0, "tracebacks": 0, "nan_leaks": 0, "failures": []}}
def one(data):
    if not data:
        return
    t = targets[data[0] % len(targets)]
    outcome = fuzz.run_case(t, data[1:], work)
    stats["cases"] += 1
    stats["tracebacks"] += outcome == "traceback"
    stats["nan_leaks"] += outcome == "nan_leak"
    if outcome in ("traceback", "nan_leak"):
        stats["failures"].append(t.name + ": " + t.failures[-1])
    if stats["cases"] % 100 == 0 or outcome != "ok":
        Path({str(report)!r}).write_text(json.dumps(stats))
corpus = work / "corpus"  # the real seeds, each prefixed with its target's index
corpus.mkdir()
for i, t in enumerate(targets):
    for j, seed in enumerate(t.seeds):
        if len(seed) < 1_000_000:
            (corpus / f"{{i}}-{{j}}").write_bytes(bytes([i]) + seed)
atheris.Setup(
    [sys.argv[0], "-max_total_time={seconds}", "-rss_limit_mb=4096", "-max_len=400000", str(corpus)],
    one,
)
atheris.Fuzz()
"""
    subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=seconds + 300
    )
    if report.exists():
        return json.loads(report.read_text())
    return {"atheris": "no report written"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,500 cases (about a minute).")
    parser.add_argument("--cases", type=int, default=None, help="Number of cases (default 12000).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--atheris", type=int, default=0, help="Seconds of atheris fuzzing.")
    parser.add_argument("--out", type=Path, default=None, help="Write the JSON summary here.")
    parser.add_argument("--save", type=Path, default=None, help="Keep failing inputs here.")
    args = parser.parse_args()
    n = args.cases or (1500 if args.quick else 12000)
    summary = run(n, args.seed, save=args.save)
    print(
        f"{'target':40s} {'cases':>6s} {'ok':>6s} {'refused':>8s} {'tracebk':>8s} {'nanleak':>8s} {'s':>7s}"
    )
    for name, st in summary["targets"].items():
        n_t = sum(v for k, v in st.items() if k != "s")
        print(
            f"{name:40s} {n_t:6d} {st.get('ok', 0):6d} {st.get('refused', 0):8d} "
            f"{st.get('traceback', 0):8d} {st.get('nan_leak', 0):8d} {st['s']:7.1f}"
        )
    for name, fails in summary["failures"].items():
        for text, count in fails:
            print(f"  {name}: {count} x {text}")
    if args.atheris:
        with tempfile.TemporaryDirectory() as tmp:
            summary["atheris"] = _atheris(args.atheris, Path(tmp))
        print(f"atheris: {summary['atheris']}")
    from atmospec._fileio import provenance, write_json

    summary["provenance"] = provenance(seed=args.seed, job="benchmarks/fuzz.py")
    if args.out is not None:
        write_json(args.out, summary)
    last = {
        k: summary[k] for k in ("cases", "tracebacks", "nan_leaks", "refused", "ok", "wall_time_s")
    }
    if "atheris" in summary:
        last["atheris"] = {
            k: summary["atheris"].get(k) for k in ("cases", "tracebacks", "nan_leaks")
        }
    print(json.dumps(last))


if __name__ == "__main__":
    main()
