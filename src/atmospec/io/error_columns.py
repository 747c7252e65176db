"""Uncertainty columns of spectrum tables: 1-sigma errors, variances, inverse variances, S/N.

Survey pipelines store the noise in different ways (SDSS and most IRAF reductions: ``ivar``;
others a ``variance``). A table reader that knew only 1-sigma names read such a file with no
uncertainty at all, and the prediction then refused it for having none. Here a variance or an
inverse variance column is converted to 1-sigma errors (and the conversion recorded in
``meta["uncertainty_from"]``); an S/N column, whose convention (per pixel, per resolution
element) a file rarely states, is never converted, but named in ``meta["snr_column"]`` so that
a refusal for missing errors can point at it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from atmospec.io._common import ERROR_NAMES, SNR_NAMES, find_column, match_columns

__all__ = [
    "IVAR_NAMES",
    "VARIANCE_NAMES",
    "find_error_column",
    "note_errors",
    "snr_hint",
    "to_sigma",
]

VARIANCE_NAMES = ("variance", "var", "flux_var", "flux_variance", "sigma2", "sigma^2")
"""Column names holding the variance of the flux (sigma^2), matched exactly."""
IVAR_NAMES = ("ivar", "invvar", "inv_var", "inverse_variance", "flux_ivar", "ivariance")
"""Column names holding the inverse variance of the flux (1 / sigma^2), matched exactly."""


def find_error_column(
    names: Sequence[str], *, source: str, given: str | None = None
) -> tuple[str | None, str]:
    """``(column, kind)``: the column holding the flux errors and how (``"sigma"``,
    ``"variance"``, ``"inverse variance"``), or ``(None, "none")``.

    A column named with ``given`` (``err_col=`` / ``--err-col``) holds 1-sigma errors. Else a
    1-sigma name wins; without one, a variance, then an inverse-variance name is taken.

    Example:
        >>> find_error_column(["wave", "flux", "ivar"], source="s.csv")
        ('ivar', 'inverse variance')
    """
    col = find_column(
        names, ERROR_NAMES, what="uncertainty", source=source, given=given, required=False
    )
    if col is not None:
        return col, "sigma"
    for kind, candidates in (("variance", VARIANCE_NAMES), ("inverse variance", IVAR_NAMES)):
        col = find_column(names, candidates, what=kind, source=source, required=False)
        if col is not None:
            return col, kind
    return None, "none"


def to_sigma(values: ArrayLike | None, kind: str) -> NDArray[np.float64] | None:
    """1-sigma errors from a column of ``kind`` (:func:`find_error_column`). A negative
    variance or a zero / negative inverse variance gives a NaN error (an invalid pixel, masked
    or refused by the reader's ``invalid`` rule), never a made-up one.

    Example:
        >>> to_sigma([4.0, 0.0, 0.25], "inverse variance").tolist()
        [0.5, nan, 2.0]
    """
    if values is None:
        return None
    v = np.asarray(values, dtype=np.float64)
    if kind == "variance":
        return np.sqrt(np.where(v >= 0, v, np.nan))
    if kind == "inverse variance":
        with np.errstate(divide="ignore"):
            return np.where(v > 0, 1.0 / np.sqrt(np.where(v > 0, v, 1.0)), np.nan)
    return v


def note_errors(meta: dict[str, Any], names: Sequence[str], column: str | None, kind: str) -> None:
    """Record in ``meta`` where the errors came from, or the S/N column left unread.

    Example:
        >>> meta = {}
        >>> note_errors(meta, ["wave", "flux", "snr"], None, "none")
        >>> meta
        {'snr_column': 'snr'}
    """
    if column is not None and kind != "sigma":
        meta["uncertainty_from"] = f"{kind} column '{column}' converted to 1-sigma errors"
    elif column is None:
        snr = match_columns(names, SNR_NAMES)
        if snr:
            meta["snr_column"] = snr[0]


def snr_hint(meta: dict[str, Any]) -> str:
    """For a refusal of a spectrum without errors: why its file's error column was not used,
    or the S/N column it held, if any.

    Example:
        >>> snr_hint({"snr_column": "S/N"})[:55]
        "; the file's column 'S/N' holds S/N, not 1-sigma errors"
        >>> snr_hint({})
        ''
    """
    if meta.get("errors_unusable"):
        return f"; the file's error column cannot be used: {meta['errors_unusable']}"
    col = meta.get("snr_column")
    if not col:
        return ""
    return (
        f"; the file's column '{col}' holds S/N, not 1-sigma errors: add a column flux / S/N "
        "(with the S/N per pixel)"
    )
