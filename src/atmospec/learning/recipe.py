"""Recipe: one TOML config -> split, training sets, trained estimator and evaluation report."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from atmospec.errors import AtmospecError, FileFormatError

__all__ = [
    "Recipe",
    "load_recipe",
    "run_recipe",
    "make_estimator",
    "build_sets",
    "recipe_split",
    "tunable_recipe",
]


@dataclass
class Recipe:
    """Everything needed to reproduce a trained model (read from a TOML config).

    Sections: ``[model]`` (name, description, estimator kind, ``[model.params]``), ``[grid]``
    (name, optional ``ranges``), ``[split]`` (mode, hold-out slices), ``[data]`` (axis, sizes,
    S/N range, test S/N levels, noise shapes, systematics switches, model-error augmentation
    ``discrepancy = "dback24-spex"``, seed), ``[train]``
    (threads, CPU budget).

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
        _check_keys(where, "", d, _KEYS)
        for table in _KEYS:
            _check_keys(where, table, d.get(table, {}), _KEYS[table])
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
        for key in _KEYS["data"]:
            if key in data:
                kw[key] = data[key]
        if "num_threads" in train:
            kw["num_threads"] = train["num_threads"]
        if "fresh_noise" in train:
            kw["fresh_noise"] = bool(train["fresh_noise"])
        if "max_cpu_seconds" in train:
            kw["params"].setdefault("max_cpu_seconds", train["max_cpu_seconds"])
        _check_keys(where, "data.systematics", kw.get("systematics", {}), _systematics_keys())
        try:
            _estimator_class(kw["estimator"], kw["params"])
        except ValueError as err:
            raise FileFormatError(f"{where}: [model]: {err}") from None
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


#: The tables of a recipe and the keys each one may hold (what some step reads).
_KEYS: dict[str, tuple[str, ...]] = {
    "model": ("name", "estimator", "description", "params"),
    "grid": ("name", "ranges"),
    "split": tuple("mode hold_out val_hold_out seed val_fraction test_fraction keep_edges".split()),
    "data": tuple(
        "axis n_train n_val n_test snr test_snr_levels off_node_fraction noise_shapes systematics "
        "mask_telluric interpolation_error discrepancy discrepancy_amplitude seed".split()
    ),
    "train": ("num_threads", "fresh_noise", "max_cpu_seconds"),
}


def _check_keys(where: str, table: str, given: Any, allowed: Any) -> None:
    """Refuse keys of a recipe table that nothing reads (typos are not silently ignored)."""
    if not isinstance(given, dict):
        raise FileFormatError(f"{where}: [{table}] must be a table, not {given!r}")
    unknown = [k for k in given if k not in allowed]
    if unknown:
        what = f"[{table}] keys" if table else "tables"
        raise FileFormatError(
            f"{where}: unknown {what} {unknown}; valid ones are {sorted(allowed)}"
        )


def _systematics_keys() -> tuple[str, ...]:
    from dataclasses import fields

    from atmospec.training.systematics import Systematics

    return tuple(f.name for f in fields(Systematics))


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

    return Recipe.from_dict(read_toml(path), source=str(Path(path)))


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


def _rows_in_ranges(grid: Any, ranges: dict[str, list[float]]) -> Any:
    keep = np.ones(len(grid), dtype=bool)
    for p, (lo, hi) in ranges.items():
        if p not in grid.param_names:
            raise ValueError(
                f"ranges: unknown parameter {p!r} (grid {grid.name} has {list(grid.param_names)})"
            )
        v = grid.params[p].to_numpy()
        keep &= (v >= lo) & (v <= hi)
    return np.flatnonzero(keep)


def recipe_split(
    grid: Any, split: dict[str, Any], ranges: dict[str, list[float]] | None = None
) -> tuple[Any, Any]:
    """The grid-aware split a recipe's ``[split]`` table describes, over the grid rows inside
    its parameter ``ranges`` (all rows without ranges); returns ``(split, rows or None)``.
    Re-derives a trained model's test nodes from the recipe in its metadata.

    Example:
        >>> import tempfile
        >>> from atmospec.grids import ModelGrid
        >>> d = Path(tempfile.mkdtemp()); wave = np.linspace(0.8, 2.6, 100)
        >>> with ModelGrid.create(d / "toy.h5", wave, ("teff",), name="toy") as w:
        ...     for t in (1000.0, 1250.0, 1500.0, 1750.0, 2000.0):
        ...         w.add({"teff": t}, wave ** -(t / 1000))
        >>> grid = ModelGrid(d / "toy.h5")
        >>> split, rows = recipe_split(grid, {"hold_out": {"teff": [1500.0]}})
        >>> split.sizes(), rows
        ({'train': 4, 'val': 0, 'test': 1}, None)
        >>> ranges = {"teff": [1000.0, 1750.0]}  # the grid rows inside these ranges only
        >>> split, rows = recipe_split(grid, {"hold_out": {"teff": [1250.0]}}, ranges)
        >>> split.sizes(), rows.tolist(), split.test.tolist()
        ({'train': 3, 'val': 0, 'test': 1}, [0, 1, 2, 3], [1])
    """
    from atmospec.training.splits import grid_aware_split

    rows = _rows_in_ranges(grid, ranges) if ranges else None
    sp = dict(split)
    out = grid_aware_split(
        grid,
        mode=sp.get("mode", "slices"),
        hold_out=sp.get("hold_out"),
        val_hold_out=sp.get("val_hold_out"),
        seed=int(sp.get("seed", 0)),
        rows=rows,
        **{k: sp[k] for k in ("val_fraction", "test_fraction", "keep_edges") if k in sp},
    )
    return out, rows


def build_sets(recipe: Recipe, work: str | os.PathLike[str]) -> dict[str, Any]:
    """Split the grid and build the train / val / test sets of a recipe into ``work``.

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
    from atmospec.training.builder import TrainingSet, build_training_set
    from atmospec.training.systematics import Systematics

    grid = load_grid(recipe.grid)
    try:
        split, rows = recipe_split(grid, recipe.split, recipe.ranges)
    except ValueError as err:  # a hold-out slice or range that does not fit the grid
        if isinstance(err, AtmospecError):
            raise
        raise FileFormatError(f"{recipe.source or recipe.name}: [split]/[grid]: {err}") from None
    sys_cfg = Systematics(**recipe.systematics) if recipe.systematics else Systematics()
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
    sets: dict[str, Any] = {"split": split, "grid": grid, "bounds": bounds}
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
        >>> est.meta_["split"]
        "grid-aware slices: test {'teff': [1500.0]}, val {'teff': [1250.0]}"
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
