"""Optuna tuning: TPE + Hyperband, studies shared through their storage URL."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("optuna")


def test_tune_runs_and_shares_the_study(tmp_path):
    from atmospec.estimators import SpectrumMLP
    from atmospec.training.tuning import tune

    rng = np.random.default_rng(0)
    wave = np.linspace(1, 2, 16)
    y = rng.uniform(0, 1, (120, 1))
    X = 1 + y * wave
    s = np.full_like(X, 0.01)
    fit_kw = {"wavelength": wave, "param_names": ["a"], "bounds": {"a": (0.0, 1.0)}}
    space = {"lr": ("log", 1e-3, 1e-2), "batch_size": ("choice", 16, 32)}

    def make(p):
        return SpectrumMLP(num_threads=1, hidden=(16,), **p)

    db = tmp_path / "shared.db"
    kw = dict(n_trials=2, space=space, storage=db, out_dir=tmp_path, max_epochs=2)
    study = tune(make, (X, y, s), (X[:30], y[:30], s[:30]), fit_kw, **kw)
    assert len(study.trials) == 2
    # A second process pointing at the same storage continues the same study (4 trials);
    # its callback sees exactly its own two trials, numbered after the first process's.
    seen: list[int] = []
    again = tune(
        make,
        (X, y, s),
        (X[:30], y[:30], s[:30]),
        fit_kw,
        callbacks=[lambda st, tr: seen.append(tr.number)],
        **kw,
    )
    assert len(again.trials) == 4
    assert seen == [2, 3]
    best = json.loads((tmp_path / "best_params.json").read_text())
    assert best["n_trials"] == 4 and set(best["best_params"]) == {"lr", "batch_size"}
