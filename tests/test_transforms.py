"""Tests of atmospec.transforms: resampling against spectres on real spectra, coverage, R, noise."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atmospec.errors import CoverageError, InvalidSpectrumError
from atmospec.transforms import (
    FWHM_TO_SIGMA,
    add_noise,
    bin_edges,
    check_coverage,
    convolve_to_resolution,
    resample,
    resampling_matrix,
)

spectres = pytest.importorskip("spectres")

# A few SpeX prism library spectra of different types (HD 3651B, GJ 570D and field dwarfs).
LIBRARY_KEYS = ("10703_10070", "10020_11100", "10001_10443", "10002_10782", "10005_11020")


def _read_spex(splat_dir: Path, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Wavelength, flux, error of a library spectrum, read straight from its FITS file."""
    from astropy.io import fits

    folder = splat_dir / "resources" / "Spectra" / "Public" / "SPEX-PRISM"
    path = next(folder.glob(f"{key}.fits*"))
    with fits.open(path) as hdul:
        data = np.asarray(hdul[0].data, dtype=np.float64)
    wave, flux, err = data[0], data[1], data[2]
    good = np.isfinite(wave) & np.isfinite(flux) & np.isfinite(err) & (err > 0)
    return wave[good], flux[good], err[good]


def _read_model(splat_dir: Path, grid: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    folder = splat_dir / "resources" / "SpectralModels" / grid / "SPEX-PRISM"
    files = sorted(folder.glob("*.txt.gz"))[:n]
    fluxes = []
    wave = None
    for path in files:
        with gzip.open(path, "rt") as fh:
            arr = np.loadtxt(fh, comments="#")
        wave = arr[:, 0] if wave is None else wave
        fluxes.append(arr[:, 1])
    assert wave is not None
    return wave, np.vstack(fluxes)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


@pytest.mark.realdata
@pytest.mark.parametrize("key", LIBRARY_KEYS)
def test_matches_spectres_on_library_spectra(splat_dir: Path, key: str) -> None:
    wave, flux, err = _read_spex(splat_dir, key)
    inside = wave[(wave > wave[0] + 0.02) & (wave < wave[-1] - 0.02)]
    targets = {
        "coarser uniform": np.linspace(inside[0], inside[-1], 150),
        "finer uniform": np.linspace(inside[0], inside[-1], 2000),
        "log-uniform": np.geomspace(inside[0], inside[-1], 333),
    }
    for label, new in targets.items():
        ours, ours_err = resample(new, wave, flux, err)
        ref, ref_err = spectres.spectres(new, wave, flux, err, verbose=False)
        assert _rel(ours, ref) < 1e-10, label
        assert _rel(ours_err, ref_err) < 1e-10, label


@pytest.mark.realdata
def test_matches_spectres_on_another_spectrum_axis(splat_dir: Path) -> None:
    # Resample GJ 570D onto HD 3651B's own (irregular) pixel grid, as when stacking spectra.
    wave_a, flux_a, err_a = _read_spex(splat_dir, "10020_11100")
    wave_b, _, _ = _read_spex(splat_dir, "10703_10070")
    covered = check_coverage(wave_a, wave_b, policy="mask")
    assert 0 < covered.sum() < covered.size  # the axes differ slightly at the ends
    new = wave_b[covered]
    ours, ours_err = resample(new, wave_a, flux_a, err_a)
    ref, ref_err = spectres.spectres(new, wave_a, flux_a, err_a, verbose=False)
    assert _rel(ours, ref) < 1e-10
    assert _rel(ours_err, ref_err) < 1e-10


@pytest.mark.realdata
def test_batch_of_model_spectra_matches_spectres(splat_dir: Path) -> None:
    # 40 Burrows06 model spectra onto a real SpeX wavelength axis in one call (a batch).
    wave_m, fluxes = _read_model(splat_dir, "burrows06", 40)
    wave_d, _, _ = _read_spex(splat_dir, "10703_10070")
    new = wave_d[check_coverage(wave_m, wave_d, policy="mask")]
    ours = resample(new, wave_m, fluxes)
    ref = spectres.spectres(new, wave_m, fluxes, verbose=False)
    assert ours.shape == (40, new.size)
    assert _rel(ours, ref) < 1e-10
    # the cached matrix is reused for the same pair of axes
    assert resampling_matrix(new, wave_m)[0] is resampling_matrix(new, wave_m)[0]


@settings(max_examples=60, deadline=None)
@given(
    n_old=st.integers(min_value=3, max_value=60),
    n_new=st.integers(min_value=1, max_value=40),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_integrated_flux_is_conserved(n_old: int, n_new: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    old_edges = np.cumsum(rng.uniform(0.01, 1.0, n_old + 1))
    flux = rng.uniform(-1.0, 10.0, n_old)
    # Target bins spanning exactly old bins k..m-1, with random interior edges.
    k = int(rng.integers(0, n_old - 1))
    m = int(rng.integers(k + 1, n_old + 1))
    inner = np.sort(rng.uniform(old_edges[k], old_edges[m], n_new - 1))
    new_edges = np.unique(np.concatenate([[old_edges[k]], inner, [old_edges[m]]]))
    new_wave = 0.5 * (new_edges[1:] + new_edges[:-1])
    old_wave = 0.5 * (old_edges[1:] + old_edges[:-1])
    out = resample(new_wave, old_wave, flux, new_edges=new_edges, old_edges=old_edges)
    # Integral of a piecewise-constant spectrum over [edge k, edge m]: sum of f_i * width_i.
    expected = float(np.sum(flux[k:m] * np.diff(old_edges)[k:m]))
    got = float(np.sum(out * np.diff(new_edges)))
    assert got == pytest.approx(expected, rel=1e-10, abs=1e-10 * np.sum(np.abs(flux)))


def test_uncovered_bins_raise_unless_filled() -> None:
    wave = np.linspace(1.0, 2.0, 101)  # edges 0.995 .. 2.005
    new = np.linspace(0.9, 2.2, 27)
    with pytest.raises(CoverageError, match=r"not covered.*0\.9950-2\.0050 um") as info:
        resample(new, wave, np.ones(101))
    # Both uncovered ranges (blue and red ends) are named.
    # (bin 1.00 spans 0.975-1.025, starting below 0.995, so it is uncovered too)
    assert "0.8750-1.0250 um, 1.9750-2.2250 um" in str(info.value)
    out, unc = resample(new, wave, np.ones(101), np.full(101, 0.1), fill=np.nan)
    covered = check_coverage(wave, new, policy="mask")
    assert np.all(np.isnan(out[~covered])) and np.allclose(out[covered], 1.0)
    # Averaging k equal-error pixels divides sigma by ~sqrt(k): new bins are 5 old bins wide.
    assert np.allclose(unc[covered][1:-1], 0.1 / np.sqrt(5), rtol=0.1)
    with pytest.raises(CoverageError, match="myfile.fits"):
        check_coverage(wave, new, source="myfile.fits")


def test_bad_inputs_have_clear_messages() -> None:
    wave = np.linspace(1.0, 2.0, 11)
    with pytest.raises(InvalidSpectrumError, match="NaN or infinite"):
        resample([1.3, 1.5], wave, np.where(wave > 1.4, np.nan, 1.0))
    with pytest.raises(InvalidSpectrumError, match="increase strictly"):
        resample([1.3, 1.5], wave[::-1], np.ones(11))
    with pytest.raises(InvalidSpectrumError, match="12 values along its last axis"):
        resample([1.3, 1.5], wave, np.ones(12))
    assert bin_edges(wave).size == 12


def test_convolution_gives_requested_resolution() -> None:
    wave = np.geomspace(1.0, 2.0, 20000)  # R_pixel ~ 29,000
    lines = np.zeros_like(wave)
    centres = (1.2, 1.5, 1.8)
    for c in centres:
        lines[np.argmin(np.abs(wave - c))] = 1.0
    R = 500.0
    out = convolve_to_resolution(wave, lines, R)
    for c in centres:
        near = np.abs(wave - c) < 0.02
        half = out[near] > out[near].max() / 2
        fwhm = np.ptp(wave[near][half])
        # FWHM of the line-spread function is lambda / R (definition of resolving power).
        assert fwhm == pytest.approx(c / R, rel=0.03)
        # Convolution conserves the line's integrated flux (sum over uniform-log pixels ~ same).
        assert out[near].sum() == pytest.approx(1.0, rel=0.01)


def test_convolution_with_input_resolution_composes() -> None:
    # Gaussians add in quadrature: R=2000 then to R=500 with R_in=2000 equals R=500 directly.
    wave = np.geomspace(1.0, 2.0, 8000)
    rng = np.random.default_rng(3)
    flux = 1 + rng.standard_normal((3, wave.size))
    first = convolve_to_resolution(wave, flux, 2000.0)
    two_step = convolve_to_resolution(wave, first, 500.0, R_in=2000.0)
    direct = convolve_to_resolution(wave, flux, 500.0)
    inner = slice(200, -200)
    assert np.max(np.abs(two_step - direct)[:, inner]) < 0.01 * np.std(direct[:, inner])
    with pytest.raises(ValueError, match="can only lower"):
        convolve_to_resolution(wave, flux, 3000.0, R_in=2000.0)
    # variable kernel: sigma grows where R_out is lower
    r_var = np.where(wave < 1.5, 2000.0, 200.0)
    var = convolve_to_resolution(wave, flux[0], r_var)
    blue, red = wave < 1.4, wave > 1.6
    assert np.std(var[red]) < np.std(var[blue])
    assert FWHM_TO_SIGMA == pytest.approx(1 / 2.35482, rel=1e-5)


def test_noise_has_requested_statistics() -> None:
    flux = np.vstack([np.full(5000, 2.0), np.full(5000, 10.0)])
    noisy, sigma = add_noise(flux, snr=np.array([20.0, 100.0]), rng=np.random.default_rng(42))
    # S/N at the median flux: sigma = 2/20 and 10/100.
    assert np.allclose(sigma[:, 0], [0.1, 0.1])
    z = (noisy - flux) / sigma
    # chi^2 per pixel of pure Gaussian noise has mean 1 (std of the mean sqrt(2/10000) ~ 0.014)
    assert np.mean(z**2) == pytest.approx(1.0, abs=0.05)
    again, _ = add_noise(flux, snr=np.array([20.0, 100.0]), rng=np.random.default_rng(42))
    assert np.array_equal(noisy, again)  # reproducible from the seed
    per_pix, s2 = add_noise(np.array([1.0, 4.0]), snr=4.0, rng=1, snr_reference="pixel")
    assert s2.tolist() == [0.25, 1.0]
    with pytest.raises(ValueError, match="rng="):
        add_noise(flux, snr=10.0)
    with pytest.raises(ValueError, match="exactly one"):
        add_noise(flux, snr=10.0, sigma=1.0, rng=0)
