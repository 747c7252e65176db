"""The OOD score: <= 5 % false alarms inside the grid, fires on spectra from outside it."""

# ruff: noqa: F811  (the `tiny` fixture is imported from _inference_support)
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _inference_support import AXIS, tiny  # noqa: F401 (fixture)

pytestmark = pytest.mark.realdata


def _scores(tiny: dict[str, Any], grid: Any, path: Path, **kw: Any) -> Any:
    from atmospec.prediction.ood import grid_model_on_axis
    from atmospec.training.builder import build_training_set

    est, det = tiny["estimator"], tiny["detector"]
    ts = build_training_set(grid, path, axis=AXIS, **kw)
    X, _, S = ts.arrays()
    ts.close()
    pred = est.predict(X, S)
    model = grid_model_on_axis(tiny["grid"], pred.mean, est.param_names_, est.wavelength_)
    return det.score(det.raw_scores(X, S, pred.mean, pred.std, model))


def test_false_alarms_inside_the_grid(tiny: dict[str, Any], tmp_path: Path) -> None:
    det = tiny["detector"]
    # Measured on the detector's own held-out 20 % (240 spectra here): the threshold sits at
    # the 96th percentile of the reference scores, so ~4 % flags are expected, with a binomial
    # standard error of sqrt(0.04 * 0.96 / 240) = 1.3 %; three standard errors allowed.
    n = det.meta["n_held_out"]
    assert det.false_alarm <= 0.04 + 3 * np.sqrt(0.04 * 0.96 / n)
    # A fresh in-grid set (other seed, nodes and off-node points, S/N 10-300, systematics):
    # the threshold sits at the 96th percentile, so ~4 % flags are expected; with 400 spectra
    # the binomial standard error is 1 %, so 7 % allows three of them.
    _, flag, _ = _scores(tiny, tiny["grid"], tmp_path / "in.h5", n_samples=400, seed=99)
    assert flag.mean() <= 0.07


def test_fires_on_cold_spectra_of_other_grids(tiny: dict[str, Any], tmp_path: Path) -> None:
    from atmospec.grids import load_grid

    # BT-Settl 2008 at 500-800 K lies below Diamondback's 900 K floor: not describable by it.
    bt = load_grid("btsettl08")
    rows = np.flatnonzero(bt.params["teff"].to_numpy() <= 800)
    score, flag, reasons = _scores(
        tiny,
        bt,
        tmp_path / "cold.h5",
        n_samples=200,
        seed=5,
        nodes=rows,
        off_node_fraction=0.0,
        snr=(20.0, 300.0),
    )
    assert flag.mean() >= 0.9
    assert np.median(score) > 1.0
    assert all(r for r, f in zip(reasons, flag, strict=True) if f)  # every flag says why


def test_detector_round_trip(tiny: dict[str, Any], tmp_path: Path) -> None:
    from atmospec.errors import ModelFileError
    from atmospec.prediction.ood import OODDetector

    det = tiny["detector"]
    path = det.save(tmp_path / "ood.json")
    again = OODDetector.load(path)
    assert again.threshold == det.threshold
    np.testing.assert_array_equal(again.components, det.components)
    path.write_text('{"format": "something else"}')
    with pytest.raises(ModelFileError, match="not an atmospec OOD detector"):
        OODDetector.load(path)
