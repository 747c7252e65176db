"""TelescopeML's wide CSV training grid: parameter columns, then one column per wavelength.

The file (``browndwarf_R100_v4_newWL_v3.csv.bz2`` in TelescopeML's reference data, built from
Sonora Bobcat) has a header row ``gravity,temperature,c_o_ratio,metallicity,<wavelength>,...``
(wavelength column names are numbers in micron) and one spectrum per row. The parameters are
renamed to atmospec's names: gravity -> logg (dex, cgs), temperature -> teff, c_o_ratio -> co,
metallicity -> mh. The file is streamed in chunks, so its size does not matter.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from atmospec.errors import FileFormatError, InvalidSpectrumError
from atmospec.grids.grid import ModelGrid
from atmospec.grids.loaders._paths import default_out
from atmospec.grids.store import GridWriter

__all__ = ["TELESCOPEML_COLUMNS", "load_telescopeml"]

#: TelescopeML column -> atmospec parameter name.
TELESCOPEML_COLUMNS: dict[str, str] = {
    "gravity": "logg",
    "temperature": "teff",
    "c_o_ratio": "co",
    "metallicity": "mh",
}


def load_telescopeml(
    path: str | os.PathLike[str],
    *,
    name: str = "telescopeml",
    out: str | os.PathLike[str] | None = None,
    columns: Mapping[str, str] | None = None,
    flux_unit: str = "",
    chunksize: int = 2000,
) -> ModelGrid:
    """Convert a TelescopeML-layout CSV (``.csv``, ``.csv.bz2``, ``.csv.gz``) into a grid.

    Args:
        path: the CSV file.
        name: grid name (default output ``data_dir()/grids/<name>.h5``).
        out: output grid file instead of the default.
        columns: parameter column -> atmospec name (default :data:`TELESCOPEML_COLUMNS`).
        flux_unit: unit of the flux columns (the file does not state it).
        chunksize: rows read at a time.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "grid.csv"
        >>> _ = path.write_text(
        ...     "gravity,temperature,c_o_ratio,metallicity,2.0,1.0\\n"
        ...     "5.0,1000,1.0,0.0,3.0,4.0\\n5.0,1100,1.0,0.0,5.0,6.0\\n"
        ... )
        >>> grid = load_telescopeml(path, out=path.with_suffix(".h5"))
        >>> grid.param_names, grid.wavelength.tolist()  # renamed; wavelengths sorted
        (('logg', 'teff', 'co', 'mh'), [1.0, 2.0])
        >>> grid.flux(slice(None)).tolist(), grid.labels[1]
        ([[4.0, 3.0], [6.0, 5.0]], 'grid.csv line 3')
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from atmospec._logging import progress_enabled

    src = Path(path)
    if not src.is_file():
        raise FileFormatError(f"{src}: no such file")
    mapping = dict(columns or TELESCOPEML_COLUMNS)
    try:
        reader = pd.read_csv(src, chunksize=chunksize)
        first = next(iter(reader))
    except (ValueError, OSError, StopIteration, pd.errors.ParserError) as err:
        raise FileFormatError(f"{src}: cannot read as a CSV table ({err})") from err
    missing = [c for c in mapping if c not in first.columns]
    if missing:
        raise FileFormatError(
            f"{src}: parameter column(s) {missing} not found; expected TelescopeML's layout "
            f"{list(mapping)} followed by one column per wavelength (micron)"
        )
    wave_cols, waves = [], []
    for col in first.columns:
        if col in mapping or str(col).startswith("Unnamed"):
            continue
        try:
            waves.append(float(col))
        except ValueError:
            raise FileFormatError(
                f"{src}: column {col!r} is neither a parameter {list(mapping)} nor a wavelength"
            ) from None
        wave_cols.append(col)
    if len(wave_cols) < 2:
        raise FileFormatError(f"{src}: fewer than 2 wavelength columns")
    wave = np.array(waves)
    order = np.argsort(wave)
    wave = wave[order]
    if (np.diff(wave) <= 0).any():
        raise FileFormatError(f"{src}: repeated wavelength columns")
    param_cols = list(mapping)
    names = tuple(mapping[c] for c in param_cols)
    writer = GridWriter(
        default_out(name, out),
        wave,
        names,
        name=name,
        source=f"{src.name} (TelescopeML wide CSV layout)",
        credit="TelescopeML training grid (Gharib-Nezhad et al. 2024), from Sonora Bobcat "
        "(Marley et al. 2021)",
        flux_unit=flux_unit,
        notes=(
            f"columns renamed {mapping}",
            f"{len(wave_cols)} wavelength columns sorted into increasing order",
        ),
        builder="telescopeml/1",
    )
    bar = tqdm(disable=not progress_enabled(), desc=f"converting {name}", unit="spectrum")
    line = 2  # file line of the first data row (line 1 is the header)
    with writer as w:
        chunks = [first]
        for chunk in _chain(chunks, reader):
            params = chunk[param_cols].to_numpy(dtype=np.float64)
            try:
                flux = chunk[wave_cols].to_numpy(dtype=np.float64)[:, order]
            except ValueError as err:
                raise InvalidSpectrumError(f"{src}: non-numeric flux value ({err})") from err
            for p, f in zip(params, flux, strict=True):
                w.add(p, f, label=f"{src.name} line {line}")
                line += 1
            bar.update(len(chunk))
    bar.close()
    return ModelGrid(writer.path)


def _chain(first: list[Any], rest: Iterable[Any]) -> Iterator[Any]:
    yield from first
    yield from rest
