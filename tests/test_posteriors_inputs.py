"""What the NPE commands do with their users' inputs: a config of one's own, a model folder
trained or calibrated again, an output folder used twice, a model without a passing record."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from atmospec.errors import FileFormatError, ModelInputError  # noqa: E402
from atmospec.posteriors.calibration import CALIBRATION_FILE, read_calibration  # noqa: E402
from atmospec.posteriors.pipeline import (  # noqa: E402
    NPEConfig,
    calibrate_model,
    read_config,
    train_npe,
)

TINY = """[npe]
name = "tiny"
n_train = 300
[npe.model]
width = 16
[npe.training]
max_epochs = 1
[npe.calibration]
n_tests = 20
"""


@pytest.mark.parametrize(
    ("edit", "said"),
    [
        # a misspelt key of a table: read as given it was a TypeError traceback at training
        # ([npe.model], [npe.training], [npe.noise]) or silently dropped ([npe.calibration])
        (("width = 16", "widht = 16"), r"unknown keys in \[npe.model\]: \['widht'\]"),
        (("max_epochs = 1", "epochs = 1"), r"unknown keys in \[npe.training\]: \['epochs'\]"),
        (("n_tests = 20", "n_test = 20"), r"unknown keys in \[npe.calibration\]: \['n_test'\]"),
        (("[npe.model]", "[npe.noise]\nflor = 0.1\n[npe.model]"), r"\[npe.noise\]: \['flor'\]"),
        # values no simulation can use: numpy tracebacks at training before
        (("n_train = 300", "n_train = -5"), r"n_train = -5: expected an integer >= 1"),
        (
            ("[npe.model]", "[npe.noise]\nsnr_range = [30.0, 3.0]\n[npe.model]"),
            r"snr_range = \[30.0, 3.0\]: expected finite numbers with low <= high",
        ),
        (("n_tests = 20", 'tolerance = "x"'), r"tolerance = 'x': expected a number in \(0, 1\)"),
    ],
)
def test_config_refuses_unknown_and_invalid_table_keys(
    tmp_path: Path, edit: tuple[str, str], said: str
) -> None:
    path = tmp_path / "mine.toml"
    assert read_config(_write(path, TINY)).calibration["n_tests"] == 20  # the config is good
    with pytest.raises(FileFormatError, match=r"mine\.toml: .*" + said):
        read_config(_write(path, TINY.replace(*edit)))


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def toy_config(tmp_path_factory: pytest.TempPathFactory) -> NPEConfig:
    """A one-parameter grid (two power laws) and a config of a tiny NPE on it (~1 s)."""
    from atmospec.grids import ModelGrid

    d = tmp_path_factory.mktemp("toy")
    w = np.linspace(1.0, 2.0, 40)
    with ModelGrid.create(d / "toy.h5", w, ("teff",), name="toy") as g:
        g.add({"teff": 1000.0}, w**-1)
        g.add({"teff": 2000.0}, w**-2)
    return NPEConfig(
        name="toy-npe",
        grid=str(d / "toy.h5"),
        wave_range=(1.1, 1.9),
        n_train=256,
        n_val=64,
        model={"n_features": 8, "width": 16, "depth": 1, "transforms": 1},
        training={"max_epochs": 1, "batch_size": 128, "num_threads": 1},
        calibration={"n_tests": 40, "n_samples": 50, "tolerance": 0.03},
    )


def test_training_again_without_calibration_leaves_no_record_of_the_old_model(
    toy_config: NPEConfig, tmp_path: Path
) -> None:
    """`posterior train --no-calibrate --out FOLDER` over a calibrated model kept the old
    model's calibration.json: read for the new weights (predict's routing reads it), it
    claimed a coverage nobody measured on them."""
    folder = tmp_path / "npe"
    train_npe(toy_config, folder)  # calibrated
    assert (folder / CALIBRATION_FILE).is_file()
    other = NPEConfig(**{**toy_config.__dict__, "seed": 1})
    train_npe(other, folder, calibrate=False)  # other weights, no calibration
    assert not (folder / CALIBRATION_FILE).exists()
    assert not (folder / "calibration.png").exists()
    assert "unreadable" in read_calibration(folder).problem


def test_a_record_measured_on_other_weights_is_not_this_models(
    toy_config: NPEConfig, tmp_path: Path
) -> None:
    """`atmospec calibrate A --out B` (B another model's folder) wrote A's coverage where B's
    is read: the record now names the weights it measured, and another model's is refused."""
    a, b = tmp_path / "a", tmp_path / "b"
    train_npe(toy_config, a)
    train_npe(NPEConfig(**{**toy_config.__dict__, "seed": 1}), b, calibrate=False)
    own = read_calibration(a)  # its own record, written by training
    assert own.problem == "" and np.isfinite(own.max_error)
    calibrate_model(a, out=b)
    theirs = read_calibration(b)
    assert not theirs.passed and "other weights" in theirs.problem
    calibrate_model(b, out=b)  # measured on B's own weights: read again
    assert read_calibration(b).problem == ""


def test_calibrate_refuses_no_tests(toy_config: NPEConfig, tmp_path: Path) -> None:
    """n_tests=0 was read as 'not given' and ran the config's count instead."""
    folder = tmp_path / "npe"
    train_npe(toy_config, folder, calibrate=False)
    for n_tests, n_samples in ((0, None), (None, 0), (-3, None)):
        with pytest.raises(ModelInputError, match="n_tests >= 1 and n_samples >= 1"):
            calibrate_model(folder, n_tests=n_tests, n_samples=n_samples)


# ------------------------------------------------------------------ posterior sample (CLI)
HD3651B = "10703_10070"  # 785 K, below Diamondback's 900 K: warned, refused with the option


def _sample(*args: str) -> tuple[int, str]:
    from typer.testing import CliRunner

    from atmospec.cli.main import app

    res = CliRunner(env={"COLUMNS": "400"}).invoke(app, ["posterior", "sample", *args])
    return res.exit_code, " ".join(res.output.split())


def test_a_refused_file_keeps_no_samples_of_an_earlier_run(splat_dir: Path, tmp_path: Path) -> None:
    """A run into a folder used before said 'refused: no samples written' (and recorded no
    samples) while the earlier run's NAME_samples.csv stayed beside posterior.json."""
    out = tmp_path / "post"
    code, _ = _sample(HD3651B, "--n", "200", "-o", str(out))
    assert code == 0 and (out / f"{HD3651B}_samples.csv").is_file()
    code, text = _sample(HD3651B, "--n", "200", "--refuse-outside", "-o", str(out))
    assert code == 3 and "no samples written" in text
    assert not (out / f"{HD3651B}_samples.csv").exists()
    assert (out / f"{HD3651B}_warnings.json").is_file()  # this run's warnings


def test_sampling_with_an_npe_without_a_passing_calibration_says_so(
    splat_dir: Path, tmp_path: Path
) -> None:
    """An NPE whose calibration record is missing (or failed) sampled without a word, while
    `predict` will not use it: the run now warns once, in every file's warnings and in
    posterior.json."""
    from atmospec.models import model_path

    model = tmp_path / "npe"
    shutil.copytree(model_path("npe_dback24"), model)
    (model / CALIBRATION_FILE).unlink()
    out = tmp_path / "post"
    code, text = _sample("11250_11052", "--model", str(model), "--n", "200", "-o", str(out))
    assert code == 0
    assert f"warning: NPE {model}: calibration not usable" in text
    record = json.loads((out / "posterior.json").read_text())
    assert record["calibration"]["passed"] is False
    assert any("calibration not usable" in w for w in record["objects"]["11250_11052"]["warnings"])
    # the shipped model's record passes: no such warning
    code, text = _sample("11250_11052", "--n", "200", "-o", str(tmp_path / "shipped"))
    assert code == 0 and "calibration" not in text
    assert json.loads((tmp_path / "shipped" / "posterior.json").read_text())["calibration"][
        "passed"
    ]
