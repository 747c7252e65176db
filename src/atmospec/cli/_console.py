"""The console a command prints its summary to: silent under ``atmospec --quiet``."""

from __future__ import annotations

from typing import Any

__all__ = ["summary_console"]


def summary_console(**kwargs: Any) -> Any:
    """A rich Console for a command's human-readable summary (tables, counts, next steps).

    It prints nothing when the ``atmospec`` logger is above INFO (``atmospec --quiet``): the
    one switch that also hides progress bars and INFO records. Machine-readable output
    (``--json``) goes through ``typer.echo`` and is never hidden.
    """
    from rich.console import Console

    from atmospec._logging import progress_enabled

    return Console(quiet=not progress_enabled(), **kwargs)
