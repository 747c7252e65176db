"""Hyperparameter tuning with Optuna: TPE sampler, Hyperband pruning, SQLite or any RDB study."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from optuna.trial import Trial

__all__ = ["tune", "storage_url", "DEFAULT_SPACE", "default_space"]

# name -> (kind, low, high): "log" / "float" / "int" ranges, or ("choice", values...).
DEFAULT_SPACE: dict[str, tuple[Any, ...]] = {
    "lr": ("log", 3e-4, 2e-2),  # the one-cycle schedule of the shipped recipes peaks at 1e-2
    "width": ("choice", 16, 24, 32, 48),
    "hidden": ("choice", 64, 128, 256),
    "weight_decay": ("log", 1e-6, 1e-3),
    "batch_size": ("choice", 64, 128, 256),
}

#: Spaces of the other tunable (neural) kinds: only hyperparameters their constructor takes
#: (SpectrumMLP's ``hidden`` is a tuple of layer widths, TelescopeCNN's layers are fixed).
_KIND_SPACES: dict[str, dict[str, tuple[Any, ...]]] = {
    "cnn": DEFAULT_SPACE,
    "mlp": {k: DEFAULT_SPACE[k] for k in ("lr", "weight_decay", "batch_size")},
    "telescope_cnn": {k: DEFAULT_SPACE[k] for k in ("lr", "weight_decay", "batch_size")},
}


def default_space(kind: str) -> dict[str, tuple[Any, ...]]:
    """The search space :func:`tune` uses for an estimator ``kind`` when none is given.

    Tuning trains epoch by epoch under Hyperband pruning, so only the neural kinds (``cnn``,
    ``mlp``, ``telescope_cnn``) can be tuned; each gets the hyperparameters it takes.

    Example:
        >>> sorted(default_space("mlp"))
        ['batch_size', 'lr', 'weight_decay']
        >>> default_space("random_forest")
        Traceback (most recent call last):
        ...
        ValueError: estimator 'random_forest' cannot be tuned: tuning trains epoch by epoch (Hyperband pruning), which only the neural estimators do; choose one of ['cnn', 'mlp', 'telescope_cnn']
    """
    if kind not in _KIND_SPACES:
        raise ValueError(_untunable(repr(kind)))
    return dict(_KIND_SPACES[kind])


def _untunable(what: str) -> str:
    return (
        f"estimator {what} cannot be tuned: tuning trains epoch by epoch (Hyperband pruning), "
        f"which only the neural estimators do; choose one of {sorted(_KIND_SPACES)}"
    )


def storage_url(storage: str | os.PathLike[str] | None, out_dir: str | os.PathLike[str]) -> str:
    """An Optuna storage URL: ``None`` -> ``sqlite:///<out_dir>/study.db``; a path to a
    ``.db`` file -> SQLite there; any other string is used as an RDB URL
    (``postgresql://user@host/db``, ``mysql://...``) so several machines share one study.

    Example:
        >>> storage_url(None, "/tmp/x")
        'sqlite:////tmp/x/study.db'
        >>> storage_url("postgresql://u@h/db", "/tmp/x")
        'postgresql://u@h/db'
    """
    if storage is None:
        return f"sqlite:///{Path(out_dir).resolve() / 'study.db'}"
    s = str(storage)
    if "://" in s:
        return s
    return f"sqlite:///{Path(s).resolve()}"


def _suggest(trial: Any, space: Mapping[str, tuple[Any, ...]]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, spec in space.items():
        kind = spec[0]
        if kind == "log":
            params[name] = trial.suggest_float(name, spec[1], spec[2], log=True)
        elif kind == "float":
            params[name] = trial.suggest_float(name, spec[1], spec[2])
        elif kind == "int":
            params[name] = trial.suggest_int(name, spec[1], spec[2])
        elif kind == "choice":
            params[name] = trial.suggest_categorical(name, list(spec[1:]))
        else:
            raise ValueError(f"search space {name!r}: unknown kind {kind!r}")
    return params


def tune(
    make_estimator: Callable[[dict[str, Any]], Any],
    train: tuple[Any, ...],
    validation: tuple[Any, ...],
    fit_kwargs: Mapping[str, Any],
    *,
    n_trials: int = 20,
    space: Mapping[str, tuple[Any, ...]] | None = None,
    study_name: str = "atmospec",
    storage: str | os.PathLike[str] | None = None,
    out_dir: str | os.PathLike[str] = "tuning",
    max_epochs: int = 30,
    seed: int = 0,
    timeout: float | None = None,
    callbacks: Sequence[Callable[[Any, Any], None]] | None = None,
) -> Any:
    """Search hyperparameters minimising the validation loss; returns the Optuna study.

    Each trial builds ``make_estimator(params)`` (a torch estimator), trains it with the
    validation loss reported after every epoch, and Optuna's Hyperband pruner stops poor
    trials early; the TPE sampler proposes new points. The study is stored in SQLite by
    default (``<out_dir>/study.db``), or in any RDB URL, and ``load_if_exists`` lets several
    processes or machines work on one study. The best parameters go to
    ``<out_dir>/best_params.json``.

    Args:
        make_estimator: params -> estimator (e.g. ``lambda p: SpectrumCNN(**p)``).
        train: ``(X, y, sigma)`` training arrays.
        validation: ``(X_val, y_val, sigma_val)``.
        fit_kwargs: ``wavelength``, ``param_names``, ``bounds`` for ``fit``.
        n_trials: trials run by this process.
        space: search space (default: :func:`default_space` of the estimator's kind).
        study_name: name of the study (several processes may share it).
        storage: where the study lives (see :func:`storage_url`).
        out_dir: folder for the SQLite file and results.
        max_epochs: epochs per trial (the Hyperband resource).
        seed: sampler seed.
        timeout: stop after this many seconds.
        callbacks: Optuna callbacks ``f(study, frozen_trial)`` called after each trial of
            this process (e.g. to record which trials it ran, or to stop the study).

    Example:
        >>> import json, tempfile
        >>> from atmospec.estimators import SpectrumMLP
        >>> rng = np.random.default_rng(0)
        >>> wave = np.linspace(1.0, 2.0, 8); t = rng.uniform(0, 1, (64, 1)); X = 1 + t * wave
        >>> sig = np.full_like(X, 0.01)
        >>> out = Path(tempfile.mkdtemp())
        >>> study = tune(lambda p: SpectrumMLP(hidden=(4,), **p),
        ...              (X[:48], t[:48], sig[:48]), (X[48:], t[48:], sig[48:]),
        ...              {"wavelength": wave, "param_names": ["t"], "bounds": {"t": (0, 1)}},
        ...              n_trials=1, space={"lr": ("log", 1e-3, 1e-2)}, out_dir=out,
        ...              max_epochs=2)
        >>> len(study.trials), sorted(p.name for p in out.iterdir())
        (1, ['best_params.json', 'study.db'])
        >>> best = json.loads((out / "best_params.json").read_text())
        >>> best["study"], list(best["best_params"]), best["best_value"] == study.best_value
        ('atmospec', ['lr'], True)
    """
    from atmospec._optional import require

    optuna = require("optuna", "tune")

    from atmospec._fileio import provenance, write_json

    # The kind's own space (and a clear refusal of kinds that train without epochs) before
    # the study is created; building an estimator only stores its hyperparameters.
    probe = make_estimator({})
    if space is None:
        chosen = default_space(str(getattr(probe, "kind", "")))
    elif not hasattr(probe, "epoch_callback"):  # trains without epochs to report
        raise ValueError(_untunable(type(probe).__name__))
    else:
        chosen = dict(space)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    from atmospec._logging import progress_enabled

    if not progress_enabled():  # Optuna's per-trial log follows the atmospec logger's level
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=study_name,
        storage=storage_url(storage, out),
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_epochs),
        load_if_exists=True,
    )

    def objective(trial: Trial) -> float:
        params = _suggest(trial, chosen)
        est = make_estimator({**params, "max_epochs": max_epochs, "seed": seed + trial.number})

        def report(epoch: int, history: Any) -> None:
            trial.report(float(history.val_loss[-1]), epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()

        est.epoch_callback = report  # called by the Trainer after every epoch
        est.fit(
            train[0],
            train[1],
            sigma=train[2] if len(train) > 2 else None,
            validation=validation,
            **fit_kwargs,
        )
        losses = est.history_[0]["val_loss"]
        return float(np.min(losses))

    study.optimize(
        objective,
        n_trials=n_trials,
        timeout=timeout,
        gc_after_trial=True,
        callbacks=list(callbacks) if callbacks else None,
    )
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if complete:
        write_json(
            out / "best_params.json",
            {
                "study": study_name,
                "best_value": study.best_value,
                "best_params": study.best_params,
                "n_trials": len(study.trials),
                "provenance": provenance(seed=seed),
            },
        )
    return study
