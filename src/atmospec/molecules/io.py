"""Observed transmission spectra as published: pyratbay, CSV/TSV/whitespace, ECSV, IPAC and
VOTable tables."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from atmospec._fileio import is_binary, listed_columns
from atmospec.errors import FileFormatError, UnitError
from atmospec.molecules.columns import (
    COLUMN_SYNONYMS,
    DEPTH_UNITS,
    WAVE_UNITS,
    depth_to_fraction,
    match_columns,
    normalise_name,
    width_kind_from_spacing,
)
from atmospec.molecules.spectrum import TransmissionSpectrum, combine

__all__ = ["TransmissionSpectrum", "read_transmission", "combine", "DEPTH_UNITS"]


def _spectrum(
    path: Path,
    wave: NDArray[np.float64],
    half: NDArray[np.float64],
    depth: NDArray[np.float64],
    error: NDArray[np.float64],
    inst: NDArray[np.str_],
    notes: list[str],
    unit: str,
) -> TransmissionSpectrum:
    bad = ~(np.isfinite(depth) & (depth > 0))
    if bad.any():
        i = int(np.argmax(bad))
        raise FileFormatError(
            f"{path}: transit depths must be finite and positive; row {i} "
            f"({wave[i]:g} um) has {depth[i]:g}. A depth is the fraction of the star the "
            "planet blocks; subtract no baseline before reading"
        )
    return TransmissionSpectrum(
        wave,
        half,
        depth,
        error,
        inst,
        path.stem,
        {"source": str(path), "depth_unit": unit, "assumptions": notes},
    ).sorted()


def _read_pyratbay(path: Path, lines: list[str], depth_unit: str | None) -> TransmissionSpectrum:
    unit = None
    rows: list[tuple[int, list[str]]] = []
    section = ""
    for number, raw in enumerate(lines, 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("@"):
            section = line[1:].upper()
            continue
        if section == "DEPTH_UNITS":
            unit = line.lower()
        elif section == "DATA":
            rows.append((number, line.split()))
    if not rows:
        raise FileFormatError(f"{path}: no rows after @DATA")
    num = np.empty((len(rows), 4))
    for k, (number, r) in enumerate(rows):
        try:
            if len(r) < 4:
                raise ValueError(f"{len(r)} columns")
            num[k] = [float(x) for x in r[:4]]
        except ValueError as err:
            raise FileFormatError(
                f"{path}: line {number}: @DATA rows need depth, depth_err, wl, half_width "
                f"[instrument] ({err})"
            ) from None
    notes = ["layout: pyratbay (@DEPTH_UNITS, @DATA: depth, depth_err, wl, half_width, instrument)"]
    if depth_unit is not None:
        unit, how = depth_unit, "given"
    elif unit is None:
        how = "no @DEPTH_UNITS"
    else:
        how = "@DEPTH_UNITS"
    depth, error, unit, how = depth_to_fraction(
        num[:, 0], num[:, 1], unit, source=str(path), how=how
    )
    notes.append(f"depth unit: {unit} ({how})")
    notes.append("widths: half widths (pyratbay layout)")
    inst = np.array([r[4] if len(r) > 4 else "instrument" for _, r in rows])
    if all(len(r) <= 4 for _, r in rows):
        notes.append("instrument: one instrument (no fifth column)")
    return _spectrum(path, num[:, 2], num[:, 3], depth, error, inst, notes, unit)


def _table(path: Path, lines: list[str]) -> tuple[Any, str]:
    """An astropy table from IPAC, ECSV, VOTable, delimited text with a header, or whitespace
    text whose column names are in the last comment line before the data."""
    from astropy.table import Table

    content = [ln for ln in lines if ln.strip()]
    if not content:
        raise FileFormatError(f"{path}: the file is empty")
    first = content[0].lstrip()
    try:
        if first.startswith("# %ECSV") or path.suffix.lower() == ".ecsv":
            return Table.read(path, format="ascii.ecsv"), "ECSV"
        if first.startswith("\\") or first.startswith("|"):
            return Table.read(path, format="ascii.ipac"), "IPAC table"
        if first.startswith("<") and "<VOTABLE" in "".join(content[:20]).upper():
            import warnings

            with warnings.catch_warnings():  # VOUnit remarks; the units are checked later
                warnings.simplefilter("ignore")
                return Table.read(path, format="votable", use_names_over_ids=True), "VOTable"
    except Exception as err:  # astropy raises many types for bad tables
        raise FileFormatError(f"{path}: cannot read as {first[:6]!r} table ({err})") from None
    data = [ln for ln in content if not ln.lstrip().startswith("#")]
    if not data:
        raise FileFormatError(f"{path}: no data rows (only comments)")
    head = data[0]
    delim = "\t" if "\t" in head else "," if "," in head else None
    tokens = head.split(delim) if delim else head.split()
    if not all(_is_number(t) for t in tokens[:1]):  # a header line
        names = [t.strip() for t in tokens]
        body = data[1:]
        how = {"\t": "tab-separated", ",": "comma-separated", None: "whitespace"}[delim]
    else:  # names in the last comment line before the data, separated by 2+ spaces
        body = data
        ncol = len(tokens)
        names = []
        for ln in content:
            if not ln.lstrip().startswith("#"):
                break
            text = ln.lstrip()[1:].strip()
            parts = [p for p in re.split(r"\s{2,}|\t", text) if p]
            if parts and not set(text) <= set("-=# ") and ncol - 2 <= len(parts) <= ncol:
                names = parts
            elif len(text.split()) == ncol and _names_a_wavelength(text.split()):
                names = text.split()  # one name per column, single spaces between them
        if not names:
            raise FileFormatError(
                f"{path}: no column names (no header line, and no comment line naming "
                f"{ncol} columns); add a header line such as 'wavelength half_width depth error'"
            )
        names = names + [f"col{k + 1}" for k in range(len(names), ncol)]
        how = "whitespace with the column names in a comment line"
    rows = []
    for number, ln in enumerate(body, 1):
        parts = ln.split(delim) if delim else ln.split()
        if len(parts) != len(names):
            raise FileFormatError(
                f"{path}: data row {number} has {len(parts)} values, the header names "
                f"{len(names)} columns"
            )
        rows.append([p.strip() for p in parts])
    cols: list[Any] = list(zip(*rows, strict=True)) if rows else [[] for _ in names]
    table = Table([np.array(c) for c in cols], names=_unique(names))
    return table, how


def _names_a_wavelength(words: list[str]) -> bool:
    """True when one of ``words`` is a recognised wavelength column name (so a comment line
    of single-spaced words is a header, not a sentence)."""
    return any(normalise_name(w)[0] in COLUMN_SYNONYMS["wavelength"] for w in words)


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        k = seen.get(n, 0)
        out.append(n if k == 0 else f"{n}_{k}")
        seen[n] = k + 1
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _floats(table: Any, col: str, path: Path) -> NDArray[np.float64]:
    """A column as floats; a null (a masked cell of an IPAC table or VOTable) becomes NaN."""
    try:
        values = np.array([float(v) for v in np.asarray(table[col]).tolist()], dtype=float)
    except (TypeError, ValueError) as err:
        raise FileFormatError(f"{path}: column {col!r} is not numeric ({err})") from None
    values[np.ma.getmaskarray(table[col])] = np.nan
    return values


_VALUE_ROLES = ("wavelength", "depth", "error", "error_lower")
_RATIO_ROLES = ("wavelength", "radius_ratio", "radius_ratio_error", "radius_ratio_error_lower")


def _without_missing(table: Any, cols: dict[str, str], path: Path, notes: list[str]) -> Any:
    """The rows with a value in every column used (wavelength, depth or radius ratio, their
    errors); rows without one (a null, or NaN) are left out, and said so, naming where."""
    roles = _VALUE_ROLES if "depth" in cols else _RATIO_ROLES
    used = [cols[r] for r in roles if r in cols]
    missing = np.zeros(len(table), bool)
    for c in used:
        missing |= np.isnan(_floats(table, c, path))
    if missing.any():
        wave = _floats(table, cols["wavelength"], path)[missing]
        where = ", ".join(f"{w:g}" for w in wave[np.isfinite(wave)][:5])
        notes.append(
            f"dropped {int(missing.sum())} bins without a value (null or NaN) in "
            f"{', '.join(repr(c) for c in used)}" + (f": at {where} (file's unit)" if where else "")
        )
    return table[~missing]


def _positive(values: NDArray[np.float64], col: str, wave: NDArray[np.float64], path: Path) -> None:
    bad = ~(np.isfinite(values) & (values > 0))
    if bad.any():
        i = int(np.argmax(bad))
        raise FileFormatError(
            f"{path}: error must be finite and positive; column {col!r} has {values[i]!r} in "
            f"row {i} ({wave[i]:g} um)"
        )


def _read_table(
    path: Path,
    lines: list[str],
    *,
    depth_unit: str | None,
    width: str | None,
    wave_unit: str | None,
    columns: dict[str, str] | None,
    instrument: str | None,
) -> TransmissionSpectrum:
    table, layout = _table(path, lines)
    units = {c: (str(table[c].unit) if table[c].unit is not None else None) for c in table.colnames}
    match = match_columns(table.colnames, units, mapping=columns, source=str(path))
    cols, cunits = match.columns, match.units
    notes = [f"layout: {layout}; columns " + ", ".join(f"{r}={c!r}" for r, c in cols.items())]
    if "wavelength" not in cols:
        raise FileFormatError(
            f"{path}: no wavelength column among {listed_columns(table.colnames)}; recognised "
            "names include wavelength, wave, wl, CENTRALWAVELNG (or --columns wavelength=NAME)"
        )
    if "depth" not in cols and "radius_ratio" not in cols:
        raise FileFormatError(
            f"{path}: no transit-depth column among {listed_columns(table.colnames)}; "
            "recognised names include depth, transit_depth, dppm, (Rp/Rs)^2, PL_TRANDEP, Rp_Rs "
            "(or --columns depth=NAME)"
        )
    # quality flags: flagged rows are left out, and said so
    keep = np.ones(len(table), bool)
    if "quality" in cols:
        q = _floats(table, cols["quality"], path)
        keep = q == 0
        if (~keep).any():
            notes.append(f"dropped {int((~keep).sum())} bins with {cols['quality']} != 0")
        table = table[keep]
    table = _without_missing(table, cols, path, notes)
    if len(table) == 0:
        raise FileFormatError(
            f"{path}: no data rows left after the quality flags and the rows without a value"
        )
    wave = _floats(table, cols["wavelength"], path)
    wunit = wave_unit or cunits.get("wavelength")
    if wunit is None:
        if not (np.nanmin(wave) >= 0.1 and np.nanmax(wave) <= 30.0):
            raise UnitError(
                f"{path}: wavelengths {np.nanmin(wave):g}..{np.nanmax(wave):g} are not in "
                "micron and the file names no unit; give it (option --wave-unit nm or AA)"
            )
        wunit, whow = "um", "assumed: values 0.1-30 and no unit named"
    else:
        whow = "given" if wave_unit else "from the header"
    if wunit not in WAVE_UNITS:
        raise UnitError(f"{path}: wavelength unit {wunit!r} is not one of {sorted(WAVE_UNITS)}")
    wave = wave * WAVE_UNITS[wunit]
    notes.append(f"wavelength unit: {wunit} ({whow})")
    # depth and error
    if "depth" in cols:
        raw = _floats(table, cols["depth"], path)
        if "error" not in cols:
            raise FileFormatError(
                f"{path}: no depth-error column among {listed_columns(table.colnames)}; "
                "recognised names include error, depth_err, dppm_err, PL_TRANDEPERR1 (or "
                "--columns error=NAME)"
            )
        err = _floats(table, cols["error"], path)
        _positive(err, cols["error"], wave, path)
        if "error_lower" in cols:
            err = 0.5 * (err + np.abs(_floats(table, cols["error_lower"], path)))
            notes.append(
                f"error: mean of |{cols['error']}| and |{cols['error_lower']}| (asymmetric)"
            )
        unit = depth_unit or cunits.get("depth") or cunits.get("error")
        how = "given" if depth_unit else ("from the column name or header" if unit else "")
        if "radius_ratio" in cols:
            notes.append(f"depth from {cols['depth']!r}; {cols['radius_ratio']!r} ignored")
    else:
        ratio = _floats(table, cols["radius_ratio"], path)
        if "radius_ratio_error" not in cols:
            raise FileFormatError(f"{path}: no error column for {cols['radius_ratio']!r}")
        rerr = _floats(table, cols["radius_ratio_error"], path)
        _positive(rerr, cols["radius_ratio_error"], wave, path)
        if "radius_ratio_error_lower" in cols:
            rerr = 0.5 * (rerr + np.abs(_floats(table, cols["radius_ratio_error_lower"], path)))
        if np.any(ratio >= 1) or np.any(ratio <= 0):
            raise UnitError(f"{path}: radius ratios must lie in (0, 1), got {np.nanmax(ratio):g}")
        raw, err = ratio**2, 2 * ratio * rerr
        unit, how = "fraction", "squared from R_p/R_s; error 2 (R_p/R_s) sigma"
    depth, error, unit, how = depth_to_fraction(raw, err, unit, source=str(path), how=how)
    notes.append(f"depth unit: {unit} ({how})")

    # widths, in micron: a width column's own unit where it names one, else the wavelengths'
    def width_scale(role: str) -> float:
        return WAVE_UNITS[cunits[role] if cunits.get(role) in WAVE_UNITS else wunit]

    if "half_width" in cols:
        half = np.abs(_floats(table, cols["half_width"], path)) * width_scale("half_width")
        kind = "half"
        notes.append(f"widths: half widths ({cols['half_width']!r})")
    elif "full_width" in cols or "width" in cols:
        role = "full_width" if "full_width" in cols else "width"
        col = cols[role]
        w = np.abs(_floats(table, col, path)) * width_scale(role)
        if width is not None:
            kind, how = width, "given"
        elif "full_width" in cols:
            kind, how = "full", "column name"
        else:
            decided = width_kind_from_spacing(wave, w)  # both in micron
            if decided is None:
                raise FileFormatError(
                    f"{path}: column {col!r} may hold half or full bin widths and the spacing "
                    "of the bins does not decide; say which (option --width half or full)"
                )
            kind, how = (
                decided,
                "neighbouring bins are spaced by "
                + ("twice the value" if decided == "half" else "the value"),
            )
        half = w if kind == "half" else 0.5 * w
        notes.append(f"widths: {col!r} read as {kind} widths ({how})")
    else:
        if width != "contiguous":
            raise FileFormatError(
                f"{path}: no bin-width column among {listed_columns(table.colnames)}; if the "
                "bins touch their neighbours, say so (option --width contiguous) or add a "
                "half_width column"
            )
        order = np.argsort(wave)
        edges = np.concatenate(
            [
                [1.5 * wave[order][0] - 0.5 * wave[order][1]],
                0.5 * (wave[order][1:] + wave[order][:-1]),
                [1.5 * wave[order][-1] - 0.5 * wave[order][-2]],
            ]
        )
        half = np.empty_like(wave)
        half[order] = 0.5 * np.diff(edges)
        notes.append("widths: contiguous bins (edges halfway between centres; given)")
    # instruments
    if instrument is not None:
        inst = np.full(len(table), instrument)
        notes.append(f"instrument: {instrument} (given)")
    elif "instrument" in cols:
        inst = np.asarray(table[cols["instrument"]]).astype(str)
        notes.append(f"instruments from {cols['instrument']!r}: {sorted(set(inst.tolist()))}")
    elif "order" in cols:
        inst = np.array([f"order{float(v):g}" for v in _floats(table, cols["order"], path)])
        notes.append(f"instruments: one per spectral order ({cols['order']!r})")
    else:
        inst = np.full(len(table), path.stem)
        notes.append(f"instrument: one ({path.stem}; no instrument column)")
    return _spectrum(path, wave, half, depth, error, inst, notes, unit)


def read_transmission(
    path: str | os.PathLike[str],
    *,
    depth_unit: str | None = None,
    width: str | None = None,
    wave_unit: str | None = None,
    columns: dict[str, str] | None = None,
    instrument: str | None = None,
) -> TransmissionSpectrum:
    """Read an observed transmission spectrum as published, and record what was assumed.

    Layouts: pyratbay ``.dat`` (``@DEPTH_UNITS`` / ``@DATA``), ECSV, IPAC, and text tables
    separated by tabs, commas or whitespace, with a header line or the column names in the
    last comment line before the data (as in HST compilations: names between runs of two
    spaces, or one per column when one of them names the wavelength). Columns are matched
    exactly against :data:`~atmospec.molecules.columns.COLUMN_SYNONYMS` (a unit in brackets or
    after an underscore, ``depth (%)``, ``half_width_um``, is split off and used); two
    candidates for one role are refused with both named (``columns={"depth": "NAME"}``
    chooses). Asymmetric errors (``err_up``/``err_low``, ``depth_err_pos``/``_neg``,
    ``PL_TRANDEPERR1``/``2``) are averaged, and said so.

    Units: depth units come from ``depth_unit``, ``@DEPTH_UNITS``, the column name
    (``dppm``, ``PL_TRANDEP`` in percent, ``(Rp/Rs)^2``), a header unit, or the values when
    only one unit fits them (:func:`~atmospec.molecules.columns.depth_to_fraction`); a radius
    ratio R_p/R_s is squared. Widths: half widths, full widths, ambiguous names (``BANDWIDTH``,
    ``Delta Wavelength``) decided by the spacing of the bins or ``width="half"/"full"``, or
    ``width="contiguous"`` for files with no widths. A width column in a unit of its own
    (``half_width [nm]`` beside micron wavelengths) is converted with it. A ``quality`` column
    drops flagged bins; ``order`` becomes the instrument. ``spectrum.assumptions`` lists every
    such decision.
    Binary files (FITS, gzip) are refused as such, never decoded as text.

    Example:
        >>> read_transmission("absent.dat")
        Traceback (most recent call last):
        ...
        atmospec.errors.FileFormatError: absent.dat: no such file
    """
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"{path}: no such file")
    if depth_unit is not None and depth_unit not in DEPTH_UNITS:
        raise UnitError(f"depth unit {depth_unit!r} is not one of {sorted(DEPTH_UNITS)}")
    if width is not None and width not in ("half", "full", "contiguous"):
        raise FileFormatError(f"width must be 'half', 'full' or 'contiguous', not {width!r}")
    if is_binary(path):
        raise FileFormatError(
            f"{path}: a binary file (FITS or compressed), not a table of transit depths: "
            "transmission spectra are read from text, CSV, ECSV, IPAC or VOTable tables"
        )
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    if any(line.strip().upper().startswith("@DATA") for line in lines):
        return _read_pyratbay(path, lines, depth_unit)
    return _read_table(
        path,
        lines,
        depth_unit=depth_unit,
        width=width,
        wave_unit=wave_unit,
        columns=columns,
        instrument=instrument,
    )
