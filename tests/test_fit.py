"""Classic grid fitting: chi-square over nodes, dof, error inflation, radius, nested sampling."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from atmospec.errors import CoverageError, InvalidSpectrumError
from atmospec.fitting import fit
from atmospec.fitting.chi2 import chi2_with_scale, fit_chi2
from atmospec.fitting.data import PARSEC_M, R_JUP_M
from atmospec.spectrum import Spectrum
from atmospec.transforms import add_noise, check_coverage, resample

pytestmark = pytest.mark.realdata

SPEX_KEY = "10703_10070"  # HD 3651B: its real SpeX pixel grid is used for synthetic data


@pytest.fixture(scope="module")
def dback(splat_dir: Path):  # noqa: ANN201
    from atmospec.grids import load_grid

    return load_grid("dback24")


@pytest.fixture(scope="module")
def spex_wave(splat_dir: Path) -> np.ndarray:
    from atmospec.library import load

    return load(SPEX_KEY).wavelength


def _synthetic(grid, wave, flux_native, *, snr, seed, scale=1.0, unit="", name="synthetic"):  # noqa: ANN001, ANN202
    """A model spectrum on a real SpeX pixel grid with Gaussian noise of known sigma."""
    inside = wave[check_coverage(grid.wavelength, wave, policy="mask")]
    clean = scale * resample(inside, grid.wavelength, flux_native)
    noisy, sigma = add_noise(clean, snr=snr, rng=np.random.default_rng(seed))
    return Spectrum(inside, noisy, sigma, flux_unit=unit, name=name, meta={"source": name})


def test_scale_costs_one_degree_of_freedom() -> None:
    # For a linear scale fitted to N Gaussian points, E[chi2] = N - 1 (not N). With N = 8 and
    # 20,000 noise draws the mean is known to +-sqrt(2 * 7 / 20000) = 0.026.
    rng = np.random.default_rng(7)
    model = np.linspace(1.0, 3.0, 8)
    sigma = np.full(8, 0.1)
    data = 2.0 * model + sigma * rng.standard_normal((20000, 8))
    chi2 = np.array([chi2_with_scale(model, d, sigma)[0][0] for d in data])
    assert np.mean(chi2) == pytest.approx(7.0, abs=0.1)


def test_chi2_recovers_the_generating_node(dback, spex_wave: np.ndarray) -> None:
    node = int(
        np.flatnonzero(
            (dback.params.teff == 1300)
            & (dback.params.logg == 5.0)
            & (dback.params.mh == 0.0)
            & (dback.params.fsed == 2.0)
        )[0]
    )
    # Normalised-looking data: the flux scale (here 1 / 4e5) absorbs the surface flux unit.
    spec = _synthetic(dback, spex_wave, dback.flux(node), snr=50, seed=1, scale=1 / 4e5)
    # photon noise only: the data are the grid model plus Gaussian noise of known sigma
    res = fit_chi2(spec, dback, discrepancy=None)
    assert res.best == {"teff": 1300.0, "logg": 5.0, "mh": 0.0, "fsed": 2.0}
    assert res.scale == pytest.approx(1 / 4e5, rel=0.01)
    # dof = N - (4 grid parameters + scale); the right model with the right errors gives
    # chi2_red ~ 1 within a few sqrt(2/dof) (~0.06 for ~500 pixels).
    assert res.n_fitted == 5 and res.dof == res.n_pix - 5
    assert abs(res.chi2_red - 1.0) < 4 * np.sqrt(2 / res.dof)
    assert 0.001 < res.p_value < 0.999
    assert res.nodes is not None and res.nodes.iloc[0]["chi2"] == res.chi2
    assert res.nodes["chi2"].is_monotonic_increasing


def test_radius_from_distance_and_units(dback, spex_wave: np.ndarray) -> None:
    # Observed flux of a 1 R_Jup object at 10 pc is (R/d)^2 = (R_Jup / 10 pc)^2 times its
    # surface flux; the fit must return R = d sqrt(s) = 1 R_Jup.
    dilution = (R_JUP_M / (10 * PARSEC_M)) ** 2
    spec = _synthetic(
        dback,
        spex_wave,
        dback.flux(700),
        snr=100,
        seed=2,
        scale=dilution,
        unit="erg / (s cm2 um)",
    )
    res = fit(spec, dback, distance_pc=10.0)
    assert res.radius_rjup == pytest.approx(1.0, rel=0.01)
    # The same data in W m-2 um-1 (1 W m-2 um-1 = 1e3 erg s-1 cm-2 um-1): same radius.
    si = spec.with_arrays(spec.wavelength, spec.flux * 1e-3, spec.uncertainty * 1e-3)
    si.flux_unit = "W / (m2 um)"
    assert fit(si, dback, distance_pc=10.0).radius_rjup == pytest.approx(1.0, rel=0.01)
    # Normalised data have no radius, and the result says why.
    norm = spec.normalize()
    res_n = fit(norm, dback, distance_pc=10.0)
    assert res_n.radius_rjup is None and any("normalised" in n for n in res_n.notes)


def test_auto_inflation_makes_best_chi2_red_one(dback, spex_wave: np.ndarray) -> None:
    # Errors claimed 3x too small: chi2_red ~ 9 without inflation; "auto" finds the floor
    # that gives 1 at the best node, and the extra parameter costs a degree of freedom.
    node = 300
    spec = _synthetic(dback, spex_wave, dback.flux(node), snr=40, seed=3)
    small = spec.with_arrays(spec.wavelength, spec.flux, spec.uncertainty / 3)
    raw = fit_chi2(small, dback)
    assert raw.chi2_red == pytest.approx(9.0, rel=0.2)
    res = fit_chi2(small, dback, inflate_errors="auto")
    assert res.chi2_red == pytest.approx(1.0, abs=1e-4)
    assert res.n_fitted == raw.n_fitted + 1 and res.inflation > 0
    assert res.table()["chi2_red"][0] == pytest.approx(1.0, abs=1e-4)


def test_auto_inflation_holds_at_the_node_the_model_of_mismatch_ranks_first(dback) -> None:
    # With the grid's model of mismatch (the default) the best node is the one ranked first
    # by -2 ln L, not the smallest chi2; the floor was solved for the smallest chi2, so the
    # reported chi2_red of a real L5 dwarf (SDSS J0539-0059) was 1.29 under a note saying
    # "best chi2_red = 1 by construction" (1.33 for HD 3651B, 1.55 for a T8). The floor is
    # now solved at the node the fit reports.
    from atmospec.library import load

    for key in ("10001_10443", "10703_10070"):
        res = fit_chi2(load(key), dback, inflate_errors="auto")
        assert res.discrepancy is not None and res.inflation > 0
        assert res.chi2_red == pytest.approx(1.0, abs=1e-3), key
        assert any(n.endswith("(best chi2_red = 1 by construction)") for n in res.notes)
        assert res.nodes is not None and res.nodes["chi2_red"][0] == pytest.approx(1.0, abs=1e-3)


def test_coverage_and_missing_errors(dback, spex_wave: np.ndarray) -> None:
    from atmospec.library import load

    real = load(SPEX_KEY)  # spans 0.651-2.563 um, beyond dback24's 0.686-2.537 um
    with pytest.raises(CoverageError) as err:
        fit_chi2(real, dback, coverage="error")
    said = str(err.value)  # once the resampler's advice (fill=, check_coverage), not fit's
    assert said.startswith(f"{SPEX_KEY}: ") and "lie outside grid dback24's wavelengths" in said
    assert "coverage='mask'" in said and "fill=" not in said
    res = fit_chi2(real, dback)
    assert res.n_pix < len(real) and any("outside the dback24" in n for n in res.notes)
    no_err = Spectrum(real.wavelength, real.flux, name="noerr")
    with pytest.raises(InvalidSpectrumError, match="no uncertainties"):
        fit_chi2(no_err, dback)


def test_nested_posterior_covers_an_off_node_truth(dback, spex_wave: np.ndarray) -> None:
    from atmospec.fitting.nested import fit_nested

    truth = {"teff": 1250.0, "logg": 4.75, "mh": 0.0, "fsed": 2.0}
    spec = _synthetic(dback, spex_wave, dback.interpolate(truth), snr=30, seed=4, scale=3e-6)
    res = fit_nested(
        spec,
        dback,
        fixed={"mh": 0.0, "fsed": 2.0},
        bounds={"teff": (1100.0, 1400.0), "logg": (4.0, 5.5)},
        nlive=50,
        dlogz=1.0,
        seed=0,
    )
    assert res.samples is not None and {"teff", "logg", "scale"} <= set(res.samples.columns)
    summary = res.summary()
    # The data were drawn from the model at the truth: it lies inside the 95 % interval.
    for p in ("teff", "logg"):
        assert summary[p]["p2.5"] <= truth[p] <= summary[p]["p97.5"], (p, summary[p])
    assert summary["scale"]["p2.5"] <= 3e-6 <= summary["scale"]["p97.5"]
    assert res.logz is not None and res.logz_err is not None
    assert np.isfinite(res.logz) and 0 < res.logz_err < 5
    assert abs(res.chi2_red - 1.0) < 5 * np.sqrt(2 / res.dof)
    assert res.wall_time_s > 0


def test_fit_cli_writes_results(splat_dir: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from atmospec.cli.main import app

    out = tmp_path / "fit"
    res = CliRunner().invoke(app, ["fit", SPEX_KEY, "--grid", "btsettl08", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "chi2_red" in res.output.replace("…", "") or "chi2" in res.output
    # the grid's discrepancy model is on by default: node-posterior samples and their corner plot
    assert {p.name for p in out.iterdir()} == {
        "fit.ecsv",
        "fit.json",
        "fit.png",
        "nodes.csv",
        "samples.csv",
        "corner.png",
    }
    import json

    record = json.loads((out / "fit.json").read_text())
    assert record["discrepancy"]["grid"] == "btsettl08"
    assert "misfit_score" in record["discrepancy"]
    # the best nodes print as a table ranked as nodes.csv is (by -2 ln L under the model of
    # mismatch), not as a pandas dump wrapped across lines
    import pandas as pd

    nodes = pd.read_csv(out / "nodes.csv")
    assert f"best 5 of {len(nodes)} grid nodes" in res.output
    after = res.output.split(f"best 5 of {len(nodes)} grid nodes")[1]
    first = next(line for line in after.splitlines() if line.startswith("│"))
    cells = [c.strip() for c in first.strip("│").split("│")]
    assert cells[-2:] == [f"{nodes['neg2_loglike'][0]:.1f}", f"{nodes['weight'][0]:.3f}"]
    plain = tmp_path / "plain"
    res = CliRunner().invoke(
        app, ["fit", SPEX_KEY, "--grid", "btsettl08", "--no-discrepancy", "--out", str(plain)]
    )
    assert res.exit_code == 0, res.output
    assert {p.name for p in plain.iterdir()} == {"fit.ecsv", "fit.json", "fit.png", "nodes.csv"}
    assert json.loads((plain / "fit.json").read_text())["discrepancy"] is None
    assert "-2 ln L" not in res.output  # photon noise only: ranked by chi-square


def test_fit_cli_refuses_a_fixed_floor_that_nested_sampling_would_drop(
    splat_dir: Path, tmp_path: Path
) -> None:
    # `fit --method nested --sys-floor 0.05` ran and reported photon-noise intervals (teff
    # 1585.4 +0.5/-0.5 K for SDSS J0539-0059 with --no-discrepancy), with a note that said a
    # --sys-floor widens them: the option never reached the sampler, which has no fixed
    # floor. It is refused before anything is read or written, and the message names the
    # option that does fit a floor there.
    from typer.testing import CliRunner

    from atmospec.cli.main import app

    out = tmp_path / "nested"
    res = CliRunner(env={"COLUMNS": "300"}).invoke(
        app,
        ["fit", SPEX_KEY, "-g", "dback24", "--method", "nested", "--sys-floor", "0.05"]
        + ["--nlive", "5", "--out", str(out)],
    )
    assert res.exit_code == 2, res.output
    assert "--sys-floor" in res.output and "--inflate-errors" in res.output
    assert not out.exists()


def test_fit_names_the_unit_a_file_that_misses_the_grid_looks_like(tmp_path: Path) -> None:
    # A table headed "wavelength [um]" holding Angstroms: predict and posterior sample said
    # "they look like 'AA'"; fit said only "0 usable pixels overlap ... spans 6492-25605 um".
    from typer.testing import CliRunner

    from atmospec.cli.main import app

    w = np.linspace(6500.0, 25500.0, 300)
    rows = [f"{x:.1f},{1.0 + 0.5 * np.sin(x / 3000.0):.4f},0.05" for x in w]
    path = tmp_path / "angstrom.csv"
    path.write_text("\n".join(["wavelength [um],flux [W m-2 um-1],error [W m-2 um-1]", *rows]))
    from atmospec.errors import UnitError

    res = CliRunner(env={"COLUMNS": "300"}).invoke(app, ["fit", str(path), "-g", "dback24"])
    assert isinstance(res.exception, UnitError), res.output  # the CLI prints it, exit 2
    said = str(res.exception)
    assert said.startswith(f"{path}: wavelengths 6500-2.55e+04 (read as micron)"), said
    assert "do not overlap the dback24 grid" in said and "they look like 'AA'" in said
    assert "--wave-unit AA" in said


def test_fit_and_posterior_cli_mask_nan_pixels_as_predict_does(
    splat_dir: Path, tmp_path: Path
) -> None:
    """A CSV with NaN flux in four rows was refused by `atmospec fit` and `posterior sample`
    ("mark them with a mask", which a command-line user cannot) while `atmospec predict`
    masked them. Now all three mask them: the fit equals the Python API's fit of the spectrum
    with those pixels masked, and both commands say so."""
    import json

    from typer.testing import CliRunner

    from atmospec import library
    from atmospec.cli.main import app

    s = library.load(SPEX_KEY)
    keep = ~s.mask
    assert s.uncertainty is not None
    w, f, e = s.wavelength[keep], s.flux[keep], s.uncertainty[keep]
    bad = np.zeros(w.size, dtype=bool)
    bad[200:204] = True  # inside the grid's range (1.3 um)
    rows = [
        f"{a!r},{'nan' if m else repr(b)},{c!r}"
        for a, b, c, m in zip(w.tolist(), f.tolist(), e.tolist(), bad, strict=True)
    ]
    csv = tmp_path / "nan.csv"
    csv.write_text("\n".join(["wavelength [um],flux [W m-2 um-1],error [W m-2 um-1]", *rows]))
    res = CliRunner(env={"COLUMNS": "400"}).invoke(
        app, ["fit", str(csv), "-g", "btsettl08", "-o", str(tmp_path / "fit")]
    )
    assert res.exit_code == 0, res.output
    assert "4 masked / invalid pixels were not fitted" in " ".join(res.output.split())
    cli = json.loads((tmp_path / "fit" / "fit.json").read_text())
    api = fit(Spectrum(w, f, e, mask=bad, flux_unit=s.flux_unit, name="api"), "btsettl08")
    assert cli["best"] == {k: pytest.approx(v) for k, v in api.best.items()}
    assert cli["chi2"] == pytest.approx(api.chi2, rel=1e-9) and cli["dof"] == api.dof
    # `posterior sample` reads the file the same way, and says the NPE met masked bins
    res = CliRunner(env={"COLUMNS": "400"}).invoke(
        app, ["posterior", "sample", str(csv), "--n", "200", "-o", str(tmp_path / "post")]
    )
    assert res.exit_code == 0, res.output
    assert "bins of the npe_dback24 axis are masked" in " ".join(res.output.split())
    # and takes a SpeX library key, as fit does (once "no such file")
    res = CliRunner(env={"COLUMNS": "400"}).invoke(
        app, ["posterior", "sample", SPEX_KEY, "--n", "200", "-o", str(tmp_path / "key")]
    )
    assert res.exit_code == 0, res.output
    assert (tmp_path / "key" / f"{SPEX_KEY}_samples.csv").is_file()


def test_nested_notes_masked_pixels(dback, spex_wave: np.ndarray) -> None:
    from atmospec.fitting.nested import fit_nested

    truth = {"teff": 1250.0, "logg": 4.75, "mh": 0.0, "fsed": 2.0}
    spec = _synthetic(dback, spex_wave, dback.interpolate(truth), snr=30, seed=4, scale=3e-6)
    mask = np.zeros(spec.wavelength.size, dtype=bool)
    mask[100:107] = True
    spec = Spectrum(spec.wavelength, spec.flux, spec.uncertainty, mask=mask, name="masked")
    res = fit_nested(
        spec, dback, fixed={"mh": 0.0, "fsed": 2.0, "logg": 4.75}, nlive=30, dlogz=5.0, seed=0
    )
    assert "7 masked / invalid pixels were not fitted" in res.notes


def test_fit_takes_an_assumed_snr_for_a_spectrum_without_errors(
    splat_dir: Path, tmp_path: Path
) -> None:
    # `fit` on a file without errors pointed only to a Python remedy (uncertainty=...);
    # `predict` had --assume-snr. fit now takes it too: constant sigma = median |flux| / S/N,
    # said in the notes. (The best node moves with the weights: 2300 K at S/N 50 against
    # 1800 K with the file's errors, BT-Settl's two minima of early- and mid-L dwarfs.)
    from typer.testing import CliRunner

    from atmospec import library
    from atmospec.cli.main import app

    s = library.load("11250_11052")  # GD 165B, L4
    good = ~s.mask
    path = tmp_path / "noerr.csv"
    np.savetxt(
        path,
        np.c_[s.wavelength[good], s.flux[good]],
        delimiter=",",
        header="wavelength_um,flux",
        comments="",
    )
    runner = CliRunner()
    res = runner.invoke(app, ["fit", str(path), "--grid", "btsettl08"])
    assert res.exit_code != 0 and "--assume-snr" in " ".join(
        (res.output + str(res.exception)).split()
    )
    res = runner.invoke(
        app,
        ["fit", str(path), "--grid", "btsettl08", "--assume-snr", "50", "-o", str(tmp_path / "o")],
    )
    assert res.exit_code == 0, res.output
    rec = json.loads((tmp_path / "o" / "fit.json").read_text())
    assert any(
        n.startswith("uncertainties assumed: constant sigma = median |flux| / 50")
        for n in rec["notes"]
    )
    # the same as the library's fit with that constant error on the same pixels
    from atmospec.grids import load_grid
    from atmospec.io import read

    sp = read(path, invalid="mask")
    sp = sp.copy(uncertainty=np.full(sp.flux.shape, np.median(np.abs(sp.flux)) / 50))
    assert rec["best"] == fit(sp, load_grid("btsettl08")).to_dict()["best"]
    assert 1500 <= rec["best"]["teff"] <= 2400  # an L dwarf (GD 165B: 1863 K, Sanghi 2023)


def test_fit_of_one_band_says_so_and_widens(splat_dir: Path) -> None:
    # A J-band-only spectrum was fitted like a whole one, without a word. The discrepancy
    # route now says what share of the range its model of mismatch was learned on the fitted
    # pixels cover (1.10-1.34 um: 12 % of 0.70-2.50 um), and the Teff interval is wider than
    # the whole spectrum's because one band constrains less (measured on five field L2-L6
    # dwarfs: 68 % half widths 37-68 K whole, 171-230 K J only).
    from atmospec import library
    from atmospec.grids import load_grid

    grid = load_grid("dback24")
    s = library.load("10001_10443")  # SDSS J0539-0059, L5: 37 K whole, 172 K J only
    j = (s.wavelength > 1.10) & (s.wavelength < 1.34)
    assert s.uncertainty is not None
    band = Spectrum(s.wavelength[j], s.flux[j], s.uncertainty[j], mask=s.mask[j], name="J")
    whole, part = fit(s, grid, method="chi2"), fit(band, grid, method="chi2")
    said = [n for n in part.notes if n.startswith("the fitted pixels (1.10-1.34 um) cover ")]
    assert said and "rest on that part of the spectrum alone" in said[0]
    # 0.24 um of 1.80 um: 13 %, less the pixels' edges
    assert 10 <= int(said[0].split(" cover ")[1].split("%")[0]) <= 14
    assert not any(n.startswith("the fitted pixels") for n in whole.notes)

    def half_width(r) -> float:  # noqa: ANN001
        q = r.samples["teff"].quantile([0.16, 0.84])
        return float(q.iloc[1] - q.iloc[0]) / 2

    assert half_width(part) > 3 * half_width(whole)
    # Photon noise only (--no-discrepancy) rests on the same band: the same note, without the
    # misfit threshold's clause (there is no misfit test then); nothing for the whole spectrum.
    plain = fit(band, grid, method="chi2", discrepancy=None)
    said = [n for n in plain.notes if n.startswith("the fitted pixels (1.10-1.34 um) cover ")]
    assert said and said[0].endswith("rest on that part of the spectrum alone"), plain.notes
    assert not any(n.startswith("the fitted pixels") for n in fit(s, grid, discrepancy=None).notes)


def test_a_fit_in_the_grids_edge_cell_of_teff_or_beyond_its_mismatch_is_warned_of(
    splat_dir: Path,
) -> None:
    # HD 3651B (785 +- 12 K from its luminosity, Sanghi et al. 2023) fitted with Diamondback,
    # which starts at 900 K, gave 925 +17/-18 K without a word: the posterior sat in the edge
    # cell (900-950 K) of the grid, as it does for any object beyond it. Teff in an edge cell
    # is now a warning (in the result, fit.json and on standard error); [M/H] and log g at
    # an edge are notes, because the grids put most field dwarfs there. Measured on the 162
    # field L0-T4 dwarfs of the real-spectra benchmark: no Teff warning with any of the three
    # built-in grids.
    from atmospec import library
    from atmospec.grids import load_grid

    grid = load_grid("dback24")
    for discrepancy in ("auto", None):
        res = fit(library.load(SPEX_KEY), grid, discrepancy=discrepancy)
        assert res.best["teff"] == 900.0  # the grid's last node
        assert len(res.warnings) == 1 and res.warnings[0].startswith(
            "teff: 100% of the posterior lies in the lower edge cell of the dback24 grid "
            "(900 to 950 K"
        )
        assert res.to_dict()["warnings"] == res.warnings
    # fsed = 10 is the cloud-free end-member (an answer for a T dwarf), never at the edge
    assert not any(n.startswith("fsed") for n in res.notes + res.warnings)
    field = fit(library.load("10001_10443"), grid)  # SDSS J0539-0059, L5 field dwarf
    assert field.warnings == []
    assert 1500 <= field.best["teff"] <= 2000
    # A misfit beyond the grid's model of mismatch is a warning too (it was one line of the
    # summary, hidden under --quiet): an M2 dwarf, far above Diamondback's 2400 K, is answered
    # inside the grid's Teff range, and its residuals say the grid does not describe it
    # (measured on the benchmark's quick sets: 37 of 40 M0-M5 / T8+ dwarfs, 0 of 60 field
    # L0-T4 dwarfs).
    m_dwarf = fit(library.load("10201_11129"), grid)
    assert m_dwarf.discrepancy is not None and m_dwarf.discrepancy["misfit_flagged"]
    assert [w[:45] for w in m_dwarf.warnings] == ["misfit beyond the model-discrepancy allowance"]


def test_posterior_edge_warnings_spare_the_cloud_free_end_member() -> None:
    from atmospec.discrepancy.domain import edge_warnings

    draws = np.column_stack([np.full(50, 1200.0), np.full(50, 10.0), np.full(50, 0.5)])
    bounds = {"teff": (900.0, 2400.0), "fsed": (1.0, 10.0), "mh": (-0.5, 0.5)}
    said = edge_warnings(draws, ["teff", "fsed", "mh"], bounds, "dback24")
    assert [w.split(":")[0] for w in said] == ["mh"]
