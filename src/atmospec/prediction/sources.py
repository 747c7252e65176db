"""The spectra of a batch run (files, a folder, a table, the library, a store) and their partitions."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from atmospec.errors import AtmospecError, DataNotFoundError, FileFormatError

from .catalogue_table import (
    LIBRARY_KEY,
    PATH_COLUMNS,
    catalogue_hint,
    library_keys,
    read_table,
    resolve_entries,
)

if TYPE_CHECKING:
    import pandas as pd

    from atmospec.spectrum import Spectrum

__all__ = [
    "Catalog",
    "Partition",
    "LoadedSpectrum",
    "PATH_COLUMNS",
    "SPECTRUM_SUFFIXES",
    "ROW_ERRORS",
    "read_spectrum",
]

log = logging.getLogger(__name__)

SPECTRUM_SUFFIXES: tuple[str, ...] = (
    ".fits",
    ".fits.gz",
    ".fit",
    ".fts",
    ".ecsv",
    ".tbl",
    ".ipac",
    ".vot",
    ".votable",
    ".xml",
    ".csv",
    ".txt",
    ".dat",
    ".txt.gz",
    ".csv.gz",
)
"""File endings taken as spectra when a folder is scanned."""

ROW_ERRORS: tuple[type[BaseException], ...] = (AtmospecError, OSError, ValueError)
"""Errors that make one spectrum of a batch a failure row (recorded with the error) instead
of stopping the run: bad or unreadable input. Anything else is a bug and stops the run."""

_FILE, _LIBRARY = "file", "library"


def read_spectrum(item: Any, **read_options: Any) -> Spectrum:
    """A Spectrum as given, or read from a file path with NaN pixels masked.

    Masked pixels are left for the coverage policy of the prediction to judge (``refuse``
    names the gap they leave; ``mask`` masks the model bins they empty). ``read_options``
    (``wave_unit=``, ``wave_col=``, ``flux_col=``, ``err_col=``) go to
    :func:`atmospec.io.read`, which refuses options the file's format does not take.

    Raises:
        DataNotFoundError: the file does not exist.
        TypeError: ``item`` is neither a Spectrum nor a path.

    Example:
        >>> import pathlib, tempfile
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "x.csv"
        >>> _ = f.write_text("wavelength,flux,error\\n1.0,2.0,0.1\\n1.5,nan,0.1\\n2.0,3.0,0.1\\n")
        >>> read_spectrum(f, wave_unit="um").mask.tolist()  # the NaN pixel is masked
        [False, True, False]
    """
    from atmospec.spectrum import Spectrum

    if isinstance(item, Spectrum):
        return item
    if isinstance(item, (str, os.PathLike)):
        from atmospec.io import read

        path = Path(item)
        if not path.exists():
            raise DataNotFoundError(
                f"{path}: no such spectrum file"
                + (
                    ", and not a SpeX library key (see `atmospec library`)"
                    if LIBRARY_KEY.fullmatch(path.name)
                    else ""
                )
            )
        try:
            return read(path, invalid="mask", **read_options)
        except FileFormatError as err:
            said = catalogue_hint(path)
            if said is None:
                raise
            raise FileFormatError(f"{err}; {said}") from None
    raise TypeError(f"expected a Spectrum or a file path, got {type(item).__name__}")


@dataclass(frozen=True)
class LoadedSpectrum:
    """One catalogue row after reading: the spectrum, or the error that prevented it.

    Example:
        >>> row = Partition(0, 4, 5, ("nosuch.fits",), ("file",)).load()[0]
        >>> row.row, row.spectrum, row.error
        (4, None, 'DataNotFoundError: nosuch.fits: no such spectrum file')
    """

    row: int
    source: str
    spectrum: Spectrum | None
    error: str | None = None


@dataclass(frozen=True)
class Partition:
    """A contiguous block of catalogue rows, small enough to ship to a worker.

    ``items`` are file paths or library keys (``kinds`` says which, per item); a store
    partition holds rows ``start:stop`` of the store at ``store`` instead.

    Example:
        >>> import pathlib, tempfile
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "x.csv"
        >>> _ = f.write_text("wavelength,flux\\n1.0,2.0\\n2.0,3.0\\n")
        >>> p = Partition(3, 6, 8, (str(f), "nosuch.fits"), ("file", "file"))
        >>> p.name, len(p)
        ('part-000003', 2)
        >>> rows = p.load(wave_unit="um", resolution=100)
        >>> [r.row for r in rows], rows[0].spectrum.meta["resolution"], rows[1].error
        ([6, 7], 100.0, 'DataNotFoundError: nosuch.fits: no such spectrum file')
    """

    index: int
    start: int
    stop: int
    items: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    store: str | None = None

    @property
    def name(self) -> str:
        """File stem of this partition's outputs, e.g. ``part-000012``."""
        return f"part-{self.index:06d}"

    def __len__(self) -> int:
        return self.stop - self.start

    def load(self, **read_options: Any) -> list[LoadedSpectrum]:
        """Read this partition's spectra; a row that cannot be read carries its error.

        ``read_options`` go to :func:`read_spectrum` for file rows, except ``resolution``
        (the resolving power the user states), which goes into every spectrum's
        ``meta["resolution"]``. Every spectrum's ``meta["source"]`` is its catalogue id (path,
        key or store source), which seeds its Monte Carlo draws.
        """
        read_options = dict(read_options)
        resolution = read_options.pop("resolution", None)
        if self.store is not None:
            from atmospec.scale.store import SpectraStore

            specs = SpectraStore(self.store).spectra(self.start, self.stop)
            out = [LoadedSpectrum(self.start + i, s.source, s) for i, s in enumerate(specs)]
        else:
            out = []
            for i, (item, kind) in enumerate(zip(self.items, self.kinds, strict=True)):
                try:
                    spec = _read_item(item, kind, read_options)
                except ROW_ERRORS as err:
                    out.append(
                        LoadedSpectrum(self.start + i, item, None, f"{type(err).__name__}: {err}")
                    )
                    continue
                spec.meta["source"] = item
                out.append(LoadedSpectrum(self.start + i, item, spec))
        if resolution is not None:
            for row in out:
                if row.spectrum is not None:
                    row.spectrum.meta["resolution"] = (
                        dict(resolution) if isinstance(resolution, dict) else float(resolution)
                    )
        return out


def _read_item(item: str, kind: str, read_options: dict[str, Any]) -> Spectrum:
    if kind == _LIBRARY:
        from atmospec.library import load

        return load(item)
    return read_spectrum(item, **read_options)


def _without_error_partners(files: list[str]) -> list[str]:
    """``files`` less the error spectra whose flux spectrum is among them (read with it)."""
    from atmospec.io.fits_image import flux_partner

    listed = {str(Path(f).resolve()) for f in files}
    keep = []
    for f in files:
        partner = flux_partner(f)
        if partner is not None and str(partner.resolve()) in listed:
            log.info("%s: read as the errors of %s, not as a spectrum", f, partner.name)
            continue
        keep.append(f)
    return keep


class Catalog:
    """The spectra a batch run goes over, in a fixed order, cut into deterministic partitions.

    Build one with :meth:`open` (a table of file paths, a folder, or a spectra store),
    :meth:`from_files`, :meth:`from_folder`, :meth:`from_table`, :meth:`from_library` or
    :meth:`from_store`; :meth:`concat` joins several. Partition ``i`` always holds rows
    ``i * size`` to ``(i + 1) * size`` of that order, so reruns, other worker counts,
    the local and the Dask executor cut the catalogue identically.

    Example:
        >>> cat = Catalog.from_files(["a.fits", "b.fits", "c.fits"])
        >>> parts = cat.partitions(2)
        >>> parts[0].name, parts[0].items, parts[1].items
        ('part-000000', ('a.fits', 'b.fits'), ('c.fits',))
    """

    def __init__(
        self,
        items: Sequence[str] = (),
        kinds: Sequence[str] | None = None,
        *,
        store: str | None = None,
        n: int | None = None,
        label: str = "",
    ) -> None:
        self.items: tuple[str, ...] = tuple(str(i) for i in items)
        self.kinds: tuple[str, ...] = (_FILE,) * len(self.items) if kinds is None else tuple(kinds)
        if len(self.kinds) != len(self.items) or set(self.kinds) - {_FILE, _LIBRARY}:
            raise ValueError("kinds: one of 'file' or 'library' per item")
        if store is not None and self.items:
            raise ValueError("a store catalogue lists no items")
        self.store = store
        self._n = len(self.items) if n is None else int(n)
        self.label = label or ("store" if store else "files")

    def __len__(self) -> int:
        return self._n

    def __repr__(self) -> str:
        return f"Catalog({self.label!r}, n={len(self)})"

    @property
    def ids(self) -> list[str]:
        """The source id of every row (a store's are read from the store)."""
        if self.store is None:
            return list(self.items)
        from atmospec.scale.store import SpectraStore

        return [str(s) for s in SpectraStore(self.store).sources]

    # ---------------------------------------------------------------- constructors
    @classmethod
    def from_files(cls, paths: Sequence[str | os.PathLike[str]], *, label: str = "") -> Catalog:
        """A catalogue of spectrum files, in the given order (ids are the paths as given).

        An error spectrum listed with its flux spectrum (FIREHOSE's ``NAME_E.fits`` beside
        ``NAME_F.fits``) is left out: it is read with the flux, not as a spectrum of its own.
        A name that is no file but a SpeX library key (``10703_10070``, as ``atmospec library``
        lists them and ``atmospec fit`` takes them) is that library spectrum.
        """
        items = _without_error_partners([str(p) for p in paths])
        keys = library_keys([i for i in items if not Path(i).exists()])
        kinds = [_LIBRARY if i in keys else _FILE for i in items]
        return cls(items, kinds, label=label or "files")

    @classmethod
    def from_folder(cls, folder: str | os.PathLike[str]) -> Catalog:
        """Every spectrum file (see :data:`SPECTRUM_SUFFIXES`) in ``folder``, sorted by name."""
        root = Path(folder)
        if not root.is_dir():
            raise DataNotFoundError(f"{root}: no such folder")
        files = sorted(
            str(p)
            for p in root.iterdir()
            if p.is_file()
            and not p.name.startswith(".")
            and p.name.lower().endswith(SPECTRUM_SUFFIXES)
        )
        files = _without_error_partners(files)
        if not files:
            raise FileFormatError(
                f"{root}: no spectrum files (endings {', '.join(SPECTRUM_SUFFIXES)}) in this folder"
            )
        return cls(files, label=root.name)

    @classmethod
    def from_library(
        cls,
        keys: Sequence[str] | None = None,
        *,
        spt: str | None = None,
        snr_min: float | None = None,
        quality: str | None = None,
        limit: int | None = None,
    ) -> Catalog:
        """SpeX prism library spectra: explicit ``keys``, or those
        :func:`atmospec.library.query` selects by type, S/N and quality (at most ``limit``)."""
        if keys is None:
            from atmospec.library import query

            keys = query(spt=spt, snr_min=snr_min, quality=quality)["key"].astype(str).tolist()
        keys = [str(k) for k in keys][:limit] if limit is not None else [str(k) for k in keys]
        return cls(keys, [_LIBRARY] * len(keys), label="spex-library")

    @classmethod
    def from_store(cls, path: str | os.PathLike[str]) -> Catalog:
        """All rows of a :class:`~atmospec.scale.store.SpectraStore`."""
        from atmospec.scale.store import SpectraStore

        store = SpectraStore(path)
        return cls(store=str(store.path.resolve()), n=len(store), label=store.path.name)

    @classmethod
    def from_table(
        cls, table: str | os.PathLike[str] | pd.DataFrame, column: str | None = None
    ) -> Catalog:
        """Spectra listed in a table (CSV, Parquet, ECSV, any table astropy reads, or a plain
        list of paths, one a line).

        The paths are in ``column``, else in the first of :data:`PATH_COLUMNS` present; a
        ``key`` column lists SpeX library spectra instead. Relative paths are taken relative
        to the table's folder. In any other column, a value that is no file there but a SpeX
        library key (a ``splat_key`` column, given with ``column=``) is that library
        spectrum, as in :meth:`from_files`.
        """
        import pandas as pd

        base = Path(".")
        if isinstance(table, pd.DataFrame):
            df, label = table, "table"
        else:
            p = Path(table)
            if not p.is_file():
                raise DataNotFoundError(f"{p}: catalogue table not found")
            base, label = p.parent, p.name
            df = read_table(p)
        wanted = [column] if column else [*PATH_COLUMNS, "key"]
        col = next((c for c in wanted if c in df.columns), None)
        if col is None:
            raise FileFormatError(
                f"{label}: no column named {' / '.join(wanted)} (columns: "
                f"{', '.join(map(str, list(df.columns)[:8]))}); name the column of file paths "
                "with --column"
            )
        values = [str(v) for v in df[col]]
        if col == "key":
            return cls(values, [_LIBRARY] * len(values), label=label)
        paths, keys = resolve_entries(values, base)
        items = [
            v if v in keys or Path(v).is_absolute() else str(q)
            for v, q in zip(values, paths, strict=True)
        ]
        kinds = [_LIBRARY if v in keys else _FILE for v in values]
        return cls(items, kinds, label=label)

    @classmethod
    def open(
        cls, source: str | os.PathLike[str] | pd.DataFrame | Catalog, column: str | None = None
    ) -> Catalog:
        """A catalogue from a store folder, a plain folder, a table file or a DataFrame."""
        if isinstance(source, Catalog):
            return source
        if not isinstance(source, (str, os.PathLike)):
            return cls.from_table(source, column)
        from atmospec.scale.store import SpectraStore

        p = Path(source)
        if SpectraStore.is_store(p):
            return cls.from_store(p)
        if p.is_dir():
            return cls.from_folder(p)
        return cls.from_table(p, column)

    @classmethod
    def concat(cls, catalogs: Sequence[Catalog]) -> Catalog:
        """The rows of several file or library catalogues, one after the other."""
        if any(c.store is not None for c in catalogs):
            raise ValueError("a spectra store cannot be joined with other catalogues")
        items = [i for c in catalogs for i in c.items]
        kinds = [k for c in catalogs for k in c.kinds]
        return cls(items, kinds, label="+".join(c.label for c in catalogs))

    # ---------------------------------------------------------------- partitions
    def fingerprint(self) -> str:
        """sha256 of the catalogue's rows (a rerun checks it names the same data)."""
        h = hashlib.sha256(f"{self.store}\n{self._n}\n".encode())
        for item, kind in zip(self.items, self.kinds, strict=True):
            h.update(f"{kind}:{item}\n".encode())
        return h.hexdigest()

    def partitions(self, size: int) -> list[Partition]:
        """Contiguous blocks of ``size`` rows (the last may be shorter), in catalogue order."""
        if size < 1:
            raise ValueError(f"partition size must be >= 1, not {size}")
        parts = []
        for i, start in enumerate(range(0, self._n, size)):
            stop = min(start + size, self._n)
            parts.append(
                Partition(
                    i, start, stop, self.items[start:stop], self.kinds[start:stop], self.store
                )
            )
        return parts
