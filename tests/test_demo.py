"""The main job: `atmospec demo` on the real embedded data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from astropy.table import Table

pytestmark = pytest.mark.realdata


def test_demo_recovers_literature_teff(splat_dir: Path, tmp_path: Path) -> None:
    from atmospec.demo import BENCHMARKS, DEMO_GRIDS, run_demo

    result = run_demo(tmp_path / "demo", quiet=True)
    out = tmp_path / "demo"
    table = Table.read(out / "results.ecsv", format="ascii.ecsv")
    assert len(table) == len(BENCHMARKS) * len(DEMO_GRIDS)
    for row in table:
        lit = BENCHMARKS[str(row["key"])]
        # Literature values: HD 3651B 818 K, GJ 570D 828 K (CONTEXT.md). Grid fits of SpeX
        # prism spectra are accurate to ~100-200 K (the grids are 100 K apart), so every fit
        # must land within 200 K.
        assert row["lit_teff"] == lit["teff"]
        assert abs(row["teff"] - lit["teff"]) <= 200, (row["object"], row["grid"], row["teff"])
        # dof = fitted pixels - (varying grid parameters + scale): burrows06 fits teff, logg,
        # mh, cloudy (+ scale = 5); BT-Settl's alpha is tied to mh (teff, logg, mh + scale = 4).
        expected_fitted = {"burrows06": 5, "btsettl08": 4}[str(row["grid"])]
        assert row["n_fitted"] == expected_fitted
        assert row["dof"] == row["n_pix"] - expected_fitted
    record = json.loads((out / "results.json").read_text())
    credits = " ".join(record["provenance"]["data_credits"])
    assert "SpeX Prism Library" in credits and "Burrows" in credits and "BT-Settl" in credits
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["GJ_570D_fit.png", "HD_3651B_fit.png"]
    assert all((out / p).stat().st_size > 10_000 for p in pngs)
    assert result.wall_time_s < 180  # the budget for the demo


def test_demo_cli(splat_dir: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from atmospec.cli.main import app

    res = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "d"), "--quiet"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "d" / "results.json").is_file()
