"""A dataset's tables of planets: their ids, and each instrument's analogue-to-digital
conversion (``adc_info.csv``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from atmospec.errors import FileFormatError

__all__ = ["adc_of_planet", "planet_ids"]


def planet_ids(path: Path, table: Any) -> Any:
    """The ``planet_id`` column of a table read from ``path``, as the planet folders name
    them (``"7"`` for 7 or 7.0); FileFormatError naming ``path`` when the column is missing
    or an id is not an integer.

    Example:
        >>> import pandas as pd
        >>> planet_ids(Path("x.csv"), pd.DataFrame({"planet_id": [7.0, 12]})).tolist()
        ['7', '12']
    """
    if "planet_id" not in table:
        raise FileFormatError(f"{path}: no planet_id column")
    try:
        return table["planet_id"].astype(float).astype(np.int64).astype(str)
    except (ValueError, TypeError, OverflowError) as err:
        raise FileFormatError(f"{path}: planet_id is not numeric or is missing ({err})") from None


def adc_of_planet(
    path: Path, table: Any, planet_id: str, instruments: Sequence[str]
) -> dict[str, tuple[float, float]]:
    """``(gain, offset)`` per instrument for one planet, from the table read from ``path``.

    A table of one row applies to every planet. A table with a ``planet_id`` column must have
    the planet's own row, and a table of several rows must have that column: another planet's
    gain and offset would otherwise convert this planet's frames without a word.

    Example:
        >>> import pandas as pd
        >>> t = pd.DataFrame({"planet_id": [7, 8], "A_adc_gain": [0.5, 0.4],
        ...                   "A_adc_offset": [-1000.0, -900.0]})
        >>> adc_of_planet(Path("adc_info.csv"), t, "8", ["A"])
        {'A': (0.4, -900.0)}
        >>> adc_of_planet(Path("adc_info.csv"), t, "9", ["A"])
        Traceback (most recent call last):
        ...
        atmospec.errors.FileFormatError: adc_info.csv: no row for planet 9 (its planet_id column lists 2 other planets)
    """
    if "planet_id" in table:
        ids = planet_ids(path, table)
        mine = ids == str(planet_id)
        if not mine.any():
            raise FileFormatError(
                f"{path}: no row for planet {planet_id} (its planet_id column lists "
                f"{ids.nunique()} other planet{'s' if ids.nunique() != 1 else ''})"
            )
        table = table[mine]
    elif len(table) > 1:
        raise FileFormatError(
            f"{path}: {len(table)} rows and no planet_id column: which row belongs to planet "
            f"{planet_id} is not said"
        )
    out: dict[str, tuple[float, float]] = {}
    for inst in instruments:
        try:
            out[inst] = (
                float(table[f"{inst}_adc_gain"].iloc[0]),
                float(table[f"{inst}_adc_offset"].iloc[0]),
            )
        except KeyError as err:
            raise FileFormatError(f"{path}: missing column {err}") from err
        except (ValueError, TypeError, IndexError) as err:
            raise FileFormatError(f"{path}: {inst} gain/offset not numeric ({err})") from err
    return out
