"""Echelle fits: all orders of a spectrum in one model (shared RV and v sin i, per-order
continuum and telluric scale)."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from atmospec.errors import CoverageError
from atmospec.highres.emulator import LineEmulator, default_device
from atmospec.highres.extrinsic import C_KMS, ExtrinsicModel
from atmospec.highres.fit import _solve_continuum

__all__ = ["EchelleOrder", "EchelleResult", "fit_echelle", "order_bands", "read_orders"]

log = logging.getLogger(__name__)


@dataclass
class EchelleOrder:
    """One order: pixel wavelengths (Å, increasing), continuum-normalised flux, its 1-sigma
    and a mask (True = ignore).

    Example:
        >>> o = EchelleOrder(np.linspace(8700.0, 8710.0, 11), np.ones(11), np.full(11, 0.01))
        >>> o.mask is None, order_bands([o], pad=5.0)
        (True, [(8695.0, 8715.0)])
    """

    wavelength: np.ndarray
    flux: np.ndarray
    uncertainty: np.ndarray
    mask: np.ndarray | None = None


@dataclass
class EchelleResult:
    """What :func:`fit_echelle` found.

    ``rms_percent``, ``telluric_scale`` and ``telluric_models`` (the fitted transmission at
    the instrument's resolution, model / model without tellurics) are per order;
    ``seconds_per_epoch`` is the mean wall time of one Adam step over all orders (forward,
    backward, update) on ``device``.

    Example:
        >>> import numpy as np
        >>> from atmospec.highres.linefinder import LineList
        >>> star = LineEmulator(LineList([8702.0, 8704.0], [0.03, 0.02], [0.04, 0.04],
        ...                              [0.005, 0.005]), device="cpu")
        >>> w = np.linspace(8700.0, 8706.0, 300)
        >>> f = ExtrinsicModel(w, rv=3.0, vsini=3.0, device="cpu")(star).detach().numpy()
        >>> res = fit_echelle([EchelleOrder(w, f, np.full(w.size, 1e-3))], star,
        ...                   rv_range=(-10, 10), epochs=5, device="cpu")
        >>> res.device, res.models[0].shape, res.telluric_scale, res.meta["rv_scan_best"]
        ('cpu', (300,), [], 3.0)
    """

    rv: float
    vsini: float
    rms_percent: list[float]
    telluric_scale: list[float]
    models: list[np.ndarray]
    telluric_models: list[np.ndarray]
    seconds_per_epoch: float
    device: str
    meta: dict[str, Any] = field(default_factory=dict)


class _Telluric(nn.Module):
    """``exp(-scale_k tau(lambda (1 - v/c)))`` for order k: one shared line model, one scale
    per order, one velocity shift ``v`` of all telluric lines (the template's wavelength
    scale against the spectrograph's, and winds along the line of sight)."""

    def __init__(self, emulator: LineEmulator, n_orders: int) -> None:
        super().__init__()
        self.emulator = emulator
        for p in emulator.parameters():
            p.requires_grad_(False)
        self.ln_scale = nn.Parameter(
            torch.zeros(n_orders, dtype=emulator.center0.dtype, device=emulator.center0.device)
        )
        self.rv = nn.Parameter(
            torch.zeros((), dtype=emulator.center0.dtype, device=emulator.center0.device)
        )
        self.k = 0

    def forward(self, wl: torch.Tensor) -> torch.Tensor:
        tau = self.emulator.optical_depth(wl / (1.0 + self.rv / C_KMS))
        return torch.exp(-torch.exp(self.ln_scale[self.k]) * tau)


def fit_echelle(
    orders: list[EchelleOrder],
    star: LineEmulator,
    *,
    telluric: LineEmulator | None = None,
    rv_range: tuple[float, float] = (-150.0, 150.0),
    vsini: float = 3.0,
    resolution: float = 55_000.0,
    epsilon: float = 0.6,
    poly_degree: int = 2,
    epochs: int = 100,
    lr: float = 0.02,
    device: str | torch.device | None = None,
) -> EchelleResult:
    """Fit every order at once: one RV and v sin i for the star, a Legendre continuum and (with
    ``telluric``, a clone of a transmission spectrum in the observatory frame) a telluric
    optical-depth scale per order. The star's and the telluric lines are kept as cloned; R is
    the instrument's (fixed).

    The RV starts from a scan of the summed chi-square over ``rv_range`` (coarse, then
    0.5 km/s around the best); then Adam
    runs ``epochs`` steps over all orders together, on ``device`` (CUDA if available).

    Example:
        >>> import numpy as np, torch
        >>> from atmospec.highres.linefinder import LineList
        >>> star = LineEmulator(LineList([8701.0, 8806.0], [0.03, 0.03], [0.04, 0.04],
        ...                              [0.005, 0.005]), device="cpu")
        >>> orders = []
        >>> for lo in (8695.0, 8800.0):
        ...     w = np.linspace(lo, lo + 12.0, 500)
        ...     f = ExtrinsicModel(w, rv=-7.0, vsini=4.0, device="cpu")(star).detach().numpy()
        ...     orders.append(EchelleOrder(w, f, np.full(w.size, 1e-3)))
        >>> res = fit_echelle(orders, star, rv_range=(-30, 30), epochs=60, device="cpu")
        >>> abs(res.rv + 7.0) < 0.2
        True
    """
    from tqdm.auto import trange

    from atmospec._logging import progress_enabled

    dev = torch.device(device) if device is not None else default_device()
    star = star.to(dev)
    for p in star.parameters():
        p.requires_grad_(False)
    kw: dict[str, Any] = {"dtype": torch.float64, "device": dev}
    exts, fls, wts, goods = [], [], [], []
    for i, o in enumerate(orders):
        w = np.asarray(o.wavelength, dtype=np.float64)
        bad = np.zeros(w.size, bool) if o.mask is None else np.asarray(o.mask, bool).copy()
        bad |= ~np.isfinite(o.flux) | ~np.isfinite(o.uncertainty) | (o.uncertainty <= 0)
        if (~bad).sum() < 10:
            raise CoverageError(f"fit_echelle: order {i} has fewer than 10 good pixels")
        exts.append(
            ExtrinsicModel(
                w, vsini=vsini, resolution=resolution, epsilon=epsilon, poly_degree=poly_degree,
                device=dev,
            )
        )  # fmt: skip
        fls.append(torch.as_tensor(np.where(bad, 1.0, o.flux), **kw))
        sd = torch.as_tensor(np.where(bad, 1.0, o.uncertainty), **kw)
        wts.append(torch.as_tensor(~bad, **kw) / sd**2)
        goods.append(~bad)
    tell = None if telluric is None else _Telluric(telluric.to(dev), len(orders))
    rv = nn.Parameter(torch.tensor(0.0, **kw))
    ln_vsini = nn.Parameter(torch.tensor(math.log(vsini), **kw))

    def order_model(k: int) -> torch.Tensor:
        if tell is not None:
            tell.k = k
        ext = exts[k]
        return ext.broadened(star, tell, rv=rv, vsini=torch.exp(ln_vsini)) * ext.continuum()

    # 1. RV scan (continuum solved per order at each RV): a coarse grid over ``rv_range``
    # (at most ~60 steps, at least 1 km/s), then 0.5 km/s around its best
    def scan(grid: np.ndarray) -> np.ndarray:
        chi2 = np.zeros(grid.size)
        with torch.no_grad():
            for j, v in enumerate(grid):
                for k, ext in enumerate(exts):
                    if tell is not None:
                        tell.k = k
                    shape = ext.broadened(star, tell, rv=torch.tensor(float(v), **kw))
                    c = _solve_continuum(ext, shape, fls[k], wts[k])
                    chi2[j] += float((wts[k] * (fls[k] - shape * (ext.basis @ c)) ** 2).sum())
        return chi2

    step = max(1.0, (rv_range[1] - rv_range[0]) / 60.0)
    rvs = np.arange(rv_range[0], rv_range[1] + 0.5 * step, step)
    best = float(rvs[int(np.argmin(scan(rvs)))])
    rvs = np.arange(best - step, best + step + 0.25, 0.5)
    chi2 = scan(rvs)
    with torch.no_grad():
        rv.fill_(float(rvs[int(np.argmin(chi2))]))
        for k, ext in enumerate(exts):
            if tell is not None:
                tell.k = k
            ext.coeffs.copy_(
                _solve_continuum(ext, ext.broadened(star, tell, rv=rv), fls[k], wts[k])
            )

    # 2. all orders together
    params: list[nn.Parameter] = [rv, ln_vsini] + [e.coeffs for e in exts]
    if tell is not None:
        params += [tell.ln_scale, tell.rv]
    opt = torch.optim.Adam(params, lr=lr)
    n_pix = float(sum(int(g.sum()) for g in goods))
    times = []
    progress = progress_enabled()
    bar = trange(epochs, desc=f"echelle fit ({len(orders)} orders, {dev.type})",
                 disable=not progress)  # fmt: skip
    for _ in bar:
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = torch.zeros((), dtype=rv.dtype, device=rv.device)
        for k in range(len(exts)):
            loss = loss + (wts[k] * (fls[k] - order_model(k)) ** 2).sum()
        (0.5 * loss / n_pix).backward()
        opt.step()
        with torch.no_grad():
            ln_vsini.clamp_(min=math.log(0.05))
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        times.append(time.perf_counter() - t0)
        if progress:
            bar.set_postfix(chi2_red=f"{float(loss.detach()) / n_pix:.2f}")
    models, rms, tmodels = [], [], []
    with torch.no_grad():
        for k in range(len(exts)):
            m = order_model(k).cpu().numpy()
            models.append(m)
            if tell is not None:  # the telluric part at the instrument's resolution
                bare = exts[k].broadened(star, None, rv=rv, vsini=torch.exp(ln_vsini))
                tell.k = k
                full = exts[k].broadened(star, tell, rv=rv, vsini=torch.exp(ln_vsini))
                tmodels.append((full / bare).cpu().numpy())
            g = goods[k]
            rms.append(float(100 * np.sqrt(np.mean((orders[k].flux[g] - m[g]) ** 2))))
    steady = times[min(3, len(times) - 1) :] if times else [float("nan")]
    limits = []
    rv_fit, vsini_fit = float(rv.detach()), float(torch.exp(ln_vsini.detach()))
    if not rv_range[0] <= rv_fit <= rv_range[1]:
        limits.append(f"RV {rv_fit:.1f} km/s left the scan range {rv_range}: not trustworthy")
    if vsini_fit <= 0.051:
        limits.append("v sin i is at its 0.05 km/s floor: rotation unresolved")
    if vsini_fit > 250.0:
        limits.append(
            f"v sin i {vsini_fit:.0f} km/s exceeds the model grid's 250 km/s margin: the star's "
            "lines are not constrained (a template mismatch?)"
        )
    for msg in limits:
        log.warning("fit_echelle: %s", msg)
    return EchelleResult(
        rv=float(rv.detach()),
        vsini=float(torch.exp(ln_vsini.detach())),
        rms_percent=rms,
        telluric_scale=[] if tell is None else torch.exp(tell.ln_scale.detach()).cpu().tolist(),
        models=models,
        telluric_models=tmodels,
        seconds_per_epoch=float(np.mean(steady)),
        device=str(dev),
        meta={"limits": limits, "rv_scan_best": float(rvs[int(np.argmin(chi2))]), "epochs": epochs,
              "telluric_rv": None if tell is None else float(tell.rv.detach()),
              "resolution_fixed": resolution, "c_kms": C_KMS},
    )  # fmt: skip


def order_bands(orders: list[EchelleOrder], pad: float = 20.0) -> list[tuple[float, float]]:
    """Contiguous wavelength bands (Å, ±``pad``) covering the orders, neighbours merged when
    their gap is under 50 Å (the bands a template is cloned over).

    Example:
        >>> o = [EchelleOrder(np.array([8000.0, 8100.0]), np.ones(2), np.ones(2)),
        ...      EchelleOrder(np.array([8110.0, 8200.0]), np.ones(2), np.ones(2))]
        >>> order_bands(o)
        [(7980.0, 8220.0)]
    """
    spans = sorted((float(o.wavelength[0]) - pad, float(o.wavelength[-1]) + pad) for o in orders)
    out = [spans[0]]
    for lo, hi in spans[1:]:
        if lo <= out[-1][1] + 50:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def read_orders(
    path: str, orders: tuple[int, ...] | None = None, *, window: float = 8.0
) -> list[EchelleOrder]:
    """The continuum-normalised orders of an HPF file (all of them by default), in Å; the
    continuum is the upper envelope in chunks of ``window`` Å (wider for orders whose
    every few Å are absorbed, e.g. by telluric water bands).

    Example:
        >>> import pathlib, tempfile
        >>> from astropy.io import fits
        >>> w = np.linspace(8700.0, 8710.0, 501)                 # a one-order HPF table
        >>> f = 2.0 * (1.0 - 0.3 * np.exp(-0.5 * ((w - 8705.0) / 0.05) ** 2))   # blaze 2
        >>> f[10] = np.nan
        >>> cols = [fits.Column(name=n, format="D", array=a) for n, a in
        ...         (("wavelength", w), ("flux", f), ("uncertainty", np.full(w.size, 0.02)))]
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "stack.fits"
        >>> fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols)]).writeto(path)
        >>> (o,) = read_orders(str(path))
        >>> round(float(o.wavelength[250]), 3), round(float(o.flux[250]), 3), int(o.mask.sum())
        (8705.0, 0.7, 1)
        >>> round(float(o.uncertainty[0]), 3)   # scaled with the flux
        0.01
    """
    from atmospec.highres.io import read_hpf
    from atmospec.highres.pipeline import normalize_order

    specs = read_hpf(path) if orders is None else [read_hpf(path, order=k)[0] for k in orders]
    out = []
    for spec in specs:
        s = normalize_order(spec, window=window)
        assert s.uncertainty is not None
        out.append(EchelleOrder(s.wavelength * 1e4, s.flux, s.uncertainty, s.mask))
    return out
