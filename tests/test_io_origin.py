"""A spectrum atmospec wrote and reads back is named by the file read (messages say which file
the user gave); where it was written from (a library key, another file) stays in meta."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from atmospec.errors import UnitError
from atmospec.io import read, write
from atmospec.spectrum import Spectrum

SPEX_KEY = "10703_10070"  # HD 3651B


def _library_like(**kw: object) -> Spectrum:
    """A normalised spectrum whose meta says it came from a library key, as library.load's."""
    w = np.linspace(0.9, 2.4, 50)
    return Spectrum(w, np.ones(50), np.full(50, 0.05), name="HD 3651B", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["hd.ecsv", "hd.fits", "hd.fits.gz"])
def test_read_back_names_the_file_and_keeps_the_origin(tmp_path: Path, name: str) -> None:
    s = _library_like(meta={"source": SPEX_KEY, "spt": "T8.0"})
    path = write(s, tmp_path / name)
    back = read(path)
    assert back.source == str(path) and back.meta["origin"] == SPEX_KEY
    assert back.name == "HD 3651B" and back.meta["spt"] == "T8.0"
    with pytest.raises(UnitError, match=f"^{path}: the flux is normalised"):
        back.to_flux_unit("Jy")
    # written again and read again: the first origin is kept, the source is the new file
    again = read(write(back, tmp_path / f"again_{name}"))
    assert again.source == str(tmp_path / f"again_{name}") and again.meta["origin"] == SPEX_KEY


def test_read_back_of_a_spectrum_without_source_names_the_file(tmp_path: Path) -> None:
    path = write(_library_like(), tmp_path / "plain.ecsv")
    back = read(path)
    assert back.source == str(path) and "origin" not in back.meta


@pytest.mark.realdata
def test_posterior_sample_and_fit_name_the_file_given(splat_dir: Path, tmp_path: Path) -> None:
    """An ECSV written from a library spectrum, without errors: both refuse it naming the file
    given (once they named the library key)."""
    from typer.testing import CliRunner

    from atmospec.cli.main import app
    from atmospec.library import load

    path = load(SPEX_KEY).copy(uncertainty=None).write(tmp_path / "hd3651b.ecsv")
    runner = CliRunner(env={"COLUMNS": "400"})
    res = runner.invoke(
        app, ["posterior", "sample", str(path), "--n", "50", "-o", str(tmp_path / "post")]
    )
    assert res.exit_code == 4, res.output
    lines = [ln for ln in res.output.splitlines() if ": error: " in ln]
    assert lines and lines[0].startswith(f"{path}: error: the spectrum has no uncertainties")
    record = json.loads((tmp_path / "post" / "posterior.json").read_text())
    error = record["objects"]["hd3651b"]["error"]
    assert error.startswith(f"{path}: ") and f"{SPEX_KEY}:" not in error
    res = runner.invoke(app, ["fit", str(path), "-g", "dback24", "-o", str(tmp_path / "fit")])
    assert res.exit_code != 0, res.output  # the CLI's handler prints the error, as it says it
    said = str(res.exception)
    assert said.startswith(f"{path}: the spectrum has no uncertainties"), said
    assert f"{SPEX_KEY}:" not in said
