"""Tests of the highres line-by-line model on synthetic lines with known parameters."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import voigt_profile as scipy_voigt
from scipy.special import wofz

from atmospec.highres.emulator import (
    LineEmulator,
    clone,
    default_device,
    dense_optical_depth,
    train_clone,
)
from atmospec.highres.extrinsic import C_KMS, ExtrinsicModel
from atmospec.highres.fit import fit_spectrum
from atmospec.highres.linefinder import LineList, find_lines
from atmospec.highres.voigt import faddeeva, pseudo_voigt_profile, voigt_profile

torch.set_num_threads(1)


@pytest.mark.parametrize(
    "sigma,gamma", [(1.0, 0.0), (1.0, 1e-4), (1.0, 0.5), (0.1, 3.0), (0.01, 0.01), (2.0, 30.0)]
)
def test_voigt_matches_scipy_to_1e6(sigma: float, gamma: float) -> None:
    x = np.linspace(-100.0, 100.0, 20001)
    ours = voigt_profile(torch.as_tensor(x), sigma, gamma).numpy()
    ref = scipy_voigt(x, sigma, gamma)
    assert np.abs(ours - ref).max() < 1e-6 * max(1.0, ref.max())  # absolute, and relative to peak


def test_faddeeva_matches_wofz() -> None:
    re, im = np.meshgrid(np.linspace(-30, 30, 121), np.concatenate([[0.0], np.logspace(-6, 2, 40)]))
    z = re + 1j * im
    ours = faddeeva(torch.as_tensor(z)).numpy()
    assert np.abs(ours - wofz(z)).max() < 1e-6


def test_pseudo_voigt_close_to_exact() -> None:
    # Thompson, Cox & Hastings (1987) pseudo-Voigt: ~1 % of the peak at worst
    x = torch.linspace(-20, 20, 4001, dtype=torch.float64)
    for gamma in (0.0, 0.3, 1.0, 5.0):
        exact = voigt_profile(x, 1.0, gamma)
        approx = pseudo_voigt_profile(x, 1.0, gamma)
        assert float((exact - approx).abs().max() / exact.max()) < 0.02


def test_voigt_is_differentiable() -> None:
    args = (
        torch.randn(6, dtype=torch.float64, requires_grad=True),
        torch.tensor(0.7, dtype=torch.float64, requires_grad=True),
        torch.tensor(0.2, dtype=torch.float64, requires_grad=True),
    )
    assert torch.autograd.gradcheck(voigt_profile, args)


def _truth() -> LineList:
    return LineList(
        center=np.array([5000.6, 5001.5, 5002.3]),
        amplitude=np.array([0.03, 0.05, 0.015]),
        sigma=np.array([0.04, 0.05, 0.03]),
        gamma=np.array([0.01, 0.03, 0.005]),
    )


def test_sparse_equals_dense_reference() -> None:
    w = torch.linspace(4999.0, 5004.0, 2001, dtype=torch.float64)
    # windows wider than the band, no tolerance cut, no coarse sampling: identical sums
    em = LineEmulator(_truth(), wing=400.0, tolerance=0.0, samples_per_fwhm=0, device="cpu")
    assert torch.allclose(em.optical_depth(w), dense_optical_depth(em, w), atol=1e-12)
    narrow = LineEmulator(_truth(), wing=25.0, tolerance=0.0, device="cpu")
    # a Lorentzian beyond 25 FWHM holds < 1/(pi*50) of the line's area: tiny truncation error
    diff = (narrow.optical_depth(w) - dense_optical_depth(narrow, w)).detach().abs().max()
    assert float(diff) < 0.02


def test_tolerance_windows_bound_the_truncation() -> None:
    from scipy.special import voigt_profile as v

    w = torch.linspace(4999.0, 5004.0, 2001, dtype=torch.float64)
    tol = 1e-5
    em = LineEmulator(_truth(), wing=400.0, tolerance=tol, samples_per_fwhm=0, device="cpu")
    half = em.window_half_widths().numpy()
    t = _truth()
    # each window ends where the line's own optical depth A V(h) has fallen to the tolerance
    assert np.allclose(t.amplitude * v(half, t.sigma, t.gamma), tol, rtol=1e-3)
    # weaker lines get narrower windows than the strongest one
    assert half[2] < half[1]
    # beyond its window a line adds < tol everywhere (V decreases with |x|): 3 lines -> 3 tol
    diff = (em.optical_depth(w) - dense_optical_depth(em, w)).detach().abs().max()
    assert float(diff) <= 3 * tol


def test_broad_lines_on_coarse_grid_are_accurate() -> None:
    # a 2 A-wide Gaussian line on 0.0025 A pixels: evaluated on every s-th pixel, with
    # s = floor(FWHM / (24 px)) = 33, then linearly interpolated. Linear interpolation errs by
    # at most h^2/8 max|tau''| = h^2/8 * tau0 / sigma^2 (h = 33 px = 0.0825 A).
    sigma, amp = 2.0 / 2.3548, 0.5
    line = LineList(np.array([5001.5]), np.array([amp]), np.array([sigma]), np.array([1e-6]))
    w = torch.linspace(4995.0, 5008.0, 5201, dtype=torch.float64)
    em = LineEmulator(line, wing=400.0, tolerance=0.0, device="cpu")
    tau0 = amp / (sigma * np.sqrt(2 * np.pi))
    bound = (33 * 0.0025) ** 2 / 8 * tau0 / sigma**2
    diff = (em.optical_depth(w) - dense_optical_depth(em, w)).detach().abs().max()
    assert 0.0 < float(diff) <= bound


def test_clone_recovers_known_lines() -> None:
    truth = _truth()
    w = np.linspace(4999.5, 5003.5, 1601)  # 0.0025 Å pixels
    flux = LineEmulator(truth, device="cpu")(torch.as_tensor(w)).detach().numpy()
    em = clone(w, flux, prominence=0.01, rounds=1, epochs=600, lr=0.02, device="cpu")
    got = em.lines()
    assert len(got) == 3
    # noise-free data: centres to a tenth of a pixel, amplitude and Voigt FWHM to 2 %,
    # the Gaussian/Lorentzian split (sigma, gamma separately) to 25 %.
    assert np.abs(got.center - truth.center).max() < 0.00025
    assert np.abs(got.amplitude / truth.amplitude - 1).max() < 0.02
    assert np.abs(got.fwhm / truth.fwhm - 1).max() < 0.02
    assert np.abs(got.sigma / truth.sigma - 1).max() < 0.25
    assert np.abs(got.gamma / truth.gamma - 1).max() < 0.25 + 0.005 / truth.gamma.min()


def test_find_lines_initial_depth() -> None:
    # one Gaussian line of central optical depth 0.5: depth 1 - exp(-0.5) = 0.3935
    w = np.linspace(5000.0, 5010.0, 4001)
    f = np.exp(-0.5 * np.exp(-0.5 * ((w - 5005.0) / 0.05) ** 2))
    ll = find_lines(w, f, prominence=0.05)
    assert len(ll) == 1
    assert abs(ll.depth[0] - (1 - np.exp(-0.5))) < 1e-3


def test_fit_recovers_rv_and_vsini() -> None:
    rng = np.random.default_rng(42)
    lines = LineList(
        center=np.linspace(8602.0, 8638.0, 13),
        amplitude=np.full(13, 0.06),
        sigma=np.full(13, 0.03),
        gamma=np.full(13, 0.01),
    )
    star = LineEmulator(lines, device="cpu")
    pix = 8600.0 * np.exp(np.arange(2000) * np.log1p(1.0 / C_KMS * 1.3))  # HPF-like 1.3 km/s px
    true_rv, true_vsini, snr = 12.3, 9.0, 200.0
    ext = ExtrinsicModel(pix, rv=true_rv, vsini=true_vsini, resolution=55_000, device="cpu")
    with torch.no_grad():
        clean = ext(star).numpy()
    sd = np.full(pix.size, 1.0 / snr)
    data = clean + rng.normal(0, sd)
    res = fit_spectrum(
        pix,
        data,
        sd,
        LineEmulator(lines, device="cpu"),
        vsini=4.0,
        fit_resolution=False,
        epochs=(150, 0),
        lr=0.03,
        device="cpu",
    )
    rv, vs = res.params["rv"], res.params["vsini"]
    erv, evs = res.errors["rv"], res.errors["vsini"]
    # Laplace errors must be honest: true values within 4 sigma; and small in absolute terms
    assert abs(rv - true_rv) < max(4 * erv, 0.02) and erv < 0.2
    assert abs(vs - true_vsini) < max(4 * evs, 0.05) and evs < 0.5
    assert 0.7 < res.reduced_chi2 < 1.3  # noise drawn with sd: chi2/dof ~ 1


def test_resolution_stays_within_its_bounds() -> None:
    # data broadened at R = 30,000 fitted with R bounded to 45,000-65,000: the fit must stop at
    # the lower bound (it would run away to ~30,000 without it), flag it and give no R error
    lines = LineList(
        center=np.linspace(8602.0, 8618.0, 7),
        amplitude=np.full(7, 0.06),
        sigma=np.full(7, 0.03),
        gamma=np.full(7, 0.01),
    )
    pix = 8600.0 * np.exp(np.arange(900) * np.log1p(1.3 / C_KMS))
    ext = ExtrinsicModel(pix, vsini=2.0, resolution=30_000, device="cpu")
    with torch.no_grad():
        data = ext(LineEmulator(lines, device="cpu")).numpy()
    res = fit_spectrum(
        pix,
        data,
        np.full(pix.size, 0.002),
        LineEmulator(lines, device="cpu"),
        rv_range=(-5.0, 5.0),
        vsini=2.0,
        resolution_bounds=(45_000.0, 65_000.0),
        epochs=(40, 0),
        lr=0.05,
        device="cpu",
    )
    assert res.params["resolution"] == pytest.approx(45_000.0, rel=1e-6)
    assert res.meta["resolution_at_bound"] and np.isnan(res.errors["resolution"])
    with pytest.raises(ValueError, match="outside bounds"):
        fit_spectrum(
            pix,
            data,
            np.full(pix.size, 0.002),
            LineEmulator(lines, device="cpu"),
            resolution=80_000.0,
            device="cpu",
        )


def test_default_device_and_device_following() -> None:
    em = LineEmulator(_truth(), device=None)
    assert em.center0.device.type == default_device().type
    w = torch.linspace(4999.0, 5004.0, 501, dtype=torch.float64, device=default_device())
    out = em(w)
    assert out.device.type == default_device().type
    if torch.cuda.is_available():  # same code, other device
        cpu = LineEmulator(_truth(), device="cpu")(w.cpu())
        assert torch.allclose(out.cpu(), cpu, atol=1e-10)


def test_train_clone_lowers_loss_and_save_roundtrip(tmp_path) -> None:
    w = np.linspace(4999.5, 5003.5, 801)
    flux = LineEmulator(_truth(), device="cpu")(torch.as_tensor(w)).detach().numpy()
    em = LineEmulator(find_lines(w, flux, prominence=0.01), device="cpu")
    hist = train_clone(em, w, flux, epochs=50)
    assert hist[-1] < hist[0]
    em.save(tmp_path / "c")
    back = LineEmulator.load(tmp_path / "c", device="cpu")
    assert np.allclose(back.lines().center, em.lines().center)
    em.lines().write(tmp_path / "lines.ecsv")
    assert np.allclose(LineList.read(tmp_path / "lines.ecsv").amplitude, em.lines().amplitude)


def test_bad_inputs_raise_clear_errors(tmp_path) -> None:
    from atmospec.errors import AtmospecError, ModelFileError

    bad = tmp_path / "x.safetensors"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match="x.safetensors"):
        LineEmulator.load(bad)
    with pytest.raises(AtmospecError):
        find_lines([1.0, 2.0], [1.0, 1.0])


def test_macroturbulence_kernel_is_gray_radial_tangential_profile() -> None:
    """The disk-integrated radial-tangential profile against Gray's (2005, ch. 17) formula
    integrated over the disk directly (scipy quad over mu at pixel centres): same shape away
    from the cusp, sd exactly zeta / 2 for any limb darkening, and heavier wings than a
    Gaussian of that sd (kurtosis near 4, a Gaussian's is 3)."""
    from scipy.integrate import quad

    from atmospec.highres.extrinsic import macroturbulence_kernel

    zeta, eps, dv = 3.0, 0.6, 0.02
    k = macroturbulence_kernel(dv, zeta, eps).numpy()
    v = (np.arange(k.size) - (k.size - 1) / 2) * dv

    def gray(x: float) -> float:
        def ring(mu: float) -> float:
            st = np.sqrt(1 - mu**2)
            rad = np.exp(-((x / (zeta * mu)) ** 2)) / (np.sqrt(np.pi) * zeta * mu)
            tan = np.exp(-((x / (zeta * st)) ** 2)) / (np.sqrt(np.pi) * zeta * st) if st else 0.0
            return (1 - eps * (1 - mu)) * mu * 0.5 * (rad + tan)

        return quad(ring, 1e-9, 1 - 1e-12, limit=200)[0]

    norm = quad(lambda mu: (1 - eps * (1 - mu)) * mu, 0, 1)[0]
    for x in (0.5, 1.0, 2.0, 4.0):
        i = int(np.argmin(np.abs(v - x)))
        assert k[i] / dv == pytest.approx(gray(float(v[i])) / norm, rel=2e-3)
    for e in (0.0, 0.6, 1.0):
        ke = macroturbulence_kernel(0.05, zeta, e).numpy()
        ve = (np.arange(ke.size) - (ke.size - 1) / 2) * 0.05
        var = (ke * ve**2).sum() - 0.05**2 / 12  # less a pixel's own width
        assert np.sqrt(var) == pytest.approx(zeta / 2, rel=1e-3)
    kurt = (k * v**4).sum() / (k * v**2).sum() ** 2
    assert 3.8 < kurt < 4.1


def test_extrinsic_macroturbulence_adds_zeta_squared_over_four() -> None:
    """A weak line's velocity variance grows by (zeta / 2)^2 under radial-tangential
    macroturbulence: variances add under convolution."""
    lines = LineList(
        np.array([8700.0]), np.array([0.002]), np.array([8700.0 * 1.0 / C_KMS]), np.array([1e-6])
    )
    star = LineEmulator(lines, device="cpu")
    w = np.linspace(8690.0, 8710.0, 1000)

    def variance(zeta: float) -> float:
        ext = ExtrinsicModel(w, vsini=1.0, macroturbulence=zeta, device="cpu")
        with torch.no_grad():
            a = 1.0 - ext(star).numpy()
        v = (w / 8700.0 - 1.0) * C_KMS
        m = (a * v).sum() / a.sum()
        return float((a * (v - m) ** 2).sum() / a.sum())

    assert variance(2.4) - variance(0.0) == pytest.approx(2.4**2 / 4, rel=0.02)
