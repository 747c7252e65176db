"""Spectra of higher resolution than the models are smoothed to the models' resolving power
before any route bins them; prism spectra are left as they are."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from atmospec.resolution import FINE_SAMPLING, SPEX_PRISM_R, to_model_resolution
from atmospec.spectrum import Spectrum

SIGMA_PER_FWHM = 1.0 / np.sqrt(8.0 * np.log(2.0))


def _high_res(step_um: float = 6e-5, lo: float = 0.9, hi: float = 2.4) -> np.ndarray:
    return np.arange(lo, hi, step_um)  # lambda / dlambda 15000-40000


def test_an_unresolved_line_gets_the_models_width_and_keeps_its_equivalent_width() -> None:
    # A line of R 20000 at 1.25 um, smoothed to R 120, is a Gaussian of FWHM
    # 1.25 / 120 = 0.0104 um (the input's own width adds 1.25 / 20000 in quadrature: 0.02 %)
    # with the same equivalent width: convolution conserves area.
    w = _high_res(2e-5, 1.0, 1.5)  # 1.3 pixels per sigma of the line: its area is sampled
    sig_line = 1.25 / 20000 * SIGMA_PER_FWHM
    depth = 0.6 * np.exp(-0.5 * ((w - 1.25) / sig_line) ** 2)
    s = Spectrum(w, 1.0 - depth, np.full(w.size, 0.01), meta={"resolution": 20000})
    out, notes = to_model_resolution(s, SPEX_PRISM_R)
    assert notes and notes[0].startswith("smoothed from R 20000 (stated) to the models' R 120")
    near = (out.wavelength > 1.15) & (out.wavelength < 1.35)
    w_out, absorbed = out.wavelength[near], 1.0 - out.flux[near]
    ew_in = 0.6 * sig_line * np.sqrt(2 * np.pi)
    ew_out = np.trapezoid(absorbed, w_out)
    assert ew_out == pytest.approx(ew_in, rel=0.01)
    centre = np.sum(absorbed * w_out) / np.sum(absorbed)
    sigma = np.sqrt(np.sum(absorbed * (w_out - centre) ** 2) / np.sum(absorbed))
    assert sigma / SIGMA_PER_FWHM == pytest.approx(1.25 / 120, rel=0.02)  # FWHM from sigma
    assert out.meta["resolution"] == 120.0


def test_a_stated_resolving_power_near_the_largest_float_is_an_unresolved_one() -> None:
    # `fit --resolution 1e308` ended in an OverflowError (1 / R**2 squared R first). Any R far
    # above the models' is the same statement: the line is smoothed to the models' width alone.
    w = _high_res(2e-5, 1.0, 1.5)
    line = 1.0 - 0.6 * np.exp(-0.5 * ((w - 1.25) / 1e-5) ** 2)
    flux = {}
    for r in (1e6, 1e308):
        s = Spectrum(w, line, np.full(w.size, 0.01), meta={"resolution": r})
        out, notes = to_model_resolution(s, SPEX_PRISM_R)
        assert notes and out.meta["resolution"] == 120.0
        flux[r] = out.flux
    np.testing.assert_allclose(flux[1e308], flux[1e6], atol=1e-9)


def test_binned_errors_are_those_of_the_pixels_in_each_bin() -> None:
    # White noise of sigma 0.05 per pixel: the smoothing grid has ten bins per model FWHM
    # (lambda / dlambda = 1200), so each holds lambda / (1200 * 6e-5 um) pixels and keeps the
    # error of their mean, sigma / sqrt(n). Smoothing itself lowers the scatter further.
    rng = np.random.default_rng(1)
    w = _high_res()
    flux = 1.0 + 0.05 * rng.standard_normal(w.size)
    out, _ = to_model_resolution(Spectrum(w, flux, np.full(w.size, 0.05)), SPEX_PRISM_R)
    n_per_bin = out.wavelength / 1200.0 / 6e-5
    assert out.uncertainty is not None
    np.testing.assert_allclose(out.uncertainty, 0.05 / np.sqrt(n_per_bin), rtol=0.08)
    assert np.std(out.flux) < 0.5 * np.median(out.uncertainty)


def test_nothing_is_smoothed_across_a_gap_or_invented_in_it() -> None:
    w = _high_res()
    gap = (w > 1.35) & (w < 1.45)  # a telluric band the reduction blanked
    flux = np.where(gap, np.nan, 1.0 + 0.1 * (w > 1.40))
    s = Spectrum(w, flux, np.full(w.size, 0.01), mask=gap)
    out, _ = to_model_resolution(s, SPEX_PRISM_R)
    inside = (out.wavelength > 1.35) & (out.wavelength < 1.45)
    assert out.mask[inside].all()
    # within 0.84 sigma of the kernel of an edge the data fill less than 80 % of it: masked
    sigma = 1.35 / SPEX_PRISM_R * SIGMA_PER_FWHM
    assert out.mask[(out.wavelength > 1.35 - 0.8 * sigma) & (out.wavelength < 1.35)].all()
    kept = ~out.mask & (out.wavelength < 1.35)
    np.testing.assert_allclose(out.flux[kept], 1.0, rtol=1e-9)  # no step leaked from 1.45 um


def test_prism_spectra_are_left_as_they_are(splat_dir: Path) -> None:
    # Library prism files sample at lambda / dlambda 410-710, below FINE_SAMPLING; a stated R
    # within the prism's range (the 0.3 arcsec slit's 200) changes nothing either. A prism
    # spectrum put on a fine axis is smoothed unless its R is stated.
    from atmospec import library

    gd165b = library.load("11250_11052").good()
    same, notes = to_model_resolution(gd165b, SPEX_PRISM_R)
    assert same is gd165b and notes == []
    fine = np.arange(0.7, 2.5, 2e-4)  # sampling ~ 7500
    assert np.median(fine / 2e-4) > FINE_SAMPLING
    assert gd165b.uncertainty is not None
    on_fine = Spectrum(
        fine,
        np.interp(fine, gd165b.wavelength, gd165b.flux),
        np.interp(fine, gd165b.wavelength, gd165b.uncertainty),
    )
    _, notes = to_model_resolution(on_fine, SPEX_PRISM_R)
    assert "(state the spectrum's own with --resolution if it is lower)" in notes[0]
    stated = on_fine.copy(meta={"resolution": 200})
    assert to_model_resolution(stated, SPEX_PRISM_R) == (stated, [])
    assert to_model_resolution(on_fine, None) == (on_fine, [])  # a user grid: R unknown


@pytest.mark.realdata
def test_a_high_resolution_spectrum_answers_as_the_prism_spectrum_of_the_same_object(
    splat_dir: Path,
) -> None:
    # 2M1207A (TWA 27A, young M8) has two library spectra: a prism one (10799_10869) and one
    # taken with SpeX's cross-dispersed mode (12300_10869: GRAT 'ShortXD', RES 750, pixels at
    # lambda/dlambda ~ 3900). Smoothed to the grids' R 120, the SXD spectrum gets the prism's
    # BT-Settl best node (2300 K, log g 5.0, [M/H] +0.5); binned as it is, it got 2000 K and
    # [M/H] -0.5. The default predictor's combined answer moves from ~90 K to ~20 K off the
    # prism's, through BT-Settl (fitted by chi-square); the Diamondback CNN reads both SXD
    # versions within 20 K of each other, ~185 K below its prism answer, but it too is given
    # the smoothed spectrum, and says so.
    from atmospec import io
    from atmospec.fitting import fit_chi2
    from atmospec.grids import load_grid
    from atmospec.library import spectrum_path
    from atmospec.multigrid import MultiGridPredictor

    prism = io.read(spectrum_path("10799_10869"))
    sxd = io.read(spectrum_path("12300_10869"))
    as_is = sxd.copy(meta={**sxd.meta, "resolution": 200})  # within the prism's: not smoothed
    grid = load_grid("btsettl08")
    want = fit_chi2(prism, grid).best
    smoothed = fit_chi2(sxd, grid)
    assert smoothed.best == want
    assert any(n.startswith("smoothed from R 750 (stated)") for n in smoothed.notes)
    assert fit_chi2(as_is, grid).best["teff"] <= want["teff"] - 200
    rows = MultiGridPredictor(draws=3000, coverage="mask").predict([prism, sxd, as_is]).table()
    teff = [float(t) for t in rows["teff_median"]]
    assert abs(teff[1] - teff[0]) < 50 < abs(teff[2] - teff[0])
    from atmospec.prediction import Predictor

    cnn = Predictor("default", draws=50, coverage="mask").predict([sxd]).table()[0]
    assert "smoothed from R 750 (stated)" in str(cnn["notes"])


@pytest.mark.realdata
def test_models_are_smoothed_to_a_spectrum_stated_coarser_than_them(splat_dir: Path) -> None:
    # GD 165B (L4, prism R 120) as the prism's 1.6 arcsec slit would see it (R 37.5): its
    # bands are broader than any model's, and data cannot be sharpened. With its R stated,
    # the chi-square compares it with the models smoothed to R 37.5, which describe it better
    # at the same photon errors: BT-Settl's best reduced chi-square 10.1 against 14.5 with the
    # models left at R 120 (Diamondback: 22.2 against 28.5). Pixels within one resolution
    # element (FWHM sqrt(1/37.5^2 - 1/120^2) in ln lambda) of the grid's ends are not
    # compared: the kernel would run off the models there.
    from atmospec import library
    from atmospec.fitting import fit_chi2
    from atmospec.fitting.data import prepare
    from atmospec.grids import load_grid

    coarse = library.load("11250_11052").convolve(37.5, r_in=120.0)
    assert coarse.meta["resolution"] == 37.5
    unstated = coarse.copy(meta={})
    for name, ratio in (("btsettl08", 0.8), ("dback24", 0.85)):
        grid = load_grid(name)
        told = fit_chi2(coarse, grid, discrepancy=None)
        assert any(
            n.startswith("the models smoothed from R 120 to the spectrum's stated R 37.5")
            for n in told.notes
        ), told.notes
        plain = fit_chi2(unstated, grid, discrepancy=None)
        assert told.chi2_red < ratio * plain.chi2_red, (name, told.chi2_red, plain.chi2_red)
        fwhm = np.sqrt(1 / 37.5**2 - 1 / 120**2)
        used = prepare(coarse, grid).wavelength
        assert used.max() <= grid.wavelength[-1] * np.exp(-fwhm)
        assert used.min() >= grid.wavelength[0] * np.exp(fwhm)
        assert prepare(unstated, grid).wavelength.max() > grid.wavelength[-1] * np.exp(-fwhm)


@pytest.mark.realdata
def test_a_coarse_spectrum_is_answered_by_the_coarse_variants(splat_dir: Path) -> None:
    # GD 165B (L4, R 120) smoothed to R 37.5 and so stated. The prism-resolution CNNs read its
    # broader bands as lower gravity: the default answer's log g fell from 5.23 to 4.77
    # (-0.46 dex; -0.16 on average over twelve companions). The coarse variants (trained on
    # spectra smoothed to R 25-75) serve it instead: log g within 0.15 dex of the native
    # spectrum's answer (5.13 against 5.23), Teff within 100 K (1887 against 1933), and the
    # row says which model served and why.
    from atmospec import library
    from atmospec.multigrid import MultiGridPredictor

    native = library.load("11250_11052")
    coarse = native.convolve(37.5, r_in=120.0)
    mp = MultiGridPredictor(draws=3000)
    assert set(mp.coarse) == {"dback24", "burrows06"}
    assert "|coarse:dback24=dback24-spex-coarse-" in mp.model_id
    rows = mp.predict([native, coarse]).table()
    assert "coarse" not in str(rows[0]["notes"])
    assert str(rows[1]["model_id"]).startswith("dback24-spex-coarse-")
    assert "its stated R 37.5 is coarser than the SpeX prism spectra" in str(rows[1]["notes"])
    assert "answered by dback24-spex-coarse-" in str(rows[1]["notes"])
    assert not rows[1]["low_resolution"]  # within the R 25-75 its model was trained on
    dlogg = float(rows[1]["logg_median"]) - float(rows[0]["logg_median"])
    dteff = float(rows[1]["teff_median"]) - float(rows[0]["teff_median"])
    assert abs(dlogg) < 0.15 and abs(dteff) < 100, (dlogg, dteff)
    # the same predictor without its coarse variants: the bias they remove
    mp.coarse = {}
    old = mp.predict([coarse]).table()[0]
    assert float(old["logg_median"]) < float(rows[0]["logg_median"]) - 0.3


@pytest.mark.realdata
def test_stating_the_resolution_on_the_command_line(splat_dir: Path, tmp_path: Path) -> None:
    # GD 165B's prism spectrum written on a fine axis, as a user's interpolated file would be:
    # unstated, the pixels say R up to ~3700 and the spectrum is smoothed (and said to be);
    # with --resolution 120, its true R, nothing is smoothed.
    from astropy.table import Table
    from typer.testing import CliRunner

    from atmospec import library
    from atmospec.cli.main import app

    gd165b = library.load("11250_11052").good()
    assert gd165b.uncertainty is not None
    fine = np.arange(0.7, 2.5, 2e-4)
    on_fine = Table(
        {
            "wavelength": fine,
            "flux": np.interp(fine, gd165b.wavelength, gd165b.flux),
            "error": np.interp(fine, gd165b.wavelength, gd165b.uncertainty),
        },
        units={"wavelength": "um", "flux": "erg s-1 cm-2 um-1", "error": "erg s-1 cm-2 um-1"},
    )
    path = tmp_path / "fine.ecsv"
    on_fine.write(path)
    runner = CliRunner()
    args = ["--quiet", "predict", str(path), "--draws", "100", "--no-plots", "-o"]
    res = runner.invoke(app, [*args, str(tmp_path / "a")])
    assert res.exit_code == 0, res.output
    row = Table.read(tmp_path / "a" / "predictions.ecsv")[0]
    assert "smoothed from R" in row["notes"] and row["sampling_resolution"] > FINE_SAMPLING
    res = runner.invoke(app, [*args, str(tmp_path / "b"), "--resolution", "120"])
    assert res.exit_code == 0, res.output
    row = Table.read(tmp_path / "b" / "predictions.ecsv")[0]
    assert "smoothed from R" not in row["notes"]


@pytest.mark.realdata
def test_a_resolving_power_that_varies_with_wavelength(splat_dir: Path, tmp_path: Path) -> None:
    # A low-resolution prism's R varies along the spectrum (JWST/NIRSpec PRISM's rises from
    # ~30 near 1.2 um). GD 165B smoothed from R 30 at 1.0 um to R 60 at 2.4 um, and that curve
    # stated in a file (wavelength, R): the models are smoothed to each wavelength's R, which
    # describes the spectrum better than any one R does (BT-Settl's best reduced chi-square
    # 10.20 against 10.48 at R 30, 10.87 at R 45, 11.75 at R 60 and 14.71 unsmoothed). The
    # default prediction sends it to the coarse variants; a table without an R column is
    # refused, naming the file.
    from astropy.table import Table
    from typer.testing import CliRunner

    from atmospec import library
    from atmospec.cli.main import app
    from atmospec.fitting import fit_chi2
    from atmospec.grids import load_grid
    from atmospec.resolution import read_resolution, resolution_at

    gd165b = library.load("11250_11052").good()
    coarse = gd165b.convolve(np.interp(gd165b.wavelength, [1.0, 2.4], [30.0, 60.0]), r_in=120.0)
    curve_file = tmp_path / "r.csv"
    curve_file.write_text("wavelength,R\n1.0,30\n2.4,60\n")
    curve = read_resolution(str(curve_file))
    meta = {k: v for k, v in coarse.meta.items() if k != "resolution"}
    told = coarse.copy(meta={**meta, "resolution": curve})
    at = resolution_at(told, [1.7])
    assert at is not None and at.tolist() == [45.0]
    grid = load_grid("btsettl08")
    best = fit_chi2(told, grid, discrepancy=None)
    assert any("stated R 30-60 (by wavelength)" in n for n in best.notes), best.notes
    for one in (30.0, 45.0, 60.0, None):
        other = coarse.copy(meta=meta if one is None else {**meta, "resolution": one})
        assert best.chi2_red < fit_chi2(other, grid, discrepancy=None).chi2_red, one
    path = tmp_path / "coarse.ecsv"
    coarse.copy(meta=meta).write(path)
    runner = CliRunner()
    args = ["--quiet", "predict", str(path), "--draws", "100", "--no-plots", "-o"]
    res = runner.invoke(app, [*args, str(tmp_path / "a"), "--resolution", str(curve_file)])
    assert res.exit_code == 0, res.output
    row = Table.read(tmp_path / "a" / "predictions.ecsv")[0]
    assert str(row["model_id"]).startswith("dback24-spex-coarse-")
    assert "its stated R 30 is coarser" in row["notes"]
    bad = tmp_path / "bad.csv"
    bad.write_text("wavelength,width\n1.0,0.03\n2.4,0.04\n")
    res = runner.invoke(
        app, [*args, str(tmp_path / "b"), "--resolution", str(bad)], env={"COLUMNS": "400"}
    )
    said = " ".join(res.output.replace("│", " ").split())
    assert res.exit_code != 0
    assert "bad.csv" in said and "an R column" in said, said


def test_spextool_files_state_their_resolution(splat_dir: Path) -> None:
    # Spextool's RES card: 37.5 with the prism's 1.6 arcsec slit (2MASS J1126+4819, L6), half
    # the models' lowest prism R 75, though its pixels sample as finely as any prism file; so
    # the spectrum is marked coarser than the models, which its sampling alone cannot show.
    from atmospec import io
    from atmospec.library import spectrum_path
    from atmospec.prediction.coverage import SPEX_PRISM_MIN_R, prepare_input

    wide = io.read(spectrum_path("12400_12133"))
    assert wide.meta["resolution"] == pytest.approx(37.5, abs=0.01)
    axis = np.linspace(0.95, 2.35, 300)
    told = prepare_input(wide, axis, policy="mask", min_resolution=SPEX_PRISM_MIN_R)
    assert told.low_resolution and told.sampling_resolution > 2 * SPEX_PRISM_MIN_R
    unstated = wide.copy(meta={k: v for k, v in wide.meta.items() if k != "resolution"})
    assert not prepare_input(unstated, axis, policy="mask", min_resolution=75.0).low_resolution


def test_a_bad_resolution_statement_is_refused_naming_the_file(tmp_path: Path) -> None:
    # Each refusal of --resolution names the value or file and what is wrong with it.
    from atmospec.errors import FileFormatError
    from atmospec.resolution import read_resolution

    with pytest.raises(ValueError, match="positive finite R, not -3"):
        read_resolution("-3")
    with pytest.raises(FileFormatError, match="'nofile.csv': neither a resolving power"):
        read_resolution("nofile.csv")
    cases = {
        "negative.csv": ("wavelength,R\n1.0,30\n2.0,-5\n", "every resolving power must be"),
        "nm.csv": ("wavelength,R\n1000,30\n2000,60\n", "wavelengths around 1500 are not micron"),
        "one.csv": ("wavelength,R\n1.0,30\n", "two or more positive numbers"),
        "norcol.csv": ("wave,width\n1.0,0.03\n2.0,0.04\n", "needs a wavelength column"),
    }
    for name, (text, problem) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(FileFormatError) as err:
            read_resolution(str(path))
        assert name in str(err.value) and problem in str(err.value), str(err.value)
    # a table in nm says so in its header and is converted to micron
    ecsv = tmp_path / "nm.ecsv"
    from astropy.table import Table

    Table({"wavelength": [1000.0, 2000.0], "R": [30.0, 60.0]}, units={"wavelength": "nm"}).write(
        ecsv
    )
    assert read_resolution(str(ecsv)) == {"wavelength": [1.0, 2.0], "R": [30.0, 60.0]}


def test_a_spectrum_shorter_than_the_smoothing_kernel_is_smoothed_or_refused_by_name():
    """One echelle order of 12 nm at 1 um: on the fine grid (FWHM/10 of R 120 per bin) it
    fills 14 bins, while the Gaussian reaching 4 sigma spans 35. The kernel is longer than the
    data (once a numpy broadcast error); the middle bins still hold >= 80 % of the kernel's
    weight and are kept, a constant stays constant. Half as long, none is: refused, named."""
    from atmospec.errors import InvalidSpectrumError

    w = np.linspace(1.0, 1.012, 2000)
    s = Spectrum(w, np.full(w.size, 2.0), np.full(w.size, 0.01), meta={"source": "order.fits"})
    out, notes = to_model_resolution(s, 120.0)
    assert notes and notes[0].startswith("smoothed from R")
    good = ~out.mask
    assert 2 <= good.sum() < 14
    np.testing.assert_allclose(out.flux[good], 2.0, rtol=1e-12)
    # kept bins sit in the middle: >= 1.28 sigma (80 % of the kernel) from each end
    sigma_um = 1.006 / 120.0 / 2.3548
    assert out.wavelength[good].min() > 1.0 + 0.9 * sigma_um
    assert out.wavelength[good].max() < 1.012 - 0.9 * sigma_um
    short = Spectrum(w[:800] * 1.0, np.full(800, 2.0), np.full(800, 0.01),
                     meta={"source": "order.fits"})  # fmt: skip
    with pytest.raises(InvalidSpectrumError, match=r"order\.fits: too short to smooth to R 120"):
        to_model_resolution(short, 120.0)
