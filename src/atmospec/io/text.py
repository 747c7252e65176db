"""Readers of text tables: CSV and whitespace-separated columns with units in the header
(ECSV, IPAC and VOTable: :mod:`atmospec.io.unit_tables`)."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from atmospec.errors import FileFormatError
from atmospec.io._common import (
    FLUX_NAMES,
    WAVE_NAMES,
    Invalid,
    build_spectrum,
    check_file,
    check_flux_unit,
    check_wave_unit,
    find_column,
    flux_column_unit,
    match_columns,
    open_text,
    wave_column_unit,
)
from atmospec.io.error_columns import find_error_column, note_errors, to_sigma
from atmospec.io.flux_density import file_flux_unit, mark_assumed, mark_overridden
from atmospec.spectrum import Spectrum

__all__ = ["read_text", "read_csv", "parse_table", "TextTable"]

_FIELD = re.compile(r"([^\s\[\(,]+)\s*(?:\[([^\]]*)\]|\(([^)]*)\))?")
_KEYVAL = re.compile(r"^\s*([A-Za-z][\w .-]*?)\s*[:=]\s*(.+?)\s*$")


@dataclass
class TextTable:
    """A parsed text table: column names and units from the header, the numbers, comments.

    Example:
        >>> t = parse_table(["# object: W0855", "wave [um] flux", "1.0 2.0", "2.0 3.0"], source="x")
        >>> t.names, t.units, t.data.tolist(), t.header
        (['wave', 'flux'], ['um', None], [[1.0, 2.0], [2.0, 3.0]], {'object': 'W0855'})
    """

    names: list[str] | None
    units: list[str | None] | None
    data: NDArray[np.float64]
    header: dict[str, str] = field(default_factory=dict)
    empty: dict[int, list[int]] = field(default_factory=dict)
    """The empty fields of a delimited table, read as NaN: column index -> their line numbers."""


def _parse_header(line: str, delimiter: str | None) -> tuple[list[str], list[str | None]]:
    fields = line.split(delimiter) if delimiter else None
    names: list[str] = []
    units: list[str | None] = []
    if fields is not None:
        for f in fields:
            m = _FIELD.match(f.strip())
            if not m:
                names.append(f.strip())
                units.append(None)
                continue
            names.append(m.group(1))
            units.append(m.group(2) if m.group(2) is not None else m.group(3))
    else:
        for m in _FIELD.finditer(line):
            names.append(m.group(1))
            units.append(m.group(2) if m.group(2) is not None else m.group(3))
    return names, units


def _is_number(token: str) -> bool:
    """A number as the table parser reads it (Python's ``float`` also takes ``1_000``,
    numpy's reader does not)."""
    if "_" in token:
        return False
    try:
        float(token)
    except ValueError:
        return False
    return True


def _is_row(line: str, delimiter: str | None) -> bool:
    """True when ``line`` is a data row: its first field a number, or (a delimited table) its
    fields numbers or empty."""
    if delimiter is None:
        return _is_number(line.split()[0])
    fields = [f.strip() for f in line.split(delimiter)]
    return _is_number(fields[0]) or (not fields[0] and all(_is_number(f) for f in fields if f))


def _fill_empty(
    rows: list[tuple[int, str]], *, source: str, delimiter: str
) -> tuple[list[tuple[int, str]], dict[int, list[int]]]:
    """The rows of a delimited table with each empty field read as ``nan``, a missing value
    (pandas' ``to_csv`` writes NaN so), and where they were: column index -> line numbers.

    A row whose fields are all empty holds no pixel and is refused, naming its line.

    Example:
        >>> _fill_empty([(2, "1.0,,0.1"), (3, "1.1,2.0,")], source="x.csv", delimiter=",")
        ([(2, '1.0,nan,0.1'), (3, '1.1,2.0,nan')], {1: [2], 2: [3]})
    """
    filled: list[tuple[int, str]] = []
    empty: dict[int, list[int]] = {}
    for number, row in rows:
        fields = [f.strip() for f in row.split(delimiter)]
        if all(fields):
            filled.append((number, row))
            continue
        if not any(fields):
            raise FileFormatError(
                f"{source}: line {number}: every field is empty (a row with no values); "
                "remove the line, or write the pixel's wavelength and 'nan' for what is missing"
            )
        for j, f in enumerate(fields):
            if not f:
                empty.setdefault(j, []).append(number)
        filled.append((number, delimiter.join(f or "nan" for f in fields)))
    return filled, empty


def _raise_row_error(rows: list[tuple[int, str]], *, source: str, delimiter: str | None) -> None:
    ncol = len(rows[0][1].split(delimiter))
    for number, row in rows:
        fields = [f.strip() for f in row.split(delimiter)]
        if len(fields) != ncol:
            raise FileFormatError(
                f"{source}: line {number} has {len(fields)} columns, expected {ncol} "
                "(truncated or malformed file)"
            )
        for f in fields:
            if not _is_number(f):
                raise FileFormatError(f"{source}: line {number}: cannot read {f!r} as a number")


def parse_table(lines: list[str], *, source: str, delimiter: str | None = None) -> TextTable:
    """Parse comment lines, an optional header of ``name [unit]`` fields and numeric rows.

    The header is the last ``#`` comment line before the data (or a first non-numeric line);
    ``# key: value`` comment lines go into ``header``. Rows with another number of columns or
    non-numeric values raise FileFormatError naming the line. With a ``delimiter`` an empty
    field is a missing value, read as NaN (its line in ``empty``); a row with no value is
    refused.

    Example:
        >>> t = parse_table(["# wavelength [um] flux [Jy]", "1.0 2.0", "1.1 2.5"], source="x.txt")
        >>> t.names, t.units, t.data.shape
        (['wavelength', 'flux'], ['um', 'Jy'], (2, 2))
    """
    comments: list[str] = []
    header_line: str | None = None
    rows: list[tuple[int, str]] = []
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            if not rows:
                comments.append(stripped.lstrip("#").strip())
            continue
        if not rows and header_line is None and not _is_row(stripped, delimiter):
            header_line = stripped
            continue
        rows.append((number, stripped))
    if not rows:
        raise FileFormatError(f"{source}: no numeric data rows (only header or comments)")
    header: dict[str, str] = {}
    for c in comments:
        m = _KEYVAL.match(c)
        if m and not re.search(r"\[", c):
            header[m.group(1)] = m.group(2)
    empty: dict[int, list[int]] = {}
    if delimiter is not None:
        rows, empty = _fill_empty(rows, source=source, delimiter=delimiter)
    text = "\n".join(r for _, r in rows)
    try:
        data = np.loadtxt(io.StringIO(text), delimiter=delimiter, ndmin=2, dtype=np.float64)
    except ValueError as err:
        _raise_row_error(rows, source=source, delimiter=delimiter)
        raise FileFormatError(f"{source}: cannot read the data rows as numbers ({err})") from None
    if data.shape[1] < 2:
        raise FileFormatError(
            f"{source}: needs at least 2 columns (wavelength, flux), found {data.shape[1]}"
        )
    names = units = None
    if header_line is not None:
        names, units = _parse_header(header_line, delimiter)
        if len(names) != data.shape[1]:
            raise FileFormatError(
                f"{source}: the header names {len(names)} columns {names} but the data rows "
                f"have {data.shape[1]}"
            )
    else:  # the last comment line that names every column, one of them a wavelength
        for c in reversed(comments):
            n, un = _parse_header(c, delimiter)
            if len(n) == data.shape[1] and match_columns(n, WAVE_NAMES):
                names, units = n, un
                break
    return TextTable(names=names, units=units, data=data, header=header, empty=empty)


def read_text(
    path: str | Path,
    *,
    delimiter: str | None = None,
    wave_col: str | None = None,
    flux_col: str | None = None,
    err_col: str | None = None,
    wave_unit: str | None = None,
    flux_unit: str | None = None,
    invalid: Invalid = "error",
) -> Spectrum:
    """Read a whitespace- (or ``delimiter``-) separated text table.

    A header line such as ``# wavelength [um] flux [W m-2 um-1] error [W m-2 um-1]`` gives the
    column names and units (Å, nm and µm are converted to micron). Without a header the columns
    are wavelength, flux[, uncertainty] and ``wave_unit`` must be given; a ``wave_unit`` /
    ``flux_unit`` argument overrides the header. A flux without unit is relative ("").

    Example:
        >>> import pathlib, tempfile
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "s.txt"
        >>> _ = f.write_text("# wavelength [nm] flux [Jy] error [Jy]\\n1000 2.0 0.1\\n1500 2.5 0.1\\n")
        >>> s = read_text(f)
        >>> s.wavelength.tolist(), s.flux_unit
        ([1.0, 1.5], 'Jy')
    """
    p = check_file(path)
    src = str(p)
    lines = open_text(p)
    if delimiter == "," and _semicolon_separated(lines):
        delimiter = ";"  # a spreadsheet's CSV in locales that keep ',' for decimals
    table = parse_table(lines, source=src, delimiter=delimiter)
    fmt = "csv" if delimiter in (",", ";") else "text"
    return _from_table(
        table,
        source=src,
        fmt=fmt,
        name=p.name.split(".")[0],
        wave_col=wave_col,
        flux_col=flux_col,
        err_col=err_col,
        wave_unit=wave_unit,
        flux_unit=flux_unit,
        invalid=invalid,
    )


def _semicolon_separated(lines: list[str]) -> bool:
    """True when the rows are separated by ';' and hold no ',' at all (so nothing else could
    separate them)."""
    rows = [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")][:20]
    return bool(rows) and all(";" in ln and "," not in ln for ln in rows)


def read_csv(
    path: str | Path,
    *,
    wave_col: str | None = None,
    flux_col: str | None = None,
    err_col: str | None = None,
    wave_unit: str | None = None,
    flux_unit: str | None = None,
    invalid: Invalid = "error",
) -> Spectrum:
    """Read a comma-separated table (see :func:`read_text`; header ``wavelength [um],flux,...``).

    Rows separated by ';' with no ',' anywhere (a spreadsheet's export where ',' is the
    decimal mark is refused by its values) are read with ';' as the separator.

    Example:
        >>> import pathlib, tempfile
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "w0855.csv"
        >>> _ = f.write_text("wavelength [um],flux_mJy,flux_err_mJy\\n1.0,2.0,0.1\\n1.5,2.5,0.1\\n")
        >>> s = read_csv(f)  # the unit is the one the flux column's name states
        >>> s.name, s.flux_unit, s.flux.tolist(), s.uncertainty.tolist()
        ('w0855', 'mJy', [2.0, 2.5], [0.1, 0.1])
        >>> _ = f.write_text("wavelength [um];flux\\n1.0;2.0\\n1.5;2.5\\n")
        >>> read_csv(f).flux.tolist()  # ';'-separated
        [2.0, 2.5]
    """
    return read_text(
        path,
        delimiter=",",
        wave_col=wave_col,
        flux_col=flux_col,
        err_col=err_col,
        wave_unit=wave_unit,
        flux_unit=flux_unit,
        invalid=invalid,
    )


def _from_table(
    table: TextTable,
    *,
    source: str,
    fmt: str,
    name: str,
    wave_col: str | None,
    flux_col: str | None,
    err_col: str | None,
    wave_unit: str | None,
    flux_unit: str | None,
    invalid: Invalid,
) -> Spectrum:
    data = table.data
    if table.names is None:
        if any(c is not None for c in (wave_col, flux_col, err_col)):
            raise FileFormatError(f"{source}: has no header line, so columns cannot be named")
        iw, jf = 0, 1
        je: int | None = 2 if data.shape[1] >= 3 else None
        kind = "sigma"
        wu = fu = None
        labels = ["column 1", "column 2"]
    else:
        names = table.names
        cw = find_column(names, WAVE_NAMES, what="wavelength", source=source, given=wave_col)
        cf = find_column(names, FLUX_NAMES, what="flux", source=source, given=flux_col)
        ce, kind = find_error_column(names, source=source, given=err_col)
        iw, jf = names.index(cw), names.index(cf)  # type: ignore[arg-type]
        je = None if ce is None else names.index(ce)
        units = table.units or [None] * len(names)
        # an explicit unit overrides the file's, so a file's contradiction is not raised
        wu = None if wave_unit else wave_column_unit(names[iw], units[iw], source=source)
        fu = (
            None
            if flux_unit is not None
            else flux_column_unit(names[jf], units[jf], ce, source=source)
        )
        labels = [names[iw], names[jf]]
    if iw in table.empty:  # a pixel without a wavelength is no gap in the spectrum
        lines = table.empty[iw]
        more = f" (and {len(lines) - 1} more lines)" if len(lines) > 1 else ""
        raise FileFormatError(
            f"{source}: line {lines[0]}{more}: the wavelength ({labels[0]}) is empty; a "
            "missing flux or error is read as a gap, a missing wavelength cannot be: fill it "
            "or remove the line"
        )
    wunit = check_wave_unit(wave_unit or wu, source=source, column=labels[0])
    funit = check_flux_unit(
        flux_unit if flux_unit is not None else fu, source=source, column=labels[1]
    )
    meta: dict[str, Any] = {"source": source, "format": fmt}
    if table.header:
        meta["header"] = table.header
    if table.names is not None:
        note_errors(meta, table.names, None if je is None else table.names[je], kind)
    mark_assumed(meta, funit, stated=flux_unit is not None or bool(fu))
    if flux_unit is not None and table.names is not None:
        stated = file_flux_unit(names[jf], units[jf], ce, source=source)
        mark_overridden(meta, flux_unit, stated)
    return build_spectrum(
        data[:, iw],
        data[:, jf],
        None if je is None else to_sigma(data[:, je], kind),
        source=source,
        wave_unit=wunit,
        flux_unit=funit,
        meta=meta,
        name=table.header.get("object", name),
        invalid=invalid,
    )
