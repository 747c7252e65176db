"""atmospec.predict: intervals from noise x model uncertainty, tables, plots, input checks."""

# ruff: noqa: F811  (the `tiny` fixture is imported from _inference_support)
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _inference_support import synthetic_spectrum, tiny  # noqa: F401 (fixture)

pytestmark = pytest.mark.realdata

TRUTH = {"teff": 1450.0, "logg": 4.75, "mh": 0.1, "fsed": 2.5}  # off-node point inside dback24


@pytest.fixture(scope="module")
def predictor(tiny: dict[str, Any]) -> Any:
    from atmospec.prediction.predictor import Predictor

    return Predictor(tiny["estimator"], grid=tiny["grid"], ood=tiny["detector"], draws=1000)


def test_predict_table_columns_and_truth(predictor: Any, tiny: dict[str, Any]) -> None:
    spec = synthetic_spectrum(tiny["grid"], TRUTH, snr=50, seed=3)
    result = predictor.predict(spec)
    table = result.table()
    required = ["source"]
    for p in ("teff", "logg", "mh", "fsed"):
        required += [f"{p}_median", f"{p}_p16", f"{p}_p84", f"{p}_p2.5", f"{p}_p97.5"]
    required += ["ood_score", "ood_flag", "chi2_red", "model_id"]
    assert table.colnames[: len(required)] == required
    assert result.samples.shape == (1, 1000, 4)
    row = table[0]
    for p in ("teff", "logg", "mh", "fsed"):
        assert row[f"{p}_p2.5"] <= row[f"{p}_p16"] <= row[f"{p}_median"] <= row[f"{p}_p84"]
        assert row[f"{p}_p84"] <= row[f"{p}_p97.5"]
    # Teff is the best constrained parameter: the truth lies inside the 95 % interval, and the
    # interval is far narrower than the grid's 1500 K span.
    assert row["teff_p2.5"] <= TRUTH["teff"] <= row["teff_p97.5"]
    assert row["teff_p97.5"] - row["teff_p2.5"] < 600
    # chi2_red of the grid model at the medians: dof = 104 pixels - (4 params + 1 scale) = 99.
    assert result.dof[0] == 104 - 5
    assert np.isfinite(row["chi2_red"]) and row["chi2_red"] > 0
    assert not row["ood_flag"]
    assert row["model_id"].startswith("mlp-dback24-")


def test_intervals_combine_noise_and_model_uncertainty(
    predictor: Any, tiny: dict[str, Any]
) -> None:
    # Variance of the mixture = model variance + noise-induced variance of the mean, so the
    # Teff samples (far from the grid bounds, so not clipped) spread at least as much as the
    # estimator's own sigma (up to MC error: ~2 % on a std from 1000 draws), and lower S/N
    # widens the interval.
    hi = predictor.predict(synthetic_spectrum(tiny["grid"], TRUTH, snr=100, seed=4, name="hi"))
    lo = predictor.predict(synthetic_spectrum(tiny["grid"], TRUTH, snr=8, seed=4, name="lo"))
    spread = float(hi.samples[0, :, 0].std())
    assert spread >= 0.95 * hi.point_std[0, 0]
    width = lambda r: np.subtract(*np.percentile(r.samples[0, :, 0], [84, 16]))  # noqa: E731
    assert width(lo) > width(hi)


def test_draws_do_not_depend_on_batch(predictor: Any, tiny: dict[str, Any]) -> None:
    a = synthetic_spectrum(tiny["grid"], TRUTH, snr=30, seed=5, name="a")
    b = synthetic_spectrum(tiny["grid"], {**TRUTH, "teff": 1900.0}, snr=30, seed=6, name="b")
    alone = predictor.predict(a)
    both = predictor.predict([b, a])
    np.testing.assert_allclose(alone.samples[0], both.samples[1], rtol=1e-5)


def test_plots_and_write(predictor: Any, tiny: dict[str, Any], tmp_path: Path) -> None:
    result = predictor.predict(synthetic_spectrum(tiny["grid"], TRUTH, snr=40, seed=7))
    assert len(result.plot().axes) == 2  # data over model, residuals
    assert len(result.corner().axes) == 10  # 4 parameters: 4 diagonal + 6 pairs
    files = result.write(tmp_path / "run")
    names = {f.name for f in files}
    assert {"predictions.ecsv", "predictions.csv", "run.json"} <= names
    assert any(n.endswith("_fit.png") for n in names) and any(
        n.endswith("_corner.png") for n in names
    )


def test_lazy_top_level_predict() -> None:
    import atmospec
    from atmospec.prediction.predictor import predict

    assert atmospec.predict is predict


# ---------------------------------------------------------------- input checks
def _spec(**kw: Any) -> Any:
    from atmospec.spectrum import Spectrum

    wave = kw.pop("wave", np.linspace(0.85, 2.55, 400))
    flux = kw.pop("flux", 1.0 + 0.2 * np.sin(4 * wave))
    unc = kw.pop("unc", np.full(wave.size, 0.02))
    return Spectrum(wave, flux, unc, meta={"source": "test.fits"}, **kw)


def test_partial_coverage_refused_or_masked(predictor: Any) -> None:
    from atmospec.errors import CoverageError
    from atmospec.prediction.coverage import prepare_input

    wave = predictor.estimator.wavelength_
    short = _spec(wave=np.linspace(1.1, 2.55, 400))
    # bins beyond the spectrum's range: refused by the default ("gaps") and by "refuse"
    with pytest.raises(
        CoverageError, match=r"test.fits: .* lie outside it \(the default coverage 'gaps' masks"
    ):
        prepare_input(short, wave)
    with pytest.raises(CoverageError, match=r"test.fits: .* lie outside it; use coverage='mask'"):
        prepare_input(short, wave, policy="refuse")
    m = prepare_input(short, wave, policy="mask")
    # bins below 1.1 um are masked: ~ln(1.1/0.897)/ln(2.512/0.897) = 20 % of a log-uniform axis
    assert 0.15 < m.masked_fraction < 0.25
    assert np.all(np.isfinite(m.flux)) and np.all(np.isinf(m.sigma[m.masked]))
    assert "masked" in m.notes[0]
    # one band: too little for the network, and the refusal names the route that fits it,
    # under the default policy too (which named --coverage mask, refused in turn)
    band = _spec(wave=np.linspace(1.9, 2.55, 400))
    with pytest.raises(
        CoverageError, match=r"more than max_masked_fraction.*`atmospec fit FILE --grid NAME`"
    ):
        prepare_input(band, wave, policy="mask")
    with pytest.raises(CoverageError) as err:
        prepare_input(band, wave)
    said = str(err.value)
    assert said.startswith("test.fits: the spectrum covers 1.900-2.550 um")
    assert "masked, they would leave" in said and "`atmospec fit FILE --grid NAME`" in said
    assert "--coverage mask" not in said


def test_nan_flux_named(predictor: Any) -> None:
    from atmospec.errors import InvalidSpectrumError
    from atmospec.prediction.coverage import prepare_input
    from atmospec.spectrum import Spectrum

    wave = np.linspace(0.85, 2.55, 400)
    flux = 1.0 + 0.2 * np.sin(4 * wave)
    flux[100:120] = np.nan
    spec = Spectrum(wave, flux, np.full(400, 0.02), meta={"source": "nan.fits"}, validate=False)
    wave_m = predictor.estimator.wavelength_
    with pytest.raises(
        InvalidSpectrumError,
        match=r"nan.fits: 20 pixels have NaN or infinite flux .*use coverage='gaps'",
    ):
        prepare_input(spec, wave_m, policy="refuse")
    # The default ("gaps") masks the hole, as "mask" does: the bins whose centre lies inside
    # the NaN pixels' span (less than MIN_BIN_FILL of them is filled) and nothing else.
    lo, hi = wave[100], wave[119]
    for policy in ("gaps", "mask"):
        m = prepare_input(spec, wave_m, policy=policy)
        inside = (wave_m > lo) & (wave_m < hi)
        assert np.array_equal(m.masked, inside), policy
        assert np.all(np.isfinite(m.flux)) and np.all(np.isinf(m.sigma[m.masked]))
        span = f"{wave_m[inside][0]:.3f}-{wave_m[inside][-1]:.3f} um"
        assert m.notes == [f"{int(inside.sum())} bins on NaN fluxes ({span}) masked"]


def test_invalid_pixels_at_an_end_are_no_hole(predictor: Any) -> None:
    # NaN pixels up to 0.95 um (a blue end the detector did not reach): the data stop there,
    # so the default refuses the bluer model bins as it refuses bins beyond the spectrum's
    # range; "mask" masks them.
    from atmospec.errors import CoverageError
    from atmospec.prediction.coverage import prepare_input
    from atmospec.spectrum import Spectrum

    wave = np.linspace(0.85, 2.55, 400)
    flux = 1.0 + 0.2 * np.sin(4 * wave)
    flux[wave < 0.95] = np.nan
    spec = Spectrum(wave, flux, np.full(400, 0.02), meta={"source": "blue.fits"}, validate=False)
    wave_m = predictor.estimator.wavelength_
    first = wave[wave >= 0.95][0]
    with pytest.raises(
        CoverageError,
        match=rf"blue.fits: its valid pixels span {first:.3f}-2.550 um .* lie beyond them",
    ):
        prepare_input(spec, wave_m)
    m = prepare_input(spec, wave_m, policy="mask")
    assert m.masked.any() and not m.masked[wave_m > 1.0].any()


def test_missing_and_zero_errors(predictor: Any) -> None:
    from atmospec.errors import InvalidSpectrumError
    from atmospec.prediction.coverage import prepare_input
    from atmospec.spectrum import Spectrum

    wave = predictor.estimator.wavelength_
    no_err = _spec(unc=None)
    with pytest.raises(InvalidSpectrumError, match="no uncertainties.*assume_snr"):
        prepare_input(no_err, wave)
    m = prepare_input(no_err, wave, assume_snr=50)
    # constant per-pixel sigma = median |flux| / 50 (before averaging pixels into model bins)
    assert m.spectrum is not None and m.spectrum.uncertainty is not None
    assert np.allclose(m.spectrum.uncertainty, np.median(np.abs(no_err.flux)) / 50)
    assert "assume_snr" in m.notes[0]
    w = np.linspace(0.85, 2.55, 400)
    zero = Spectrum(w, np.ones(400), np.zeros(400), meta={"source": "z.fits"}, validate=False)
    with pytest.raises(InvalidSpectrumError, match="z.fits: 400 of 400 uncertainties are zero"):
        prepare_input(zero, wave)


def test_wrong_units(predictor: Any) -> None:
    from atmospec.errors import UnitError
    from atmospec.prediction.coverage import prepare_input
    from atmospec.spectrum import Spectrum

    wave = predictor.estimator.wavelength_
    w_aa = np.linspace(8500.0, 25500.0, 400)  # Angstrom values given as micron
    with pytest.raises(UnitError, match="look like 'AA'"):
        prepare_input(_spec(wave=w_aa), wave)
    w = np.linspace(0.85, 2.55, 400)
    mags = Spectrum(
        w, np.full(400, 15.0), np.full(400, 0.1), flux_unit="mag", meta={"source": "m.txt"}
    )
    with pytest.raises(UnitError, match="m.txt: flux unit 'mag' is not a spectral flux density"):
        prepare_input(mags, wave)


def test_fnu_converted_to_flambda(predictor: Any, tiny: dict[str, Any]) -> None:
    # The same object in F_lambda and in Jy (F_nu = F_lambda lambda^2 / c) must give the same
    # prediction: the F_nu spectrum is converted back before the network sees it.
    base = synthetic_spectrum(tiny["grid"], TRUTH, snr=40, seed=8, name="obj")
    flam = base.copy(
        flux_unit="erg / (s cm2 um)", flux=base.flux * 1e-15, uncertainty=base.uncertainty * 1e-15
    )
    fnu = flam.to_flux_unit("Jy")
    r1, r2 = predictor.predict(flam), predictor.predict(fnu)
    np.testing.assert_allclose(r1.samples, r2.samples, rtol=1e-4, atol=1e-3)
    assert any("F_nu" in n for n in r2.notes[0])


@pytest.mark.realdata
def test_spectrum_coarser_than_the_model_is_noted(splat_dir: Path) -> None:
    # GD 165B (L4, SpeX prism, R ~ 120) is sampled at lambda/dlambda ~ 470. The same spectrum
    # smoothed to R = 40 and binned 6:1 (as a NIRSpec PRISM spectrum is near 1.2 um) samples
    # at ~78: it resolves at most R 39, below the prism's 75, so its features are broader
    # than the models' (log g falls by ~0.5 dex with no other flag) and each pixel feeds
    # several bins: the row says so in its notes, its low_resolution column and the terminal
    # table's warnings.
    from astropy.table import Table
    from rich.console import Console

    from atmospec import library
    from atmospec.cli._results_table import results_table
    from atmospec.prediction import Predictor
    from atmospec.spectrum import Spectrum

    spec = library.load("11250_11052").good()
    w, e = np.asarray(spec.wavelength), np.asarray(spec.uncertainty)
    n = (w.size // 6) * 6
    smooth = np.asarray(spec.convolve(40.0, r_in=120.0).flux)
    coarse = Spectrum(
        w[:n].reshape(-1, 6).mean(1),
        smooth[:n].reshape(-1, 6).mean(1),
        e[:n].reshape(-1, 6).mean(1) / np.sqrt(6),
        flux_unit=spec.flux_unit,
        name="GD 165B at R 40",
    )
    pred = Predictor(draws=100, coverage="mask")
    smoothed = spec.convolve(40.0, r_in=120.0)  # sampled as finely as before: R from its meta
    table = pred.predict([spec, coarse, smoothed]).table()
    native, binned = table[0], table[1]
    assert table[2]["low_resolution"] and table[2]["sampling_resolution"] > 400
    assert "its stated resolving power R 40 is coarser than the R >= 75" in table[2]["notes"]
    assert native["sampling_resolution"] == pytest.approx(470.0, rel=0.02)
    assert not native["low_resolution"] and "coarser" not in native["notes"]
    assert binned["sampling_resolution"] == pytest.approx(78.0, rel=0.02)
    assert binned["low_resolution"]
    assert "resolves at most R 39, coarser than the R >= 75" in binned["notes"]
    assert "log g" in binned["notes"]
    console = Console(width=160, record=True)
    console.print(results_table(Table(table), 20))
    text = console.export_text()
    assert text.count("low resolution") == 2
    # the default chain is rerouted by the multi-grid predictor, not here; a single shipped
    # model with a variant for coarse spectra names it, the variant itself does not
    variant = "--model dback24-spex-coarse is this model trained on spectra as coarse"
    assert variant not in table[2]["notes"]
    single = Predictor("dback24-spex", draws=100, coverage="mask").predict([spec, smoothed])
    assert variant not in single.table()[0]["notes"] and variant in single.table()[1]["notes"]
    own = Predictor("dback24-spex-coarse", draws=100, coverage="mask").predict([smoothed])
    assert "--model dback24-spex-coarse" not in own.table()[0]["notes"]


@pytest.mark.realdata
def test_resolution_option_states_the_spectra_resolving_power(
    splat_dir: Path, tmp_path: Path
) -> None:
    # A SpeX prism file read as it is has no stated resolving power: no warning. Told
    # --resolution 40 (below the prism's 75), the same file is noted as coarser than the
    # models, and the option is part of the run's identity (a rerun without it is refused).
    import shutil

    from astropy.table import Table
    from typer.testing import CliRunner

    from atmospec import library
    from atmospec.cli.main import app

    f = tmp_path / "gd165b.fits.gz"
    shutil.copy(library.spectrum_path("11250_11052"), f)
    runner = CliRunner()
    base = ["--quiet", "predict", str(f), "--grids", "none", "--draws", "50", "--no-plots"]
    res = runner.invoke(app, [*base, "-o", str(tmp_path / "a")])
    assert res.exit_code == 0, res.output
    row = Table.read(tmp_path / "a" / "predictions.ecsv")[0]
    assert not row["low_resolution"]
    res = runner.invoke(app, [*base, "--resolution", "40", "-o", str(tmp_path / "b")])
    assert res.exit_code == 0, res.output
    row = Table.read(tmp_path / "b" / "predictions.ecsv")[0]
    assert row["low_resolution"] and "stated resolving power R 40" in row["notes"]
    res = runner.invoke(app, [*base, "-o", str(tmp_path / "b")])
    said = res.output + str(res.exception)
    assert res.exit_code != 0 and "resolution: 40.0 -> None" in said
    res = runner.invoke(app, [*base, "--resolution", "-3", "-o", str(tmp_path / "c")])
    said = res.output + str(res.exception)
    assert res.exit_code != 0 and "resolution must be a positive finite R" in said


def test_npe_domain_excludes_a_coarse_spectrum() -> None:
    # A flat spectrum sampled like the grid's axis (lambda/dlambda ~600, S/N 15 per bin,
    # inside the NPE's 3-30) is in its domain; the same sampled at ~70 (lambda/dlambda below
    # 150: coarser than any prism spectrum) is not, and the reason says why first.
    from atmospec.prediction.coverage import SPEX_PRISM_MIN_R, prepare_input
    from atmospec.prediction.routing import NPEDomain
    from atmospec.spectrum import Spectrum

    dom = NPEDomain("npe", (3.0, 30.0), "dback24")
    axis = np.exp(np.linspace(np.log(0.9), np.log(2.45), 601))
    for n, coarse in ((601, False), (71, True)):
        w = np.exp(np.linspace(np.log(0.88), np.log(2.47), n))
        spec = Spectrum(w, np.ones(n), np.full(n, 1.0 / 15.0 / np.sqrt(601 / n)))
        inp = prepare_input(spec, axis, min_resolution=SPEX_PRISM_MIN_R)
        assert inp.low_resolution is coarse
        problem = dom.input_problem(inp)
        assert ("coarser than the spectra it was trained on" in problem) is coarse, problem
        if not coarse:
            assert problem == ""
            # the same fine pixels stated to resolve R 40 (a wide slit): the reason names R
            told = prepare_input(
                spec.copy(meta={"resolution": 40.0}), axis, min_resolution=SPEX_PRISM_MIN_R
            )
            assert told.low_resolution
            assert dom.input_problem(told).startswith("stated to resolve R 40, coarser")
