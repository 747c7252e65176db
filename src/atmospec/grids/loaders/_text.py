"""Shared helpers of the loaders: fast text-table reading and streaming files into a grid."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from atmospec.errors import CoverageError, FileFormatError, InvalidSpectrumError
from atmospec.grids.store import GridWriter

__all__ = ["read_table", "read_two_column", "build_grid", "open_text"]

FloatArray = NDArray[np.float64]


def open_text(path: str | os.PathLike[str]) -> Any:
    """Open a text file for binary reading, decompressing .gz / .bz2 / .xz transparently.

    Example:
        >>> import gzip, tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "model.txt.gz"
        >>> with gzip.open(path, "wt") as fh:
        ...     _ = fh.write("wave flux\\n1.0 2.0\\n")
        >>> with open_text(path) as fh:
        ...     fh.read()
        b'wave flux\\n1.0 2.0\\n'
    """
    p = str(path)
    if p.endswith(".gz"):
        return gzip.open(p, "rb")
    if p.endswith(".bz2"):
        return bz2.open(p, "rb")
    if p.endswith(".xz"):
        return lzma.open(p, "rb")
    return open(p, "rb")


def _is_numeric(line: bytes) -> bool:
    parts = line.replace(b",", b" ").split()
    if not parts:
        return False
    try:
        [float(x.replace(b"D", b"E").replace(b"d", b"e")) for x in parts]
    except ValueError:
        return False
    return True


def read_table(
    path: str | os.PathLike[str], *, skip: int | None = None
) -> tuple[list[str], FloatArray]:
    """Read a whitespace (or comma) separated numeric table with optional header lines.

    Leading lines that are not all numbers (``#`` comments, column names, Sonora header
    blocks) are returned as the header; Fortran ``D`` exponents are accepted. With ``skip``
    exactly that many lines are taken as the header (formats whose header may look numeric).

    Returns:
        (header lines, data array of shape (n_rows, n_columns)).

    Raises:
        FileFormatError: no numeric rows, ragged rows or non-numeric values (names the file).

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "model.txt"
        >>> _ = path.write_text("# a model\\nwave flux\\n1.0 2.5D-3\\n2.0 1.5D-3\\n")
        >>> header, data = read_table(path)
        >>> header, data.tolist()
        (['# a model', 'wave flux'], [[1.0, 0.0025], [2.0, 0.0015]])
        >>> _ = path.write_text("1.0 2.0\\n3.0\\n")
        >>> read_table(path)
        Traceback (most recent call last):
        ...
        atmospec.errors.FileFormatError: ...model.txt: rows have unequal numbers of columns ...
    """
    try:
        with open_text(path) as fh:
            raw: bytes = fh.read()
    except (OSError, EOFError) as err:
        raise FileFormatError(f"{path}: cannot read ({err})") from err
    lines = raw.splitlines()
    start = 0
    if skip is not None:
        start = skip
    else:
        while start < len(lines) and not _is_numeric(lines[start]):
            start += 1
    if start >= len(lines) or not _is_numeric(lines[start]):
        after = f" after {skip} header line(s)" if skip is not None else ""
        raise FileFormatError(f"{path}: no numeric rows found{after}")
    header = [ln.decode("utf-8", "replace").rstrip() for ln in lines[:start]]
    body = b"\n".join(ln for ln in lines[start:] if ln.strip() and not ln.lstrip().startswith(b"#"))
    if b"D" in body or b"d" in body:
        body = body.replace(b"D", b"E").replace(b"d", b"e")
    ncol = len(lines[start].replace(b",", b" ").split())
    try:
        values = np.array(body.replace(b",", b" ").split(), dtype=np.float64)
    except ValueError as err:
        raise FileFormatError(f"{path}: non-numeric value in the table ({err})") from err
    if values.size % ncol:
        raise FileFormatError(
            f"{path}: rows have unequal numbers of columns (first data row has {ncol})"
        )
    return header, values.reshape(-1, ncol)


def read_two_column(
    path: str | os.PathLike[str], *, columns: tuple[int, int] = (0, 1)
) -> tuple[FloatArray, FloatArray]:
    """Wavelength and flux columns of a text spectrum; a decreasing wavelength axis is reversed.

    Only the order of the first and last wavelengths is looked at: an unordered axis is
    returned as it is.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "model.txt"
        >>> _ = path.write_text("2.0 9 0.5\\n1.0 8 0.25\\n")  # decreasing wavelength
        >>> wave, flux = read_two_column(path, columns=(0, 2))
        >>> wave.tolist(), flux.tolist()
        ([1.0, 2.0], [0.25, 0.5])
    """
    _, data = read_table(path)
    if data.shape[1] <= max(columns):
        raise FileFormatError(
            f"{path}: expected at least {max(columns) + 1} columns, found {data.shape[1]}"
        )
    wave, flux = data[:, columns[0]], data[:, columns[1]]
    if wave.size > 1 and wave[0] > wave[-1]:
        wave, flux = wave[::-1], flux[::-1]
    return np.ascontiguousarray(wave), np.ascontiguousarray(flux)


def _resample(new_wave: FloatArray, wave: FloatArray, flux: FloatArray, label: str) -> FloatArray:
    if new_wave[0] < wave[0] or new_wave[-1] > wave[-1]:
        raise CoverageError(
            f"{label}: covers {wave[0]:g}-{wave[-1]:g} um but the grid's common axis spans "
            f"{new_wave[0]:g}-{new_wave[-1]:g} um"
        )
    from atmospec.transforms import resample  # flux-conserving (spectres algorithm)

    try:
        return np.asarray(resample(new_wave, wave, flux), dtype=np.float64)
    except CoverageError as err:
        raise CoverageError(
            f"{label}: cannot be resampled onto the grid's common wavelength axis: {err}"
        ) from err


def build_grid(
    items: Iterable[tuple[Path, Mapping[str, float]]],
    out: str | os.PathLike[str],
    *,
    param_names: Sequence[str],
    name: str,
    read: Callable[[Path], tuple[FloatArray, FloatArray]] = read_two_column,
    flux_scale: float = 1.0,
    total: int | None = None,
    notes: Sequence[str] = (),
    **writer_kwargs: Any,
) -> Path:
    """Stream spectra read from files into a new grid file.

    The first file's wavelength axis becomes the grid's axis. A file with a different axis is
    resampled onto it (flux-conserving, :func:`atmospec.transforms.resample`) and a note
    saying how many were resampled is stored in the grid metadata.

    Args:
        items: (file, parameters) pairs, in the order to store them.
        out: the grid file to write (atomically).
        param_names: parameter names, in column order.
        name: grid name.
        read: returns (wavelength in micron, flux) of one file.
        flux_scale: factor applied to the flux (unit conversion).
        total: number of items (for the progress bar).
        notes: remarks stored in the metadata.
        **writer_kwargs: passed to :class:`GridWriter` (source, credit, flux_unit, ...).

    Example:
        >>> import tempfile, pathlib
        >>> from atmospec.grids import ModelGrid
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (d / "a.txt").write_text("1.0 2.0\\n2.0 4.0\\n3.0 8.0\\n")
        >>> _ = (d / "b.txt").write_text("0.5 1.0\\n1.5 1.0\\n2.5 1.0\\n3.5 1.0\\n")  # other axis
        >>> items = [(d / "a.txt", {"teff": 1000.0}), (d / "b.txt", {"teff": 1100.0})]
        >>> grid = ModelGrid(build_grid(items, d / "g.h5", param_names=("teff",), name="toy"))
        >>> grid.wavelength.tolist(), grid.flux(slice(None)).round(3).tolist()
        ([1.0, 2.0, 3.0], [[2.0, 4.0, 8.0], [1.0, 1.0, 1.0]])
        >>> grid.summary()["notes"][0].split(" (")[0]
        '1 file(s) had a different wavelength axis and were resampled'
    """
    from tqdm.auto import tqdm

    from atmospec._logging import progress_enabled

    it = iter(items)
    try:
        first_path, first_params = next(it)
    except StopIteration:
        raise FileFormatError(f"grid {name}: no files to convert") from None
    wave0, flux0 = read(first_path)
    resampled: list[str] = []
    # collect notes, but the resampling note is only known at the end: write it last
    writer = GridWriter(out, wave0, param_names, name=name, notes=list(notes), **writer_kwargs)
    bar = tqdm(
        total=total, disable=not progress_enabled(), desc=f"converting {name}", unit="spectrum"
    )
    with writer as w:
        for path, params in _chain(first_path, first_params, it):
            wave, flux = (wave0, flux0) if path is first_path else read(path)
            label = path.name
            if wave.shape != wave0.shape or not np.allclose(wave, wave0, rtol=1e-9, atol=0):
                if not (np.isfinite(flux).all() and (flux > 0).all()):
                    raise InvalidSpectrumError(
                        f"{label}: flux must be finite and positive to be resampled"
                    )
                flux = _resample(wave0, wave, flux, label)
                resampled.append(label)
            w.add(params, flux * flux_scale, label=label)
            bar.update(1)
        if resampled:
            w.meta["notes"].append(
                f"{len(resampled)} file(s) had a different wavelength axis and were resampled "
                f"(flux-conserving) onto the axis of {first_path.name}, e.g. {resampled[:3]}"
            )
    bar.close()
    return Path(out)


def _chain(
    path: Path, params: Mapping[str, float], rest: Iterable[tuple[Path, Mapping[str, float]]]
) -> Iterable[tuple[Path, Mapping[str, float]]]:
    yield path, params
    yield from rest
