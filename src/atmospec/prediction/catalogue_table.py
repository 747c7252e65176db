"""Catalogue tables: reading a table that lists spectra, and recognising one given as a spectrum.

A batch run reads its spectra from a table (CSV, Parquet, ECSV, IPAC, any table astropy reads,
or a plain list of paths) whose column lists files or SpeX library keys
(:meth:`atmospec.prediction.sources.Catalog.from_table`). The same table given where a
spectrum was expected (``atmospec predict companions.csv``) is refused by the spectrum reader
with what it could not parse ("line 2: cannot read 'HD 89744B' as a number");
:func:`catalogue_hint` reads it once more as a catalogue and names the ``--catalog`` call.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from atmospec._fileio import first_block
from atmospec.errors import AtmospecError, DataNotFoundError, FileFormatError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "LIBRARY_KEY",
    "PATH_COLUMNS",
    "catalogue_hint",
    "library_keys",
    "read_table",
    "resolve_entries",
]

PATH_COLUMNS: tuple[str, ...] = ("path", "file", "filename", "spectrum", "source")
"""Column names searched, in order, for the file paths of a catalogue table (``key``: SpeX
library keys instead)."""

LIBRARY_KEY = re.compile(r"\d+_\d+")
"""The shape of a SpeX library key (``10703_10070``)."""

_LOOKED_AT = 500
"""Rows :func:`catalogue_hint` checks per column (a refused table of a million rows is not
walked through)."""


def library_keys(names: Sequence[str]) -> set[str]:
    """Those of ``names`` (no file of that name exists) that are SpeX library keys; none when
    no library was fetched (each name then stays a missing file, refused as such).

    Example:
        >>> sorted(library_keys(["10703_10070", "123_456", "a.fits"]))
        ['10703_10070']
    """
    if not names:
        return set()
    from atmospec.library import catalogue

    try:
        return set(catalogue()["key"].astype(str)) & set(names)
    except DataNotFoundError:
        return set()


def resolve_entries(values: Sequence[str], base: Path) -> tuple[list[Path], set[str]]:
    """A catalogue column's entries as paths (relative ones taken in ``base``, the table's
    folder) and those of the entries that are no file there but a SpeX library key.

    Example:
        >>> paths, keys = resolve_entries(["a.fits", "/data/b.fits"], Path("tables"))
        >>> [p.as_posix() for p in paths], keys
        (['tables/a.fits', '/data/b.fits'], set())
    """
    paths = [Path(v) if Path(v).is_absolute() else base / v for v in values]
    return paths, library_keys([v for v, p in zip(values, paths, strict=True) if not p.exists()])


def read_table(path: Path) -> pd.DataFrame:
    """A catalogue table as a DataFrame: by its ending, else any table astropy reads whose
    header names a path or key column, else a plain list of paths (one a line, ``#`` comments).

    Raises:
        FileFormatError: a CSV, ECSV, Parquet or IPAC table that cannot be read.

    Example:
        >>> import pathlib, tempfile
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "targets.txt"
        >>> _ = f.write_text("# my targets\\na.fits\\nb.fits\\n")
        >>> read_table(f)["path"].tolist()
        ['a.fits', 'b.fits']
    """
    import pandas as pd

    name = path.name.lower()
    try:
        if name.endswith(".parquet"):
            from atmospec._optional import require

            require("pyarrow", "scale")  # pandas reads Parquet through pyarrow
            return pd.read_parquet(path)
        if name.endswith(".ecsv"):
            from astropy.table import Table

            return Table.read(path, format="ascii.ecsv").to_pandas()
        if name.endswith(".csv"):
            return pd.read_csv(path)
        if first_block(path).lstrip().startswith((b"\\", b"|")):  # an IPAC table (IRSA)
            from astropy.table import Table

            return Table.read(path, format="ascii.ipac").to_pandas()
    except (OSError, ValueError) as err:
        raise FileFormatError(f"{path}: cannot read the catalogue table ({err})") from None
    try:  # any other table astropy reads, with a header naming the columns
        from astropy.table import Table

        frame = Table.read(path).to_pandas()
        if any(c in frame.columns for c in (*PATH_COLUMNS, "key")):
            return frame
    except Exception:  # noqa: BLE001  (astropy raises many types; a plain list follows)
        pass
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    return pd.DataFrame({"path": [ln for ln in lines if ln and not ln.startswith("#")]})


def catalogue_hint(path: str | Path) -> str | None:
    """For a file the spectrum reader refused: when a column of it lists spectra (every value
    a file that exists, relative to the table's folder, or a SpeX library key), the
    ``atmospec predict --catalog`` call that reads them, in a sentence; else None (never
    raises).

    Example:
        >>> import pathlib, tempfile
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> for n in ("a.fits", "b.fits"):
        ...     _ = (d / n).write_bytes(b"")
        >>> _ = (d / "targets.csv").write_text("name,spectrum_file\\nA,a.fits\\nB,b.fits\\n")
        >>> catalogue_hint(d / "targets.csv")[:60]
        "it lists 2 spectra (column 'spectrum_file': 2 files), not a "
    """
    path = Path(path)
    try:
        table = read_table(path)
    except (AtmospecError, OSError, ValueError, UnicodeError):
        return None
    default = next((c for c in (*PATH_COLUMNS, "key") if c in table.columns), None)
    for col in table.columns:
        values = table[col].head(_LOOKED_AT)
        if values.empty or values.isna().any() or values.dtype.kind not in "OSU":
            continue
        names = [str(v).strip() for v in values]
        paths, keys = resolve_entries(names, path.parent)
        files = sum(p.is_file() for p in paths)
        if files + sum(n in keys for n in names) < len(names):
            continue
        what = " and ".join(
            f"{n} {word}"
            for n, word in ((files, "files"), (len(names) - files, "library keys"))
            if n
        )
        option = "" if col == default else f" --column {col}"
        return (
            f"it lists {len(table)} spectra (column '{col}': {what}), not a spectrum: "
            f"`atmospec predict --catalog {path}{option}` predicts them"
        )
    return None
