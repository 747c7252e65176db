"""Observed transmission spectra: the pyratbay/WASP-39b layout and generic CSV / ECSV tables."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from atmospec.errors import FileFormatError

__all__ = ["TransmissionSpectrum", "read_transmission", "DEPTH_UNITS"]

DEPTH_UNITS: dict[str, float] = {"none": 1.0, "percent": 1e-2, "ppt": 1e-3, "ppm": 1e-6}
"""Multipliers from a depth unit to a plain fraction (R_p/R_s)^2."""


@dataclass(frozen=True)
class TransmissionSpectrum:
    """A binned transit-depth spectrum, possibly from several instruments.

    Bins are kept sorted by instrument (in order of first appearance) and by wavelength within
    each instrument; instruments may overlap in wavelength.

    Attributes:
        wavelength: bin centres (micron).
        half_width: bin half widths (micron).
        depth: transit depth as a fraction (R_p/R_s)^2.
        error: 1-sigma uncertainty of the depth (fraction).
        instrument: instrument name per bin.
        name: a label (the file stem).
    """

    wavelength: NDArray[np.float64]
    half_width: NDArray[np.float64]
    depth: NDArray[np.float64]
    error: NDArray[np.float64]
    instrument: NDArray[np.str_]
    name: str = "spectrum"
    meta: dict[str, object] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        n = self.wavelength.size
        for label in ("half_width", "depth", "error", "instrument"):
            if getattr(self, label).shape != (n,):
                raise FileFormatError(
                    f"{self.name}: {label} has {getattr(self, label).size} values, not {n}"
                )
        checks = (
            ("wavelength", self.wavelength > 0),
            ("half_width", self.half_width > 0),
            ("error", self.error > 0),
            ("depth", np.isfinite(self.depth)),
        )
        for label, ok in checks:
            if not np.all(ok & np.isfinite(getattr(self, label))):
                i = int(np.argmin(ok & np.isfinite(getattr(self, label))))
                raise FileFormatError(
                    f"{self.name}: {label} must be finite and positive; bad value "
                    f"{getattr(self, label)[i]!r} in bin {i} ({self.wavelength[i]:g} um)"
                )

    def __len__(self) -> int:
        return int(self.wavelength.size)

    @property
    def instruments(self) -> list[str]:
        """Instrument names in order."""
        seen: dict[str, None] = {}
        for name in self.instrument.tolist():
            seen.setdefault(name, None)
        return list(seen)

    def sorted(self) -> TransmissionSpectrum:
        """The same bins ordered by instrument (first appearance) then wavelength."""
        rank = {name: i for i, name in enumerate(self.instruments)}
        key = np.array([rank[s] for s in self.instrument.tolist()])
        order = np.lexsort((self.wavelength, key))
        return TransmissionSpectrum(
            self.wavelength[order],
            self.half_width[order],
            self.depth[order],
            self.error[order],
            self.instrument[order],
            self.name,
            dict(self.meta),
        )


def _read_pyratbay(path: Path, lines: list[str]) -> TransmissionSpectrum:
    unit = "none"
    rows: list[list[str]] = []
    section = ""
    for raw in lines:
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("@"):
            section = line[1:].upper()
            continue
        if section == "DEPTH_UNITS":
            unit = line.lower()
        elif section == "DATA":
            rows.append(line.split())
    if unit not in DEPTH_UNITS:
        raise FileFormatError(f"{path}: @DEPTH_UNITS {unit!r} is not one of {sorted(DEPTH_UNITS)}")
    if not rows:
        raise FileFormatError(f"{path}: no rows after @DATA")
    short = next((r for r in rows if len(r) < 4), None)
    if short is not None:
        raise FileFormatError(
            f"{path}: @DATA row {' '.join(short)!r} has {len(short)} columns; rows need depth, "
            "depth_err, wl, half_width [instrument]"
        )
    try:
        num = np.array([[float(x) for x in r[:4]] for r in rows])
    except (ValueError, IndexError) as err:
        raise FileFormatError(
            f"{path}: @DATA rows need depth, depth_err, wl, half_width [instrument] ({err})"
        ) from None
    inst = np.array([r[4] if len(r) > 4 else "instrument" for r in rows])
    scale = DEPTH_UNITS[unit]
    return TransmissionSpectrum(
        num[:, 2],
        num[:, 3],
        num[:, 0] * scale,
        num[:, 1] * scale,
        inst,
        path.stem,
        {"source": str(path), "depth_unit": unit},
    ).sorted()


_ALIASES = {
    "wavelength": ("wavelength", "wl", "wave", "lambda", "wavelength_um"),
    "half_width": ("half_width", "half-width", "halfwidth", "hw", "bin_half_width", "width_half"),
    "depth": ("depth", "transit_depth", "rp_rs2"),
    "error": ("error", "depth_err", "depth_error", "err", "uncertainty", "sigma"),
    "instrument": ("instrument", "inst", "mode"),
}


def _column(table: Any, name: str, path: Path) -> np.ndarray:
    """A table column as floats; text in a numeric column raises FileFormatError."""
    try:
        return np.asarray(table[name], dtype=float)
    except (ValueError, TypeError) as err:
        raise FileFormatError(f"{path}: column {name!r} holds non-numbers ({err})") from None


def _read_table(path: Path, depth_unit: str | None) -> TransmissionSpectrum:
    from astropy.table import Table

    try:
        fmt = "ascii.ecsv" if path.suffix.lower() == ".ecsv" else "ascii.csv"
        table = Table.read(path, format=fmt)
    except Exception as err:  # astropy raises many types for bad tables
        raise FileFormatError(f"{path}: cannot read as CSV/ECSV ({err})") from None
    cols = {c.lower(): c for c in table.colnames}
    found: dict[str, str] = {}
    unit_from_name: str | None = None
    for key, names in _ALIASES.items():
        for cand in names:
            for suffix in ("", "_ppm", "_percent", "_ppt"):
                if cand + suffix in cols:
                    found[key] = cols[cand + suffix]
                    if key == "depth" and suffix:
                        unit_from_name = suffix[1:]
                    break
            if key in found:
                break
    missing = [k for k in ("wavelength", "half_width", "depth", "error") if k not in found]
    if missing:
        raise FileFormatError(
            f"{path}: missing column(s) {missing}; found {table.colnames}. Expected wavelength "
            "(micron), half_width (micron), depth and error"
        )
    unit = depth_unit or unit_from_name
    col_unit = table[found["depth"]].unit
    if unit is None and col_unit is not None:
        unit = {"": "none", "ppm": "ppm", "%": "percent", "ppt": "ppt"}.get(str(col_unit), None)
    depth = _column(table, found["depth"], path)
    if unit is None:
        if np.nanmax(depth) >= 1.0:
            raise FileFormatError(
                f"{path}: depths up to {np.nanmax(depth):g} are not fractions; name the unit "
                "(column 'depth_ppm', an ECSV unit, or depth_unit='ppm')"
            )
        unit = "none"
    if unit not in DEPTH_UNITS:
        raise FileFormatError(f"{path}: depth unit {unit!r} is not one of {sorted(DEPTH_UNITS)}")
    scale = DEPTH_UNITS[unit]
    inst = (
        np.asarray(table[found["instrument"]]).astype(str)
        if "instrument" in found
        else np.full(len(table), "instrument")
    )
    return TransmissionSpectrum(
        _column(table, found["wavelength"], path),
        _column(table, found["half_width"], path),
        depth * scale,
        _column(table, found["error"], path) * scale,
        inst,
        path.stem,
        {"source": str(path), "depth_unit": unit},
    ).sorted()


def read_transmission(
    path: str | os.PathLike[str], *, depth_unit: str | None = None
) -> TransmissionSpectrum:
    """Read an observed transmission spectrum, detecting the layout.

    Layouts: the pyratbay ``.dat`` layout (``@DEPTH_UNITS`` and ``@DATA`` sections with columns
    depth, depth_err, wl, half_width, instrument, as in ``wasp39b_jwst_transit.dat``), or a
    CSV / ECSV table with columns wavelength, half_width, depth, error (and optionally
    instrument). Depth units come from ``@DEPTH_UNITS``, a column suffix (``depth_ppm``), an ECSV
    unit or ``depth_unit``; the error is in the same unit as the depth.

    Example:
        >>> read_transmission("absent.dat")
        Traceback (most recent call last):
        ...
        atmospec.errors.FileFormatError: absent.dat: no such file
    """
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"{path}: no such file")
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.splitlines()
    if any(line.strip().upper().startswith("@DATA") for line in lines):
        return _read_pyratbay(path, lines)
    return _read_table(path, depth_unit)
