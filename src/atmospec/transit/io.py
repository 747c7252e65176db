"""Reader and writer of the Ariel Data Challenge raw format (parquet frames + calibration files)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from atmospec._fileio import atomic_path
from atmospec._optional import require
from atmospec.errors import DataNotFoundError, FileFormatError

from .tables import adc_of_planet, planet_ids

__all__ = [
    "INSTRUMENTS",
    "CalibrationFrames",
    "RawObservation",
    "find_root",
    "read_planet",
    "read_labels",
    "read_star_info",
    "write_planet",
    "write_dataset_tables",
]

#: The two instruments of the challenge: the spectrograph and the fine guidance sensor.
INSTRUMENTS: tuple[str, str] = ("AIRS-CH0", "FGS1")
_CALIB_NAMES = ("dark", "dead", "flat", "read", "linear_corr")
_STAR_COLUMNS = ("Rs", "Ms", "Ts", "Mp", "e", "P", "sma", "i")


@dataclass(frozen=True)
class CalibrationFrames:
    """The calibration frames of one instrument, each ``(rows, cols)``.

    ``dark`` is the dark current (counts per second), ``dead`` is True at dead pixels, ``flat``
    the relative pixel response, ``read`` the read noise (counts) and ``linear_corr`` the
    ``(6, rows, cols)`` polynomial coefficients of the linearity correction, lowest power first.

    Example:
        >>> z = np.zeros((2, 3)); CalibrationFrames(z, z > 0, z + 1, z, np.stack([z] * 6)).shape
        (2, 3)
    """

    dark: NDArray[np.float64]
    dead: NDArray[np.bool_]
    flat: NDArray[np.float64]
    read: NDArray[np.float64]
    linear_corr: NDArray[np.float64]

    @property
    def shape(self) -> tuple[int, int]:
        """The frame shape ``(rows, cols)``."""
        return (int(self.dark.shape[0]), int(self.dark.shape[1]))


@dataclass
class RawObservation:
    """Everything the challenge stores about one planet's visit, as read from disk.

    Attributes:
        planet_id: the planet's identifier (its folder name).
        frames: uint16 frames per instrument, ``(n_frames, rows, cols)`` (float64 for
            unquantized simulations held in memory).
        calibration: calibration frames per instrument.
        adc: ``(gain, offset)`` per instrument: counts = raw / gain + offset.
        time_h: frame times in hours per instrument.
        integration_s: AIRS-CH0 integration time of every frame (s), from ``axis_info``.
        airs_wavelength_um: wavelength of every AIRS-CH0 detector column (µm).
        wavelengths: the target wavelength bins (µm); the first is the FGS1 photometric bin.
        star: the row of ``*_star_info.csv`` for this planet (empty if absent).
        source: the planet folder.

    Example:
        >>> from atmospec.transit.simulator import SimulationConfig, simulate_planet
        >>> simulate_planet("7", SimulationConfig(n_exposures=4), np.random.default_rng(0))[0]
        RawObservation(planet 7: AIRS-CH0 (8, 16, 40), FGS1 (16, 8, 8); 31 bins)
    """

    planet_id: str
    frames: dict[str, NDArray[Any]]
    calibration: dict[str, CalibrationFrames]
    adc: dict[str, tuple[float, float]]
    time_h: dict[str, NDArray[np.float64]]
    integration_s: NDArray[np.float64]
    airs_wavelength_um: NDArray[np.float64]
    wavelengths: NDArray[np.float64]
    star: dict[str, float] = field(default_factory=dict)
    source: Path | None = None

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k} {v.shape}" for k, v in self.frames.items())
        return f"RawObservation(planet {self.planet_id}: {shapes}; {self.wavelengths.size} bins)"


def find_root(planet_dir: str | Path) -> Path:
    """The dataset folder holding ``axis_info.parquet`` for ``planet_dir`` (itself or a parent).

    Raises:
        DataNotFoundError: when no folder up to two levels above holds the metadata files.

    Example:
        >>> import tempfile; d = Path(tempfile.mkdtemp()); (d / "axis_info.parquet").touch()
        >>> find_root(d / "train" / "7") == d
        True
    """
    planet_dir = Path(planet_dir)
    for cand in (planet_dir, planet_dir.parent, planet_dir.parent.parent):
        if (cand / "axis_info.parquet").exists():
            return cand
    raise DataNotFoundError(
        f"{planet_dir}: no axis_info.parquet in this folder or the two above it; expected the "
        "Ariel layout ROOT/{train,test}/PLANET_ID/ with ROOT holding axis_info.parquet, "
        "adc_info.csv and wavelengths.csv"
    )


def _one(folder: Path, stem: str, suffix: str = ".parquet") -> Path:
    """``stem_0.parquet`` (2025 naming) or ``stem.parquet`` (2024 naming) in ``folder``."""
    for name in (f"{stem}_0{suffix}", f"{stem}{suffix}"):
        if (folder / name).exists():
            return folder / name
    hits = sorted(folder.glob(f"{stem}_*{suffix}"))
    if hits:
        return hits[0]
    raise DataNotFoundError(f"{folder}: missing {stem}{suffix} (or {stem}_0{suffix})")


def _read_table(path: Path) -> NDArray[Any]:
    pq = require("pyarrow.parquet", "transit")

    try:
        table = pq.read_table(path)
    except Exception as err:  # pyarrow raises several unrelated types
        raise FileFormatError(f"{path}: not a readable parquet file ({err})") from err
    cols = [np.asarray(c.to_numpy(zero_copy_only=False)) for c in table.columns]
    if not cols:
        raise FileFormatError(f"{path}: the parquet file has no columns")
    return np.stack(cols, axis=1)


def _read_frames(path: Path, shape: tuple[int, int]) -> NDArray[np.uint16]:
    """Frames stored either as one flattened column or as one row per frame."""
    values = _read_table(path)
    npix = shape[0] * shape[1]
    if values.shape[1] == 1:
        flat = values[:, 0]
        if flat.size % npix:
            raise FileFormatError(
                f"{path}: {flat.size} values are not a whole number of {shape[0]}x{shape[1]} "
                "frames (frame shape taken from the calibration dark)"
            )
        frames = flat.reshape(-1, *shape)
    elif values.shape[1] == npix:
        frames = values.reshape(-1, *shape)
    else:
        raise FileFormatError(
            f"{path}: {values.shape[1]} columns; expected 1 (flattened) or {npix} "
            f"({shape[0]}x{shape[1]} pixels per frame)"
        )
    if not np.issubdtype(frames.dtype, np.integer):
        raise FileFormatError(f"{path}: frames are {frames.dtype}, expected uint16 detector counts")
    return frames.astype(np.uint16, copy=False)


def _read_calibration(folder: Path) -> CalibrationFrames:
    if not folder.is_dir():
        raise DataNotFoundError(f"{folder}: calibration folder missing")
    parts: dict[str, NDArray[Any]] = {}
    for name in _CALIB_NAMES:
        path = folder / f"{name}.parquet"
        if not path.exists():
            raise DataNotFoundError(f"{path}: calibration file missing")
        parts[name] = _read_table(path)
    shape = parts["dark"].shape
    for name in ("dead", "flat", "read"):
        if parts[name].shape != shape:
            raise FileFormatError(
                f"{folder / name}.parquet: shape {parts[name].shape} differs from dark {shape}"
            )
    lin = parts["linear_corr"]
    if lin.shape[1] != shape[1] or lin.shape[0] % shape[0]:
        raise FileFormatError(
            f"{folder}/linear_corr.parquet: shape {lin.shape} is not (k*{shape[0]}, {shape[1]})"
        )
    return CalibrationFrames(
        dark=parts["dark"].astype(np.float64),
        dead=parts["dead"].astype(bool),
        flat=parts["flat"].astype(np.float64),
        read=parts["read"].astype(np.float64),
        linear_corr=lin.astype(np.float64).reshape(-1, *shape),
    )


def _read_csv(path: Path) -> Any:
    """A CSV table as a DataFrame; unreadable or non-text content raises FileFormatError."""
    import pandas as pd

    try:
        return pd.read_csv(path)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise FileFormatError(f"{path}: not a readable CSV table ({err})") from None


def _numbers(path: Path, what: str, convert: Any) -> Any:
    """``convert()``, with a non-numeric or missing value reported against ``path``."""
    try:
        return convert()
    except (ValueError, TypeError, IndexError, OverflowError) as err:
        raise FileFormatError(f"{path}: {what} is not numeric or is missing ({err})") from None


def read_star_info(root: str | Path, planet_id: str) -> dict[str, float]:
    """The ``*_star_info.csv`` row of ``planet_id`` in ``root`` (empty dict when absent)."""

    for path in sorted(Path(root).glob("*star_info.csv")):
        table = _read_csv(path)
        rows = table[planet_ids(path, table) == str(planet_id)]
        if len(rows):
            row = rows.iloc[0]
            return _numbers(
                path,
                "a star parameter",
                lambda r=row: {k: float(r[k]) for k in _STAR_COLUMNS if k in r},
            )
    return {}


def read_labels(root: str | Path, split: str = "train") -> dict[str, NDArray[np.float64]]:
    """True depth spectra from ``ROOT/{split}_labels.csv`` (2024 layout), by planet id.

    Example:
        >>> import tempfile; d = Path(tempfile.mkdtemp()); f = d / "train_labels.csv"
        >>> _ = f.write_text("planet_id,wl_1,wl_2\\n7,0.01,0.02\\n"); read_labels(d)
        {'7': array([0.01, 0.02])}
    """

    path = Path(root) / f"{split}_labels.csv"
    if not path.exists():
        raise DataNotFoundError(f"{path}: no labels file (only simulated or training data has one)")
    table = _read_csv(path)
    ids = planet_ids(path, table)
    wl = [c for c in table.columns if c.startswith("wl_")]
    values = table[wl].to_numpy(np.float64)
    return {pid: values[i] for i, pid in enumerate(ids)}


def read_planet(planet_dir: str | Path) -> RawObservation:
    """Read one planet folder of the Ariel raw format.

    The frame shape of each instrument comes from its calibration dark; signal files may hold
    one flattened column (as in ``shared/data/ariel_sample``) or one row per frame (Kaggle).
    Timing is taken from the first ``n_frames`` rows of ``axis_info.parquet``.

    Args:
        planet_dir: ``ROOT/train/PLANET_ID`` (ROOT holds ``axis_info.parquet``,
            ``adc_info.csv`` and ``wavelengths.csv``).

    Raises:
        DataNotFoundError: a required file is missing (its path is in the message).
        FileFormatError: a file does not have the expected layout.

    Example:
        >>> import tempfile; from atmospec.transit.simulator import simulate_dataset
        >>> d = Path(tempfile.mkdtemp()); _ = simulate_dataset(d, 1); read_planet(d / "train" / "0")
        RawObservation(planet 0: AIRS-CH0 (800, 16, 40), FGS1 (1600, 8, 8); 31 bins)
    """
    import pandas as pd

    planet_dir = Path(planet_dir)
    if not planet_dir.is_dir():
        raise DataNotFoundError(f"{planet_dir}: planet folder not found")
    root = find_root(planet_dir)
    planet_id = planet_dir.name

    adc_path = root / "adc_info.csv"
    if not adc_path.exists():
        raise DataNotFoundError(f"{adc_path}: missing")
    adc = adc_of_planet(adc_path, _read_csv(adc_path), planet_id, INSTRUMENTS)

    calibration = {inst: _read_calibration(_calib_dir(planet_dir, inst)) for inst in INSTRUMENTS}
    frames = {
        inst: _read_frames(_one(planet_dir, f"{inst}_signal"), calibration[inst].shape)
        for inst in INSTRUMENTS
    }

    require("pyarrow", "transit")  # pandas reads Parquet through pyarrow
    axis = pd.read_parquet(root / "axis_info.parquet")
    needed = ("AIRS-CH0-axis0-h", "AIRS-CH0-axis2-um", "AIRS-CH0-integration_time", "FGS1-axis0-h")
    missing = [c for c in needed if c not in axis]
    if missing:
        raise FileFormatError(f"{root / 'axis_info.parquet'}: missing columns {missing}")
    time_h: dict[str, NDArray[np.float64]] = {}
    for inst, col in (("AIRS-CH0", "AIRS-CH0-axis0-h"), ("FGS1", "FGS1-axis0-h")):
        t = axis[col].dropna().to_numpy(np.float64)
        n = frames[inst].shape[0]
        if t.size < n:
            raise FileFormatError(
                f"{root / 'axis_info.parquet'}: {col} has {t.size} times but the signal has "
                f"{n} frames"
            )
        time_h[inst] = t[:n]
    n_airs = frames["AIRS-CH0"].shape[0]
    integration = axis["AIRS-CH0-integration_time"].dropna().to_numpy(np.float64)[:n_airs]
    airs_wl = axis["AIRS-CH0-axis2-um"].dropna().to_numpy(np.float64)
    if airs_wl.size != calibration["AIRS-CH0"].shape[1]:
        raise FileFormatError(
            f"{root / 'axis_info.parquet'}: AIRS-CH0-axis2-um has {airs_wl.size} values for "
            f"{calibration['AIRS-CH0'].shape[1]} detector columns"
        )
    wl_path = root / "wavelengths.csv"
    if not wl_path.exists():
        raise DataNotFoundError(f"{wl_path}: missing")
    wavelengths = _read_wavelengths(wl_path, root)
    return RawObservation(
        planet_id=planet_id,
        frames=frames,
        calibration=calibration,
        adc=adc,
        time_h=time_h,
        integration_s=integration,
        airs_wavelength_um=airs_wl,
        wavelengths=wavelengths,
        star=read_star_info(root, planet_id),
        source=planet_dir,
    )


def _wl_names(path: Path) -> list[str]:
    import pandas as pd

    try:
        header = pd.read_csv(path, nrows=0)
    except Exception as err:  # pandas raises several unrelated types
        raise FileFormatError(f"{path}: not a readable CSV table ({err})") from err
    return [str(c) for c in header.columns if str(c).startswith("wl_")]


def _read_wavelengths(path: Path, root: Path) -> NDArray[np.float64]:
    """The target wavelength bins of ``wavelengths.csv``, checked: one row of finite positive
    values in columns ``wl_1 .. wl_N``, the AIRS-CH0 bins (``wl_2`` on) strictly monotonic, and
    as many bins as the dataset's labels and sample submission (when present) define."""
    table = _read_csv(path)
    names = [str(c) for c in table.columns]
    expected = [f"wl_{i + 1}" for i in range(len(names))]
    if names != expected or len(table) < 1:
        raise FileFormatError(
            f"{path}: expected one row under the columns wl_1 .. wl_N, found columns "
            f"{names[:4]}{' ...' if len(names) > 4 else ''} and {len(table)} rows"
        )
    try:
        wl = table.iloc[0].to_numpy(np.float64)
    except ValueError as err:
        raise FileFormatError(f"{path}: wavelengths are not numbers ({err})") from err
    bad = np.flatnonzero(~np.isfinite(wl) | (wl <= 0))
    if bad.size:
        raise FileFormatError(
            f"{path}: {bad.size} wavelength(s) are missing, infinite or non-positive "
            f"(first: {names[bad[0]]} = {wl[bad[0]]}); every bin needs a wavelength in um"
        )
    if wl.size < 2:
        raise FileFormatError(f"{path}: {wl.size} bin; expected FGS1 and AIRS-CH0 bins")
    d = np.diff(wl[1:])
    if d.size and not (np.all(d > 0) or np.all(d < 0)):
        raise FileFormatError(f"{path}: the AIRS-CH0 wavelengths (wl_2 on) are not monotonic")
    for other in (root / "sample_submission.csv", *sorted(root.glob("*_labels.csv"))):
        if not other.is_file():
            continue
        n_other = len(_wl_names(other))
        if n_other and n_other != wl.size:
            raise FileFormatError(
                f"{path}: {wl.size} wavelength bins, but {other.name} in the same dataset has "
                f"{n_other}: the file looks truncated or belongs to another dataset"
            )
    return wl


def _calib_dir(planet_dir: Path, inst: str) -> Path:
    for name in (f"{inst}_calibration_0", f"{inst}_calibration"):
        if (planet_dir / name).is_dir():
            return planet_dir / name
    raise DataNotFoundError(f"{planet_dir}: missing folder {inst}_calibration_0")


def _write_parquet(path: Path, table: Any) -> None:
    pq = require("pyarrow.parquet", "transit")

    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def _frame_table(values: NDArray[Any]) -> Any:
    pa = require("pyarrow", "transit")

    values = np.asarray(values)
    return pa.table({f"column_{j}": values[:, j] for j in range(values.shape[1])})


def write_planet(raw: RawObservation, root: str | Path, split: str = "train") -> Path:
    """Write ``raw`` as ``ROOT/{split}/PLANET_ID`` in the raw format (frames, calibration).

    Signals are written as one flattened uint16 column (the layout of the shared sample);
    dataset-wide tables (axis, ADC, wavelengths, star info, labels) are written by
    :func:`write_dataset_tables`. Every file is written atomically.
    """
    pa = require("pyarrow", "transit")

    folder = Path(root) / split / raw.planet_id
    folder.mkdir(parents=True, exist_ok=True)
    for inst in INSTRUMENTS:
        if raw.frames[inst].dtype != np.uint16:
            raise FileFormatError(
                f"planet {raw.planet_id}: {inst} frames are {raw.frames[inst].dtype}; the raw "
                "format stores uint16 (simulate with quantize=True to write to disk)"
            )
        frames = np.ascontiguousarray(raw.frames[inst])
        _write_parquet(folder / f"{inst}_signal_0.parquet", pa.table({"0": frames.reshape(-1)}))
        cal = raw.calibration[inst]
        cdir = folder / f"{inst}_calibration_0"
        cdir.mkdir(exist_ok=True)
        for name in _CALIB_NAMES:
            arr = getattr(cal, name)
            if name == "linear_corr":
                arr = arr.reshape(-1, arr.shape[-1])
            _write_parquet(cdir / f"{name}.parquet", _frame_table(arr))
    return folder


def write_dataset_tables(
    root: str | Path,
    raw: RawObservation,
    *,
    stars: dict[str, dict[str, float]],
    labels: dict[str, NDArray[np.float64]] | None = None,
    split: str = "train",
) -> None:
    """Write the dataset-wide files: ``axis_info.parquet``, ``adc_info.csv``,
    ``wavelengths.csv``, ``{split}_star_info.csv`` and (if given) ``{split}_labels.csv``.

    ``raw`` is any planet of the dataset (all share timing, ADC and wavelengths).
    """
    import pandas as pd

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    cols = {
        "AIRS-CH0-axis0-h": raw.time_h["AIRS-CH0"],
        "AIRS-CH0-axis2-um": raw.airs_wavelength_um,
        "AIRS-CH0-integration_time": raw.integration_s,
        "FGS1-axis0-h": raw.time_h["FGS1"],
    }
    n = max(v.size for v in cols.values())
    padded = {
        k: np.pad(v.astype(np.float64), (0, n - v.size), constant_values=np.nan)
        for k, v in cols.items()
    }
    require("pyarrow", "transit")  # pandas writes Parquet through pyarrow
    with atomic_path(root / "axis_info.parquet") as tmp:
        pd.DataFrame(padded).to_parquet(tmp)
    adc = {}
    for inst in INSTRUMENTS[::-1]:
        adc[f"{inst}_adc_offset"] = [raw.adc[inst][1]]
        adc[f"{inst}_adc_gain"] = [raw.adc[inst][0]]
    _write_csv(root / "adc_info.csv", pd.DataFrame(adc))
    wl = pd.DataFrame(
        [raw.wavelengths], columns=[f"wl_{i + 1}" for i in range(raw.wavelengths.size)]
    )
    _write_csv(root / "wavelengths.csv", wl)
    star_rows = [{"planet_id": int(pid), **vals} for pid, vals in stars.items()]
    _write_csv(root / f"{split}_star_info.csv", pd.DataFrame(star_rows))
    if labels is not None:
        rows = [[int(pid), *map(float, depth)] for pid, depth in labels.items()]
        names = ["planet_id"] + [f"wl_{i + 1}" for i in range(raw.wavelengths.size)]
        _write_csv(root / f"{split}_labels.csv", pd.DataFrame(rows, columns=names))


def _write_csv(path: Path, frame: Any) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
