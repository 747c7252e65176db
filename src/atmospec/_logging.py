"""Logging policy: modules log through ``logging.getLogger(__name__)``; the caller decides what shows.

The library installs no handler. The ``atmospec`` command installs one rich handler (see
:func:`atmospec.cli.main.main`); in Python, configure the ``atmospec`` logger as usual, e.g.
``logging.basicConfig(level=logging.INFO)`` to see what atmospec reports.
Progress bars are not log records: they show unless the ``atmospec`` logger is set above
INFO (``atmospec --quiet``, or ``logging.getLogger("atmospec").setLevel(logging.WARNING)``),
and inside :func:`progress_hidden` (work nested in a step that already counts with its own bar).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator

__all__ = ["progress_enabled", "progress_hidden", "configure"]

_HANDLER_NAME = "atmospec-cli"
_HIDDEN: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "atmospec_progress_hidden", default=False
)


def progress_enabled() -> bool:
    """Whether progress bars show: yes unless the ``atmospec`` logger is set above INFO or the
    caller runs inside :func:`progress_hidden`.

    Example:
        >>> import logging
        >>> log = logging.getLogger("atmospec")
        >>> before = log.level
        >>> log.setLevel(logging.WARNING); progress_enabled()
        False
        >>> log.setLevel(before)
    """
    if _HIDDEN.get():
        return False
    level = logging.getLogger("atmospec").level
    return level == logging.NOTSET or level <= logging.INFO


@contextlib.contextmanager
def progress_hidden() -> Iterator[None]:
    """Hide the progress bars of nested work (one bar per trial or shard, not one per epoch).

    Log records are unaffected; only :func:`progress_enabled` answers False inside.

    Example:
        >>> with progress_hidden():
        ...     progress_enabled()
        False
    """
    token = _HIDDEN.set(True)
    try:
        yield
    finally:
        _HIDDEN.reset(token)


def configure(*, verbose: bool = False, quiet: bool = False) -> None:
    """Send the ``atmospec`` logger's records to stderr through one rich handler (the CLI's).

    ``verbose`` shows DEBUG records too; ``quiet`` shows only warnings and errors and hides the
    progress bars. Calling it again replaces the handler (no duplicated lines).

    Example:
        >>> import logging
        >>> log = logging.getLogger("atmospec")
        >>> saved = log.level, list(log.handlers)
        >>> configure(quiet=True); configure(quiet=True)
        >>> [h.get_name() for h in log.handlers].count("atmospec-cli"), progress_enabled()
        (1, False)
        >>> logging.getLevelName(log.level)
        'WARNING'
        >>> log.setLevel(saved[0]); log.handlers[:] = saved[1]  # restore the global state
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
