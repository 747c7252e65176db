"""The transfer's optimisation: Adam steps under the priors and bounds, the v sin i
profile likelihood, Laplace errors and the messages for parameters at a limit."""

from __future__ import annotations

import math
from typing import Any

import torch

from atmospec._logging import progress_enabled
from atmospec.highres.extrinsic import C_KMS, ExtrinsicModel
from atmospec.highres.transfer_config import TransferConfig, shared_bounds, width_floor
from atmospec.highres.transfer_state import TransferState, restore, snapshot

__all__ = ["laplace", "limits", "optimise", "profile_vsini"]


def optimise(
    ext: ExtrinsicModel,
    st: TransferState,
    loss_fn: Any,
    n_epochs: int,
    lr: float,
    cfg: TransferConfig,
    desc: str,
    *,
    fix_vsini: bool = False,
) -> None:
    """Adam steps on the lines, the shared width, v sin i (unless ``fix_vsini``), R (when
    fitted) and the continuum under the priors, with the width floor, the shared width's
    bounds and v sin i's 0.05 km/s floor enforced after each step.

    Example:
        >>> import numpy as np
        >>> from atmospec.highres import LineEmulator, LineList
        >>> from atmospec.highres.transfer_state import new_state, prior
        >>> ll = LineList([8702.0, 8704.0], [0.03, 0.02], [0.04, 0.04], [0.005, 0.005])
        >>> is_t = np.array([True, False])                 # 8704 Å: a line found in the data
        >>> st = new_state(ll, is_t, ll.select(is_t), LineEmulator(ll, device="cpu").settings(),
        ...                torch.device("cpu"), 1.2)
        >>> w = np.linspace(8700.0, 8706.0, 300)
        >>> fl = ExtrinsicModel(w, rv=3.0, vsini=3.2, device="cpu")(st.star).detach()
        >>> ext = ExtrinsicModel(w, rv=3.0, vsini=2.0, device="cpu")   # v sin i starts low
        >>> wt, cfg = torch.full((w.size,), 1e6, dtype=torch.float64), TransferConfig()
        >>> def loss_fn(s):                                # as transfer() builds it
        ...     chi2 = (wt * (fl - ext(s.star)) ** 2).sum()
        ...     return 0.5 * chi2 + prior(ext, s, cfg), chi2
        >>> with torch.no_grad():
        ...     before = float(loss_fn(st)[0])
        >>> optimise(ext, st, loss_fn, 20, 0.002, cfg, "demo")
        >>> with torch.no_grad():
        ...     after = float(loss_fn(st)[0])
        >>> after < before, float(st.star.d_center[0])     # the template line stays put
        (True, 0.0)
    """
    from tqdm.auto import trange

    star = st.star
    star.ln_gamma.requires_grad_(False)
    for p in (star.d_center, star.ln_amp, star.ln_sigma):
        p.requires_grad_(True)
    st.ln_s.requires_grad_(True)
    ext.ln_vsini.requires_grad_(not fix_vsini)
    ext.ln_resolution.requires_grad_(cfg.fit_resolution)
    frozen = st.template if cfg.center_sd_kms <= 0 else torch.zeros_like(st.template)
    params: list[torch.Tensor] = [p for p in ext.parameters() if p.requires_grad]
    params += [star.d_center, star.ln_amp, star.ln_sigma, st.ln_s]
    opt = torch.optim.Adam(params, lr=lr)
    n = float(ext.pixel_wavelength.numel())
    ln_min = torch.log(star.center0 * width_floor(cfg) / C_KMS)
    lo_s, hi_s = shared_bounds(cfg)
    progress = progress_enabled()
    bar = trange(n_epochs, desc=desc, disable=not progress, leave=False)
    for epoch in bar:
        if epoch and epoch % 50 == 0:
            star.set_windows()
        opt.zero_grad()
        loss, chi2 = loss_fn(st)
        (loss / n).backward()
        opt.step()
        with torch.no_grad():
            star.ln_sigma.copy_(torch.maximum(star.ln_sigma, ln_min))
            star.d_center[frozen] = 0.0
            st.ln_s.clamp_(min=lo_s, max=hi_s)
            ext.ln_vsini.clamp_(min=math.log(0.05))
        if progress:
            bar.set_postfix(chi2_red=f"{float(chi2.detach()) / n:.2f}")
    star.set_windows()
    for p in star.parameters():
        p.requires_grad_(False)
    st.ln_s.requires_grad_(False)


class _Widened(torch.nn.Module):
    """The star with the Gaussian widths of its data lines scaled by ``exp(ds)``."""

    def __init__(self, st: TransferState, ds: torch.Tensor) -> None:
        super().__init__()
        self.st, self.ds = st, ds

    def forward(self, wl: torch.Tensor) -> torch.Tensor:
        from torch.func import functional_call

        star = self.st.star
        ln_sigma = star.ln_sigma + self.ds * (~self.st.template).to(star.ln_sigma.dtype)
        return functional_call(star, {"ln_sigma": ln_sigma}, (wl,))


def laplace(
    ext: ExtrinsicModel, st: TransferState, fl: torch.Tensor, wt: torch.Tensor, cfg: TransferConfig
) -> dict[str, float]:
    """Laplace 1-sigma of RV, v sin i and R with the continuum and the shared intrinsic width
    of the data lines (their common log-width shift, the direction along which line widths
    trade against rotation and resolution) marginalised.

    Example:
        >>> import numpy as np
        >>> from atmospec.highres import LineEmulator, LineList
        >>> from atmospec.highres.transfer_state import new_state, prior
        >>> ll = LineList([8702.0, 8704.0], [0.03, 0.02], [0.04, 0.04], [0.005, 0.005])
        >>> is_t = np.array([True, False])                 # 8704 Å: a line found in the data
        >>> st = new_state(ll, is_t, ll.select(is_t), LineEmulator(ll, device="cpu").settings(),
        ...                torch.device("cpu"), 1.2)
        >>> w = np.linspace(8700.0, 8706.0, 300)
        >>> ext = ExtrinsicModel(w, rv=3.0, vsini=3.2, device="cpu")
        >>> fl = ext(st.star).detach()
        >>> wt = torch.full((w.size,), 1e6, dtype=torch.float64)     # 1-sigma 1e-3
        >>> e1 = laplace(ext, st, fl, wt, TransferConfig())
        >>> e2 = laplace(ext, st, fl, 4.0 * wt, TransferConfig())     # half the noise
        >>> e1["resolution"], round(e2["rv"] / e1["rv"], 6), round(e2["vsini"] / e1["vsini"], 6)
        (0.0, 0.5, 0.5)
    """
    theta0 = torch.cat(
        [
            torch.stack([ext.rv, ext.vsini, ext.resolution]).detach(),
            torch.zeros(1, dtype=ext.coeffs.dtype, device=ext.coeffs.device),
            ext.coeffs.detach(),
        ]
    )

    def nlp(theta: torch.Tensor) -> torch.Tensor:
        star = _Widened(st, theta[3])
        shape = ext.broadened(star, rv=theta[0], vsini=theta[1], resolution=theta[2])
        model = shape * (ext.basis @ theta[4:])
        prior = 0.5 * ((theta[2] - cfg.resolution) / cfg.resolution_sd) ** 2
        if cfg.intrinsic_sd is not None:  # the shared width's prior moves with the shift
            ln_s = st.ln_s.detach() + theta[3]
            prior = prior + 0.5 * ((ln_s - math.log(cfg.intrinsic_kms)) / cfg.intrinsic_sd) ** 2
        return 0.5 * (wt * (fl - model) ** 2).sum() + prior

    h = torch.autograd.functional.hessian(nlp, theta0)
    # the shared width shift moves only lines found in the data: with none it has no
    # curvature (a zero row that would make every error NaN) and nothing to marginalise
    shift = [3] if bool((~st.template).any()) else []
    free = [0, 1] + ([2] if cfg.fit_resolution else []) + shift + list(range(4, theta0.numel()))
    try:
        var = torch.diagonal(torch.linalg.inv(h[free][:, free]))
    except RuntimeError:
        var = torch.full((len(free),), float("nan"), dtype=theta0.dtype)
    out = {"rv": float(var[0]), "vsini": float(var[1])}
    out["resolution"] = float(var[2]) if cfg.fit_resolution else 0.0
    return {
        k: (
            math.sqrt(v)
            if v > 0
            else (0.0 if k == "resolution" and not cfg.fit_resolution else float("nan"))
        )
        for k, v in out.items()
    }


def profile_vsini(
    ext: ExtrinsicModel, st: TransferState, loss_fn: Any, cfg: TransferConfig
) -> tuple[list[tuple[float, float]], dict[str, Any] | None]:
    """chi2 (prior included) at each grid v sin i with the other parameters re-optimised; the
    best fit itself is included. The grid is walked outward from the best fit on each side,
    each point starting from its neighbour's solution (a continuous path: the lines' widths
    change smoothly as rotation takes over their broadening). Returns the profile and the
    state at its lowest grid point (None when the fit itself is lowest); the fit's state is
    restored.

    Example:
        >>> import numpy as np
        >>> from atmospec.highres import LineEmulator, LineList
        >>> from atmospec.highres.transfer_state import new_state, prior
        >>> ll = LineList([8702.0, 8704.0], [0.03, 0.02], [0.04, 0.04], [0.005, 0.005])
        >>> is_t = np.array([True, False])                 # 8704 Å: a line found in the data
        >>> st = new_state(ll, is_t, ll.select(is_t), LineEmulator(ll, device="cpu").settings(),
        ...                torch.device("cpu"), 1.2)
        >>> w = np.linspace(8700.0, 8706.0, 300)
        >>> ext = ExtrinsicModel(w, rv=3.0, vsini=3.2, device="cpu")  # at the truth
        >>> fl = ext(st.star).detach()
        >>> wt, cfg = torch.full((w.size,), 1e6, dtype=torch.float64), TransferConfig()
        >>> def loss_fn(s):                                # as transfer() builds it
        ...     chi2 = (wt * (fl - ext(s.star)) ** 2).sum()
        ...     return 0.5 * chi2 + prior(ext, s, cfg), chi2
        >>> grid = TransferConfig(vsini_grid=(2.2, 4.2), profile_epochs=5)
        >>> scan, low = profile_vsini(ext, st, loss_fn, grid)
        >>> [round(v, 6) for v, _ in scan], low is None, round(float(ext.vsini.detach()), 6)
        ([2.2, 3.2, 4.2], True, 3.2)
    """
    best = snapshot(ext, st)
    v_best = float(ext.vsini.detach())
    out: list[tuple[float, float]] = []
    with torch.no_grad():
        loss, _ = loss_fn(st)
    out.append((v_best, 2.0 * float(loss)))
    lowest, low_snap = out[0][1], None
    below = sorted((v for v in cfg.vsini_grid if v < v_best), reverse=True)
    above = sorted(v for v in cfg.vsini_grid if v >= v_best)
    for side in (below, above):
        restore(ext, st, best)
        for v in side:
            with torch.no_grad():
                ext.ln_vsini.fill_(math.log(v))
            optimise(ext, st, loss_fn, cfg.profile_epochs, cfg.lr, cfg,
                      f"vsini {v:g}", fix_vsini=True)  # fmt: skip
            with torch.no_grad():
                loss, _ = loss_fn(st)
            out.append((float(v), 2.0 * float(loss)))
            if out[-1][1] < lowest:
                lowest, low_snap = out[-1][1], snapshot(ext, st)
    restore(ext, st, best)
    ext.ln_vsini.requires_grad_(True)
    return sorted(out), low_snap


def limits(
    ext: ExtrinsicModel,
    st: TransferState,
    cfg: TransferConfig,
    params: dict[str, float],
    interval: tuple[float, float],
    errors: dict[str, float],
) -> list[str]:
    """Messages for parameters at a limit (a clamp or the end of the scan grid) or whose
    uncertainty is undefined (the likelihood is not curved there).

    Example:
        >>> import numpy as np
        >>> from atmospec.highres import LineEmulator, LineList
        >>> from atmospec.highres.transfer_state import new_state, prior
        >>> ll = LineList([8702.0, 8704.0], [0.03, 0.02], [0.04, 0.04], [0.005, 0.005])
        >>> is_t = np.array([True, False])                 # 8704 Å: a line found in the data
        >>> st = new_state(ll, is_t, ll.select(is_t), LineEmulator(ll, device="cpu").settings(),
        ...                torch.device("cpu"), 1.2)
        >>> w = np.linspace(8700.0, 8706.0, 300)
        >>> ext = ExtrinsicModel(w, vsini=0.05, device="cpu")
        >>> params = {"rv": 3.0, "vsini": 0.05, "resolution": 55_000.0}
        >>> errors = {"rv": float("nan"), "vsini": 0.1, "resolution": 0.0}
        >>> for msg in limits(ext, st, TransferConfig(), params, (0.05, 0.3), errors):
        ...     print(msg)
        rv: the likelihood is not curved at the optimum (Laplace error undefined)
        v sin i is at its 0.05 km/s floor: rotation unresolved
    """
    msgs = [
        f"{k}: the likelihood is not curved at the optimum (Laplace error undefined)"
        for k, v in errors.items()
        if not math.isfinite(v)
    ]
    if params["vsini"] < 0.1:
        msgs.append("v sin i is at its 0.05 km/s floor: rotation unresolved")
    if cfg.vsini_grid and interval[0] <= min(cfg.vsini_grid) + 1e-9:
        msgs.append(f"the v sin i interval reaches the scan's lower end {min(cfg.vsini_grid)} km/s")
    if cfg.vsini_grid and interval[1] >= max(cfg.vsini_grid) - 1e-9:
        msgs.append(f"the v sin i interval reaches the scan's upper end {max(cfg.vsini_grid)} km/s")
    floor = width_floor(cfg)
    if float(torch.exp(st.ln_s)) <= floor * 1.001:
        msgs.append(f"the shared intrinsic line width sits at its {floor:.2f} km/s floor")
    if cfg.intrinsic_range_kms and float(torch.exp(st.ln_s)) >= cfg.intrinsic_range_kms[1] * 0.999:
        msgs.append(
            f"the shared intrinsic line width sits at its physical ceiling "
            f"{cfg.intrinsic_range_kms[1]:.2f} km/s: the broadening beyond it is rotation"
        )
    z = (params["resolution"] - cfg.resolution) / cfg.resolution_sd
    if cfg.fit_resolution and abs(z) > 3:
        msgs.append(
            f"R = {params['resolution']:.0f} is {z:+.1f} prior sd from {cfg.resolution:.0f}"
        )
    with torch.no_grad():
        ln_min = torch.log(st.star.center0 * floor / C_KMS)
        at_floor = int((st.star.ln_sigma <= ln_min + 1e-9).sum())
    if at_floor:
        msgs.append(f"{at_floor} line width(s) at the {floor:.2f} km/s floor")
    return msgs
