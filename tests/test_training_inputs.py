"""Bad inputs to the training steps (recipes, builder options, hold-out slices, tuning) are
refused with a clear error before any work, instead of being ignored or ending in numpy
errors or non-finite training spectra."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from atmospec.errors import CoverageError, FileFormatError
from atmospec.grids import ModelGrid
from atmospec.learning.recipe import Recipe, load_recipe, run_recipe
from atmospec.training.builder import build_training_set
from atmospec.training.splits import grid_aware_split
from atmospec.training.systematics import Systematics

TEFF = (1000.0, 1250.0, 1500.0, 1750.0, 2000.0)


@pytest.fixture()
def toy(tmp_path: Path) -> Path:
    """Five power-law spectra over 0.8-2.6 um: one node per Teff."""
    wave = np.linspace(0.8, 2.6, 100)
    with ModelGrid.create(tmp_path / "toy.h5", wave, ("teff",), name="toy") as w:
        for t in TEFF:
            w.add({"teff": t}, wave ** -(t / 1000))
    return tmp_path / "toy.h5"


def _recipe_text(grid: Path, data: str = "", params: str = "n_estimators = 3") -> str:
    return (
        f'[model]\nname = "toy-rf"\nestimator = "random_forest"\n[model.params]\n{params}\n'
        f'[grid]\nname = "{grid}"\n'
        "[split]\nhold_out = { teff = [1500.0] }\nval_hold_out = { teff = [1250.0] }\n"
        '[data]\naxis = "spex-prism"\nn_train = 40\nn_val = 10\nn_test = 10\n'
        f'noise_shapes = "flat"\n{data}\n'
    )


def test_a_misspelt_recipe_key_is_refused_not_left_at_its_default(toy, tmp_path):
    # `n_trian` was ignored, so the set was built with the default n_train of 20,000.
    config = tmp_path / "typo.toml"
    config.write_text(_recipe_text(toy, data="n_trian = 40"), encoding="utf-8")
    with pytest.raises(FileFormatError, match=r"typo\.toml: unknown \[data\] keys \['n_trian'\]"):
        load_recipe(config)
    config.write_text(_recipe_text(toy) + "[trian]\nnum_threads = 1\n", encoding="utf-8")
    with pytest.raises(FileFormatError, match=r"typo\.toml: unknown tables \['trian'\]"):
        load_recipe(config)
    config.write_text(_recipe_text(toy) + "[data.systematics]\nslop = false\n", encoding="utf-8")
    with pytest.raises(FileFormatError, match=r"unknown \[data.systematics\] keys \['slop'\]"):
        load_recipe(config)


def test_an_unknown_hyperparameter_is_refused_before_any_set_is_built(toy, tmp_path):
    config = tmp_path / "hyper.toml"
    config.write_text(_recipe_text(toy, params="n_estimator = 3"), encoding="utf-8")
    with pytest.raises(FileFormatError, match=r"hyper\.toml: .*'random_forest' has no hyper"):
        load_recipe(config)
    # Through the API as well: the estimator is built before minutes of set building.
    recipe = Recipe.from_dict({"model": {"name": "x"}, "grid": {"name": str(toy)}})
    recipe.params = {"widht": 8}
    with pytest.raises(ValueError, match="'cnn' has no hyperparameter"):
        run_recipe(recipe, tmp_path / "out")
    assert not (tmp_path / "out" / "work").exists()


def test_split_fractions_of_a_recipe_reach_the_split(toy, tmp_path):
    # [split] test_fraction was ignored: "nodes" mode always held out 15 %.
    from atmospec.learning.recipe import recipe_split

    split, _ = recipe_split(
        ModelGrid(toy), {"mode": "nodes", "test_fraction": 0.5, "val_fraction": 0.0}
    )
    assert "50% test" in split.description
    # 3 interior nodes, whole nodes taken until half of the 5 rows (2.5) is reached: 3
    assert split.sizes() == {"train": 2, "val": 0, "test": 3}


def test_a_hold_out_value_that_is_no_node_is_refused(toy, tmp_path):
    grid = ModelGrid(toy)
    # 1300 K is no node: it was dropped silently and the test part shrank to 1500 K alone.
    with pytest.raises(ValueError, match=r"hold_out: teff = 1300 is not a node of grid toy"):
        grid_aware_split(grid, hold_out={"teff": [1500.0, 1300.0]})
    with pytest.raises(ValueError, match=r"val_hold_out: teff = 1600 is not a node"):
        grid_aware_split(grid, hold_out={"teff": [1500.0]}, val_hold_out={"teff": [1600.0]})
    config = tmp_path / "slice.toml"
    config.write_text(_recipe_text(toy).replace("[1250.0]", "[1200.0]"), encoding="utf-8")
    with pytest.raises(FileFormatError, match=r"slice\.toml: .*teff = 1200 is not a node"):
        run_recipe(load_recipe(config), tmp_path / "out")


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"snr": (0.0, 100.0)}, "snr must be a .low, high. range"),
        ({"snr": (100.0, 10.0)}, "snr must be a .low, high. range"),
        ({"snr_levels": [0.0, 20.0]}, "snr_levels must be finite S/N values > 0"),
        ({"flux_scale": (-1.0, 1.0)}, "flux_scale must be"),
        ({"off_node_fraction": 1.5}, "off_node_fraction is a fraction"),
        ({"cell_mode": "insdie"}, "cell_mode must be 'inside' or 'touching'"),
        ({"n_samples": 0}, "n_samples must be at least 1"),
    ],
)
def test_builder_options_out_of_range_are_refused(
    toy: Path, tmp_path: Path, option: dict[str, Any], message: str
) -> None:
    # Before: an S/N of 0 gave infinite sigmas and NaN fluxes silently, a misspelt cell_mode
    # was read as "touching" (cells around held-out nodes in a training set), the others
    # ended in numpy errors.
    kwargs: dict[str, Any] = {"n_samples": 8, "axis": "spex-prism", "noise_shapes": "flat"}
    kwargs.update(option)
    with pytest.raises(ValueError, match=message):
        build_training_set(ModelGrid(toy), tmp_path / "set.h5", **kwargs)
    assert not (tmp_path / "set.h5").exists()


def test_a_grid_in_angstrom_is_named_not_an_index_error(tmp_path):
    # Wavelengths written in Angstrom but read as micron: the grid misses the target axis
    # entirely, which ended in "IndexError: index 0 is out of bounds".
    wave = np.linspace(8000.0, 26000.0, 100)
    with ModelGrid.create(tmp_path / "aa.h5", wave, ("teff",), name="aa") as w:
        for t in TEFF:
            w.add({"teff": t}, (wave / 1e4) ** -(t / 1000))
    with pytest.raises(CoverageError, match=r"grid 'aa' does not cover .* Angstrom"):
        build_training_set(
            ModelGrid(tmp_path / "aa.h5"),
            tmp_path / "set.h5",
            n_samples=8,
            systematics=Systematics.none(),
        )


def _toy_sets(toy: Path, tmp_path: Path) -> tuple:
    kw: dict[str, Any] = {
        "axis": "spex-prism",
        "noise_shapes": "flat",
        "systematics": Systematics.none(),
    }
    grid = ModelGrid(toy)
    train = build_training_set(grid, tmp_path / "t.h5", n_samples=48, seed=1, **kw)
    val = build_training_set(grid, tmp_path / "v.h5", n_samples=16, seed=2, **kw)
    return train.arrays(), val.arrays(), train.fit_kwargs()


def test_tuning_an_mlp_uses_its_own_hyperparameters(toy, tmp_path):
    # The CNN's space (width, hidden as an int) was proposed to every kind:
    # "SpectrumMLP.__init__() got an unexpected keyword argument 'width'".
    pytest.importorskip("optuna")
    from atmospec.estimators import SpectrumMLP
    from atmospec.training.tuning import tune

    train, val, kwargs = _toy_sets(toy, tmp_path)
    study = tune(
        lambda p: SpectrumMLP(hidden=(4,), num_threads=1, **p),
        train,
        val,
        kwargs,
        n_trials=1,
        max_epochs=1,
        out_dir=tmp_path / "tune",
    )
    assert sorted(study.best_params) == ["batch_size", "lr", "weight_decay"]


def test_tuning_an_estimator_without_epochs_is_refused_before_any_work(toy, tmp_path):
    pytest.importorskip("optuna")
    from atmospec.estimators import RandomForestEstimator
    from atmospec.learning.recipe import tunable_recipe
    from atmospec.training.tuning import tune

    train, val, kwargs = _toy_sets(toy, tmp_path)
    with pytest.raises(ValueError, match="cannot be tuned: tuning trains epoch by epoch"):
        tune(
            lambda p: RandomForestEstimator(n_estimators=2, **p),
            train,
            val,
            kwargs,
            n_trials=1,
            space={"max_depth": ("int", 2, 4)},
            out_dir=tmp_path / "tune",
        )
    assert not (tmp_path / "tune").exists()
    # `atmospec tune` and `atmospec scale tune` refuse the recipe before building its sets.
    config = tmp_path / "rf.toml"
    config.write_text(_recipe_text(toy), encoding="utf-8")
    with pytest.raises(FileFormatError, match=r"rf\.toml: estimator 'random_forest' cannot"):
        tunable_recipe(load_recipe(config))


@pytest.mark.parametrize(
    ("field", "value", "valid"),
    [
        # log(0) = -inf: the log-uniform draw of the extra resolving power overflowed.
        ("extra_R_range", (0.0, 10.0), r"0 < low <= high"),
        ("extra_R_range", (800.0, 200.0), r"0 < low <= high"),
        ("extra_R_range", (200.0, np.inf), r"0 < low <= high, finite"),
        ("probability", 1.5, r"0 <= value <= 1"),
        ("resolution_fraction", -0.1, r"0 <= value <= 1"),
        ("slope_amplitude", -0.05, r"0 <= value < 1"),
        # A telluric residual of 100 % zeroes the flux at a band centre (weight 1).
        ("telluric_amplitude", 1.0, r"0 <= value < 1"),
        ("max_shift", np.nan, r"value >= 0"),
        ("slope", "false", r"is a switch \(true or false\)"),  # a non-empty string is truthy
    ],
)
def test_systematics_out_of_range_are_refused_naming_the_field(
    field: str, value: Any, valid: str
) -> None:
    with pytest.raises(ValueError, match=rf"Systematics\.{field} .*{valid}"):
        Systematics(**{field: value})


def test_slope_and_curvature_that_zero_the_flux_are_refused() -> None:
    # 1 + a x + b (x^2 - 1/3) at the blue end (x = -1) with a = 0.8, b = -0.3 is
    # 1 - 0.8 - 0.3 * 2/3 = 0: a training spectrum with zero flux.
    from atmospec.training.systematics import apply_slope

    wave = np.linspace(0.9, 2.4, 50)
    tilted = apply_slope(wave, np.ones((1, 50)), np.array([0.8]), np.array([-0.3]))
    assert tilted.min() == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match=r"Systematics\.slope_amplitude \+ 2/3 curvature"):
        Systematics(slope_amplitude=0.8, curvature_amplitude=0.3)
    # The ranges the shipped coarse configs use stay valid.
    assert Systematics(extra_R_range=(25.6, 96.1), resolution_fraction=1.0).extra_R_range == (
        25.6,
        96.1,
    )


def test_recipe_systematics_out_of_range_are_refused_at_load(toy, tmp_path):
    # Read from a recipe, extra_R_range = [0, 10] ended in a numpy OverflowError once the
    # training set was being built.
    config = tmp_path / "sys.toml"
    text = _recipe_text(toy) + "[data.systematics]\nextra_R_range = [0.0, 10.0]\n"
    config.write_text(text, encoding="utf-8")
    with pytest.raises(FileFormatError, match=r"sys\.toml: \[data.systematics\]: .*extra_R_range"):
        load_recipe(config)


def test_a_split_without_validation_is_refused_before_any_set_is_built(toy, tmp_path):
    # hold_out without val_hold_out left validation empty; the training set was built and
    # then the validation set failed with "no grid node allowed (empty nodes=)".
    config = tmp_path / "noval.toml"
    text = _recipe_text(toy).replace("val_hold_out = { teff = [1250.0] }\n", "")
    config.write_text(text, encoding="utf-8")
    recipe = load_recipe(config)
    assert "val_hold_out" not in recipe.split
    # The interior Teff nodes (1000 and 2000 K are the ends) that the test slice leaves.
    free = r"interior nodes outside hold_out are teff \[1250.0, 1750.0\]"
    with pytest.raises(FileFormatError, match=rf"noval\.toml: .*add val_hold_out .*{free}"):
        run_recipe(recipe, tmp_path / "out")
    assert not (tmp_path / "out" / "work" / "train.h5").exists()
    # A val_hold_out on the test slice only leaves validation empty too.
    recipe.split["val_hold_out"] = {"teff": [1500.0]}
    with pytest.raises(FileFormatError, match=r"noval\.toml: .*selects test nodes only"):
        run_recipe(recipe, tmp_path / "out")
