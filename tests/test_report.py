"""atmospec report: one self-contained HTML page for predict and fit runs."""

# ruff: noqa: F811  (the `tiny` fixture is imported from _inference_support)
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from _inference_support import synthetic_spectrum, tiny  # noqa: F401 (fixture)

pytestmark = pytest.mark.realdata


def test_report_of_predict_run(tiny: dict[str, Any], tmp_path: Path) -> None:
    from atmospec.prediction.predictor import Predictor
    from atmospec.report import write_report

    pred = Predictor(tiny["estimator"], grid=tiny["grid"], ood=tiny["detector"], draws=300)
    specs = [
        synthetic_spectrum(
            tiny["grid"],
            {"teff": t, "logg": 5.0, "mh": 0.0, "fsed": 2.0},
            snr=30,
            seed=1,
            name=f"obj{int(t)}",
        )
        for t in (1200.0, 1800.0)
    ]
    pred.predict(specs).write(tmp_path / "run")
    html = write_report(tmp_path / "run").read_text()
    assert html.count("data:image/png;base64,") == 4  # fit + corner per object
    assert "obj1200" in html and "obj1800" in html and "teff" in html
    assert "teff [K]" in html and "logg [dex(cm/s2)]" in html  # headers carry units
    assert not re.search(r'(src|href)="(http|//)', html)  # no external resources


def test_report_of_fit_run_and_cli(tiny: dict[str, Any], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from atmospec.cli.fit import write_fit
    from atmospec.cli.main import app
    from atmospec.fitting.chi2 import fit_chi2

    spec = synthetic_spectrum(
        tiny["grid"],
        {"teff": 1500.0, "logg": 5.0, "mh": 0.0, "fsed": 2.0},
        snr=30,
        seed=2,
        name="fitme",
    )
    write_fit(fit_chi2(spec, tiny["grid"]), tmp_path / "fit")
    res = CliRunner().invoke(app, ["report", str(tmp_path / "fit")])
    assert res.exit_code == 0, res.output
    html = (tmp_path / "fit" / "report.html").read_text()
    assert "chi2_red" in html and "fitme" in html and "data:image/png;base64," in html
    res = CliRunner().invoke(app, ["report", str(tmp_path / "nowhere")])
    assert res.exit_code != 0


def test_report_says_when_a_spectrum_is_coarser_or_finer_than_the_models() -> None:
    # The row's note about a coarse spectrum reaches the object's text in the report, with
    # or without several grids; notes about other things (which model served) do not.
    import pandas as pd

    from atmospec.prediction.coverage import _low_resolution_note
    from atmospec.report.build import _row_sentences

    note = _low_resolution_note(78.0, 75.0, "model dback24-spex")
    df = pd.DataFrame({"notes": [f"served by dback24-spex instead of npe_dback24; {note}"]})
    said = _row_sentences(df, 0)
    assert said.startswith("pixels at lambda/dlambda 78: the spectrum resolves at most R 39")
    assert "served by" not in said and "atmospec fit" in said
    # the same for a resolving power the user stated (--resolution 40 on a fine sampling)
    stated = _low_resolution_note(470.0, 75.0, "model dback24-spex", declared=40.0)
    df = pd.DataFrame({"notes": [f"served by dback24-spex instead of npe_dback24; {stated}"]})
    assert _row_sentences(df, 0).startswith("its stated resolving power R 40 is coarser")
    # and a spectrum of higher resolution, smoothed to the models'
    import numpy as np

    from atmospec.resolution import to_model_resolution
    from atmospec.spectrum import Spectrum

    w = np.linspace(1.0, 2.0, 20001)
    _, smoothed = to_model_resolution(Spectrum(w, np.ones(w.size), np.ones(w.size)), 120.0)
    df = pd.DataFrame({"notes": [f"served by dback24-spex instead of npe_dback24; {smoothed[0]}"]})
    # median lambda/dlambda 1.5 / 5e-5 = 30000: R taken as 15000
    assert _row_sentences(df, 0).startswith("smoothed from R 15000 (from the pixels")


def test_report_of_a_fit_leads_with_its_warnings(splat_dir: Path, tmp_path: Path) -> None:
    # HD 3651B (785 K from its luminosity, Sanghi et al. 2023) fitted with Diamondback, which
    # starts at 900 K, answers with the grid's last node and warns that the Teff is a limit.
    # The CLI printed that warning and fit.json held it, but the report of the run folder
    # showed the notes only: the page read as a measurement of 900 K.
    from atmospec import library
    from atmospec.cli.fit import write_fit
    from atmospec.fitting import fit
    from atmospec.report import write_report

    res = fit(library.load("10703_10070"), "dback24", discrepancy=None)
    assert res.warnings, "the edge-cell warning this test reads is gone"
    write_fit(res, tmp_path / "fit")
    html = write_report(tmp_path / "fit").read_text(encoding="utf-8")
    import html as html_lib

    text = html_lib.unescape(re.sub(r"<[^>]+>", " ", html))
    for warning in res.warnings:
        assert warning in text
    # before the tables: the first thing read under "Fit"
    assert text.index(res.warnings[0]) < text.index("chi2_red")
