"""A chunked spectra store (Zarr) on one wavelength axis that many workers read at once."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from atmospec.errors import AtmospecError, FileFormatError

if TYPE_CHECKING:
    import zarr

    from atmospec.spectrum import Spectrum

__all__ = [
    "SpectraStore",
    "StoreWriter",
    "resample_masked",
    "store_from_spectra",
    "store_from_folder",
    "store_from_library",
    "STORE_FORMAT",
]

STORE_FORMAT = "atmospec-spectra-store"
_DEFAULT_CHUNK_ROWS = 512


def _axis(wavelength: str | ArrayLike) -> NDArray[np.float64]:
    from atmospec.training.builder import target_axis

    return target_axis(wavelength)


def resample_masked(
    spectrum: Spectrum, wavelength: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64] | None, NDArray[np.bool_]]:
    """Resample a spectrum onto ``wavelength`` with its mask kept (flux-conserving).

    Each target bin gets the overlap-weighted mean of the *good* source pixels it covers
    (:func:`atmospec.transforms.resample` applied to ``flux * good`` and to ``good``). A target
    bin is masked when any bad source pixel contributes to it, or when the spectrum does not
    cover it; masked bins hold NaN flux and NaN uncertainty, never an invented value.

    Returns:
        ``(flux, uncertainty or None, mask)`` on the target axis; ``mask`` True = bad.

    Example:
        >>> from atmospec.spectrum import Spectrum
        >>> w = np.linspace(1.0, 2.0, 11)
        >>> s = Spectrum(w, np.full(11, 2.0), mask=w > 1.75)
        >>> f, u, m = resample_masked(s, [1.2, 1.5, 1.9, 2.5])
        >>> f[:2].tolist(), m.tolist()
        ([2.0, 2.0], [False, False, True, True])
    """
    from atmospec.transforms import resample

    new = np.asarray(wavelength, dtype=np.float64)
    good = (~np.asarray(spectrum.mask, dtype=bool)) & np.isfinite(spectrum.flux)
    g = good.astype(np.float64)
    f = np.where(good, spectrum.flux, 0.0)
    stack = np.stack([f, g])
    num, frac = resample(new, spectrum.wavelength, stack, fill=np.nan)
    covered = np.isfinite(frac)
    mask = ~covered | (np.nan_to_num(frac, nan=0.0) < 1.0 - 1e-9)
    with np.errstate(invalid="ignore", divide="ignore"):
        flux = np.where(mask, np.nan, num / np.where(frac > 0, frac, 1.0))
    unc = None
    if spectrum.uncertainty is not None:
        u = np.where(good, spectrum.uncertainty, 0.0)
        _, unc_r = resample(new, spectrum.wavelength, f, u, fill=np.nan)
        unc = np.where(mask, np.nan, unc_r)
    return flux, unc, mask


def _strings(values: Any) -> NDArray[np.str_]:
    """Zarr returns NumPy's variable-width StringDType; give a plain unicode array."""
    arr = np.asarray(values)
    return arr.astype(object).astype(str) if arr.size else np.array([], dtype=str)


class StoreWriter:
    """Append spectra (already on the store's axis) to a new store; atomic on :meth:`close`.

    Rows are buffered and written a whole chunk at a time into a temporary folder next to
    ``path``, which replaces ``path`` only when the writer closes without error. Use it as a
    context manager (see :func:`store_from_spectra`).

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "s.zarr"
        >>> with StoreWriter(path, [1.0, 1.5, 2.0], chunk_rows=2) as w:
        ...     w.append([[1.0, 2.0, np.nan], [3.0, 4.0, 5.0]], None, None, ["a", "b"])
        >>> SpectraStore(path).read(0, 2)[2].tolist()  # the mask: NaN flux is a bad pixel
        [[False, False, True], [False, False, False]]
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        wavelength: ArrayLike,
        *,
        chunk_rows: int = _DEFAULT_CHUNK_ROWS,
        dtype: str = "float32",
        flux_unit: str = "",
        overwrite: bool = False,
        attrs: dict[str, Any] | None = None,
    ) -> None:
        from atmospec._optional import require

        zarr = require("zarr", "scale")

        self.path = Path(path)
        if self.path.exists() and not overwrite:
            raise FileExistsError(f"{self.path}: store exists; pass overwrite=True to replace it")
        self.wavelength = np.asarray(wavelength, dtype=np.float64)
        if self.wavelength.ndim != 1 or np.any(np.diff(self.wavelength) <= 0):
            raise ValueError("the store's wavelength axis must be 1-D and strictly increasing")
        self.chunk_rows = int(chunk_rows)
        self._tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:8]}.tmp")
        self._tmp.parent.mkdir(parents=True, exist_ok=True)
        self._group = zarr.open_group(str(self._tmp), mode="w")
        n_wave = self.wavelength.size
        shape, chunks = (0, n_wave), (self.chunk_rows, n_wave)
        self._group.create_array("wavelength", data=self.wavelength)
        self._flux = self._group.create_array(
            "flux", shape=shape, chunks=chunks, dtype=dtype, fill_value=np.nan
        )
        self._unc = self._group.create_array(
            "uncertainty", shape=shape, chunks=chunks, dtype=dtype, fill_value=np.nan
        )
        self._mask = self._group.create_array(
            "mask", shape=shape, chunks=chunks, dtype=bool, fill_value=True
        )
        self._source = self._group.create_array(
            "source", shape=(0,), chunks=(self.chunk_rows,), dtype=str
        )
        self._attrs = {"flux_unit": flux_unit, **(attrs or {})}
        self._buf: list[tuple[NDArray[Any], NDArray[Any], NDArray[Any], list[str]]] = []
        self._n_buf = 0
        self.n = 0
        self._closed = False

    def append(
        self,
        flux: ArrayLike,
        uncertainty: ArrayLike | None,
        mask: ArrayLike | None,
        sources: Sequence[str],
    ) -> None:
        """Add rows: ``flux`` (n, n_wave), ``uncertainty`` (or None), ``mask`` (True = bad)."""
        f = np.array(flux, dtype=np.float64, ndmin=2)
        if f.shape[1] != self.wavelength.size:
            raise ValueError(f"flux has {f.shape[1]} pixels, the store axis {self.wavelength.size}")
        u = np.full_like(f, np.nan) if uncertainty is None else np.array(uncertainty, ndmin=2)
        m = ~np.isfinite(f) if mask is None else np.array(mask, dtype=bool, ndmin=2)
        if u.shape != f.shape or m.shape != f.shape or len(sources) != f.shape[0]:
            raise ValueError("flux, uncertainty, mask and sources must describe the same rows")
        self._buf.append((f, u, m, [str(s) for s in sources]))
        self._n_buf += f.shape[0]
        if self._n_buf >= self.chunk_rows:
            self._flush(final=False)

    def _flush(self, *, final: bool) -> None:
        if not self._buf:
            return
        f = np.concatenate([b[0] for b in self._buf])
        u = np.concatenate([b[1] for b in self._buf])
        m = np.concatenate([b[2] for b in self._buf])
        s = [x for b in self._buf for x in b[3]]
        take = f.shape[0] if final else (f.shape[0] // self.chunk_rows) * self.chunk_rows
        if take:
            lo, hi = self.n, self.n + take
            for arr in (self._flux, self._unc, self._mask):
                arr.resize((hi, self.wavelength.size))
            self._source.resize((hi,))
            self._flux[lo:hi] = f[:take]
            self._unc[lo:hi] = u[:take]
            self._mask[lo:hi] = m[:take]
            self._source[lo:hi] = np.array(s[:take], dtype=str)
            self.n = hi
        rest = f.shape[0] - take
        self._buf = [(f[take:], u[take:], m[take:], s[take:])] if rest else []
        self._n_buf = rest

    def close(self) -> SpectraStore:
        """Write the remaining rows and the metadata, then move the store into place."""
        from atmospec._fileio import provenance

        if self._closed:
            return SpectraStore(self.path)
        self._flush(final=True)
        self._group.attrs.update(
            {
                "format": STORE_FORMAT,
                "version": 1,
                "n_spectra": self.n,
                "chunk_rows": self.chunk_rows,
                **self._attrs,
                "provenance": json.loads(json.dumps(provenance(), default=str)),
            }
        )
        self._closed = True
        if self.path.exists():
            old = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:8]}.old")
            os.replace(self.path, old)
            os.replace(self._tmp, self.path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(self._tmp, self.path)
        return SpectraStore(self.path)

    def abort(self) -> None:
        """Discard everything written so far."""
        self._closed = True
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class SpectraStore:
    """A read-only, chunked store of spectra on one wavelength axis (a Zarr folder).

    Arrays: ``wavelength`` (n_wave,) µm, ``flux`` / ``uncertainty`` (n, n_wave; NaN where
    masked or unknown), ``mask`` (n, n_wave; True = bad pixel) and ``source`` (n,) labels,
    chunked by rows so that each worker reads only the rows of its partition. Opening is
    cheap (metadata only); any number of processes may read the same store at once.

    Example:
        >>> import tempfile, pathlib
        >>> from atmospec.spectrum import Spectrum
        >>> w = np.linspace(1.0, 2.0, 50)
        >>> specs = [Spectrum(w, np.full(50, k + 1.0), name=f"s{k}") for k in range(3)]
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "demo.zarr"
        >>> store = store_from_spectra(specs, path, w[5:-5])
        >>> flux = store.read(2, 3)[0]
        >>> len(store), store.sources.tolist(), float(flux.max())
        (3, ['s0', 's1', 's2'], 3.0)
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        from atmospec._optional import require

        zarr = require("zarr", "scale")

        self.path = Path(path)
        if not self.path.is_dir():
            raise FileFormatError(f"{self.path}: no spectra store here (expected a Zarr folder)")
        try:
            self._group = zarr.open_group(str(self.path), mode="r")
            attrs: dict[str, Any] = dict(self._group.attrs)
        except Exception as err:  # zarr raises several unrelated types for a bad folder
            raise FileFormatError(f"{self.path}: not a readable Zarr store ({err})") from None
        if attrs.get("format") != STORE_FORMAT:
            raise FileFormatError(
                f"{self.path}: not an atmospec spectra store (format attribute "
                f"{attrs.get('format')!r}); build one with atmospec.scale.store_from_folder"
            )
        self.attrs: dict[str, Any] = attrs
        self.wavelength: NDArray[np.float64] = np.asarray(self._array("wavelength")[:])
        self.flux_unit: str = str(attrs.get("flux_unit", ""))
        self.chunk_rows: int = int(attrs.get("chunk_rows", _DEFAULT_CHUNK_ROWS))

    @staticmethod
    def is_store(path: str | os.PathLike[str]) -> bool:
        """True when ``path`` is a folder holding an atmospec spectra store."""
        meta = Path(path) / "zarr.json"
        if not meta.is_file():
            return False
        try:
            return json.loads(meta.read_text()).get("attributes", {}).get("format") == STORE_FORMAT
        except (OSError, ValueError):
            return False

    def _array(self, name: str) -> zarr.Array[Any]:
        """The store's array ``name`` (a clear error when the folder holds a group there)."""
        from atmospec._optional import require

        zarr = require("zarr", "scale")

        arr = self._group[name]
        if not isinstance(arr, zarr.Array):
            raise FileFormatError(f"{self.path}: {name!r} is not an array in this store")
        return arr

    def __len__(self) -> int:
        return int(self._array("flux").shape[0])

    def __repr__(self) -> str:
        return (
            f"SpectraStore({self.path.name!r}, n={len(self)}, n_wave={self.wavelength.size}, "
            f"chunk_rows={self.chunk_rows})"
        )

    @property
    def sources(self) -> NDArray[np.str_]:
        """Labels of all rows (file path or library key)."""
        return _strings(self._array("source")[:])

    def read(
        self, start: int, stop: int
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_], NDArray[np.str_]]:
        """Rows ``start:stop`` as ``(flux, uncertainty, mask, sources)`` in memory."""
        sl = slice(int(start), int(stop))
        return (
            np.asarray(self._array("flux")[sl], dtype=np.float64),
            np.asarray(self._array("uncertainty")[sl], dtype=np.float64),
            np.asarray(self._array("mask")[sl], dtype=bool),
            _strings(self._array("source")[sl]),
        )

    def spectra(self, start: int, stop: int) -> list[Spectrum]:
        """Rows ``start:stop`` as Spectrum objects (NaN uncertainty stored = none known)."""
        from atmospec.spectrum import Spectrum

        flux, unc, mask, src = self.read(start, stop)
        out = []
        for f, u, m, s in zip(flux, unc, mask, src, strict=True):
            has_unc = bool(np.isfinite(u[~m]).all()) and bool((~m).any())
            out.append(
                Spectrum(
                    self.wavelength,
                    np.where(m, 0.0, f),
                    np.where(m, 1.0, u) if has_unc else None,
                    mask=m,
                    meta={"source": str(s), "store": str(self.path)},
                    flux_unit=self.flux_unit,
                    name=str(s),
                )
            )
        return out

    def spectrum(self, index: int) -> Spectrum:
        """One row as a Spectrum."""
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"{self.path}: row {index} outside 0..{n - 1}")
        index %= n
        return self.spectra(index, index + 1)[0]


def store_from_spectra(
    spectra: Iterable[Spectrum],
    path: str | os.PathLike[str],
    wavelength: str | ArrayLike = "spex-dense",
    *,
    total: int | None = None,
    chunk_rows: int = _DEFAULT_CHUNK_ROWS,
    dtype: str = "float32",
    overwrite: bool = False,
    attrs: dict[str, Any] | None = None,
) -> SpectraStore:
    """Resample spectra onto one axis (masks kept) and write them to a new store atomically.

    Args:
        spectra: Spectrum objects (their ``source`` becomes the row label).
        path: the store folder to create (e.g. ``survey.zarr``).
        wavelength: the common axis: a preset of :data:`atmospec.training.builder.AXIS_PRESETS`
            (default ``"spex-dense"``) or explicit wavelengths in µm.
        total: number of spectra, for the progress bar.
        chunk_rows: rows per chunk (the unit a worker reads).
        dtype: storage type of flux and uncertainty.
        overwrite: replace an existing store.

    Example:
        >>> import tempfile
        >>> from atmospec.spectrum import Spectrum
        >>> s = Spectrum(np.linspace(1.0, 2.0, 11), np.full(11, 2.0), name="x")
        >>> path, axis = Path(tempfile.mkdtemp()) / "s.zarr", np.linspace(1.3, 2.4, 12)
        >>> store_from_spectra([s], path, axis).read(0, 1)[2].astype(int).tolist()  # > 2 um: bad
        [[0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1]]
    """
    from tqdm.auto import tqdm

    from atmospec._logging import progress_enabled

    wave = _axis(wavelength)
    flux_unit = ""
    extra = {"axis": wavelength if isinstance(wavelength, str) else "custom", **(attrs or {})}
    writer = StoreWriter(
        path, wave, chunk_rows=chunk_rows, dtype=dtype, overwrite=overwrite, attrs=extra
    )
    with (
        writer,
        tqdm(
            total=total,
            disable=not progress_enabled(),
            desc=f"store {Path(path).name}",
            unit="spec",
        ) as bar,
    ):
        for spec in spectra:
            f, u, m = resample_masked(spec, wave)
            flux_unit = spec.flux_unit
            writer.append(f[None], None if u is None else u[None], m[None], [spec.source])
            bar.update(1)
        writer._attrs["flux_unit"] = flux_unit
    return SpectraStore(path)


def _iter_files(files: Sequence[Path], on_error: str) -> Iterator[Spectrum]:
    from atmospec.io import read

    for p in files:
        try:
            spec = read(p)
        except AtmospecError:
            if on_error == "raise":
                raise
            continue
        spec.meta["source"] = str(p)
        yield spec


def store_from_folder(
    folder: str | os.PathLike[str],
    path: str | os.PathLike[str],
    wavelength: str | ArrayLike = "spex-dense",
    *,
    pattern: str = "*",
    on_error: str = "raise",
    **kwargs: Any,
) -> SpectraStore:
    """Convert every spectrum file of ``folder`` (matching ``pattern``, sorted) into a store.

    Files are read with :func:`atmospec.io.read` (format detected); the row label is the
    file path. ``on_error="skip"`` leaves out unreadable files instead of raising (the error
    names the file). Other keyword arguments go to :func:`store_from_spectra`.

    Example:
        >>> import tempfile
        >>> d, w = Path(tempfile.mkdtemp()), np.linspace(1.0, 2.0, 20)
        >>> for k in (1, 2):
        ...     np.savetxt(d / f"o{k}.txt", np.c_[w, k + 0 * w], header="wavelength [um] flux [Jy]")
        >>> store = store_from_folder(d, d / "store.zarr", w[2:-2], pattern="*.txt")
        >>> [Path(s).name for s in store.sources], store.read(0, 2)[0][:, 0].tolist()
        (['o1.txt', 'o2.txt'], [1.0, 2.0])
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder")
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
    files = sorted(p for p in root.glob(pattern) if p.is_file() and not p.name.startswith("."))
    if not files:
        raise FileNotFoundError(f"{root}: no files match {pattern!r}")
    return store_from_spectra(
        _iter_files(files, on_error), path, wavelength, total=len(files), **kwargs
    )


def store_from_library(
    path: str | os.PathLike[str],
    wavelength: str | ArrayLike = "spex-dense",
    *,
    keys: Sequence[str] | None = None,
    spt: str | None = None,
    snr_min: float | None = None,
    quality: str | None = None,
    **kwargs: Any,
) -> SpectraStore:
    """Convert SpeX prism library spectra (all, ``keys``, or a query) into a store.

    Spectra are loaded with :func:`atmospec.library.load` (normalised, NaN pixels masked),
    resampled onto ``wavelength`` with masks kept; the row label is the library key.
    Library spectra that do not cover the axis get their uncovered bins masked.

    Example:
        >>> store = store_from_library("spex.zarr", spt="T5-T9")  # doctest: +SKIP
    """
    from atmospec import library

    if keys is None:
        table = library.query(spt=spt, snr_min=snr_min, quality=quality)
        keys = table["key"].astype(str).tolist()
    keys = list(keys)
    if not keys:
        raise ValueError("no library spectrum selected")
    spectra = (library.load(k) for k in keys)
    return store_from_spectra(
        spectra, path, wavelength, total=len(keys), attrs={"library": "spex-prism"}, **kwargs
    )
