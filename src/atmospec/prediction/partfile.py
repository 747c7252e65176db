"""Partition tables of a batch run (``parts/part-NNNNNN.json``): strict JSON, exact values.

Column names, dtypes and values; floats are written with Python's shortest exact
representation, so :func:`read_part` gives back the same values and dtypes bit for bit. A
non-finite float is written as ``{"float": "nan"}`` (``"inf"``, ``"-inf"``): the file stays
valid JSON for any reader (a bare ``NaN`` is not JSON), and nothing else in a table is such
an object. No pickle and no optional dependency is involved.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["write_part_file", "read_part", "PART_FORMAT"]

PART_FORMAT = "atmospec-partition"


def _cell(value: Any) -> Any:
    """One table value as strict JSON can hold it (numpy scalars as Python values)."""
    import numpy as np

    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return {"float": repr(value)}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"a partition value of type {type(value).__name__} cannot be written")


def _value(cell: Any) -> Any:
    if isinstance(cell, dict) and set(cell) == {"float"}:
        return float(cell["float"])
    return cell


def write_part_file(path: str | os.PathLike[str], frame: pd.DataFrame) -> None:
    """Write one partition's table as strict JSON: column names, dtypes and values.

    Example:
        >>> import tempfile, pathlib, numpy as np, pandas as pd
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "part-000000.json"
        >>> t = pd.DataFrame({"row": [0, 1], "teff": [1234.5678901234567, np.nan],
        ...                   "ood_flag": [False, True], "error": ["", "bad file"]})
        >>> write_part_file(f, t)
        >>> back = read_part(f)
        >>> back.equals(t), list(back.dtypes.astype(str))[:3], "NaN" in f.read_text()
        (True, ['int64', 'float64', 'bool'], False)
    """
    body = {
        "format": PART_FORMAT,
        "columns": [str(c) for c in frame.columns],
        "dtypes": [str(t) for t in frame.dtypes],
        "data": [[_cell(v) for v in frame[c].tolist()] for c in frame.columns],
    }
    Path(path).write_text(json.dumps(body, allow_nan=False), encoding="utf-8")


def read_part(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a partition table written by :func:`write_part_file` (also one of an earlier
    version, with bare ``NaN`` numbers).

    Raises:
        ValueError: the file is not a partition table (the message names it).

    Example:
        >>> import pathlib, tempfile
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "part-000000.json"
        >>> _ = f.write_text('{"format": "atmospec-partition", "columns": ["row", "teff"], '
        ...                  '"dtypes": ["int64", "float64"], "data": [[0, 1], [900.5, NaN]]}')
        >>> read_part(f)["teff"].tolist()  # an earlier version's bare NaN
        [900.5, nan]
        >>> _ = f.write_text('{"columns": []}')
        >>> read_part(f)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: /.../part-000000.json: not an atmospec partition table
    """
    import pandas as pd

    body = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(body, dict) or body.get("format") != PART_FORMAT:
        raise ValueError(f"{path}: not an atmospec partition table")
    columns, dtypes, data = body["columns"], body["dtypes"], body["data"]
    return pd.DataFrame(
        {
            c: pd.Series([_value(x) for x in v], dtype=object if t == "object" else t)
            for c, t, v in zip(columns, dtypes, data, strict=True)
        },
        columns=columns,
    )
