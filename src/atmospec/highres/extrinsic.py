"""ExtrinsicModel: radial velocity, rotation, instrumental resolution, continuum and resampling."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import nn

from atmospec.errors import CoverageError, ModelInputError
from atmospec.highres.broadening import rotation_sd_per_vsini
from atmospec.highres.emulator import default_device

__all__ = [
    "C_KMS",
    "ExtrinsicModel",
    "bin_to_pixels",
    "convolve",
    "gaussian_kernel",
    "log_uniform_grid",
    "macroturbulence_kernel",
    "rotation_kernel",
]

C_KMS = 299_792.458
_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


def log_uniform_grid(wmin: float, wmax: float, dv: float) -> np.ndarray:
    """Wavelengths from ``wmin`` to ``wmax`` with a constant velocity step ``dv`` (km/s).

    On such a grid a Doppler broadening kernel is the same at every pixel, so rotation and
    instrumental profiles are plain convolutions.

    Example:
        >>> g = log_uniform_grid(10000.0, 10001.0, 1.0)
        >>> round(float((g[1] / g[0] - 1.0) * C_KMS), 6)
        1.0
    """
    n = int(math.floor(math.log(wmax / wmin) / math.log1p(dv / C_KMS))) + 1
    return wmin * np.exp(np.arange(n) * math.log1p(dv / C_KMS))


def rotation_kernel(dv: float, vsini: torch.Tensor, epsilon: float = 0.6) -> torch.Tensor:
    """The rotational broadening profile (Gray 2005, eq. 18.14) integrated onto a grid of step
    ``dv`` km/s.

    G(v) = [2(1-ε)√(1-u²) + (πε/2)(1-u²)] / [π vsini (1-ε/3)], u = v / vsini, for linear limb
    darkening ε. Pixel k first holds w_k = ∫ G(v) Λ(v/dv - k) dv, Λ the unit triangle (one
    pixel's box convolved with another): the exact convolution of G with the spectrum drawn
    linearly between its grid samples, in closed form (a second difference of G's second
    antiderivative). Drawing lines between samples widens a profile (by a variance between 0
    and dv²/4, dv²/6 once vsini ≫ dv), so the weights are then convolved with [c, 1 - 2c, c],
    -1/8 ≤ c ≤ 0, c set to give back G's exact variance vsini² (1/4 - 7ε/60) / (1 - ε/3)
    (:func:`~atmospec.highres.broadening.rotation_sd_per_vsini`).

    The kernel sums to 1, has zero mean and G's variance, tends to a single unit pixel as
    vsini tends to 0, and is smooth in vsini with finite, continuous first and second
    derivatives wherever the disk's edge ±vsini falls: a Hessian in vsini needs no more.
    (Sampling G at points instead gives a derivative that diverges as 1/√(1-u²) when a sample
    lies just inside the edge.) Computed in float64, returned in ``vsini``'s dtype and device.

    Example:
        >>> import torch
        >>> k = rotation_kernel(1.0, torch.tensor(10.0, dtype=torch.float64))
        >>> k.numel(), round(float(k.sum()), 12), bool(k[12] == k.max())  # ±(10 km/s + 2 px)
        (25, 1.0, True)
        >>> v = torch.arange(-12.0, 13.0, dtype=torch.float64)
        >>> round(float((k * v**2).sum()) / 100.0, 12)   # (1/4 - 7 * 0.6/60) / (1 - 0.6/3)
        0.225
        >>> round(float(rotation_kernel(1.0, torch.tensor(1e-9)).max()), 9)   # a unit pixel
        1.0
    """
    vs = torch.as_tensor(vsini)
    value = float(vs.detach())
    if not (math.isfinite(value) and value > 0.0 and 0.0 <= epsilon <= 1.0):
        raise ModelInputError(
            f"rotation_kernel needs v sin i > 0 km/s and limb darkening 0 <= epsilon <= 1, got "
            f"v sin i {value:g} and epsilon {epsilon:g}"
        )
    v64 = vs.to(torch.float64)
    half = int(math.ceil(value / dv)) + 1
    nodes = torch.arange(-half - 1, half + 2, dtype=torch.float64, device=vs.device)
    a, b = _rotation_coefficients(epsilon)
    e = _RotationSecondIntegral.apply(nodes * (dv / v64), a, b)
    w = (v64 / dv) * ((e[2:] - e[1:-1]) - (e[1:-1] - e[:-2]))
    w = w / w.sum()
    variance = (rotation_sd_per_vsini(epsilon) * v64) ** 2
    c = (variance - (w * (nodes[1:-1] * dv) ** 2).sum()) / (2.0 * dv * dv)
    w = torch.nn.functional.pad(w, (2, 2))
    k = (1.0 - 2.0 * c) * w[1:-1] + c * (w[:-2] + w[2:])
    return (k / k.sum()).to(vs.dtype)


def _rotation_coefficients(epsilon: float) -> tuple[float, float]:
    # g(x) = a √(1-x²) + b (1-x²) on |x| < 1: Gray's profile in x = v / vsini, unit area
    norm = math.pi * (1.0 - epsilon / 3.0)
    return 2.0 * (1.0 - epsilon) / norm, 0.5 * math.pi * epsilon / norm


def _rotation_profile(x: torch.Tensor, a: float, b: float) -> torch.Tensor:
    """g(x); 0 outside |x| < 1 (its own derivative, never needed, kept finite there)."""
    s2 = 1.0 - x * x
    inside = s2 > 0.0
    s2 = torch.where(inside, s2, torch.zeros_like(s2))
    root = torch.sqrt(torch.where(inside, s2, torch.ones_like(s2))) * inside
    return a * root + b * s2


def _rotation_first_integral(x: torch.Tensor, a: float, b: float) -> torch.Tensor:
    """∫₀ˣ g: odd, ±1/2 beyond ±1."""
    xc = x.clamp(-1.0, 1.0)
    s = torch.sqrt(1.0 - xc * xc)
    return 0.5 * a * (xc * s + torch.asin(xc)) + b * (xc - xc**3 / 3.0)


def _rotation_second_integral(x: torch.Tensor, a: float, b: float) -> torch.Tensor:
    """E(x) with E'' = g, E' = :func:`_rotation_first_integral`: even, |x|/2 beyond ±1."""
    xc = x.clamp(-1.0, 1.0)
    s2 = 1.0 - xc * xc
    s = torch.sqrt(s2)
    inner = xc * _rotation_first_integral(xc, a, b) + a * s2 * s / 3.0 + 0.25 * b * s2 * s2
    return inner + 0.5 * (x.abs() - xc.abs())


class _RotationFirstIntegral(torch.autograd.Function):
    # derivative g(x) written out: autograd through asin and sqrt would subtract infinities
    # at |x| = 1 (and lose all precision just inside)
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, a: float, b: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.coeffs = (a, b)
        return _rotation_first_integral(x, a, b)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (x,) = ctx.saved_tensors
        return grad * _rotation_profile(x, *ctx.coeffs), None, None


class _RotationSecondIntegral(torch.autograd.Function):
    # derivative the first integral, itself twice differentiable: finite second derivatives
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, a: float, b: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.coeffs = (a, b)
        return _rotation_second_integral(x, a, b)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (x,) = ctx.saved_tensors
        return grad * _RotationFirstIntegral.apply(x, *ctx.coeffs), None, None


def macroturbulence_kernel(
    dv: float, zeta: float, epsilon: float = 0.6, n_mu: int = 64
) -> torch.Tensor:
    """The disk-integrated radial-tangential macroturbulence profile (Gray 2005, ch. 17)
    sampled on pixels of ``dv`` km/s: half the surface moves along the line of sight and half
    across it, each with a Gaussian velocity distribution exp(-v^2 / zeta^2), projected by
    cos(theta) and sin(theta) and integrated over the disk with linear limb darkening
    ``epsilon``. The profile has a sharp core and wide wings (not a Gaussian) and a standard
    deviation of exactly zeta / 2 whatever the limb darkening. Each pixel holds the profile's
    integral over it, so it stays exact when the projected widths fall below a pixel. Unit
    sum; a single unit pixel when ``zeta`` is 0.

    Example:
        >>> k = macroturbulence_kernel(0.05, 3.0)
        >>> v = (torch.arange(k.numel(), dtype=torch.float64) - (k.numel() - 1) / 2) * 0.05
        >>> round(float(torch.sqrt((k * v**2).sum())), 3)   # zeta / 2
        1.5
    """
    if zeta <= 0:
        return torch.ones(1, dtype=torch.float64)
    half = int(math.ceil(5.0 * zeta / dv)) + 1
    edges = (np.arange(-half, half + 2) - 0.5) * dv
    x, w = np.polynomial.legendre.leggauss(n_mu)
    mu = 0.5 * (x + 1.0)
    weight = 0.5 * w * mu * (1.0 - epsilon * (1.0 - mu))  # projected area x intensity
    weight /= weight.sum()

    def pixel_integrals(width: np.ndarray) -> np.ndarray:
        # integral over each pixel of a unit Gaussian exp(-v^2 / width^2) / (sqrt(pi) width)
        cdf = 0.5 * (1.0 + _erf(edges[None, :] / np.maximum(width, 1e-12)[:, None]))
        return np.diff(cdf, axis=1)

    radial = pixel_integrals(zeta * mu)
    tangential = pixel_integrals(zeta * np.sqrt(1.0 - mu**2))
    k = (weight[:, None] * 0.5 * (radial + tangential)).sum(0)
    return torch.as_tensor(k / k.sum(), dtype=torch.float64)


def _erf(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf

    return np.asarray(erf(x))


def gaussian_kernel(dv: float, fwhm_kms: torch.Tensor) -> torch.Tensor:
    """A unit-sum Gaussian of FWHM ``fwhm_kms`` on pixels of ``dv`` km/s (±5 sigma).

    Example:
        >>> import torch
        >>> k = gaussian_kernel(0.5, torch.tensor(5.0, dtype=torch.float64))
        >>> round(float(k.sum()), 12), k.numel() % 2
        (1.0, 1)
    """
    fw = torch.as_tensor(fwhm_kms)
    sigma = fw / _FWHM_PER_SIGMA
    half = max(int(math.ceil(5.0 * float(sigma.detach()) / dv)), 1)
    v = torch.arange(-half, half + 1, dtype=fw.dtype, device=fw.device) * dv
    k = torch.exp(-0.5 * (v / sigma) ** 2)
    return k / k.sum()


def convolve(flux: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Convolve a 1-D flux with an odd-length kernel, edges extended by their end values.

    Example:
        >>> import torch
        >>> line = torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0], dtype=torch.float64)
        >>> convolve(line, torch.tensor([0.25, 0.5, 0.25], dtype=torch.float64)).tolist()
        [1.0, 0.75, 0.5, 0.75, 1.0]
        >>> ramp = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
        >>> shift = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)   # one pixel to the right
        >>> convolve(ramp, shift).tolist()
        [1.0, 1.0, 2.0, 3.0]
    """
    half = (kernel.numel() - 1) // 2
    if half == 0:
        return flux * kernel[0]
    x = torch.nn.functional.pad(flux.view(1, 1, -1), (half, half), mode="replicate")
    return torch.nn.functional.conv1d(x, kernel.flip(0).view(1, 1, -1)).view(-1)


def _pixel_edges(pixel_wl: np.ndarray) -> np.ndarray:
    mid = 0.5 * (pixel_wl[1:] + pixel_wl[:-1])
    return np.concatenate([[2 * pixel_wl[0] - mid[0]], mid, [2 * pixel_wl[-1] - mid[-1]]])


def bin_to_pixels(fine_wl: ArrayLike, pixel_wl: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    """Index map from a fine grid to data pixels: (label of each fine sample, samples per pixel).

    Pixel edges are the midpoints between pixel centres; fine samples outside all pixels get
    label -1. Raises :class:`CoverageError` when a pixel receives no fine sample.

    Example:
        >>> lab, cnt = bin_to_pixels([0.9, 1.0, 1.1, 1.9, 2.0, 2.1], [1.0, 2.0])
        >>> lab.tolist(), cnt.tolist()
        ([0, 0, 0, 1, 1, 1], [3, 3])
    """
    fw = np.asarray(fine_wl, dtype=np.float64)
    pw = np.asarray(pixel_wl, dtype=np.float64)
    edges = _pixel_edges(pw)
    lab = np.searchsorted(edges, fw, side="right") - 1
    lab[(lab < 0) | (lab >= pw.size)] = -1
    counts = np.bincount(lab[lab >= 0], minlength=pw.size)
    if (counts == 0).any():
        i = int(np.argmax(counts == 0))
        raise CoverageError(
            f"the model grid leaves data pixel {i} ({pw[i]:g}) empty: use a finer model "
            f"grid (smaller dv) or data within the model's range"
        )
    return torch.as_tensor(lab), torch.as_tensor(counts)


class ExtrinsicModel(nn.Module):
    """Turns rest-frame line models into a model of observed pixels.

    model(pixels) = P(λ) · resample[ ( (S(λ / (1 + v/c)) ∗ G_rot(vsini, ε) ∗ M(ζ)) · T(λ) )
    ∗ G_inst(R) ]

    S is the star's :class:`~atmospec.highres.emulator.LineEmulator`, T an optional telluric
    model (observatory frame, multiplied *before* instrumental convolution), G_rot the
    rotation kernel with linear limb darkening ε, M the radial-tangential macroturbulence
    profile (:func:`macroturbulence_kernel`; fixed, none when ζ is 0), G_inst a Gaussian of
    FWHM c/R, resampling
    averages the fine grid over each data pixel, and P is a Legendre polynomial continuum.
    All work happens on a grid of constant velocity step ``dv``.

    Args:
        pixel_wavelength: the data's pixel centres (increasing, Å in the observed frame).
        rv: initial radial velocity, km/s (positive = receding).
        vsini: initial projected rotation, km/s.
        resolution: initial resolving power R = λ/FWHM.
        epsilon: linear limb-darkening coefficient (fixed).
        macroturbulence: radial-tangential macroturbulence zeta, km/s (fixed; 0: none, the
            lines' own Gaussian widths then stand for it).
        poly_degree: degree of the continuum polynomial.
        dv: velocity step of the internal grid, km/s.
        margin: extra velocity range (km/s) of the internal grid beyond the data.
        device: CUDA if available by default.

    Example:
        >>> import numpy as np, torch
        >>> from atmospec.highres.emulator import LineEmulator
        >>> from atmospec.highres.linefinder import LineList
        >>> star = LineEmulator(LineList([8700.0], [0.05], [0.03], [0.01]), device="cpu")
        >>> ext = ExtrinsicModel(np.linspace(8695.0, 8705.0, 300), rv=10.0, device="cpu")
        >>> model = ext(star).detach().numpy()
        >>> centre = float(np.linspace(8695.0, 8705.0, 300)[np.argmin(model)])
        >>> abs(centre - 8700.0 * (1 + 10.0 / C_KMS)) < 0.04   # shifted by +10 km/s
        True
    """

    # registered buffers (typed here: nn.Module.__getattr__ is untyped)
    pixel_wavelength: torch.Tensor
    fine_wavelength: torch.Tensor
    _labels: torch.Tensor
    _counts: torch.Tensor
    basis: torch.Tensor
    macro_kernel: torch.Tensor

    def __init__(
        self,
        pixel_wavelength: ArrayLike,
        *,
        rv: float = 0.0,
        vsini: float = 2.0,
        resolution: float = 55_000.0,
        epsilon: float = 0.6,
        macroturbulence: float = 0.0,
        poly_degree: int = 2,
        dv: float = 0.5,
        margin: float = 250.0,
        device: str | torch.device | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        dev = torch.device(device) if device is not None else default_device()
        kw: dict[str, Any] = {"dtype": dtype, "device": dev}
        pw = np.asarray(pixel_wavelength, dtype=np.float64)
        self.dv = float(dv)
        self.epsilon = float(epsilon)
        self.macroturbulence = float(macroturbulence)
        f = 1.0 + margin / C_KMS
        fine = log_uniform_grid(pw[0] / f, pw[-1] * f, self.dv)
        lab, counts = bin_to_pixels(fine, pw)
        self.register_buffer("pixel_wavelength", torch.as_tensor(pw, **kw))
        self.register_buffer("fine_wavelength", torch.as_tensor(fine, **kw))
        self.register_buffer("_labels", lab.to(dev))
        self.register_buffer("_counts", counts.to(**kw))
        x = 2.0 * (pw - pw[0]) / (pw[-1] - pw[0]) - 1.0
        basis = np.polynomial.legendre.legvander(x, poly_degree)
        self.register_buffer("basis", torch.as_tensor(basis, **kw))
        macro = macroturbulence_kernel(self.dv, self.macroturbulence, self.epsilon)
        self.register_buffer("macro_kernel", macro.to(**kw))
        self.rv = nn.Parameter(torch.tensor(float(rv), **kw))
        self.ln_vsini = nn.Parameter(torch.tensor(math.log(vsini), **kw))
        self.ln_resolution = nn.Parameter(torch.tensor(math.log(resolution), **kw))
        coeffs = torch.zeros(poly_degree + 1, **kw)
        coeffs[0] = 1.0
        self.coeffs = nn.Parameter(coeffs)

    @property
    def vsini(self) -> torch.Tensor:
        return torch.exp(self.ln_vsini)

    @property
    def resolution(self) -> torch.Tensor:
        return torch.exp(self.ln_resolution)

    def continuum(self, coeffs: torch.Tensor | None = None) -> torch.Tensor:
        """The continuum polynomial P at the data pixels."""
        return self.basis @ (self.coeffs if coeffs is None else coeffs)

    def broadened(
        self,
        star: nn.Module,
        telluric: nn.Module | None = None,
        *,
        rv: torch.Tensor | None = None,
        vsini: torch.Tensor | None = None,
        resolution: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The model at the data pixels before the continuum (explicit values override params)."""
        rv = self.rv if rv is None else rv
        vsini = self.vsini if vsini is None else vsini
        resolution = self.resolution if resolution is None else resolution
        wl = self.fine_wavelength
        flux = star(wl / (1.0 + rv / C_KMS))
        flux = convolve(flux, rotation_kernel(self.dv, vsini, self.epsilon))
        if self.macro_kernel.numel() > 1:
            flux = convolve(flux, self.macro_kernel)
        if telluric is not None:
            flux = flux * telluric(wl)
        flux = convolve(flux, gaussian_kernel(self.dv, C_KMS / resolution))
        keep = self._labels >= 0
        sums = torch.zeros_like(self._counts).index_add(0, self._labels[keep], flux[keep])
        return sums / self._counts

    def forward(self, star: nn.Module, telluric: nn.Module | None = None) -> torch.Tensor:
        """The model flux at the data pixels."""
        return self.broadened(star, telluric) * self.continuum()
