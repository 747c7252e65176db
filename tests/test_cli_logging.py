"""The CLI decides what shows: one rich handler, --verbose / --quiet at the top level."""

from __future__ import annotations

import logging

import pytest
from typer.testing import CliRunner

from atmospec._logging import progress_enabled
from atmospec.cli.main import app


@pytest.fixture
def atmospec_logger():
    """The ``atmospec`` logger, restored after the test (the CLI configures it)."""
    log = logging.getLogger("atmospec")
    level, handlers = log.level, list(log.handlers)
    yield log
    log.setLevel(level)
    log.handlers[:] = handlers


def test_quiet_hides_info_and_progress_and_verbose_shows_debug(muler_dir, atmospec_logger):
    runner = CliRunner()
    loud = runner.invoke(app, ["data", "fetch", "muler"])
    assert loud.exit_code == 0, loud.output
    assert "already" in loud.output  # the INFO record of an already extracted distribution
    assert atmospec_logger.level == logging.INFO and progress_enabled()

    quiet = runner.invoke(app, ["--quiet", "data", "fetch", "muler"])
    assert quiet.exit_code == 0, quiet.output
    assert "already" not in quiet.output
    assert not progress_enabled()

    runner.invoke(app, ["--verbose", "data", "status", "--json"])
    assert atmospec_logger.level == logging.DEBUG
    # one handler however often the CLI runs in this process: no duplicated lines
    assert sum(h.get_name() == "atmospec-cli" for h in atmospec_logger.handlers) == 1


def test_library_installs_no_handler():
    import subprocess
    import sys

    code = (
        "import logging, atmospec.data, atmospec.grids;"
        "print(len(logging.getLogger('atmospec').handlers), logging.getLogger().handlers)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", "[]"]
