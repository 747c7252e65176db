"""Parse-time checks of numeric command-line options.

A value an option cannot mean (a negative distance, a NaN floor, zero posterior draws) is a
usage error naming the option, exit status 2, before any file is read: never a traceback from
deep inside a fit. Integer options use typer's ``min=`` / ``max=``; real-valued ones a
callback from :func:`finite`, since a range alone lets NaN and infinity through.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import typer

__all__ = ["SEED_MAX", "finite"]

SEED_MAX = 2**32 - 1
"""The largest seed the command line takes (NumPy and PyTorch both accept it)."""


def finite(
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
) -> Callable[[float | None], float | None]:
    """A typer callback: the option's value (when given) is finite and inside the range.

    Example:
        >>> check = finite(0.0, low_open=True)
        >>> check(2.5), check(None)
        (2.5, None)
        >>> try:
        ...     check(float("nan"))
        ... except typer.BadParameter as err:
        ...     print(err)
        must be a finite number > 0, not nan
    """
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"<= {high:g}")
    rule = "a finite number" + (" " + " and ".join(parts) if parts else "")

    def check(value: float | None) -> float | None:
        if value is None:
            return None
        bad = not math.isfinite(value)
        bad |= low is not None and (value <= low if low_open else value < low)
        bad |= high is not None and value > high
        if bad:
            raise typer.BadParameter(f"must be {rule}, not {value:g}")
        return value

    return check
