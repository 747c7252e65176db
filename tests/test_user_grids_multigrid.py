"""A user's own grid in a multi-grid prediction: its parameters, its model of mismatch (learned
with ``atmospec discrepancy fit`` and given as ``--grids GRID=FOLDER``), and the refusals."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from atmospec.discrepancy import DiscrepancyModel
from atmospec.errors import ChecksumError, CoverageError, IncompatibleModelError
from atmospec.grids import ModelGrid, grid_identity
from atmospec.multigrid.routes import parse_routes

WAVE = np.linspace(0.9, 2.4, 60)  # micron


def _planck_grid(path: Path, teffs, loggs=(4.0, 5.0), name="mine", wave=WAVE) -> ModelGrid:
    """A toy grid of Planck shapes over teff and logg (mh fixed at 0, as a solar grid)."""
    with ModelGrid.create(path, wave, ("teff", "logg", "mh"), name=name) as w:
        for t in teffs:
            for g in loggs:
                w.add(
                    {"teff": t, "logg": g, "mh": 0.0},
                    1e10 * wave**-5 / np.expm1(14388 / (wave * t)),
                )
    return ModelGrid(path)


def _toy_mismatch(grid_name: str, **meta) -> DiscrepancyModel:
    """A 5 % fractional floor, no modes, learned (in name) for ``grid_name``."""
    return DiscrepancyModel(
        WAVE, np.array([1000.0]), np.full((1, WAVE.size), 0.05), np.zeros((1, 1, WAVE.size)), grid_name,
        misfit_threshold=2.0, meta=dict(meta),
    )  # fmt: skip


def _subset(path: Path, keep, name: str, names=("teff", "logg", "mh")) -> str:
    """BT-Settl 2008 nodes chosen by ``keep(params)`` written as a user grid file."""
    from atmospec.grids import load_grid

    bt = load_grid("btsettl08")
    rows = np.flatnonzero(keep(bt.params).to_numpy())
    flux = bt.flux(rows)
    with ModelGrid.create(path, bt.wavelength, names, name=name, flux_unit=bt.flux_unit) as w:
        for k, i in enumerate(rows):
            w.add({p: float(bt.params[p].iloc[i]) for p in names}, flux[k], label=f"bt{i}")
    return str(path)


def test_grids_option_names_a_model_of_mismatch_folder(tmp_path):
    # `--grids ...,GRID=FOLDER`: a folder written by `atmospec discrepancy fit` makes the grid
    # answer by chi-square under that model (before: it was read as a learned model's name
    # and refused as "no pretrained model named ..."; no way to use a user's model at all)
    folder = _toy_mismatch("mine").save(tmp_path / "mine-mismatch")
    first, mine = parse_routes(f"dback24=default,runs/mine.h5={folder}")
    assert (first.model, first.discrepancy) == ("default", None)
    assert (mine.grid, mine.model, mine.discrepancy) == ("runs/mine.h5", None, str(folder))
    assert mine.label == "mine" and "model of mismatch" in mine.describe()


def test_model_of_mismatch_is_refused_for_a_grid_whose_content_changed(tmp_path):
    # The model of mismatch records the sha256 of the grid's content it was learned on; the
    # same grid name with one spectrum fewer is another grid (its chi-square ranks other nodes)
    from atmospec.discrepancy.route import resolve_discrepancy

    grid = _planck_grid(tmp_path / "a" / "mine.h5", (900.0, 1000.0, 1100.0))
    model = _toy_mismatch("mine", grid_sha256=grid_identity(grid).sha256)
    data = SimpleNamespace(wavelength=WAVE)
    assert resolve_discrepancy(model, grid, data, []) is model
    changed = _planck_grid(tmp_path / "b" / "mine.h5", (900.0, 1000.0))
    with pytest.raises(ChecksumError, match=r"b/mine\.h5: the content of grid 'mine'"):
        resolve_discrepancy(model, changed, data, [])


def test_learning_a_model_of_mismatch_for_a_grid_outside_the_library_range_is_refused(tmp_path):
    # A 3-5 um grid shares no pixel with the SpeX prism library (0.7-2.5 um): before, every
    # library spectrum was "skipped" one by one and the error said "only 0 spectra inside".
    from atmospec.discrepancy.learn import fit_discrepancy

    path = tmp_path / "mband.h5"
    _planck_grid(path, (900.0, 1000.0), wave=np.linspace(3.0, 5.0, 40), name="mband")
    with pytest.raises(CoverageError, match=r"mband\.h5: grid 'mband' spans 3\.00-5\.00 um"):
        fit_discrepancy(str(path))


@pytest.mark.realdata
def test_grid_without_teff_is_refused_by_name(splat_dir, tmp_path):
    # Coverage is decided by Teff; before, the grid was accepted and every spectrum failed
    # later with "KeyError: 'teff'".
    from atmospec.multigrid import MultiGridPredictor

    flat = _subset(
        tmp_path / "flat.h5", lambda p: (p.teff == 1500) & (p.mh == 0), "flat", ("logg",)
    )
    with pytest.raises(IncompatibleModelError, match=r"flat\.h5: grid 'flat' has no teff axis"):
        MultiGridPredictor(parse_routes(f"dback24=default,{flat}"), ood=False, draws=100)


@pytest.mark.realdata
def test_model_of_mismatch_of_another_grid_is_refused(splat_dir, tmp_path):
    # BT-Settl's shipped model describes BT-Settl's errors over all its nodes, not those of a
    # user's subset; before, both the Python argument and (had it existed) a route used it.
    from atmospec.discrepancy import load_discrepancy
    from atmospec.multigrid import MultiGridPredictor

    mine = _subset(tmp_path / "mine.h5", lambda p: (p.mh == 0) & (p.teff <= 2000), "mine")
    routes = parse_routes(f"dback24=default,{mine}")
    with pytest.raises(IncompatibleModelError, match="model of grid 'btsettl08' cannot be used"):
        MultiGridPredictor(
            routes, ood=False, draws=100, discrepancy={mine: load_discrepancy("btsettl08")}
        )
    other = _toy_mismatch("other").save(tmp_path / "other-mismatch")
    with pytest.raises(IncompatibleModelError, match="model of grid 'other' cannot be used"):
        MultiGridPredictor(parse_routes(f"dback24=default,{mine}={other}"), ood=False, draws=100)


@pytest.mark.realdata
def test_solar_grid_answering_alone_gives_no_metallicity_and_says_so(splat_dir, tmp_path):
    # HD 3651B (~800 K) lies below Diamondback's 900 K: a solar-metallicity grid (mh a single
    # value, so not a fitted parameter) answers alone. No grid measured [M/H]: the combined mh
    # is NaN and the notes say why; before, its corner figure raised "autodetected range of
    # [nan, nan]" and the whole partition failed after writing the other figures.
    from atmospec import library
    from atmospec.multigrid import MultiGridPredictor

    solar = _subset(tmp_path / "solar.h5", lambda p: (p.mh == 0) & (p.teff <= 1500), "solar")
    mp = MultiGridPredictor(parse_routes(f"dback24=default,{solar}"), ood=False, draws=200)
    res = mp.predict(library.load("10703_10070"))
    assert res.combined[0].weights[solar] == 1.0
    j = res.param_names.index("mh")
    assert np.isnan(res.samples[0][:, j]).all()
    assert any(
        n.startswith(f"mh: no grid that answered varies it ({solar}: fixed at 0)")
        for n in res.notes[0]
    )
    assert any(
        "no model of mismatch" in n and f"--grids ...,{solar}=FOLDER" in n for n in res.notes[0]
    )
    assert [a.get_xlabel() for a in res.corner(0).axes if a.get_xlabel()] == ["teff", "logg"]
    # without a model of mismatch the grid answered under a fitted error floor: the row says
    # so and by how much (the grid's own note; it never reached the row before)
    assert any(
        n.startswith("solar: no model-error covariance for this grid; errors inflated by a")
        for n in res.notes[0]
    ), res.notes[0]


@pytest.mark.realdata
def test_model_of_mismatch_learned_for_a_user_grid_is_used_and_recalibrated(splat_dir, tmp_path):
    # The documented path: learn the model of mismatch of one's own grid from the library,
    # give it with --grids GRID=FOLDER; the grid then gets a misfit score and the notes name
    # the model. Its temperature can be recomputed (before: "no grid called 'mine'", the
    # grid's own name looked up in the cache instead of the file it was learned from).
    from atmospec import library
    from atmospec.discrepancy.learn import fit_discrepancy, recalibrate_temperature
    from atmospec.multigrid import MultiGridPredictor

    mine = _subset(
        tmp_path / "mine.h5", lambda p: p.mh.isin([-0.5, 0.0, 0.5]) & (p.teff <= 2600), "mine"
    )
    model, _ = fit_discrepancy(mine, max_spectra=60, n_iter=0, n_modes=2)
    assert model.meta["grid_sha256"] == grid_identity(ModelGrid(mine)).sha256
    folder = model.save(tmp_path / "mine-mismatch")
    mp = MultiGridPredictor(parse_routes(f"dback24=default,{mine}={folder}"), ood=False, draws=200)
    res = mp.predict(library.load("11250_11052"))  # GD 165B, an L4 inside both grids
    assert np.isfinite(res.estimates[0][mine].misfit)
    assert any(n.startswith(f"{mine}: model of mismatch from {folder}") for n in res.notes[0])
    assert recalibrate_temperature(folder).temperature >= 1.0


@pytest.mark.realdata
def test_discrepancy_fit_with_too_few_spectra_says_so_in_one_line(splat_dir, tmp_path):
    # Before: a ValueError traceback. Now the reason, exit status 2, and no folder written.
    from typer.testing import CliRunner

    from atmospec.cli.main import app

    mine = _subset(tmp_path / "mine.h5", lambda p: (p.mh == 0) & (p.teff <= 2600), "mine")
    out = tmp_path / "mine-mismatch"
    args = ["discrepancy", "fit", "--grid", mine, "--out", str(out), "--max-spectra", "5"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert "only 5 library spectra inside the grid; at least 40 are needed" in res.output
    assert not out.exists()


@pytest.mark.realdata
def test_grids_listed_wrongly_is_a_usage_error_not_a_traceback(splat_dir, tmp_path):
    # The order and names of --grids are the user's to fix: a primary grid without a learned
    # model, a grid listed twice. They used to reach the terminal as a ValueError traceback.
    from typer.testing import CliRunner

    from atmospec.cli.main import app

    for grids, said in (
        ("btsettl08,dback24=default", "the first grid (btsettl08) is the primary one"),
        ("dback24=default,btsettl08,btsettl08", "a grid is listed twice"),
    ):
        res = CliRunner().invoke(
            app, ["predict", "10703_10070", "--grids", grids, "--out", str(tmp_path / "o")]
        )
        assert res.exit_code == 2, (grids, res.output)
        assert "--grids" in res.output and said in " ".join(res.output.split()), res.output
        assert res.exception is None or isinstance(res.exception, SystemExit)
        assert not (tmp_path / "o" / "predictions.csv").exists()


@pytest.mark.realdata
def test_a_grid_of_one_band_says_its_answer_rests_on_that_band(splat_dir, tmp_path):
    # A user grid that spans 1.00-1.35 um answers a SpeX spectrum (0.9-2.45 um fitted) from
    # the J band alone: its answer enters the combination, so its row must say on how many of
    # the spectrum's pixels it rests; a grid spanning the whole range says nothing.
    from atmospec import library
    from atmospec.multigrid.estimate import chi2_estimate

    gd165b = library.load("11250_11052")
    jband = _planck_grid(
        tmp_path / "j.h5", (1600.0, 1800.0, 2000.0), name="jband", wave=np.linspace(1.0, 1.35, 60)
    )
    est = chi2_estimate(gd165b, jband, draws=100, rng=np.random.default_rng(0))
    said = [n for n in est.notes if n.startswith("jband: answers from ")]
    assert len(said) == 1 and "outside the jband wavelength range were not fitted" in said[0]
    n_fit, n_all = (int(x) for x in re.findall(r"from (\d+) of the spectrum's (\d+)", said[0])[0])
    assert n_fit < 0.4 * n_all  # J is about a fifth of 0.9-2.45 um
    whole = _planck_grid(tmp_path / "w.h5", (1600.0, 1800.0, 2000.0), name="whole",
                         wave=np.linspace(0.6, 2.6, 200))  # fmt: skip
    est = chi2_estimate(gd165b, whole, draws=100, rng=np.random.default_rng(0))
    assert not any("answers from" in n for n in est.notes)
