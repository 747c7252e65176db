"""Batch prediction over many spectra: streaming, restartable, atomic outputs, progress."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from atmospec.errors import AtmospecError, FileFormatError

if TYPE_CHECKING:
    import pandas as pd

    from atmospec.inference.predict import Predictor
    from atmospec.spectrum import Spectrum

__all__ = [
    "Source",
    "BatchSummary",
    "run_batch",
    "file_sources",
    "folder_sources",
    "catalog_sources",
    "library_sources",
    "SPECTRUM_SUFFIXES",
]

SPECTRUM_SUFFIXES: tuple[str, ...] = (
    ".fits",
    ".fits.gz",
    ".fit",
    ".fts",
    ".ecsv",
    ".csv",
    ".txt",
    ".dat",
    ".txt.gz",
    ".csv.gz",
)
"""File endings taken as spectra when a folder is scanned."""

_PARTS = "parts"


@dataclass(frozen=True)
class Source:
    """One spectrum of a batch: its id (file path or library key) and how to load it."""

    id: str
    load: Callable[[], Spectrum]


@dataclass
class BatchSummary:
    """What a batch run did: rows done now and before, failures, time and throughput."""

    out: Path
    n_total: int
    n_done_before: int
    n_predicted: int
    n_failed: int
    wall_time_s: float
    rows_by_model: dict[str, int] | None = None

    @property
    def spectra_per_s(self) -> float:
        n = self.n_predicted + self.n_failed
        return n / self.wall_time_s if self.wall_time_s > 0 else float("nan")


# ---------------------------------------------------------------------------- sources
def _file_loader(path: Path) -> Callable[[], Spectrum]:
    def load() -> Spectrum:
        from atmospec.inference.predict import _read

        return _read(path, "refuse")

    return load


def file_sources(paths: Iterable[str | os.PathLike[str]]) -> list[Source]:
    """Sources for explicit spectrum files (ids are the paths as given)."""
    return [Source(str(p), _file_loader(Path(p))) for p in paths]


def folder_sources(folder: str | os.PathLike[str]) -> list[Source]:
    """Every spectrum file (see :data:`SPECTRUM_SUFFIXES`) in ``folder``, sorted by name."""
    root = Path(folder)
    if not root.is_dir():
        from atmospec.errors import DataNotFoundError

        raise DataNotFoundError(f"{root}: no such folder")
    files = sorted(
        p for p in root.iterdir() if p.is_file() and p.name.lower().endswith(SPECTRUM_SUFFIXES)
    )
    if not files:
        raise FileFormatError(
            f"{root}: no spectrum files (endings {', '.join(SPECTRUM_SUFFIXES)}) in this folder"
        )
    return file_sources(files)


def catalog_sources(table: str | os.PathLike[str], column: str | None = None) -> list[Source]:
    """Spectrum files listed in a table (CSV, ECSV or any astropy-readable table).

    The column is ``column``, else the first of ``file``, ``path``, ``filename``, ``spectrum``.
    Relative paths are taken relative to the table's folder. A ``key`` column of SpeX library
    keys is also accepted (spectra then come from the library).
    """
    from astropy.table import Table

    path = Path(table)
    try:
        tab = Table.read(path, format="ascii.ecsv" if path.suffix == ".ecsv" else None)
    except Exception as err:  # astropy raises many types for unreadable tables
        try:
            tab = Table.read(path, format="ascii.csv")
        except Exception:
            raise FileFormatError(f"{path}: cannot read the table of spectra ({err})") from None
    names = list(tab.colnames)
    wanted = [column] if column else ["file", "path", "filename", "spectrum", "key"]
    col = next((c for c in wanted if c in names), None)
    if col is None:
        raise FileFormatError(
            f"{path}: no column named {' / '.join(wanted)} (columns: {', '.join(names)}); "
            "name the column of file paths with --column"
        )
    values = [str(v) for v in tab[col]]
    if col == "key":
        return library_sources(keys=values)
    return file_sources(p if Path(p).is_absolute() else path.parent / p for p in values)


def library_sources(
    *,
    spt: str | None = None,
    snr_min: float | None = None,
    quality: str | None = None,
    keys: Sequence[str] | None = None,
    limit: int | None = None,
) -> list[Source]:
    """SpeX library spectra selected by spectral type, S/N and quality (or explicit keys)."""
    from atmospec.library import load, query

    if keys is None:
        keys = [str(k) for k in query(spt=spt, snr_min=snr_min, quality=quality)["key"]]
    if limit is not None:
        keys = list(keys)[:limit]

    def loader(key: str) -> Callable[[], Spectrum]:
        return lambda: load(key)

    return [Source(k, loader(k)) for k in keys]


# ------------------------------------------------------------------------------ run
def _done(out: Path) -> tuple[set[str], set[str], int]:
    """Sources already predicted / failed, from the part files; and the next part number."""
    import pandas as pd

    done: set[str] = set()
    failed: set[str] = set()
    next_part = 0
    for part in sorted((out / _PARTS).glob("*.csv")):
        stem = part.stem
        kind, _, num = stem.partition("-")
        next_part = max(next_part, int(num) + 1 if num.isdigit() else 0)
        frame = pd.read_csv(part, dtype={"source": str}, keep_default_na=False)
        (done if kind == "rows" else failed).update(frame["source"].astype(str))
    return done, failed, next_part


def _check_run(out: Path, model_id: str) -> None:
    import json

    record = out / "run.json"
    if not record.exists():
        return
    try:
        previous = json.loads(record.read_text(encoding="utf-8"))
    except ValueError:
        return
    if previous.get("model_id") not in (None, model_id):
        raise AtmospecError(
            f"{out}: this folder holds a run of model {previous.get('model_id')}; resuming it "
            f"with model {model_id} would mix two models in one table. Use another --out"
        )


_TEXT_COLUMNS = ("source", "name", "notes", "ood_reason", "model_id", "grids_used")


def _numeric(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns read as text only because some rows were NaN (written as empty cells) back to
    numbers; columns of text stay text."""
    import numpy as np
    import pandas as pd

    for c in frame.columns:
        col = frame[c]
        if (
            c in _TEXT_COLUMNS
            or pd.api.types.is_numeric_dtype(col)
            or pd.api.types.is_bool_dtype(col)
        ):
            continue
        text = col.astype(str)
        blank = text.str.strip().isin(["", "nan", "NaN"])
        num = pd.to_numeric(text.where(~blank, np.nan), errors="coerce")
        if num.notna().sum() == (~blank).sum():
            frame[c] = num
    return frame


def merge_parts(out: str | os.PathLike[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Merge the part files of a run into ``predictions.ecsv`` / ``.csv`` and ``failures.csv``.

    Idempotent and atomic; returns ``(predictions, failures)`` as DataFrames.
    """
    import pandas as pd
    from astropy.table import Table

    from atmospec._fileio import atomic_path

    out = Path(out)
    frames: dict[str, list[pd.DataFrame]] = {"rows": [], "failed": []}
    for part in sorted((out / _PARTS).glob("*.csv")):
        kind = part.stem.partition("-")[0]
        frames.setdefault(kind, []).append(
            pd.read_csv(
                part,
                dtype={"source": str, "ood_reason": str, "notes": str},
                keep_default_na=False,
                na_values={"chi2_red": ["nan", "NaN"]},
            )
        )
    rows = pd.concat(frames["rows"], ignore_index=True) if frames["rows"] else pd.DataFrame()
    fails = (
        pd.concat(frames["failed"], ignore_index=True)
        if frames["failed"]
        else pd.DataFrame(columns=["source", "error"])
    )
    if not rows.empty:
        rows = _numeric(rows.drop_duplicates("source", keep="first").reset_index(drop=True))
        with atomic_path(out / "predictions.csv") as tmp:
            rows.to_csv(tmp, index=False)
        with atomic_path(out / "predictions.ecsv") as tmp:
            Table.from_pandas(rows).write(tmp, format="ascii.ecsv", overwrite=True)
    with atomic_path(out / "failures.csv") as tmp:
        fails.drop_duplicates("source").to_csv(tmp, index=False)
    return rows, fails


def run_batch(
    sources: Sequence[Source],
    out: str | os.PathLike[str],
    predictor: Predictor,
    *,
    chunk: int = 32,
    plots: bool = True,
    max_plots: int | None = 100,
    quiet: bool = False,
    retry_failed: bool = False,
    options: dict[str, Any] | None = None,
) -> BatchSummary:
    """Predict every source into ``out``, ``chunk`` spectra at a time, resuming earlier runs.

    Only one chunk of spectra (and its samples) is in memory at a time. After each chunk its
    rows go to ``out/parts/rows-NNNNN.csv`` (and spectra that could not be used, with the
    reason, to ``parts/failed-NNNNN.csv``), each written atomically: an interrupted run loses
    at most the chunk in flight, and a rerun skips every source already recorded (failed ones
    too unless ``retry_failed``). At the end the parts are merged into ``predictions.ecsv``,
    ``predictions.csv`` and ``failures.csv``; ``run.json`` records the model, options,
    counts, throughput and provenance. Per object figures (data over the grid model,
    corner plot) go to ``out/objects/`` for the first ``max_plots`` objects of the folder
    (None: all; figures cost ~1 s per object, the network a few ms).

    Returns:
        A :class:`BatchSummary` (throughput in ``spectra_per_s``).
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from atmospec._fileio import atomic_path, provenance, write_json
    from atmospec.inference.predict import write_object_figures

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / _PARTS).mkdir(exist_ok=True)
    _check_run(out, predictor.model_id)
    done, failed, part_no = _done(out)
    skip = done | (set() if retry_failed else failed)
    ids = [s.id for s in sources]
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        dupes = sorted({i for i in ids if i in seen or seen.add(i)})  # type: ignore[func-returns-value]
        raise AtmospecError(f"the batch lists some spectra twice: {', '.join(dupes[:5])}")
    pending = [s for s in sources if s.id not in skip]
    n_before = len(sources) - len(pending)
    record: dict[str, Any] = {
        "kind": "predict",
        "status": "running",
        "model_id": predictor.model_id,
        "grid": predictor.grid.name if predictor.grid is not None else "",
        "draws": predictor.draws,
        "coverage": predictor.coverage,
        "n_sources": len(sources),
        "options": options or {},
        "selection": None if predictor.policy is None else predictor.policy.to_dict(),
        "provenance": provenance(
            seed=predictor.seed, job="atmospec predict (batch)", model_id=predictor.model_id
        ),
    }
    write_json(out / "run.json", record)
    bar = tqdm(
        total=len(sources),
        initial=n_before,
        unit="spec",
        disable=quiet,
        desc="predicting",
        dynamic_ncols=True,
    )
    t0 = time.perf_counter()
    n_ok = n_fail = 0
    try:
        for start in range(0, len(pending), chunk):
            block = pending[start : start + chunk]
            inputs, errors = [], []
            for src in block:
                try:
                    spectrum = src.load()
                    spectrum.meta["source"] = src.id
                    inputs.append(predictor.prepare(spectrum))
                except AtmospecError as err:
                    errors.append({"source": src.id, "error": str(err)})
            if inputs:
                result = predictor.predict_inputs(inputs)
                n_figs = len(list((out / "objects").glob("*_corner.png")))
                if plots and (max_plots is None or n_figs < max_plots):
                    write_object_figures(result, out / "objects")
                frame = result.table().to_pandas()
                with atomic_path(out / _PARTS / f"rows-{part_no:05d}.csv") as tmp:
                    frame.to_csv(tmp, index=False)
            if errors:
                with atomic_path(out / _PARTS / f"failed-{part_no:05d}.csv") as tmp:
                    pd.DataFrame(errors).to_csv(tmp, index=False)
            part_no += 1
            n_ok += len(inputs)
            n_fail += len(errors)
            bar.update(len(block))
    finally:
        bar.close()
    wall = time.perf_counter() - t0
    rows, fails = merge_parts(out)
    summary = BatchSummary(out, len(sources), n_before, n_ok, n_fail, wall)
    if "model_id" in rows:
        summary.rows_by_model = {str(k): int(v) for k, v in rows["model_id"].value_counts().items()}
    record.update(
        status="complete",
        n_rows=int(len(rows)),
        n_failed=int(len(fails)),
        n_predicted_this_run=n_ok,
        n_failed_this_run=n_fail,
        n_done_before=n_before,
        wall_time_s=wall,
        spectra_per_s=summary.spectra_per_s,
        rows_by_model=summary.rows_by_model or {},
    )
    write_json(out / "run.json", record)
    return summary
