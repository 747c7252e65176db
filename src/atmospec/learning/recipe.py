"""Recipe: one TOML config -> split, training sets, trained estimator and evaluation report."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from atmospec.errors import AtmospecError, FileFormatError, ModelFileError
from atmospec.learning.recipe_keys import KEYS, check_tables
from atmospec.learning.recipe_split import recipe_split, require_validation
from atmospec.training.systematics import Systematics

__all__ = [
    "Recipe",
    "load_recipe",
    "run_recipe",
    "make_estimator",
    "build_sets",
    "recipe_split",
    "tunable_recipe",
]

logger = logging.getLogger(__name__)


@dataclass
class Recipe:
    """Everything needed to reproduce a trained model (read from a TOML config).

    Sections: ``[model]`` (name, description, estimator kind, ``[model.params]``), ``[grid]``
    (name, or a path: relative to the recipe's folder when the file is there; optional
    ``ranges``), ``[split]`` (mode, hold-out slices), ``[data]`` (axis, sizes,
    S/N range, test S/N levels, noise shapes, systematics switches, model-error augmentation
    ``discrepancy = "dback24-spex"``, seed), ``[train]``
    (threads, CPU budget). A trained model records its recipe with ``grid_name`` and
    ``grid_sha256`` filled in (the grid's own name and content sha256, see
    :func:`atmospec.grids.identity.grid_identity`): rebuilding its sets from another grid
    at that path is refused.

    Example:
        >>> r = Recipe.from_dict({"model": {"name": "demo", "estimator": "cnn"},
        ...                       "grid": {"name": "dback24"}})
        >>> r.name, r.axis, r.n_train
        ('demo', 'spex-dense', 20000)
    """

    name: str
    estimator: str = "cnn"
    params: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    grid: str = "dback24"
    ranges: dict[str, list[float]] = field(default_factory=dict)
    split: dict[str, Any] = field(default_factory=dict)
    axis: str = "spex-dense"
    n_train: int = 20000
    n_val: int = 3000
    n_test: int = 3000
    snr: list[float] = field(default_factory=lambda: [10.0, 300.0])
    test_snr_levels: list[float] = field(default_factory=lambda: [20.0, 50.0, 100.0])
    off_node_fraction: float = 0.5
    noise_shapes: str = "spex"
    systematics: dict[str, Any] = field(default_factory=dict)
    mask_telluric: float = 0.0
    # Grid-interpolation-error augmentation of the training set only (val/test stay exact).
    interpolation_error: float | dict[str, float] = 0.0
    # Model-error augmentation (train, val and test): a discrepancy model learned from real
    # spectra, e.g. "dback24-spex" (see atmospec.training.discrepancy_augment); "" = off.
    discrepancy: str = ""
    discrepancy_amplitude: float = 1.0
    seed: int = 1
    num_threads: int | None = None
    # Draw new noise every epoch from the stored noise-free fluxes (neural estimators).
    fresh_noise: bool = False
    source: str = ""
    # Recorded by run_recipe (not read from TOML): which grid the model was trained on.
    grid_name: str = ""
    grid_sha256: str = ""

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "") -> Recipe:
        """A recipe from the tables of a TOML config; a key, table, estimator kind or
        hyperparameter that no step reads raises FileFormatError naming ``source`` (a typo
        such as ``n_trian`` would otherwise leave the default of 20,000 spectra in place).

        Example:
            >>> Recipe.from_dict({"model": {"name": "x"}, "data": {"n_trian": 500}}, "my.toml")
            Traceback (most recent call last):
            ...
            atmospec.errors.FileFormatError: my.toml: unknown [data] keys ['n_trian']; valid ...
        """
        where = source or "config"
        check_tables(d, where)
        model = d.get("model", {})
        data = d.get("data", {})
        train = d.get("train", {})
        grid = d.get("grid", {})
        if "name" not in model:
            raise FileFormatError(f"{where}: [model] needs a name")
        kw: dict[str, Any] = {
            "name": model["name"],
            "estimator": model.get("estimator", "cnn"),
            "params": dict(model.get("params", {})),
            "description": model.get("description", ""),
            "grid": grid.get("name", "dback24"),
            "ranges": {k: list(v) for k, v in grid.get("ranges", {}).items()},
            "split": dict(d.get("split", {})),
            "source": source,
        }
        if not isinstance(kw["grid"], str):
            raise FileFormatError(
                f"{where}: [grid] name is a grid name or path, not {kw['grid']!r}"
            )
        for key in KEYS["data"]:
            if key in data:
                kw[key] = data[key]
        if "num_threads" in train:
            kw["num_threads"] = train["num_threads"]
        if "fresh_noise" in train:
            kw["fresh_noise"] = bool(train["fresh_noise"])
        if "max_cpu_seconds" in train:
            kw["params"].setdefault("max_cpu_seconds", train["max_cpu_seconds"])
        try:
            _estimator_class(kw["estimator"], kw["params"])
        except ValueError as err:
            raise FileFormatError(f"{where}: [model]: {err}") from None
        return cls(**kw)

    @classmethod
    def from_record(cls, record: dict[str, Any] | None, where: str) -> Recipe:
        """The recipe a saved model records (``meta["recipe"]``), to rebuild its sets from;
        ModelFileError naming ``where`` (the model) when it records none. A model saved before
        grid checksums were recorded (the shipped ones) has its grid used unchecked, as a log
        line says.

        Example:
            >>> Recipe.from_record({"name": "old", "grid": "dback24"}, "old-model").grid_sha256
            ''
            >>> Recipe.from_record({}, "my-model")
            Traceback (most recent call last):
            ...
            atmospec.errors.ModelFileError: my-model: the model records no recipe, so its test split is unknown
        """
        if not record:
            raise ModelFileError(
                f"{where}: the model records no recipe, so its test split is unknown"
            )
        recipe = cls(**record)
        if not recipe.grid_sha256:
            logger.info(
                "%s records no grid checksum (saved before they were recorded): its grid %r "
                "is used as found, unchecked",
                where,
                recipe.grid,
            )
        return recipe

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def load_recipe(path: str | os.PathLike[str]) -> Recipe:
    """Read a TOML training config; errors name the file and the problem.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "toy.toml"
        >>> _ = path.write_text('[model]\\nname = "toy"\\nestimator = "mlp"\\n'
        ...                     '[data]\\nn_train = 500\\n')
        >>> r = load_recipe(path)
        >>> r.name, r.estimator, r.n_train, r.grid  # unset keys keep their defaults
        ('toy', 'mlp', 500, 'dback24')
        >>> load_recipe("/no/such.toml")
        Traceback (most recent call last):
        ...
        atmospec.errors.FileFormatError: /no/such.toml: config file not found
    """
    from atmospec._fileio import read_toml
    from atmospec.learning.recipe_grid import grid_beside

    recipe = Recipe.from_dict(read_toml(path), source=str(Path(path)))
    recipe.grid = grid_beside(recipe.grid, Path(path).parent)
    return recipe


def tunable_recipe(recipe: Recipe) -> Recipe:
    """``recipe`` if its estimator can be tuned, else FileFormatError naming the recipe file.

    Example:
        >>> r = Recipe.from_dict({"model": {"name": "rf", "estimator": "random_forest"}}, "rf.toml")
        >>> tunable_recipe(r)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        atmospec.errors.FileFormatError: rf.toml: estimator 'random_forest' cannot be tuned: ...
    """
    from atmospec.training.tuning import default_space

    try:
        default_space(recipe.estimator)
    except ValueError as err:
        raise FileFormatError(f"{recipe.source or recipe.name}: {err}") from None
    return recipe


def make_estimator(kind: str, params: dict[str, Any]) -> Any:
    """An estimator of ``kind`` (``cnn``, ``mlp``, ``telescope_cnn``, ``random_forest``,
    ``gradient_boosting``) with hyperparameters ``params``.

    Example:
        >>> est = make_estimator("mlp", {"hidden": [32, 32], "lr": 0.01})  # as read from TOML
        >>> type(est).__name__, est.hidden, est.lr
        ('SpectrumMLP', (32, 32), 0.01)
        >>> make_estimator("svm", {})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: unknown estimator 'svm'; choose one of ['cnn', 'gradient_boosting', ...]
    """
    p = dict(params)
    if "hidden" in p and isinstance(p["hidden"], list):
        p["hidden"] = tuple(p["hidden"])
    return _estimator_class(kind, p)(**p)


def _estimator_class(kind: str, params: dict[str, Any]) -> Any:
    """The estimator class of ``kind``; ValueError for an unknown kind or hyperparameter."""
    from atmospec.estimators import (
        GradientBoostingEstimator,
        RandomForestEstimator,
        SpectrumCNN,
        SpectrumMLP,
        TelescopeCNN,
    )

    classes = {
        "cnn": SpectrumCNN,
        "mlp": SpectrumMLP,
        "telescope_cnn": TelescopeCNN,
        "random_forest": RandomForestEstimator,
        "gradient_boosting": GradientBoostingEstimator,
    }
    if kind not in classes:
        raise ValueError(f"unknown estimator {kind!r}; choose one of {sorted(classes)}")
    valid = classes[kind]._hyperparameter_names()
    unknown = [k for k in params if k not in valid]
    if unknown:
        raise ValueError(
            f"estimator {kind!r} has no hyperparameter(s) {unknown}; valid: {sorted(valid)}"
        )
    return classes[kind]


def build_sets(recipe: Recipe, work: str | os.PathLike[str]) -> dict[str, Any]:
    """Split the grid and build the train / val / test sets of a recipe into ``work``; also
    returns the ``split``, ``grid``, ``bounds`` and grid ``identity``. A split without a
    validation node is refused before any set is built, and so is a grid other than the one
    a recorded recipe names (ChecksumError naming the file and both checksums).

    Example:
        >>> import tempfile
        >>> from atmospec.grids import ModelGrid
        >>> d = Path(tempfile.mkdtemp()); wave = np.linspace(0.8, 2.6, 100)
        >>> with ModelGrid.create(d / "toy.h5", wave, ("teff",), name="toy") as w:
        ...     for t in (1000.0, 1250.0, 1500.0, 1750.0, 2000.0):
        ...         w.add({"teff": t}, wave ** -(t / 1000))
        >>> r = Recipe.from_dict({
        ...     "model": {"name": "toy-rf", "estimator": "random_forest",
        ...               "params": {"n_estimators": 5}},
        ...     "grid": {"name": str(d / "toy.h5")},
        ...     "split": {"hold_out": {"teff": [1500.0]}, "val_hold_out": {"teff": [1250.0]}},
        ...     "data": {"axis": "spex-prism", "n_train": 40, "n_val": 10, "n_test": 10,
        ...              "noise_shapes": "flat", "test_snr_levels": [20.0, 100.0]}})
        >>> sets = build_sets(r, d / "work")
        >>> {k: len(sets[k]) for k in ("train", "val", "test")}, sets["bounds"]
        ({'train': 40, 'val': 10, 'test': 10}, {'teff': (1000.0, 2000.0)})
        >>> sorted(p.name for p in (d / "work").iterdir()), sets["test"].snr[:4].tolist()
        (['test.h5', 'train.h5', 'val.h5'], [20.0, 100.0, 20.0, 100.0])
    """
    from atmospec.grids import load_grid
    from atmospec.learning.recipe_grid import check_recorded_grid
    from atmospec.training.builder import TrainingSet, build_training_set

    where = recipe.source or recipe.name
    grid = load_grid(recipe.grid)
    identity = check_recorded_grid(grid, recipe.grid_sha256, recipe.name)
    try:
        split, rows = recipe_split(grid, recipe.split, recipe.ranges)
        sys_cfg = Systematics.from_dict(recipe.systematics)
    except ValueError as err:  # a hold-out slice, range or systematic that does not fit
        if isinstance(err, AtmospecError):
            raise
        raise FileFormatError(f"{where}: [split]/[grid]/[data.systematics]: {err}") from None
    require_validation(split, recipe.split, grid, rows, where)  # before any set is built
    allowed = np.arange(len(grid)) if rows is None else rows
    vals = grid.params.iloc[allowed]
    from atmospec.training.builder import target_params

    bounds = {p: (float(vals[p].min()), float(vals[p].max())) for p in target_params(grid)}
    disc = None
    if recipe.discrepancy:
        from atmospec.training.discrepancy_augment import resolve_discrepancy

        disc = resolve_discrepancy(recipe.discrepancy)
    common: dict[str, Any] = dict(
        discrepancy=disc,
        discrepancy_amplitude=recipe.discrepancy_amplitude,
        axis=recipe.axis,
        noise_shapes=recipe.noise_shapes,
        systematics=sys_cfg,
        mask_telluric=recipe.mask_telluric,
        bounds=bounds,
        off_node_fraction=recipe.off_node_fraction,
    )
    work = Path(work)
    sets: dict[str, Any] = {"split": split, "grid": grid, "bounds": bounds, "identity": identity}
    interp = recipe.interpolation_error
    specs: dict[str, tuple[Any, int, str, dict[str, Any], int]] = {
        "train": (
            split.train,
            recipe.n_train,
            "inside",
            {"snr": tuple(recipe.snr), "interpolation_error": interp},
            0,
        ),
        "val": (split.val, recipe.n_val, "touching", {"snr": tuple(recipe.snr)}, 1),
        "test": (split.test, recipe.n_test, "touching", {"snr_levels": recipe.test_snr_levels}, 2),
    }
    for part, (nodes, n, mode, noise, k) in specs.items():
        path = work / f"{part}.h5"
        if path.exists():
            ts = TrainingSet(path)
            same_interp = part != "train" or _same_interpolation_error(ts, grid, interp)
            same_disc = _same_discrepancy(ts, disc, recipe.discrepancy_amplitude)
            if (
                len(ts) == n
                and ts.config.get("seed") == recipe.seed * 10 + k
                and same_interp
                and same_disc
            ):
                sets[part] = ts
                continue
            ts.close()
        sets[part] = build_training_set(
            grid,
            path,
            n_samples=n,
            nodes=nodes,
            cell_mode=mode,
            seed=recipe.seed * 10 + k,
            **noise,
            **common,
        )
    return sets


def _same_interpolation_error(ts: Any, grid: Any, value: float | dict[str, float]) -> bool:
    """Whether a cached training set was built with this interpolation-error augmentation."""
    from atmospec.training.builder import Lattice, _interpolation_amplitudes

    cont = Lattice(grid).continuous
    want = _interpolation_amplitudes(value, cont)
    have = ts.config.get("interpolation_error") or {}
    got = [float(have.get(p, 0.0)) for p in cont]
    return bool(np.allclose(want, got))


def _same_discrepancy(ts: Any, disc: Any, amplitude: float) -> bool:
    """Whether a cached training set was built with this model-error augmentation."""
    from atmospec.training.discrepancy_augment import describe

    return ts.config.get("discrepancy") == (None if disc is None else describe(disc, amplitude))


def run_recipe(
    recipe: Recipe,
    out_dir: str | os.PathLike[str],
    *,
    work_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
) -> tuple[Any, dict[str, Any]]:
    """Train and evaluate the model a recipe describes; write it and its report to ``out_dir``.

    ``out_dir`` receives the model folder (``model.json``, ``weights.safetensors``) and the
    ``evaluation/`` report (JSON, PNG, HTML); training sets go to ``work_dir`` (default
    ``out_dir/work``) and are reused when present. Returns ``(estimator, report)``.

    Example:
        >>> import tempfile
        >>> from atmospec.grids import ModelGrid
        >>> d = Path(tempfile.mkdtemp()); wave = np.linspace(0.8, 2.6, 100)
        >>> with ModelGrid.create(d / "toy.h5", wave, ("teff",), name="toy") as w:
        ...     for t in (1000.0, 1250.0, 1500.0, 1750.0, 2000.0):
        ...         w.add({"teff": t}, wave ** -(t / 1000))
        >>> r = Recipe.from_dict({
        ...     "model": {"name": "toy-rf", "estimator": "random_forest",
        ...               "params": {"n_estimators": 5}},
        ...     "grid": {"name": str(d / "toy.h5")},
        ...     "split": {"hold_out": {"teff": [1500.0]}, "val_hold_out": {"teff": [1250.0]}},
        ...     "data": {"axis": "spex-prism", "n_train": 40, "n_val": 10, "n_test": 10,
        ...              "noise_shapes": "flat", "test_snr_levels": [20.0, 100.0]}})
        >>> est, report = run_recipe(r, d / "out")
        >>> sorted(p.name for p in (d / "out").iterdir())
        ['evaluation', 'model', 'recipe.json', 'work']
        >>> sorted(p.name for p in (d / "out" / "evaluation").iterdir())
        ['evaluation.json', 'index.html', 'parity.png', 'residuals.png']
        >>> type(est).__name__, report["n_test"], list(report["by_snr"])
        ('RandomForestEstimator', 10, ['20', '100'])
        >>> est.meta_["split"], est.meta_["recipe"]["grid_name"]  # and its content sha256
        ("grid-aware slices: test {'teff': [1500.0]}, val {'teff': [1250.0]}", 'toy')
    """
    from atmospec._fileio import write_json
    from atmospec.learning.evaluation import evaluate

    out = Path(out_dir)
    work = Path(work_dir) if work_dir is not None else out / "work"
    params = dict(recipe.params)
    if recipe.num_threads is not None and recipe.estimator in ("cnn", "mlp", "telescope_cnn"):
        params.setdefault("num_threads", recipe.num_threads)
    if recipe.estimator in ("cnn", "mlp", "telescope_cnn"):
        params.setdefault("checkpoint_dir", str(work / "checkpoints"))
    est = make_estimator(recipe.estimator, params)  # before minutes of set building
    sets = build_sets(recipe, work)
    train, val, test = sets["train"], sets["val"], sets["test"]
    est.resume_training = resume
    X, y, s = train.arrays()
    clean = train.clean() if recipe.fresh_noise else None
    est.fit(X, y, sigma=s, validation=val.arrays(), clean=clean, **train.fit_kwargs())
    identity = sets["identity"]  # recorded: rebuilding from another grid is refused
    recipe = replace(recipe, grid_name=identity.name, grid_sha256=identity.sha256)
    est.meta_.update(
        {
            "name": recipe.name,
            "description": recipe.description,
            "grid": recipe.grid,
            "axis": recipe.axis,
            "recipe": recipe.to_dict(),
            "split": sets["split"].description,
        }
    )
    report = evaluate(
        est,
        test,
        out_dir=out / "evaluation",
        split=sets["split"].description,
        title=f"{recipe.name}: held-out evaluation",
    )
    est.meta_["evaluation"] = {
        "overall": report["overall"],
        "coverage68": report.get("coverage68"),
        "coverage95": report.get("coverage95"),
        "by_snr": report["by_snr"],
    }
    if hasattr(est, "calibration_record") and getattr(est, "sigma_scale_", None) is not None:
        cal = {
            **est.calibration_record(),
            "fit_on": f"validation split ({sets['split'].description})",
        }
        est.meta_["calibration"] = cal
        report["calibration"] = cal
        write_json(out / "evaluation" / "evaluation.json", report)
    if hasattr(est, "checkpoint_dir"):
        est.checkpoint_dir = None  # a local working path: not part of the shipped model
    est.save(out / "model")
    write_json(out / "recipe.json", recipe.to_dict())
    return est, report
