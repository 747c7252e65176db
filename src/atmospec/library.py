"""The observed SpeX prism library as a queryable catalogue of spectra."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from atmospec._fileio import DATA_CREDITS
from atmospec.errors import AtmospecError, DataNotFoundError
from atmospec.spectrum import Spectrum

__all__ = [
    "catalogue",
    "query",
    "load",
    "spectrum_path",
    "spt_to_num",
    "num_to_spt",
    "parse_spt_range",
    "NORMALISATION_BAND",
    "CREDIT",
]

CREDIT = f"{DATA_CREDITS['spex-prism-library']}; via {DATA_CREDITS['splat']}"
NORMALISATION_BAND = (1.25, 1.30)
"""µm: :func:`load` divides by the median flux here (the J-band peak of L and T dwarfs)."""

_SPEX_DIR = "resources/Spectra/Public/SPEX-PRISM"
_CLASS_OFFSET = {"K": 0, "M": 10, "L": 20, "T": 30, "Y": 40}
_SPT = re.compile(r"^\s*(?:e?sd|usd|d/sd|sd/esd|d)?\s*([KMLTY])\s*(\d+(?:\.\d+)?)?", re.I)


def spt_to_num(spt: Any) -> float:
    """Spectral type text to number: K0 = 0, M0 = 10, L0 = 20, T0 = 30, Y0 = 40 (NaN if none).

    Prefixes (``sd``, ``esd``, ``d/sd``) and suffixes (``:``, ``pec``, ``beta``) are ignored.

    Example:
        >>> spt_to_num("T4.5"), spt_to_num("sdM7"), spt_to_num("L4 beta"), spt_to_num("G")
        (34.5, 17.0, 24.0, nan)
    """
    if not isinstance(spt, str):
        return float("nan")
    m = _SPT.match(spt)
    if m is None or m.group(2) is None:
        return float("nan")
    return _CLASS_OFFSET[m.group(1).upper()] + float(m.group(2))


def num_to_spt(num: float) -> str:
    """Inverse of :func:`spt_to_num` (``"?"`` for NaN).

    Example:
        >>> num_to_spt(34.5), num_to_spt(20)
        ('T4.5', 'L0.0')
    """
    if not np.isfinite(num):
        return "?"
    letters = {v: k for k, v in _CLASS_OFFSET.items()}
    base = int(min(max(num // 10 * 10, 0), 40))
    return f"{letters[base]}{num - base:.1f}"


def parse_spt_range(spt: str | tuple[float, float]) -> tuple[float, float]:
    """A spectral-type range as numbers ``(lo, hi)``, both inclusive.

    ``"L0-T8"`` is L0.0 ... T8.0; a single type ``"T5"`` is T5.0 ... T5.9; tuples pass through.

    Example:
        >>> parse_spt_range("L0-T8"), parse_spt_range("T5")
        ((20.0, 38.0), (35.0, 35.9))
    """
    if isinstance(spt, tuple):
        return float(spt[0]), float(spt[1])
    parts = [p for p in re.split(r"\s*(?:-|–|\.\.|to)\s*", spt.strip()) if p]
    nums = [spt_to_num(p) for p in parts]
    if not 1 <= len(nums) <= 2 or any(not np.isfinite(n) for n in nums):
        raise ValueError(
            f"spectral type range {spt!r} not understood; write e.g. 'L0-T8', 'M7-L5' or 'T5'"
        )
    if len(nums) == 1:
        return nums[0], nums[0] + 0.9
    lo, hi = nums
    if lo > hi:
        raise ValueError(f"spectral type range {spt!r} is reversed; write the earlier type first")
    return lo, hi


def _splat_dir() -> Path:
    from atmospec.data import require

    return require("splat")


def _flag(series: pd.Series) -> pd.Series:
    return series.astype("string").str.strip().str.upper().eq("Y").fillna(False).astype(bool)


@functools.lru_cache(maxsize=4)
def _build(root: str) -> pd.DataFrame:
    db = Path(root) / "db"
    try:
        spec = pd.read_csv(db / "spectral_data.csv", encoding="utf-8-sig", low_memory=False)
        src = pd.read_csv(db / "source_data.csv", encoding="utf-8-sig", low_memory=False)
    except FileNotFoundError as err:
        raise DataNotFoundError(
            f"{err.filename}: the SpeX library tables are missing; run `atmospec data fetch splat`"
        ) from err
    df = spec.merge(src, on="SOURCE_KEY", how="left", suffixes=("", "_SOURCE"))
    spex_type = df["SPEX_TYPE"].astype("string")
    lit_type = df["LIT_TYPE"].astype("string")
    spt = spex_type.where(spex_type.notna() & spex_type.str.strip().ne(""), lit_type)
    gravity = df["SPEX_GRAVITY_CLASSIFICATION"].astype("string")
    gravity = gravity.where(gravity.notna(), df["GRAVITY_CLASS_NIR"].astype("string"))
    files = df["DATA_FILE"].astype(str)
    spex_dir = Path(root) / _SPEX_DIR
    on_disk = [f if (spex_dir / f).exists() else f"{f}.gz" for f in files]
    out = pd.DataFrame(
        {
            "key": df["DATA_KEY"].astype(str) + "_" + df["SOURCE_KEY"].astype(str),
            "data_key": df["DATA_KEY"].astype(int),
            "source_key": df["SOURCE_KEY"].astype(int),
            "name": df["NAME"].astype("string"),
            "designation": df["DESIGNATION"].astype("string"),
            "spt": spt.str.strip(),
            "spt_num": [spt_to_num(s) for s in spt.fillna("").tolist()],
            "spt_origin": np.where(spex_type.notna(), "spex", "literature"),
            "snr": pd.to_numeric(df["MEDIAN_SNR"], errors="coerce"),
            "quality": df["QUALITY_FLAG"].astype("string").str.strip(),
            "gravity_class": gravity.str.strip(),
            "metallicity_class": df["METALLICITY_CLASS"].astype("string"),
            "parallax": pd.to_numeric(df["PARALLAX"], errors="coerce"),
            "parallax_err": pd.to_numeric(df["PARALLAX_E"], errors="coerce"),
            "j": pd.to_numeric(df["J_2MASS"], errors="coerce"),
            "j_err": pd.to_numeric(df["J_2MASS_E"], errors="coerce"),
            "h": pd.to_numeric(df["H_2MASS"], errors="coerce"),
            "h_err": pd.to_numeric(df["H_2MASS_E"], errors="coerce"),
            "ks": pd.to_numeric(df["KS_2MASS"], errors="coerce"),
            "ks_err": pd.to_numeric(df["KS_2MASS_E"], errors="coerce"),
            "binary": _flag(df["BINARY"]),
            "spectral_binary": _flag(df["SBINARY"]),
            "companion": df["COMPANION_NAME"].notna(),
            "companion_name": df["COMPANION_NAME"].astype("string"),
            "library": df["LIBRARY"].astype("string"),
            "observation_date": df["OBSERVATION_DATE"].astype("string"),
            "bibcode": df["BIBCODE"].astype("string"),
            "file": on_disk,
        }
    )
    return out.sort_values("data_key", kind="stable").reset_index(drop=True)


def catalogue() -> pd.DataFrame:
    """One row per SpeX prism library spectrum (3,089 rows), joined with its source's data.

    Columns: ``key`` (``"10703_10070"`` = DATA_KEY_SOURCE_KEY), ``data_key``, ``source_key``,
    ``name``, ``designation``, ``spt`` (the SpeX classification, else the literature type),
    ``spt_num`` (M0 = 10, L0 = 20, T0 = 30), ``spt_origin``, ``snr`` (median S/N), ``quality``
    (OK / POOR / BG), ``gravity_class`` (FLD-G / INT-G / VL-G), ``metallicity_class``,
    ``parallax`` / ``parallax_err`` (mas), 2MASS ``j h ks`` and ``*_err`` (mag), ``binary``,
    ``spectral_binary``, ``companion`` (bool), ``companion_name``, ``library``,
    ``observation_date``, ``bibcode``, ``file`` (name in the SPEX-PRISM folder).

    Example:
        >>> cat = catalogue()  # doctest: +SKIP
        >>> cat.set_index("key").loc["10703_10070", ["name", "spt"]].tolist()  # doctest: +SKIP
        ['HD 3651B', 'T8.0']
    """
    return _build(str(_splat_dir())).copy()


def _as_set(value: str | Iterable[str]) -> set[str]:
    items = [value] if isinstance(value, str) else list(value)
    return {str(v).strip().upper() for v in items}


def query(
    spt: str | tuple[float, float] | None = None,
    snr_min: float | None = None,
    quality: str | Iterable[str] | None = None,
    gravity: str | Iterable[str] | None = None,
    *,
    binary: bool | None = None,
    catalog: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Select library spectra: spectral-type range, minimum median S/N, quality and gravity.

    Args:
        spt: ``"L0-T8"`` (inclusive), ``"T5"`` (T5.0-T5.9) or ``(lo, hi)`` numbers.
        snr_min: keep spectra with median S/N >= this (unknown S/N is dropped).
        quality: ``"OK"`` or several flags (case-insensitive).
        gravity: ``"FLD-G"``, ``"INT-G"``, ``"VL-G"`` or several.
        binary: True keeps only known (spectral) binaries, False drops them.
        catalog: filter this table instead of :func:`catalogue`.

    Example:
        >>> t = query(spt="L0-T8", snr_min=50, quality="OK")  # doctest: +SKIP
        >>> len(t) > 300, bool(t.spt_num.between(20, 38).all())  # doctest: +SKIP
        (True, True)
    """
    df = catalogue() if catalog is None else catalog
    keep = pd.Series(True, index=df.index)
    if spt is not None:
        lo, hi = parse_spt_range(spt)
        keep &= df["spt_num"].between(lo, hi)
    if snr_min is not None:
        keep &= df["snr"].ge(snr_min).fillna(False).astype(bool)
    if quality is not None:
        keep &= df["quality"].str.upper().isin(_as_set(quality)).fillna(False).astype(bool)
    if gravity is not None:
        keep &= df["gravity_class"].str.upper().isin(_as_set(gravity)).fillna(False).astype(bool)
    if binary is not None:
        is_bin = df["binary"] | df["spectral_binary"]
        keep &= is_bin if binary else ~is_bin
    return df[keep].reset_index(drop=True)


@functools.lru_cache(maxsize=4)
def _records(root: str) -> dict[str, dict[str, Any]]:
    cat = _build(root)
    return {rec["key"]: rec for rec in cat.to_dict("records")}


def _row(key: str | int) -> dict[str, Any]:
    records = _records(str(_splat_dir()))
    text = str(key).strip().removesuffix(".gz").removesuffix(".fits")
    if text.isdigit():  # a bare DATA_KEY
        text = next((k for k in records if k.split("_")[0] == text), text)
    if text not in records:
        raise DataNotFoundError(
            f"no spectrum {key!r} in the SpeX prism library; keys look like '10703_10070' "
            "(DATA_KEY_SOURCE_KEY) -- list them with atmospec.library.query() or "
            "`atmospec library`"
        )
    return records[text]


def spectrum_path(key: str | int) -> Path:
    """The FITS file of library spectrum ``key`` (a full key or its DATA_KEY).

    Example:
        >>> spectrum_path("10703_10070").name, spectrum_path(10703).name
        ('10703_10070.fits.gz', '10703_10070.fits.gz')
    """
    return _splat_dir() / _SPEX_DIR / str(_row(key)["file"])


def _clean(value: Any) -> Any:
    if value is None or value is pd.NA:
        return None
    if isinstance(value, (float, np.floating)) and not np.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def load(key: str | int, *, normalise: bool = True) -> Spectrum:
    """Load library spectrum ``key`` (``"10703_10070"`` or its DATA_KEY ``10703``).

    Wavelength in µm; flux divided by its median over :data:`NORMALISATION_BAND` (the scale and
    the file's flux unit are kept in ``meta["normalisation"]`` / ``meta["file_flux_unit"]``);
    NaN pixels masked. ``meta`` carries ``source`` (= key), ``designation``, ``spt``,
    ``spt_num``, S/N, quality, gravity class, 2MASS ``mags`` / ``mag_errors`` (for
    :func:`atmospec.photometry.flux_calibrate`), parallax and ``credit``.

    Example:
        >>> s = load("10703_10070")  # doctest: +SKIP
        >>> s.name, s.meta["spt"], round(float(s.wavelength[0]), 2)  # doctest: +SKIP
        ('HD 3651B', 'T8.0', 0.65)
    """
    from atmospec.io.spex import read_spex

    row = _row(key)
    path = _splat_dir() / _SPEX_DIR / str(row["file"])
    if not path.exists():
        raise DataNotFoundError(
            f"{path}: the spectrum file of {row['key']} is missing; run "
            "`atmospec data fetch splat --force` to extract the library again"
        )
    raw = read_spex(path, invalid="mask")
    meta: dict[str, Any] = {
        **raw.meta,
        "source": str(row["key"]),
        "file": str(path),
        "name": _clean(row["name"]),
        "designation": _clean(row["designation"]),
        "spt": _clean(row["spt"]),
        "spt_num": _clean(row["spt_num"]),
        "snr": _clean(row["snr"]),
        "quality": _clean(row["quality"]),
        "gravity_class": _clean(row["gravity_class"]),
        "parallax": _clean(row["parallax"]),
        "parallax_err": _clean(row["parallax_err"]),
        "mags": {b: _clean(row[c]) for b, c in (("J", "j"), ("H", "h"), ("Ks", "ks"))},
        "mag_errors": {
            b: _clean(row[f"{c}_err"]) for b, c in (("J", "j"), ("H", "h"), ("Ks", "ks"))
        },
        "credit": CREDIT,
        "file_flux_unit": raw.flux_unit,
    }
    spec = Spectrum(
        raw.wavelength,
        raw.flux,
        raw.uncertainty,
        mask=raw.mask,
        meta=meta,
        flux_unit=raw.flux_unit,
        name=str(meta["name"] or row["key"]),
        validate=False,
    )
    if not normalise:
        return spec
    try:
        return spec.normalize("median", band=NORMALISATION_BAND)
    except AtmospecError:  # band masked or non-positive there: fall back to the maximum
        return spec.normalize("max")
