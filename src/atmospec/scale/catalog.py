"""A catalogue of spectra (file table, folder, spectra store or library) and its partitions."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from atmospec.errors import AtmospecError, FileFormatError

if TYPE_CHECKING:
    import pandas as pd

    from atmospec.spectrum import Spectrum

__all__ = ["Catalog", "Partition", "LoadedSpectrum", "PATH_COLUMNS"]

PATH_COLUMNS = ("path", "file", "filename", "source")
"""Column names searched, in order, for the file paths of a catalogue table."""


@dataclass(frozen=True)
class LoadedSpectrum:
    """One catalogue row after reading: the spectrum, or the error that prevented it."""

    row: int
    source: str
    spectrum: Spectrum | None
    error: str | None = None


@dataclass(frozen=True)
class Partition:
    """A contiguous block of catalogue rows, small enough to ship to a worker.

    ``kind`` is ``"files"`` (``items`` are paths), ``"library"`` (library keys) or
    ``"store"`` (rows ``start:stop`` of the store at ``store``).
    """

    index: int
    start: int
    stop: int
    kind: str
    items: tuple[str, ...] = ()
    store: str | None = None

    @property
    def name(self) -> str:
        """File stem of this partition's outputs, e.g. ``part-000012``."""
        return f"part-{self.index:06d}"

    def __len__(self) -> int:
        return self.stop - self.start

    def load(self) -> list[LoadedSpectrum]:
        """Read this partition's spectra; a row that cannot be read carries its error."""
        if self.kind == "store":
            from .store import SpectraStore

            assert self.store is not None
            specs = SpectraStore(self.store).spectra(self.start, self.stop)
            return [LoadedSpectrum(self.start + i, s.source, s) for i, s in enumerate(specs)]
        out = []
        for i, item in enumerate(self.items):
            try:
                spec = self._read(item)
            except (AtmospecError, OSError, ValueError) as err:
                out.append(
                    LoadedSpectrum(self.start + i, item, None, f"{type(err).__name__}: {err}")
                )
                continue
            out.append(LoadedSpectrum(self.start + i, item, spec))
        return out

    def _read(self, item: str) -> Spectrum:
        if self.kind == "library":
            from atmospec.library import load

            return load(item)
        from atmospec.io import read

        spec = read(item)
        spec.meta["source"] = item
        return spec


class Catalog:
    """The spectra a batch job runs over, in a fixed order, cut into deterministic partitions.

    Build one with :meth:`open` (a table of file paths, a folder, or a spectra store),
    :meth:`from_files` or :meth:`from_library`. Partition ``i`` always holds rows
    ``i * size`` to ``(i + 1) * size`` of that order, so reruns, other worker counts and
    other machines cut the catalogue identically.

    Example:
        >>> cat = Catalog.from_files(["a.fits", "b.fits", "c.fits"])
        >>> parts = cat.partitions(2)
        >>> parts[0].name, parts[0].items, parts[1].items
        ('part-000000', ('a.fits', 'b.fits'), ('c.fits',))
    """

    def __init__(
        self,
        kind: str,
        items: Sequence[str] = (),
        *,
        store: str | None = None,
        n: int | None = None,
        label: str = "",
    ) -> None:
        if kind not in ("files", "library", "store"):
            raise ValueError(f"unknown catalogue kind {kind!r}")
        self.kind = kind
        self.items: tuple[str, ...] = tuple(str(i) for i in items)
        self.store = store
        self._n = len(self.items) if n is None else int(n)
        self.label = label or kind

    def __len__(self) -> int:
        return self._n

    def __repr__(self) -> str:
        return f"Catalog({self.label!r}, kind={self.kind!r}, n={len(self)})"

    # ---------------------------------------------------------------- constructors
    @classmethod
    def from_files(cls, paths: Sequence[str | os.PathLike[str]], *, label: str = "") -> Catalog:
        """A catalogue of spectrum files, in the given order."""
        return cls("files", [str(p) for p in paths], label=label or "files")

    @classmethod
    def from_library(cls, keys: Sequence[str] | None = None, **query: Any) -> Catalog:
        """SpeX prism library spectra: explicit ``keys`` or :func:`atmospec.library.query`."""
        if keys is None:
            from atmospec.library import query as _query

            keys = _query(**query)["key"].astype(str).tolist()
        return cls("library", list(keys), label="spex-library")

    @classmethod
    def from_store(cls, path: str | os.PathLike[str]) -> Catalog:
        """All rows of a :class:`~atmospec.scale.store.SpectraStore`."""
        from .store import SpectraStore

        store = SpectraStore(path)
        return cls("store", store=str(store.path.resolve()), n=len(store), label=store.path.name)

    @classmethod
    def from_table(cls, table: str | os.PathLike[str] | pd.DataFrame) -> Catalog:
        """File paths from a table (CSV, Parquet, ECSV, or a plain list, one path a line).

        The first of :data:`PATH_COLUMNS` present holds the paths; relative paths are taken
        relative to the table's folder. A table with only a ``key`` column lists SpeX
        library spectra.
        """
        import pandas as pd

        base = Path(".")
        if isinstance(table, pd.DataFrame):
            df, label = table, "table"
        else:
            p = Path(table)
            if not p.is_file():
                raise FileNotFoundError(f"{p}: catalogue table not found")
            base, label = p.parent, p.name
            df = _read_table(p)
        col = next((c for c in PATH_COLUMNS if c in df.columns), None)
        if col is None and "key" in df.columns:  # SpeX library keys, e.g. "10703_10070"
            return cls("library", df["key"].astype(str).tolist(), label=label)
        if col is None:
            raise FileFormatError(
                f"{label}: no column of file paths; name one of {list(PATH_COLUMNS)} "
                "(or 'key' for SpeX library keys) "
                f"(found {list(df.columns)[:8]})"
            )
        paths = [str(v) if Path(str(v)).is_absolute() else str(base / str(v)) for v in df[col]]
        return cls("files", paths, label=label)

    @classmethod
    def from_folder(cls, folder: str | os.PathLike[str], pattern: str = "*") -> Catalog:
        """Every file of ``folder`` matching ``pattern``, sorted by name."""
        root = Path(folder)
        files = sorted(
            str(p) for p in root.glob(pattern) if p.is_file() and not p.name.startswith(".")
        )
        if not files:
            raise FileNotFoundError(f"{root}: no files match {pattern!r}")
        return cls("files", files, label=root.name)

    @classmethod
    def open(cls, source: str | os.PathLike[str] | pd.DataFrame | Catalog) -> Catalog:
        """A catalogue from a store folder, a plain folder, a table file or a DataFrame."""
        if isinstance(source, Catalog):
            return source
        if not isinstance(source, (str, os.PathLike)):
            return cls.from_table(source)
        from .store import SpectraStore

        p = Path(source)
        if SpectraStore.is_store(p):
            return cls.from_store(p)
        if p.is_dir():
            return cls.from_folder(p)
        return cls.from_table(p)

    # ---------------------------------------------------------------- partitions
    def fingerprint(self) -> str:
        """sha256 of the catalogue's kind and rows (a rerun checks it names the same data)."""
        h = hashlib.sha256(f"{self.kind}\n{self.store}\n{self._n}\n".encode())
        for item in self.items:
            h.update(item.encode())
            h.update(b"\n")
        return h.hexdigest()

    def partitions(self, size: int) -> list[Partition]:
        """Contiguous blocks of ``size`` rows (the last may be shorter), in catalogue order."""
        if size < 1:
            raise ValueError(f"partition size must be >= 1, not {size}")
        parts = []
        for i, start in enumerate(range(0, self._n, size)):
            stop = min(start + size, self._n)
            items = self.items[start:stop] if self.kind != "store" else ()
            parts.append(Partition(i, start, stop, self.kind, items, self.store))
        return parts


def _read_table(path: Path) -> pd.DataFrame:
    import pandas as pd

    name = path.name.lower()
    try:
        if name.endswith(".parquet"):
            from atmospec._optional import require

            require("pyarrow", "scale")  # the engine pandas reads parquet with
            return pd.read_parquet(path)
        if name.endswith(".ecsv"):
            from astropy.table import Table

            return Table.read(path, format="ascii.ecsv").to_pandas()
        if name.endswith(".csv"):
            return pd.read_csv(path)
    except (OSError, ValueError) as err:
        raise FileFormatError(f"{path}: cannot read the catalogue table ({err})") from None
    lines = [ln.strip() for ln in path.read_text().splitlines()]
    return pd.DataFrame({"path": [ln for ln in lines if ln and not ln.startswith("#")]})
