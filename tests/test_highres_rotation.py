"""Tests of the rotation kernel: Gray's (2005) profile integrated over pixels, and smooth
enough in v sin i for the Laplace (Hessian) uncertainty wherever v sin i falls."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad

from atmospec.errors import ModelInputError
from atmospec.highres.emulator import LineEmulator
from atmospec.highres.extrinsic import C_KMS, ExtrinsicModel, rotation_kernel
from atmospec.highres.fit import fit_spectrum
from atmospec.highres.linefinder import LineList

torch.set_num_threads(1)


def _gray(v: float, vsini: float, eps: float) -> float:
    """Gray (2005) eq. 18.14: the rotation profile with linear limb darkening, unit area."""
    u2 = 1.0 - (v / vsini) ** 2
    if u2 <= 0.0:
        return 0.0
    return (2 * (1 - eps) * math.sqrt(u2) + 0.5 * math.pi * eps * u2) / (
        math.pi * vsini * (1 - eps / 3)
    )


def _quad(f: object, lo: float, hi: float, kinks: list[float]) -> float:
    pts = [p for p in kinks if lo < p < hi]
    return float(quad(f, lo, hi, points=pts or None, epsabs=1e-15, epsrel=1e-12, limit=200)[0])


def _second_moment(vsini: float, eps: float) -> float:
    return _quad(lambda v: v * v * _gray(v, vsini, eps), -vsini, vsini, [0.0])


@pytest.mark.parametrize(
    "dv,vsini,eps",
    [(0.5, 3.0, 0.6), (0.5, 2.75, 0.6), (0.5, 3.013, 0.0), (0.5, 0.2, 0.6), (1.0, 10.0, 1.0)],
)
def test_rotation_kernel_is_gray_profile_integrated_over_pixels(
    dv: float, vsini: float, eps: float
) -> None:
    # The documented construction, computed independently by quadrature: Gray's profile
    # integrated against each pixel's triangle (a pixel box convolved with a pixel box), then
    # convolved with [c, 1 - 2c, c] to restore the profile's own second moment.
    k = rotation_kernel(dv, torch.tensor(vsini, dtype=torch.float64), eps).numpy()
    half = (k.size - 1) // 2
    idx = np.arange(-half, half + 1)
    tri = np.array(
        [
            _quad(
                lambda v, j=j: _gray(v, vsini, eps) * max(0.0, 1 - abs(v / dv - j)),
                (j - 1) * dv,
                (j + 1) * dv,
                [-vsini, vsini, j * dv],
            )
            for j in idx
        ]
    )
    m2 = _second_moment(vsini, eps)
    c = (m2 - (tri * (idx * dv) ** 2).sum()) / (2 * dv * dv)
    ref = (1 - 2 * c) * tri + c * (np.roll(tri, 1) + np.roll(tri, -1))  # tri is 0 at both ends
    assert abs(k.sum() - 1.0) < 1e-12
    assert np.abs(k - ref).max() < 1e-10 * k.max()
    assert abs((k * idx * dv).sum()) < 1e-12 * vsini  # symmetric
    assert abs((k * (idx * dv) ** 2).sum() - m2) < 1e-10 * m2  # Gray's variance, on any grid


def test_rotation_kernel_converges_to_gray_profile_on_a_fine_grid() -> None:
    # 400 pixels across the disk: inside the limb the pixel integrals are the profile's values
    # to O((dv / vsini)^2); within a few pixels of the limb the sqrt edge is smeared by a pixel
    vsini, eps, dv = 20.0, 0.6, 0.05
    k = rotation_kernel(dv, torch.tensor(vsini, dtype=torch.float64), eps).numpy()
    v = (np.arange(k.size) - (k.size - 1) / 2) * dv
    g = np.array([_gray(x, vsini, eps) for x in v]) * dv
    inner = np.abs(v) < vsini - 5 * dv
    assert np.abs(k - g)[inner].max() < 1e-4 * g.max()
    assert np.abs(k - g).max() < 0.05 * g.max()


def _padded_derivatives(vsini: float, dv: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    def kernel(v: torch.Tensor) -> torch.Tensor:
        k = rotation_kernel(dv, v, 0.6)
        pad = (size - k.numel()) // 2
        return torch.nn.functional.pad(k, (pad, pad))

    x = torch.tensor(vsini, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(kernel, x)
    hess = torch.stack(
        [torch.autograd.functional.hessian(lambda v, i=i: kernel(v)[i], x) for i in range(size)]
    )
    return jac.numpy(), hess.numpy()


@pytest.mark.parametrize(
    "vsini",
    [
        3.0,  # the disk's edge on a grid node (dv 0.5) and, before, on a sub-sample
        math.exp(math.log(3.0)),  # 3.0 + 1 ulp, as the fit's ln(v sin i) gives it
        2.75,  # the edge half-way between nodes (a pixel boundary)
        2.75 + 2e-15,
    ],
)
def test_rotation_kernel_derivatives_are_finite_and_continuous(vsini: float) -> None:
    # d/dvsini and d2/dvsini2 of every weight are bounded by the profile's own scale (the
    # weights are O(dv / vsini), each derivative takes about a 1/vsini) and change little
    # across the point: 1e-6 km/s on either side
    dv = 0.5
    jac, hess = _padded_derivatives(vsini, dv, 21)
    assert np.isfinite(jac).all() and np.isfinite(hess).all()
    assert np.abs(jac).max() < 1.0 and np.abs(hess).max() < 1.0
    for side in (-1e-6, 1e-6):
        j2, h2 = _padded_derivatives(vsini + side, dv, 21)
        assert np.abs(j2 - jac).max() < 1e-3 * np.abs(jac).max()
        assert np.abs(h2 - hess).max() < 2e-2 * np.abs(hess).max()


@pytest.mark.parametrize("vsini", [0.3, 2.3, 3.013])
def test_rotation_kernel_gradients_match_finite_differences(vsini: float) -> None:
    x = torch.tensor(vsini, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: rotation_kernel(0.5, v, 0.6), (x,))
    assert torch.autograd.gradgradcheck(lambda v: rotation_kernel(0.5, v, 0.6), (x,))


def test_rotation_kernel_keeps_the_dtype_and_refuses_bad_input() -> None:
    assert rotation_kernel(0.5, torch.tensor(3.0, dtype=torch.float32)).dtype == torch.float32
    for vsini, eps in ((0.0, 0.6), (-1.0, 0.6), (float("nan"), 0.6), (3.0, 1.5)):
        with pytest.raises(ModelInputError, match="rotation_kernel"):
            rotation_kernel(0.5, torch.tensor(vsini, dtype=torch.float64), eps)


def _fisher_vsini_sigma(
    pix: np.ndarray, lines: LineList, rv: float, vsini: float, coeffs: list[float], sd: float
) -> float:
    """sigma(v sin i) from the Fisher matrix of (RV, v sin i, continuum) with the model's
    derivatives taken by central differences, not autograd: what the Laplace approximation
    must give on noise-free data."""
    ext = ExtrinsicModel(pix, rv=rv, vsini=vsini, device="cpu")
    star = LineEmulator(lines, device="cpu")
    t = torch.tensor

    def shape(r: float, v: float) -> np.ndarray:
        with torch.no_grad():
            f = ext.broadened(star, rv=t(r, dtype=torch.float64), vsini=t(v, dtype=torch.float64))
        return f.numpy()

    cont = ext.basis.numpy() @ np.asarray(coeffs)
    h_rv, h_vs = 1e-3, 1e-4
    d_rv = (shape(rv + h_rv, vsini) - shape(rv - h_rv, vsini)) / (2 * h_rv) * cont
    d_vs = (shape(rv, vsini + h_vs) - shape(rv, vsini - h_vs)) / (2 * h_vs) * cont
    jac = np.column_stack([d_rv, d_vs, shape(rv, vsini)[:, None] * ext.basis.numpy()])
    return float(np.sqrt(np.linalg.inv(jac.T @ jac / sd**2)[1, 1]))


def test_laplace_vsini_sigma_is_continuous_across_a_grid_node() -> None:
    # v sin i = 3.0 km/s with a 0.5 km/s model grid puts the disk's edge on a grid node (and,
    # before the kernel was integrated, on a sampled point: the Laplace sigma came out 1e-7
    # km/s there, or NaN with noise). Noise-free data at the truth: the Laplace sigma must be
    # the Fisher sigma, at 3.0 and 1e-3 km/s either side, and so agree across the node.
    lines = LineList(
        np.linspace(8602.0, 8618.0, 7), np.full(7, 0.06), np.full(7, 0.03), np.full(7, 0.01)
    )
    pix = 8600.0 * np.exp(np.arange(900) * np.log1p(1.3 / C_KMS))
    with torch.no_grad():
        data = ExtrinsicModel(pix, vsini=3.0, device="cpu")(LineEmulator(lines, device="cpu"))
    sd = 1e-2
    sigmas = []
    for vsini in (2.999, 3.0, 3.001):
        res = fit_spectrum(
            pix, data.numpy(), np.full(pix.size, sd), LineEmulator(lines, device="cpu"),
            vsini=vsini, rv_range=(-2.0, 2.0), epochs=(0, 0), fit_resolution=False,
            device="cpu",
        )  # fmt: skip
        sigma = res.errors["vsini"]
        fisher = _fisher_vsini_sigma(
            pix, lines, res.params["rv"], res.params["vsini"], res.meta["continuum_coeffs"], sd
        )
        assert math.isfinite(sigma) and sigma > 0
        assert abs(sigma / fisher - 1) < 0.02, (vsini, sigma, fisher)
        sigmas.append(sigma)
    assert max(sigmas) / min(sigmas) < 1.03
