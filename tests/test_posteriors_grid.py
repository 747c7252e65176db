"""Tests of atmospec.posteriors on the embedded Diamondback grid and the shipped NPE."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def sim(grid):
    from atmospec.posteriors.simulate import GridSimulator

    return GridSimulator(grid)


def test_simulator_reproduces_grid_nodes(grid, sim) -> None:
    from atmospec.transforms import resampling_matrix

    row = 123
    node = grid.params.iloc[row][list(grid.param_names)].to_numpy(dtype=float)
    model = sim.models(node[None])[0]
    # at a node, interpolation has weight 1 on that node: the model is the node spectrum
    # resampled onto the target axis with the classic fit's matrix
    matrix, _ = resampling_matrix(sim.wavelength, grid.wavelength)
    np.testing.assert_allclose(model, matrix @ grid.flux(row), rtol=1e-10)
    assert sim.wavelength[0] >= 0.85 and sim.wavelength[-1] <= 2.45


def test_grid_likelihood_matches_nested_sampling_likelihood(grid, sim) -> None:
    from atmospec.fitting.chi2 import chi2_with_scale
    from atmospec.fitting.data import prepare
    from atmospec.fitting.nested import GridLikelihood
    from atmospec.posteriors.importance import grid_likelihood

    rng = np.random.default_rng(0)
    theta = sim.sample_prior(5, rng)
    flux = 3.0 * sim.models(theta[:1])[0]
    sigma = np.full_like(flux, np.median(flux) / 20)
    noisy = flux + sigma * rng.standard_normal(flux.size)
    spec = sim.spectrum(noisy, sigma)
    like = grid_likelihood(spec, grid)
    data = prepare(spec, grid)
    _, s_nodes = chi2_with_scale(data.model(grid.flux(slice(None))), data.flux, sigma)
    ref = GridLikelihood(data, grid, list(grid.param_names), {}, 2 * s_nodes.max(), False)
    # same likelihood (same interpolation, resampling, scale prior) as nested sampling uses
    np.testing.assert_allclose(like(theta), [ref(t) for t in theta], rtol=1e-9)
    # the conditional scale recovers the injected factor 3 at the true parameters
    s = like.scales(np.repeat(theta[:1], 2000, axis=0), rng)
    assert abs(s.mean() - 3.0) < 0.01


def test_npe_learns_from_dback24_spectra(sim) -> None:
    """Regression: the flow must learn from real grid spectra, not sit at the prior.

    With whitened-PCA-projected inputs the validation loss stayed at the prior entropy
    (8.0 nats) for 12 epochs. In flow space (logit of the box position) the uniform prior
    is a standard logistic per parameter, whose entropy is 2 nats, so the prior's loss is
    4 x 2 = 8 nats. Any useful posterior at S/N 3-30 is far narrower (Teff alone is known
    to ~1/20 of its range: log 20 = 3 nats less), so after three short epochs we require the
    loss to have dropped by more than 2 nats.
    """
    import torch

    from atmospec.posteriors.npe import NoiseModel, NPEstimator

    torch.set_num_threads(1)
    theta = sim.sample_prior(4500, np.random.default_rng(3))
    flux = sim.models(theta, dtype=np.float32)
    est = NPEstimator(
        sim.param_names,
        sim.bounds,
        noise=NoiseModel(snr_range=(3.0, 30.0), tilt_range=(-1.0, 1.0)),
        width=256,
        depth=2,
        n_features=64,
        transforms=4,
        max_epochs=3,
        seed=0,
    )
    est.fit(flux[:4000], theta[:4000], validation=(flux[4000:], theta[4000:]))
    assert min(est.history_["val_loss"]) < 8.0 - 2.0, est.history_["val_loss"]


@pytest.fixture(scope="module")
def shipped():
    from atmospec.models import list_models, load_model

    if "npe_dback24" not in {m["name"] for m in list_models()}:
        pytest.skip("the shipped npe_dback24 model is not present in this build")
    return load_model("npe_dback24", kind="npe")


def test_shipped_model_files_and_report(shipped) -> None:
    from atmospec.models import model_path

    folder = model_path("npe_dback24")
    size = sum(p.stat().st_size for p in folder.iterdir())
    assert size <= 6 * 1024**2  # issue budget: <= 6 MB with its report
    report = json.loads((folder / "calibration.json").read_text())
    assert len(report["coverage_hpd"]) == 10
    rec = json.loads((folder / "model.json").read_text())
    assert rec["provenance"]["grid"] == "dback24" and "versions" in rec["provenance"]
    assert shipped.param_names_ == ("teff", "logg", "mh", "fsed")


def test_shipped_model_recovers_a_simulated_dwarf(shipped, sim) -> None:
    rng = np.random.default_rng(42)
    truth = np.array([1450.0, 4.7, 0.1, 2.5])  # off-node in every parameter
    flux = sim.models(truth[None])[0]
    sigma = np.full_like(flux, np.median(flux) / 25.0)  # S/N 25, inside the training range
    noisy = flux + sigma * rng.standard_normal(flux.size)
    draws = shipped.sample(sim.spectrum(noisy, sigma), n=4000, seed=0)
    lo, hi = np.percentile(draws, [0.05, 99.95], axis=0)
    # a calibrated posterior holds the truth in its 99.9 % interval (fails 1 time in 1000)
    assert np.all((truth >= lo) & (truth <= hi)), (lo, hi)
    # and it is informative: the Teff interval is far narrower than the 1500 K prior
    assert hi[0] - lo[0] < 300
    box = np.array([shipped.bounds_[p] for p in shipped.param_names_])
    assert np.all(draws >= box[:, 0]) and np.all(draws <= box[:, 1])


def test_calibrate_cli_writes_report(shipped, tmp_path) -> None:
    from typer.testing import CliRunner

    from atmospec.cli.main import app

    res = CliRunner().invoke(
        app,
        [
            "calibrate",
            "npe_dback24",
            "--out",
            str(tmp_path),
            "--n-tests",
            "60",
            "--n-samples",
            "100",
        ],
    )
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "calibration.json").read_text())
    assert data["n_tests"] == 60 and (tmp_path / "calibration.png").is_file()
    assert "calibration" in res.output


def test_test_split_adds_the_recorded_model_error(sim) -> None:
    """An NPE trained with model-error realisations is tested on spectra that carry them.

    Each realisation is ``m (f z + U xi)`` (:func:`discrepancy_realisations`), so at a
    negligible photon noise (S/N 1e6) the fractional difference between the split with and
    without it, divided by the model's own fractional sd at that Teff, ``sqrt(f^2 + sum U^2)``,
    is a unit normal: its rms over 200 spectra x 664 pixels must be 1 within a few per cent.
    The parameters (and noise) do not depend on the choice.
    """
    from types import SimpleNamespace

    from atmospec.discrepancy import load_discrepancy
    from atmospec.posteriors.npe import NoiseModel
    from atmospec.posteriors.pipeline import test_split

    stub = SimpleNamespace(
        noise=NoiseModel(snr_range=(1e6, 1e6)), meta_={"config": {"discrepancy": "dback24-spex"}}
    )
    theta, with_me, _ = test_split(stub, sim, 200, seed=5)
    theta0, clean, _ = test_split(stub, sim, 200, seed=5, model_error=False)
    np.testing.assert_array_equal(theta, theta0)
    disc = load_discrepancy("dback24")
    frac = with_me / clean - 1.0
    z = np.empty_like(frac)
    for i, t in enumerate(np.round(theta[:, 0] / 10.0) * 10.0):
        var, fac = disc.fractional(float(t), sim.wavelength)
        z[i] = frac[i] / np.sqrt(var + np.sum(fac**2, axis=1))
    assert 0.95 < np.sqrt(np.mean(z**2)) < 1.05
    assert abs(np.mean(z)) < 0.05


def test_shipped_npe_covers_spectra_that_carry_model_error(shipped, sim) -> None:
    """The shipped NPE was trained with Diamondback's model-error realisations: on held-out
    spectra that carry them, its 95 % intervals hold the truth 95 % of the time.

    With 40 spectra a calibrated posterior puts <= 32 truths inside with probability 0.0007
    per parameter (binomial); the photon-noise-only NPE shipped before held only 31-44 % of
    them (its intervals ignored the model error), i.e. 12-18 of 40.
    """
    from atmospec.posteriors.pipeline import model_error_of, test_split

    assert model_error_of(shipped) is not None
    assert shipped.meta_["model_error"]["grid"] == "dback24"
    theta, noisy, sigma = test_split(shipped, sim, 40, seed=11)
    draws = shipped.sample(noisy, sigma, n=1000, seed=0)
    lo, hi = np.percentile(draws, [2.5, 97.5], axis=1)
    inside = ((theta >= lo) & (theta <= hi)).sum(axis=0)
    assert np.all(inside >= 33), dict(zip(shipped.param_names_, inside, strict=True))


def test_shipped_npe_leaves_out_masked_pixels_of_a_spectrum(shipped, grid) -> None:
    # A SpeX library file has NaN at its first pixel (0.645 um, masked by the reader): the
    # posterior must be that of the spectrum without the pixel, not a resampling error.
    from atmospec.spectrum import Spectrum

    wave = np.asarray(grid.wavelength)
    flux = grid.interpolate(np.array([1500.0, 5.0, 0.0, 2.0]))
    sigma = np.full(wave.size, np.median(flux) / 20.0)
    flux_nan = flux.copy()
    flux_nan[0] = np.nan
    masked = np.zeros(wave.size, dtype=bool)
    masked[0] = True
    with_nan = Spectrum(wave, flux_nan, sigma, mask=masked, name="nan")
    without = Spectrum(wave[1:], flux[1:], sigma[1:], name="cut")
    np.testing.assert_array_equal(
        shipped.sample(with_nan, n=200, seed=3), shipped.sample(without, n=200, seed=3)
    )
