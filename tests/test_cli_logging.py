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


def test_progress_bars_follow_the_logger_level_not_a_flag(atmospec_logger, capsys):
    """A training-set build shows its bar at INFO, none above INFO or inside progress_hidden."""
    from atmospec._logging import progress_hidden
    from atmospec.grids import load_grid
    from atmospec.training.builder import build_training_set

    grid = load_grid("dback24")

    def bar_text(tmp: str) -> str:
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory() as folder:
            ts = build_training_set(grid, Path(folder) / f"{tmp}.h5", n_samples=4, seed=1)
            ts.close()
        return capsys.readouterr().err

    atmospec_logger.setLevel(logging.INFO)
    assert "building shown.h5" in bar_text("shown")
    with progress_hidden():
        assert "building" not in bar_text("nested")
    atmospec_logger.setLevel(logging.WARNING)
    assert "building" not in bar_text("quiet")


def test_one_quiet_switch_at_the_top_level(tmp_path, atmospec_logger):
    """``predict -q`` is gone (one switch: ``atmospec --quiet``), and models saved with the
    retired ``quiet`` parameter still load (the shipped dback24-spex records one)."""
    import json

    from atmospec.models import load_model, model_path

    res = CliRunner().invoke(app, ["predict", str(tmp_path / "x.fits"), "-q"])
    assert res.exit_code == 2 and "No such option" in res.output
    record = json.loads((model_path("dback24-spex") / "model.json").read_text())
    assert "quiet" in record["params"]
    est = load_model("dback24-spex")
    assert "quiet" not in est.get_params()
