"""`predict` output folders: one run per --out, options kept, foreign files kept, exit codes."""

# ruff: noqa: F811  (the `tiny` fixture is imported from _inference_support)
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from _inference_support import synthetic_spectrum, tiny  # noqa: F401 (fixture)

from atmospec.errors import ChecksumError
from atmospec.prediction.runfolder import RunFolder, RunFolderError

pytestmark = pytest.mark.realdata


@pytest.fixture()
def spectra(tiny: dict[str, Any], tmp_path: Path) -> list[Path]:
    """Four synthetic ECSV spectra (Teff 1200-1800 K, S/N 40)."""
    d = tmp_path / "spectra"
    d.mkdir()
    paths = []
    for i, teff in enumerate((1200.0, 1400.0, 1600.0, 1800.0)):
        point = {"teff": teff, "logg": 5.0, "mh": 0.0, "fsed": 2.0}
        spec = synthetic_spectrum(tiny["grid"], point, snr=40, seed=i, name=f"s{i}")
        paths.append(spec.write(d / f"s{i}.ecsv"))
    return paths


def _predictor(tiny: dict[str, Any], draws: int = 100) -> Any:
    from atmospec.prediction.predictor import Predictor

    return Predictor(tiny["estimator"], grid=tiny["grid"], ood=tiny["detector"], draws=draws)


def _run(tiny, paths, out, draws=100, **kw) -> Any:
    from atmospec.prediction.batch import BatchOptions, run_catalog
    from atmospec.prediction.sources import Catalog

    options = BatchOptions(partition_size=2, plots=False, **kw)
    return run_catalog(Catalog.from_files(paths), _predictor(tiny, draws), out, options)


def test_rerun_with_other_draws_refused_unless_overwrite(tiny, spectra, tmp_path) -> None:
    out = tmp_path / "run"
    _run(tiny, spectra[:2], out, draws=100)
    with pytest.raises(RunFolderError, match=r"draws: 100 -> 300.*--overwrite"):
        _run(tiny, spectra[:2], out, draws=300)
    with pytest.raises(RunFolderError, match=r"different catalog.*n_rows: 2 -> 4"):
        _run(tiny, spectra, out, draws=100)  # another catalogue into the same folder
    run = _run(tiny, spectra, out, draws=300, overwrite=True)
    assert (run.n_rows_done_before, run.n_predicted, run.exit_code) == (0, 4, 0)
    rows = pd.read_csv(out / "predictions.csv")
    assert len(rows) == 4  # rows of one setting only


def test_concurrent_run_into_one_out_is_refused(tiny, spectra, tmp_path) -> None:
    out = tmp_path / "run"
    other = RunFolder(out)
    other.begin({"kind": "predict", "options": {"someone": "else"}})
    try:
        with pytest.raises(RunFolderError, match="another atmospec run"):
            _run(tiny, spectra, out)
    finally:
        other.release()
    assert not (out / "predictions.csv").exists()


def test_foreign_predictions_table_is_never_overwritten(tiny, spectra, tmp_path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "predictions.csv").write_text("object,teff\nmine,1234\n")
    with pytest.raises(RunFolderError, match="not written by an atmospec run"):
        _run(tiny, spectra, out)
    assert (out / "predictions.csv").read_text() == "object,teff\nmine,1234\n"


def test_truncated_part_is_an_error_not_a_nan_row(tiny, spectra, tmp_path) -> None:
    out = tmp_path / "run"
    _run(tiny, spectra, out)
    part = sorted((out / "parts").glob("part-*.json"))[0]
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
    with pytest.raises(ChecksumError, match=f"{part.name}: the file does not match"):
        _run(tiny, spectra, out)
    from atmospec.prediction.batch import merge_parts

    with pytest.raises(ChecksumError, match="changed or corrupted after writing"):
        merge_parts(out)


def test_absurd_flux_is_a_failure_with_a_reason_not_a_nan_row(tiny, spectra, tmp_path) -> None:
    """Flux x1e300 used to give chi2_red NaN, S/N 0 and OOD False in a normal-looking row."""
    from atmospec.io import read

    spec = read(spectra[0])
    assert spec.uncertainty is not None
    bad = tmp_path / "spectra" / "huge.ecsv"
    spec.__class__(spec.wavelength, spec.flux * 1e300, spec.uncertainty * 1e300, name="huge").write(
        bad
    )
    run = _run(tiny, [spectra[1], bad], tmp_path / "run")
    assert (run.n_predicted, run.n_unusable, run.exit_code) == (1, 1, 3)
    fails = pd.read_csv(tmp_path / "run" / "failures.csv")
    assert "beyond 1e+100" in fails["error"][0] and fails["source"][0].endswith("huge.ecsv")
    rows = pd.read_csv(tmp_path / "run" / "predictions.csv")
    numbers = rows[["teff_median", "logg_median", "ood_score", "chi2_red", "snr"]].to_numpy()
    assert np.isfinite(numbers).all() and rows["snr"][0] > 10  # the healthy S/N 40 spectrum


def _cli(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    code = "from atmospec.cli.main import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=300
    )


def test_cli_exit_codes_and_clear_errors(tiny, spectra, tmp_path) -> None:
    model = tmp_path / "model"
    tiny["estimator"].save(model)
    base = ["predict", "--model", str(model), "--no-plots", "--no-ood", "--draws", "50"]
    broken = tmp_path / "broken.csv"
    broken.write_text("not a spectrum\n")
    proc = _cli([*base, str(broken), "--out", str(tmp_path / "all-failed")])
    assert proc.returncode == 4, proc.stderr
    assert "no spectrum could be used" in proc.stderr and "predictions.ecsv" not in proc.stdout
    assert not (tmp_path / "all-failed" / "predictions.ecsv").exists()

    # in-process from here (the console entry point turns atmospec errors into exit 2)
    from typer.testing import CliRunner

    from atmospec.cli.main import app

    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    res = CliRunner().invoke(app, [*base, str(spectra[0]), "--out", str(a_file)])
    assert isinstance(res.exception, RunFolderError)
    assert "existing file, not a folder" in str(res.exception)
    res = CliRunner().invoke(
        app, [*base, str(spectra[0]), "--out", str(tmp_path / "c0"), "--chunk", "0"]
    )
    assert res.exit_code == 2 and "must be >= 1" in " ".join(res.output.split())
    for opt, value in (("--draws", "0"), ("--max-masked", "1.5"), ("--assume-snr", "-3")):
        res = CliRunner().invoke(
            app, [*base, str(spectra[0]), "--out", str(tmp_path / "bad"), opt, value]
        )
        assert res.exit_code == 2 and opt in " ".join(res.output.split()), (opt, res.output)
