"""The consoles a command prints to: its summary (silent under ``atmospec --quiet``) and its
problems (standard error, always)."""

from __future__ import annotations

from typing import Any

__all__ = ["problem_console", "summary_console"]


def summary_console(**kwargs: Any) -> Any:
    """A rich Console for a command's human-readable summary (tables, counts, next steps).

    It prints nothing when the ``atmospec`` logger is above INFO (``atmospec --quiet``): the
    one switch that also hides progress bars and INFO records. Machine-readable output
    (``--json``) goes through ``typer.echo`` and is never hidden.
    """
    from rich.console import Console

    from atmospec._logging import progress_enabled

    return Console(quiet=not progress_enabled(), **kwargs)


def problem_console(**kwargs: Any) -> Any:
    """A rich Console on standard error for what went wrong (spectra that could not be used,
    the exit status that says so): printed under ``atmospec --quiet`` too, which keeps
    warnings and errors. Lines are not wrapped, so a file name in them stays whole for grep.
    """
    from rich.console import Console

    return Console(stderr=True, **{"soft_wrap": True, **kwargs})
