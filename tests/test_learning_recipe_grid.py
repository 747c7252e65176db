"""The grid of a recipe: a model trained from a recipe records which grid it was trained on
(name and content sha256), rebuilding its test split from another grid at that path is
refused, and a relative grid path is read beside the recipe file."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from atmospec.errors import ChecksumError
from atmospec.grids import ModelGrid, grid_identity, load_grid
from atmospec.learning.recipe import Recipe, load_recipe, run_recipe

TEFF = (1000.0, 1250.0, 1500.0, 1750.0, 2000.0)


def _toy(path: Path, name: str = "toy", slope: float = 1.0) -> Path:
    """Five power laws ``lambda^-(slope Teff / 1000)`` over 0.8-2.6 um, one node per Teff."""
    wave = np.linspace(0.8, 2.6, 100)
    path.parent.mkdir(parents=True, exist_ok=True)
    with ModelGrid.create(path, wave, ("teff",), name=name) as w:
        for t in TEFF:
            w.add({"teff": t}, wave ** -(slope * t / 1000))
    return path


def _recipe(path: Path, grid: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        '[model]\nname = "toy-rf"\nestimator = "random_forest"\n'
        "[model.params]\nn_estimators = 3\n"
        f'[grid]\nname = "{grid}"\n'
        "[split]\nhold_out = { teff = [1500.0] }\nval_hold_out = { teff = [1250.0] }\n"
        '[data]\naxis = "spex-prism"\nn_train = 40\nn_val = 10\nn_test = 10\n'
        'noise_shapes = "flat"\ntest_snr_levels = [20.0, 100.0]\n',
        encoding="utf-8",
    )
    return path


def test_evaluate_refuses_a_grid_file_changed_since_training(tmp_path):
    # The model recorded only the grid's path: `atmospec evaluate` rebuilt the test split from
    # whatever file sat there now and scored the model on other spectra without a word.
    from typer.testing import CliRunner

    from atmospec.cli.main import app
    from atmospec.estimators.base import load_estimator

    grid = _toy(tmp_path / "grids" / "toy.h5")
    trained_on = grid_identity(ModelGrid(grid)).sha256
    run_recipe(load_recipe(_recipe(tmp_path / "toy.toml", str(grid))), tmp_path / "run")
    recorded = load_estimator(tmp_path / "run" / "model").meta_["recipe"]
    assert (recorded["grid_name"], recorded["grid_sha256"]) == ("toy", trained_on)

    runner = CliRunner()
    evaluate = ["evaluate", str(tmp_path / "run" / "model"), "--out", str(tmp_path / "ev")]
    # The same spectra converted again: another file (it records when it was written), the
    # same grid; evaluated as before.
    _toy(grid)
    res = runner.invoke(app, evaluate)
    assert res.exit_code == 0, res.output

    # Other spectra at the same path (steeper power laws): refused, naming the file and both
    # checksums, before any set is built.
    _toy(grid, slope=1.1)
    now = grid_identity(ModelGrid(grid)).sha256
    assert now != trained_on
    res = runner.invoke(app, [*evaluate[:3], str(tmp_path / "ev2")])
    assert isinstance(res.exception, ChecksumError)
    message = str(res.exception)
    assert str(grid) in message and trained_on in message and now in message
    assert not (tmp_path / "ev2" / "work").exists()


def test_a_model_saved_before_grid_checksums_is_rebuilt_unchecked_with_a_log_line(caplog):
    # The shipped models name their embedded grid ("dback24") and record no checksum: they
    # keep working, and a log line (not an error) says that nothing is checked.
    from atmospec.models import load_model

    record = load_model("dback24-spex").meta_["recipe"]
    assert "grid_sha256" not in record
    with caplog.at_level(logging.INFO, logger="atmospec.learning.recipe"):
        recipe = Recipe.from_record(record, "dback24-spex")
    assert (recipe.grid, recipe.grid_sha256) == ("dback24", "")
    assert "records no grid checksum" in caplog.text and "unchecked" in caplog.text


def test_a_relative_grid_path_is_read_beside_the_recipe(tmp_path, monkeypatch):
    # `atmospec train --config sub/recipe.toml` with name = "mygrid.h5" beside the recipe read
    # ./mygrid.h5 from the working folder: not found, or another grid that happened to be there.
    _toy(tmp_path / "sub" / "mygrid.h5", name="toy")
    config = _recipe(tmp_path / "sub" / "recipe.toml", "mygrid.h5")
    elsewhere = tmp_path / "elsewhere"
    _toy(elsewhere / "mygrid.h5", name="decoy", slope=1.1)
    monkeypatch.chdir(elsewhere)

    recipe = load_recipe(Path("..") / "sub" / "recipe.toml")
    assert Path(recipe.grid) == config.parent.resolve() / "mygrid.h5"
    assert load_grid(recipe.grid).name == "toy"
    est, _ = run_recipe(recipe, tmp_path / "run")
    assert est.meta_["recipe"]["grid_name"] == "toy"

    # A file that is not beside the recipe is still looked up as before (here: from the
    # working folder), and a built-in grid name stays a name.
    _toy(elsewhere / "only-here.h5", name="here")
    _recipe(config, "only-here.h5")
    assert load_grid(load_recipe(config).grid).name == "here"
    _recipe(config, "dback24")
    assert load_recipe(config).grid == "dback24"


def test_check_recorded_grid_is_what_build_sets_runs(tmp_path):
    # Anything that rebuilds from a recorded recipe (not only the CLI) goes through the check.
    from dataclasses import replace

    from atmospec.learning.recipe import build_sets

    grid = _toy(tmp_path / "toy.h5")
    recipe = load_recipe(_recipe(tmp_path / "toy.toml", str(grid)))
    wrong = replace(recipe, grid_name="toy", grid_sha256="f" * 64)
    with pytest.raises(ChecksumError, match=r"toy\.h5: grid 'toy' \(content sha256 [0-9a-f]{64}"):
        build_sets(wrong, tmp_path / "work")
    assert not (tmp_path / "work").exists()
