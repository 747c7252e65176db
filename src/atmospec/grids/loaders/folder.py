"""A folder of two-column text spectra whose file names carry the parameters (user pattern)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from atmospec.errors import FileFormatError
from atmospec.grids.grid import ModelGrid
from atmospec.grids.loaders._paths import default_out
from atmospec.grids.loaders._text import build_grid, read_two_column

__all__ = ["pattern_regex", "parse_with_pattern", "load_folder"]

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_FIELD = re.compile(r"\{(\w+)\}")


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """Compile a file-name pattern such as ``"sp_t{teff}g{logg}nc_m{mh}"``.

    ``{name}`` stands for a number (sign, decimals and exponent allowed) stored as parameter
    ``name``; everything else is literal. The pattern matches the whole file name, optionally
    followed by extensions (``.txt``, ``.dat.gz``, ...).

    Example:
        >>> rx = pattern_regex("sp_t{teff}g{logg}nc_m{mh}")
        >>> rx.fullmatch("sp_t1000g5.0nc_m-0.5.txt.gz").groupdict()
        {'teff': '1000', 'logg': '5.0', 'mh': '-0.5'}
    """
    parts = _FIELD.split(pattern)
    if len(parts) < 3:
        raise ValueError(f"pattern {pattern!r} has no {{parameter}} fields")
    names = parts[1::2]
    if len(set(names)) != len(names):
        raise ValueError(f"pattern {pattern!r} repeats a parameter field")
    regex = "".join(
        re.escape(p) if k % 2 == 0 else f"(?P<{p}>{_NUMBER})" for k, p in enumerate(parts)
    )
    return re.compile(regex + r"(?:\.[A-Za-z][\w.]*)?")


def parse_with_pattern(
    filename: str,
    rx: re.Pattern[str],
    converters: Mapping[str, Callable[[float], float]] | None = None,
) -> dict[str, float] | None:
    """Parameters of ``filename`` under the compiled pattern, or None when it does not match.

    Example:
        >>> import math
        >>> rx = pattern_regex("sp_t{teff}g{g}")
        >>> parse_with_pattern("sp_t1000g100.txt", rx, {"g": lambda g: math.log10(100 * g)})
        {'teff': 1000.0, 'g': 4.0}
        >>> parse_with_pattern("readme.txt", rx) is None
        True
    """
    m = rx.fullmatch(filename)
    if m is None:
        return None
    out = {k: float(v) + 0.0 for k, v in m.groupdict().items()}
    for k, fn in (converters or {}).items():
        if k not in out:
            raise ValueError(f"converter for {k!r}, which is not a field of the pattern")
        out[k] = float(fn(out[k])) + 0.0
    return out


def load_folder(
    folder: str | os.PathLike[str],
    pattern: str,
    *,
    name: str,
    out: str | os.PathLike[str] | None = None,
    converters: Mapping[str, Callable[[float], float]] | None = None,
    glob: str = "*",
    columns: tuple[int, int] = (0, 1),
    wave_unit: str = "um",
    flux_unit: str = "",
    flux_scale: float = 1.0,
    categorical: Sequence[str] = (),
    credit: str = "",
) -> ModelGrid:
    """Convert a folder of two-column spectra into a grid; parameters come from file names.

    Args:
        folder: the folder of text files (``.gz``/``.bz2``/``.xz`` are decompressed).
        pattern: file-name pattern with ``{parameter}`` fields, e.g.
            ``"sp_t{teff}g{logg}nc_m{mh}"`` (see :func:`pattern_regex`). Files that do not
            match are skipped (their number is recorded in the grid notes).
        name: grid name; the grid is written to ``data_dir()/grids/<name>.h5`` unless
            ``out`` is given, so ``load_grid(name)`` finds it later.
        converters: functions applied to parsed values, e.g.
            ``{"logg": lambda g: math.log10(100 * g)}`` for a gravity in m/s^2.
        glob: shell pattern selecting candidate files.
        columns: indices of the wavelength and flux columns.
        wave_unit: unit of the wavelength column (converted to micron).
        flux_unit: astropy unit string of the (scaled) flux.
        flux_scale: factor applied to the flux.
        categorical: parameters never interpolated between.
        credit: acknowledgement carried in the metadata.

    Returns:
        The new :class:`ModelGrid`.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> for t in (1200, 1000):
        ...     _ = (d / f"sp_t{t}g5.0.txt").write_text(f"1.0 {t}\\n2.0 {t}\\n")
        >>> _ = (d / "readme.txt").write_text("not a spectrum")
        >>> grid = load_folder(d, "sp_t{teff}g{logg}", name="mine", out=d / "mine.h5")
        >>> grid.params.to_dict("records"), grid.wavelength.tolist()
        ([{'teff': 1000.0, 'logg': 5.0}, {'teff': 1200.0, 'logg': 5.0}], [1.0, 2.0])
        >>> grid.summary()["notes"][-1]
        '1 file(s) in the folder did not match the pattern and were skipped'
    """
    src = Path(folder)
    if not src.is_dir():
        raise FileFormatError(f"{src}: not a folder")
    rx = pattern_regex(pattern)
    items = []
    skipped = 0
    for f in sorted(src.glob(glob)):
        if not f.is_file():
            continue
        params = parse_with_pattern(f.name, rx, converters)
        if params is None:
            skipped += 1
            continue
        items.append((f, params))
    if not items:
        raise FileFormatError(
            f"{src}: no file name matches the pattern {pattern!r} (regex {rx.pattern!r})"
        )
    param_names = tuple(rx.groupindex)
    items.sort(key=lambda it: tuple(it[1][p] for p in param_names))
    factor = _micron_factor(wave_unit)

    def read(path: Path) -> tuple[np.ndarray, np.ndarray]:
        wave, flux = read_two_column(path, columns=columns)
        return wave * factor, flux

    notes = [f"parameters parsed from file names with pattern {pattern!r}"]
    if converters:
        notes.append(f"converted parameters: {sorted(converters)}")
    if skipped:
        notes.append(f"{skipped} file(s) in the folder did not match the pattern and were skipped")
    path = build_grid(
        items,
        default_out(name, out),
        param_names=param_names,
        name=name,
        read=read,
        flux_scale=flux_scale,
        total=len(items),
        notes=notes,
        source=f"{src} ({len(items)} files matching {pattern!r})",
        credit=credit,
        flux_unit=flux_unit,
        categorical=tuple(categorical),
        builder="folder/1",
    )
    return ModelGrid(path)


def _micron_factor(unit: str) -> float:
    if unit in ("um", "micron"):
        return 1.0
    import astropy.units as u

    try:
        return float((1 * u.Unit(unit)).to(u.um).value)
    except (ValueError, u.UnitConversionError) as err:
        raise FileFormatError(f"wavelength unit {unit!r} is not a length: {err}") from err
