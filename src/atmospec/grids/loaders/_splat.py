"""Common code of the three SPLAT SpeX-prism model sets (file names carry the parameters)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path

from atmospec._fileio import DATA_CREDITS
from atmospec.errors import FileFormatError
from atmospec.grids.loaders._text import build_grid

__all__ = ["splat_model_folder", "build_splat_grid", "SPLAT_FLUX_UNIT"]

#: SPLAT's model spectra are surface fluxes F_lambda in erg s^-1 cm^-2 micron^-1.
SPLAT_FLUX_UNIT = "erg / (s cm2 um)"


def splat_model_folder(family: str) -> Path:
    """``<splat>/resources/SpectralModels/<family>/SPEX-PRISM`` of the fetched splat data.

    Example:
        >>> folder = splat_model_folder("burrows06")  # needs `atmospec data fetch splat`
        >>> folder.parts[-3:], len(list(folder.glob("burrows06_*.txt.gz")))
        (('SpectralModels', 'burrows06', 'SPEX-PRISM'), 252)
    """
    from atmospec.data import require

    return require("splat") / "resources" / "SpectralModels" / family / "SPEX-PRISM"


def build_splat_grid(
    family: str,
    out: str | os.PathLike[str],
    parse: Callable[[str], Mapping[str, float]],
    *,
    param_names: tuple[str, ...],
    pattern: re.Pattern[str],
    folder: str | os.PathLike[str] | None = None,
    categorical: tuple[str, ...] = (),
    notes: tuple[str, ...] = (),
    builder: str,
    value_labels: dict[str, dict[float, str]] | None = None,
) -> Path:
    """Convert one SPLAT model folder into a grid file; parameters parsed from file names.

    Every ``*.txt`` / ``*.txt.gz`` file of the folder must match ``pattern``; the spectra are
    stored sorted by ``param_names``, with SPLAT's flux unit and the credit of ``family``.

    Example:
        >>> import re, tempfile, pathlib
        >>> from atmospec.grids import ModelGrid
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> for t in (1200, 1000):
        ...     _ = (d / f"dback24_t{t}.txt").write_text(f"1.0 {t}\\n2.0 {t}\\n")
        >>> rx = re.compile(r"dback24_t(?P<teff>[0-9]+)[.]txt")
        >>> def parse(name):
        ...     return {"teff": float(rx.fullmatch(name)["teff"])}
        >>> kw = dict(param_names=("teff",), pattern=rx, folder=d, builder="toy/1")
        >>> grid = ModelGrid(build_splat_grid("dback24", d / "toy.h5", parse, **kw))
        >>> grid.name, grid.params["teff"].tolist(), grid.flux_unit
        ('dback24', [1000.0, 1200.0], 'erg / (s cm2 um)')
        >>> _ = (d / "readme.txt").write_text("not a model")
        >>> build_splat_grid("dback24", d / "toy2.h5", parse, **kw)
        Traceback (most recent call last):
        ...
        atmospec.errors.FileFormatError: ...readme.txt: file name does not follow the dback24 ...
    """
    src = Path(folder) if folder is not None else splat_model_folder(family)
    files = sorted(p for p in src.iterdir() if p.name.endswith((".txt", ".txt.gz")))
    if not files:
        raise FileFormatError(f"{src}: no {family} model files (*.txt.gz) found")
    items = []
    for f in files:
        if not pattern.fullmatch(f.name):
            raise FileFormatError(
                f"{f}: file name does not follow the {family} pattern {pattern.pattern!r}"
            )
        items.append((f, parse(f.name)))
    items.sort(key=lambda it: tuple(it[1][p] for p in param_names))
    credit = f"{DATA_CREDITS[family]}; distributed with {DATA_CREDITS['splat']}"
    path = build_grid(
        items,
        out,
        param_names=param_names,
        name=family,
        total=len(items),
        source=f"splat 1.14 resources/SpectralModels/{family}/SPEX-PRISM ({len(items)} files)",
        credit=credit,
        flux_unit=SPLAT_FLUX_UNIT,
        categorical=categorical,
        notes=notes,
        builder=builder,
        value_labels=value_labels,
    )
    return path


def number(text: str) -> float:
    """A float from file-name text, without negative zero ("-0.00" -> 0.0)."""
    return float(text) + 0.0
