"""Several grids side by side: coverage, the combined estimate, chi-square node posteriors,
and the model-error augmentation of training sets."""

from __future__ import annotations

import json
import re
import zlib

import numpy as np
import pytest

from atmospec.multigrid import GridEstimate, combine
from atmospec.multigrid.combine import reference_teff, shares
from atmospec.multigrid.predictor import parse_routes


def _est(name, teff, logg=5.0, lo=500.0, hi=3500.0, spread=20.0, at_bound=False, misfit=0.5):
    rng = np.random.default_rng(zlib.crc32(name.encode()))  # hash() is salted per process
    s = np.stack(
        [
            rng.normal(teff, spread, 4000),
            rng.normal(logg, 0.05, 4000),
            rng.normal(0.0, 0.05, 4000),
        ],
        axis=1,
    ).astype(np.float32)
    return GridEstimate(
        name,
        "chi2",
        ("teff", "logg", "mh"),
        s,
        {"teff": (lo, hi), "logg": (3.0, 5.5), "mh": (-0.5, 0.5)},
        np.array([at_bound, False, False]),
        misfit=misfit,
    )


def test_grid_below_its_range_is_left_out_and_named():
    # An 800 K T dwarf: Diamondback (900-2400 K) presses its lower bound; two grids that reach
    # 500-700 K agree on ~800 K. The combined answer comes from those two, with a note.
    ests = {
        "dback24": _est("dback24", 900.0, lo=900.0, hi=2400.0, spread=3.0, at_bound=True),
        "btsettl08": _est("btsettl08", 790.0, lo=500.0, hi=3500.0),
        "burrows06": _est("burrows06", 810.0, lo=700.0, hi=2000.0),
    }
    assert reference_teff(ests) == pytest.approx(800.0, abs=15)
    c = combine(ests, draws=4000, rng=np.random.default_rng(1))
    assert c.covers == {"dback24": False, "btsettl08": True, "burrows06": True}
    assert c.weights["dback24"] == 0.0
    med = float(np.median(c.samples[:, 0]))
    assert 790 <= med <= 810
    assert any("outside the parameters of dback24" in n for n in c.notes)


def test_combined_interval_contains_the_spread_between_grids():
    # Two grids 300 K apart, each +-20 K: the combined 95 % interval must span both answers,
    # and the disagreement (intervals do not overlap) must be said in words.
    ests = {"a": _est("a", 1500.0), "b": _est("b", 1800.0)}
    c = combine(ests, draws=8000, rng=np.random.default_rng(2))
    lo, hi = np.percentile(c.samples[:, 0], [2.5, 97.5])
    assert lo < 1500 and hi > 1800
    assert c.disagree and c.spread["teff"] == pytest.approx(300, abs=10)
    assert any("disagree" in n for n in c.notes)
    # The row's notes are joined with "; " and the report splits them there: the sentence
    # reaches it whole, with every grid's answer and the spread.
    import pandas as pd

    from atmospec.report.build import _row_sentences

    row = pd.DataFrame({"notes": ["; ".join(c.notes)], "grids_used": ["a;b"]})
    said = _row_sentences(row, 0)
    assert re.match(
        r"the grids disagree beyond their own intervals \(a 1[45]\d\d K / log g 5\.00, b 1[78]\d\d K",
        said,
    )
    assert re.search(r"Teff spread 3\d\d K\): the combined interval includes that spread\.$", said)
    # Each grid contributes exactly half the samples (equal weights; the answers are 15 sd
    # apart, so a sample above 1650 K is one of b's), interleaved in any prefix.
    assert int(np.sum(c.samples[:, 0] > 1650)) == 4000
    assert 0.4 < np.mean(c.samples[:200, 0] > 1650) < 0.6


def test_disagreement_score_is_the_distance_in_units_of_the_grids_own_intervals():
    # a at 1500 +- 20 K, b at 1800 +- 20 K (log g identical): 300 / sqrt(20^2 + 20^2) = 10.6.
    # With log g 0.5 dex apart at +- 0.05 each, log g dominates: 0.5 / sqrt(2 * 0.05^2) = 7.1
    # < 10.6, so the Teff pair stays the maximum; at 1.0 dex apart log g gives 14.1.
    from atmospec.multigrid.disagreement import disagreement_score

    ests = {"a": _est("a", 1500.0), "b": _est("b", 1800.0, logg=5.5)}
    assert disagreement_score(ests, ["a", "b"]) == pytest.approx(300 / np.hypot(20, 20), rel=0.04)
    ests["b"] = _est("b", 1800.0, logg=6.0)
    assert disagreement_score(ests, ["a", "b"]) == pytest.approx(
        1.0 / np.hypot(0.05, 0.05), rel=0.04
    )
    assert np.isnan(disagreement_score(ests, ["a"]))
    assert np.isnan(combine({"a": ests["a"]}, draws=100, rng=np.random.default_rng(0)).disagreement)


def test_a_learned_threshold_warns_only_beyond_the_grids_usual_spread():
    # Real grids differ systematically (their intervals rarely overlap), so without a learned
    # threshold "disagree" is raised on almost every object. With a threshold learned on
    # field dwarfs (here 12: distances below it are the usual spread), grids 300 K apart at
    # +- 20 K (distance 10.6) are ordinary and grids 600 K apart (21.2) are not.
    from atmospec.multigrid.disagreement import Disagreement

    usual = Disagreement.fit({f"f{i}": 2.0 + 10.0 * i / 99 for i in range(100)})
    assert usual.threshold == pytest.approx(2.0 + 10.0 * 0.95, abs=0.01)
    near = {"a": _est("a", 1500.0), "b": _est("b", 1800.0)}
    far = {"a": _est("a", 1500.0), "b": _est("b", 2100.0)}
    rng = np.random.default_rng(3)
    assert combine(near, draws=2000, rng=rng).disagree  # no threshold: intervals apart
    c = combine(near, draws=2000, rng=rng, disagreement=usual)
    assert not c.disagree and not any("disagree" in n for n in c.notes)
    assert c.disagreement == pytest.approx(10.6, abs=0.4)
    c = combine(far, draws=2000, rng=rng, disagreement=usual)
    assert c.disagree
    assert any(
        re.search(
            r"disagree beyond their usual spread \(distance 2\d\.\d of their own "
            r"intervals, against 11\.5 for 95% of field dwarfs\)",
            n,
        )
        for n in c.notes
    )
    with pytest.raises(ValueError, match=">= 20 objects"):
        Disagreement.fit({"x": 1.0, "y": float("nan")})


def test_mixture_counts_do_not_move_by_chance_between_spectra():
    # Two grids whose answers do not overlap: with the component of each sample drawn at
    # random the counts are binomial (sd sqrt(1000 / 4) = 16) and the median falls in one
    # answer or the other by chance; with exact shares the median is the midpoint of the gap
    # (np.median of an even count averages the 500th and 501st sample: a's highest, b's
    # lowest) for every seed.
    ests = {"a": _est("a", 1500.0), "b": _est("b", 1800.0)}
    meds = [
        float(np.median(combine(ests, draws=1000, rng=np.random.default_rng(s)).samples[:, 0]))
        for s in range(8)
    ]
    assert all(abs(m - 1650.0) < 30 for m in meds), meds
    assert shares(1000, [0.5, 0.5]).tolist() == [500, 500]
    assert shares(7, [1.0, 1.0, 1.0]).tolist() == [3, 2, 2]
    assert shares(1000, [0.2, 0.0, 0.8]).tolist() == [200, 0, 800]
    with pytest.raises(ValueError, match="weights"):
        shares(10, [0.0, 0.0])


def test_grid_beyond_its_misfit_threshold_is_dropped_when_another_fits():
    ests = {"a": _est("a", 1500.0, misfit=0.8), "b": _est("b", 1700.0, misfit=3.0)}
    c = combine(ests, draws=2000, rng=np.random.default_rng(3))
    assert c.weights == {"a": 1.0, "b": 0.0}
    assert c.misfit == pytest.approx(0.8)
    # When every covering grid misfits, all stay in and the smallest misfit is reported (> 1).
    ests = {"a": _est("a", 1500.0, misfit=2.0), "b": _est("b", 1700.0, misfit=3.0)}
    c = combine(ests, draws=2000, rng=np.random.default_rng(3))
    assert c.weights == {"a": 0.5, "b": 0.5} and c.misfit == pytest.approx(2.0)


def test_misfit_flag_needs_most_covering_grids_not_all():
    # Three grids cover the object. One fitting within its model of mismatch while two are
    # far beyond theirs is not an ordinary dwarf: the score is the lower median (2.0 > 1), the
    # answer comes from the grid that fits, and a note names how many misfit.
    ests = {
        "a": _est("a", 1500.0, misfit=0.7),
        "b": _est("b", 1550.0, misfit=2.0),
        "c": _est("c", 1600.0, misfit=9.0),
    }
    c = combine(ests, draws=900, rng=np.random.default_rng(3))
    assert c.misfit == pytest.approx(2.0)
    assert c.weights == {"a": 1.0, "b": 0.0, "c": 0.0}
    assert any("2 of the 3 grids" in n for n in c.notes)
    # One of three misfitting is what ordinary dwarfs do now and then: not flagged, and the
    # score is the middle value (0.9), not the smallest (0.7).
    ests["b"] = _est("b", 1550.0, misfit=0.9)
    c = combine(ests, draws=900, rng=np.random.default_rng(3))
    assert c.misfit == pytest.approx(0.9)
    assert not any("grids that cover the object do not" in n for n in c.notes)
    # A grid outside the object's Teff does not vote: its misfit is not counted.
    ests["c"] = _est("c", 3000.0, lo=2000.0, hi=3500.0, misfit=9.0)
    c = combine(ests, draws=900, rng=np.random.default_rng(3))
    assert not c.covers["c"] and c.misfit == pytest.approx(0.7)


def test_a_grid_pressing_a_bound_of_log_g_inside_the_mixture_is_named():
    # Burrows 2006 stops at log g 4.5: where its answer presses that edge and the other grids
    # answer freely, its share of the combined log g piles at 4.5 (a limit, not a value).
    # The combined answer is not at a bound (the others are free), so only a note says so.
    import dataclasses

    a = _est("a", 1600.0, logg=4.0)
    b = dataclasses.replace(_est("b", 1650.0, logg=4.5), at_bound=np.array([False, True, False]))
    b.bounds["logg"] = (4.5, 5.5)
    c = combine({"a": a, "b": b}, draws=1000, rng=np.random.default_rng(0))
    said = [n for n in c.notes if "presses its grid bound" in n]
    assert said == [
        "b: logg presses its grid bound (4.5; a limit, not a value): its share of the combined "
        "logg piles there"
    ]
    both = dataclasses.replace(a, at_bound=np.array([False, True, False]))
    c = combine({"a": both, "b": b}, draws=1000, rng=np.random.default_rng(0))
    assert not [n for n in c.notes if "presses its grid bound" in n]  # all: flagged as such


def test_parse_routes():
    r = parse_routes("dback24=default, btsettl08")
    assert [(x.grid, x.model) for x in r] == [("dback24", "default"), ("btsettl08", None)]
    assert parse_routes(None)[0].grid == "dback24"


def test_chi2_node_posterior_recovers_a_grid_node(splat_dir):
    # A BT-Settl node spectrum with 1 % noise: the node posterior must sit in that node's cell.
    from atmospec.grids import load_grid
    from atmospec.multigrid import chi2_estimate
    from atmospec.spectrum import Spectrum

    grid = load_grid("btsettl08")
    params = grid.params
    row = int(np.flatnonzero((params.teff == 1500) & (params.logg == 5.0) & (params.mh == 0))[0])
    w = np.asarray(grid.wavelength)
    keep = (w > 0.9) & (w < 2.45)
    f = np.asarray(grid.flux(row))[keep]
    rng = np.random.default_rng(0)
    sig = 0.01 * np.median(f) * np.ones(f.size)
    spec = Spectrum(w[keep], f + sig * rng.standard_normal(f.size), uncertainty=sig)
    est = chi2_estimate(spec, grid, draws=2000, rng=rng)
    t = est.column("teff")
    assert t is not None and 1450 <= t.min() and t.max() <= 1550
    assert est.median("logg") == pytest.approx(5.0, abs=0.25)


class _ToyDiscrepancy:
    """A 10 % white fractional model error (no correlated modes)."""

    grid = "toy"

    def fractional(self, teff, wavelength):
        n = np.asarray(wavelength).size
        return np.full(n, 0.1**2), np.zeros((n, 0))


def test_training_set_carries_model_error_realisations(grid, tmp_path):
    # Same seed with and without the augmentation: the noise-free fluxes differ by a factor
    # whose relative scatter is the model's 10 % (after the per-spectrum normalisation).
    from atmospec.training import build_training_set
    from atmospec.training.systematics import Systematics

    kw = dict(n_samples=64, seed=3, systematics=Systematics.none())
    a = build_training_set(grid, tmp_path / "a.h5", **kw)
    b = build_training_set(grid, tmp_path / "b.h5", discrepancy=_ToyDiscrepancy(), **kw)
    assert a.config["discrepancy"] is None
    assert b.config["discrepancy"] == {"grid": "toy", "amplitude": 1.0}
    ratio = b.clean() / a.clean()
    ratio /= np.median(ratio, axis=1, keepdims=True)
    assert np.std(ratio - 1) == pytest.approx(0.1, rel=0.1)
    np.testing.assert_array_equal(a.params, b.params)


@pytest.mark.realdata
def test_t_dwarf_below_diamondback_is_answered_by_the_grids_that_cover_it(splat_dir, tmp_path):
    # HD 3651B (T7.5; 785 +- 12 K from its luminosity and the host's age, Sanghi et al. 2023)
    # lies below Diamondback's 900 K floor: outside_grid is raised, and Burrows 2006 /
    # BT-Settl (which reach 700 / 500 K) answer, not Diamondback's edge.
    from atmospec import library
    from atmospec.multigrid import MultiGridPredictor

    mp = MultiGridPredictor(draws=300, ood=False)
    res = mp.predict(library.load("10703_10070"))
    row = res.table()[0]
    assert row["outside_grid"]
    assert row["dback24_weight"] == 0.0
    assert row["burrows06_weight"] > 0 and row["btsettl08_weight"] > 0
    assert 650 <= row["teff_median"] <= 880
    assert "outside the parameters of dback24" in row["notes"]
    # Diamondback's own routing notes are marked as describing an answer not used
    routing = [n for n in str(row["notes"]).split("; ") if "served by" in n or "presses" in n]
    assert routing and all(
        n.startswith("dback24 (its answer not used for this object): ") for n in routing
    )
    assert str(row["model_id"]).endswith("+chi2:btsettl08")
    # chi2_red and dof are those of a grid that answered (the one that fits best, named in the
    # notes), recomputed here from its best model and the data's own errors; they were
    # Diamondback's at a Teff below its grid
    from atmospec.multigrid.estimate import photon_chi2

    fits = {g: photon_chi2(e) for g, e in res.estimates[0].items() if row[f"{g}_weight"] > 0}
    best = min(fits, key=lambda g: fits[g][0] / fits[g][1])
    assert f"chi2_red and dof: {best}'s best node" in row["notes"]
    chi2, dof = fits[best]
    assert row["dof"] == dof and row["chi2_red"] == pytest.approx(chi2 / dof, rel=1e-12)
    e = res.estimates[0][best]
    assert dof == int(np.isfinite(e.flux).sum()) - len(e.param_names) - 1
    # The per-object figure draws every grid's residual with its band.
    fig = res.plot(0)
    assert len(fig.axes) == 2 and len(fig.axes[1].lines) >= 3
    # The residual is drawn in the data's own (normalised) flux, scaled to the grids that
    # answer: a fractional residual would blow up in the T dwarf's near-zero troughs.
    assert fig.axes[1].get_ylabel() == "data - model"
    used = [e for g, e in res.estimates[0].items() if res.combined[0].weights[g] > 0]
    top = max(np.nanpercentile(np.abs(e.flux - e.model_flux), 98) for e in used)
    assert fig.axes[1].get_ylim() == pytest.approx((-1.2 * top, 1.2 * top))
    assert top < 0.5 * np.nanmax(used[0].flux)
    # The title says by how much the correction for the grids' shared systematic error moved
    # the combined Teff (which then need not lie among the grids' answers drawn below it).
    mu, sd = res.combined[0].calibration["teff"]
    assert f"including {mu:+.0f} ± {sd:.0f} K for the grids' shared" in fig.axes[0].get_title()
    res.write(tmp_path / "out", plots=False)
    assert (tmp_path / "out" / "predictions.ecsv").is_file()


@pytest.mark.realdata
def test_predict_command_runs_every_grid_through_the_batch_engine(splat_dir, tmp_path):
    # `atmospec predict` with the default model: the batch engine serves the multi-grid
    # predictor; HD 3651B (785 K, below Diamondback's 900 K) gets outside_grid and an answer
    # from the grids that reach it; the figure is drawn for the first row only (--max-plots 1),
    # with the grids of that row.
    import pandas as pd
    from typer.testing import CliRunner

    from atmospec import library
    from atmospec.cli.main import app

    files = []
    for key in ("10703_10070", "11250_11052"):  # HD 3651B (T7.5), GD 165B (L4)
        path = tmp_path / f"{key}.ecsv"
        library.load(key).write(path)
        files.append(str(path))
    out = tmp_path / "run"
    args = ["--quiet", "predict", *files, "-o", str(out), "--draws", "200", "--max-plots", "1"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    t = pd.read_csv(out / "predictions.csv")
    assert list(t["outside_grid"]) == [True, False]
    assert t.loc[0, "dback24_weight"] == 0.0 and 650 <= t.loc[0, "teff_median"] <= 880
    assert t.loc[1, "dback24_weight"] > 0 and 1500 <= t.loc[1, "teff_median"] <= 2200
    assert {"teff_burrows06_median", "teff_btsettl08_median", "misfit_flag"} <= set(t.columns)
    # model_id names what answered: outside Diamondback, not Diamondback's model
    assert t.loc[0, "model_id"].startswith("burrows06-spex-")
    assert t.loc[0, "model_id"].endswith("+chi2:btsettl08")
    assert t.loc[1, "model_id"].startswith(("dback24-spex-", "npe_dback24-"))
    figs = sorted(p.name for p in (out / "objects").glob("*_fit.png"))
    assert len(figs) == 1 and figs[0].startswith("HD_3651B")


@pytest.mark.realdata
def test_predict_prints_each_objects_answer_and_warnings(splat_dir, tmp_path):
    # A user with one file reads the answer in the terminal: the median and 68 % interval of
    # each parameter as written to predictions.ecsv, and the warning (HD 3651B, 785 K from its
    # luminosity, lies below Diamondback's 900 K: "outside dback24", the grid it is outside,
    # since Burrows 2006 and BT-Settl answer it). --show 0 prints none.
    from astropy.table import Table
    from typer.testing import CliRunner

    from atmospec import library
    from atmospec.cli.main import app

    path = tmp_path / "hd3651b.ecsv"
    library.load("10703_10070").write(path)
    res = CliRunner().invoke(app, ["predict", str(path), "-o", str(tmp_path / "a"), "--no-plots"])
    assert res.exit_code == 0, res.output
    row = Table.read(tmp_path / "a" / "predictions.ecsv")[0]
    text = " ".join(res.output.split())
    assert "median [68 % interval] per object" in text
    assert f"[{row['teff_p16']:.0f}, {row['teff_p84']:.0f}]" in text
    assert f"{row['logg_median']:.2f}" in text and "outside dback24" in text
    quiet = CliRunner().invoke(
        app, ["predict", str(path), "-o", str(tmp_path / "b"), "--no-plots", "--show", "0"]
    )
    assert quiet.exit_code == 0 and "per object" not in quiet.output


@pytest.mark.realdata
def test_one_grid_answers_say_what_their_intervals_leave_out(splat_dir, tmp_path):
    # One grid's learned model gives intervals of about +-30 K that hold its own model error
    # (its training spectra carried realisations of it), not the spread between grids or the
    # error they share; on the benchmark companions such intervals rarely hold the Teff from
    # luminosity and evolution. The table's header and the terminal say so; the several-grid
    # answer, which holds both, does not repeat it inside its own description.
    from astropy.table import Table
    from typer.testing import CliRunner

    from atmospec import library
    from atmospec.cli.main import app

    path = tmp_path / "gd165b.ecsv"
    library.load("11250_11052").write(path)
    one, several = tmp_path / "one", tmp_path / "several"
    base = ["predict", str(path), "--no-plots", "--draws", "200", "-o"]
    res = CliRunner().invoke(app, [*base, str(one), "--model", "dback24-spex"])
    assert res.exit_code == 0, res.output
    said = "so the intervals include that grid's; not the spread between grids"
    assert said in Table.read(one / "predictions.ecsv").meta["intervals"]
    assert "intervals: the model's training spectra carried model error (dback24-spex" in " ".join(
        res.output.split()
    )
    assert "; 1 row in" in res.output  # one row, not "1 rows"
    res = CliRunner().invoke(app, [*base, str(several)])
    assert res.exit_code == 0, res.output
    header = Table.read(several / "predictions.ecsv").meta["intervals"]
    assert header.startswith("percentiles of an equal-weight mixture") and said not in header
    # the several-grid id (every member's and the calibration's, ~300 characters) is left to
    # run.json; the terminal names the answer and the grids line lists the grids
    assert "model default over several grids (its id: run.json); 1 row in" in " ".join(
        res.output.split()
    )
    assert "grids:" not in res.output.split("1 row in")[0]
    run = json.loads((several / "run.json").read_text())
    assert run["model_id"].startswith("grids:dback24+burrows06+btsettl08")


def test_grids_given_as_files_are_named_by_their_stem_and_must_not_collide():
    from atmospec.multigrid import MultiGridPredictor
    from atmospec.multigrid.routes import GridRoute

    assert GridRoute("/data/grids/cloudy-v2.h5").label == "cloudy-v2"
    assert GridRoute("runs/my grids/sonora/").label == "sonora"
    # Two files of one stem would write the same columns: refused before anything loads.
    with pytest.raises(ValueError, match="share the columns"):
        MultiGridPredictor(routes=parse_routes("dback24=default,/a/mine.h5,/b/mine.h5"))


@pytest.mark.realdata
def test_a_user_grid_file_answers_beside_the_shipped_grids(splat_dir, tmp_path):
    # A grid the user wrote (here the cloudy half of Burrows 2006, saved with GridWriter)
    # answers by chi-square beside the shipped grids; its columns carry the file's stem, not
    # its path (slashes in column names would break the ECSV/FITS/CSV outputs). It has no model
    # of mismatch, so it has no misfit and says so.
    from astropy.table import Table

    from atmospec import library
    from atmospec.grids import GridWriter, load_grid
    from atmospec.multigrid import MultiGridPredictor

    b06 = load_grid("burrows06")
    rows = np.flatnonzero(b06.params["cloudy"].to_numpy() == 1)
    path = tmp_path / "grids" / "my_cloudy.h5"
    path.parent.mkdir()
    with GridWriter(path, b06.wavelength, ("teff", "logg", "mh"), name="my_cloudy") as w:
        for i in rows:
            p = b06.params.iloc[int(i)]
            w.add(
                {"teff": float(p["teff"]), "logg": float(p["logg"]), "mh": float(p["mh"])},
                np.asarray(b06.flux(int(i))),
                label=f"row{int(i)}",
            )
    mp = MultiGridPredictor(routes=parse_routes(f"dback24=default,{path}"), draws=300, ood=False)
    res = mp.predict(library.load("11250_11052"))  # GD 165B, L4, 1863 K from its luminosity
    res.write(tmp_path / "out", plots=False)
    t = Table.read(tmp_path / "out" / "predictions.ecsv")
    assert {"teff_my_cloudy_median", "my_cloudy_misfit", "my_cloudy_weight"} <= set(t.colnames)
    assert not any("/" in c for c in t.colnames)
    assert np.isnan(t["my_cloudy_misfit"][0])
    assert "my_cloudy" in t["grids_used"][0]
    assert 1300 <= t["teff_my_cloudy_median"][0] <= 2300  # an L4 dwarf, not an edge of the grid
    assert f"{path}: no model-error covariance" in t["notes"][0]
    # The shipped correction for the grids' shared error was learned for other grids: not
    # applied, and the note names the grids rather than two model ids.
    assert "calibration was learned for the grids dback24+burrows06+btsettl08" in t["notes"][0]
    assert "teff_calibration_shift" not in t.colnames


def test_results_table_reads_a_partial_table_with_missing_names():
    # What `atmospec predict` prints from the first rows of predictions.csv: a missing name
    # falls back to the file, a missing OOD reason is left out, and the caption counts the
    # whole run, not the rows read.
    import pandas as pd
    from astropy.table import Table
    from rich.console import Console

    from atmospec.cli._results_table import results_table

    df = pd.DataFrame(
        {
            "source": ["a.fits", "b.fits"],
            "name": [np.nan, "GJ 570D"],
            "teff_median": [900.0, 800.0],
            "teff_p16": [850.0, 750.0],
            "teff_p84": [950.0, 850.0],
            "teff_p2.5": [800.0, 700.0],
            "teff_burrows06_median": [901.0, 801.0],  # a per-grid column: not a parameter
            "ood_flag": [True, False],
            "ood_reason": [np.nan, np.nan],
        }
    )
    console = Console(width=100, record=True)
    console.print(results_table(Table.from_pandas(df), 20, total=1000))
    text = console.export_text()
    assert "a.fits" in text and "GJ 570D" in text and "nan" not in text
    assert "OOD" in text and "OOD (" not in text
    assert "teff_burrows06" not in text and "the first 2 of 1000 rows" in text


@pytest.mark.realdata
def test_telluric_holes_of_a_library_spectrum_are_masked_by_default(splat_dir, tmp_path):
    # GJ 570D's SpeX spectrum has invalid pixels in the 1.35-1.42 um water band (20 model
    # bins). The default coverage ("gaps") masks those bins, says so in the notes, and answers
    # (Teff 771 +- 18 K from its luminosity and the host's age, Sanghi et al. 2023, below
    # Diamondback: the grids that reach it answer); "refuse" fails the row naming the bins and
    # the default that would serve it.
    import pandas as pd
    from typer.testing import CliRunner

    from atmospec.cli.main import app

    catalog = tmp_path / "targets.csv"
    pd.DataFrame({"splat_key": ["10020_11100"]}).to_csv(catalog, index=False)
    base = ["--quiet", "predict", "--catalog", str(catalog), "--column", "splat_key"]
    base += ["--draws", "200", "--no-plots"]
    res = CliRunner().invoke(app, [*base, "-o", str(tmp_path / "gaps")])
    assert res.exit_code == 0, res.output
    row = pd.read_csv(tmp_path / "gaps" / "predictions.csv").iloc[0]
    assert "20 bins on masked pixels (1.350 um, 1.359 um, 1.377-1.382 um" in row["notes"]
    assert bool(row["outside_grid"]) and 650 <= row["teff_median"] <= 950
    assert row["masked_fraction"] == pytest.approx(20 / 300)  # of the CNN's 300-bin axis
    assert json.loads((tmp_path / "gaps" / "run.json").read_text())["rows_masked"] == 1
    res = CliRunner().invoke(app, [*base, "--coverage", "refuse", "-o", str(tmp_path / "refuse")])
    assert res.exit_code != 0
    failed = pd.read_csv(tmp_path / "refuse" / "failures.csv")
    assert len(failed) == 1
    assert "20 model bins" in failed.loc[0, "error"]
    assert "coverage='gaps' (CLI --coverage gaps, the default)" in failed.loc[0, "error"]
