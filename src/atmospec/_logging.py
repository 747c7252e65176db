"""Logging policy: modules log through ``logging.getLogger(__name__)``; the caller decides what shows.

The library installs no handler. The ``atmospec`` command installs one rich handler (see
:func:`atmospec.cli.main.main`); in Python, configure the ``atmospec`` logger as usual, e.g.
``logging.basicConfig(level=logging.INFO)`` to see what atmospec reports.
Progress bars are not log records: they show unless the ``atmospec`` logger is set above
INFO (``atmospec --quiet``, or ``logging.getLogger("atmospec").setLevel(logging.WARNING)``).
"""

from __future__ import annotations

import logging

__all__ = ["progress_enabled", "configure"]

_HANDLER_NAME = "atmospec-cli"


def progress_enabled() -> bool:
    """Whether progress bars show: yes unless the ``atmospec`` logger is set above INFO.

    Example:
        >>> import logging
        >>> log = logging.getLogger("atmospec")
        >>> before = log.level
        >>> log.setLevel(logging.WARNING); progress_enabled()
        False
        >>> log.setLevel(before)
    """
    level = logging.getLogger("atmospec").level
    return level == logging.NOTSET or level <= logging.INFO


def configure(*, verbose: bool = False, quiet: bool = False) -> None:
    """Send the ``atmospec`` logger's records to stderr through one rich handler (the CLI's).

    ``verbose`` shows DEBUG records too; ``quiet`` shows only warnings and errors and hides the
    progress bars. Calling it again replaces the handler (no duplicated lines).
    """
    from rich.console import Console
    from rich.logging import RichHandler

    log = logging.getLogger("atmospec")
    for handler in [h for h in log.handlers if h.get_name() == _HANDLER_NAME]:
        log.removeHandler(handler)
    handler = RichHandler(
        console=Console(stderr=True),
        show_time=False,
        show_path=verbose,
        markup=False,
        rich_tracebacks=False,
    )
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO)
