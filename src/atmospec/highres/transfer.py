"""Semi-empirical transfer: re-learn a template clone's lines on a real star, with priors.

The fit is spread over four modules, one concept each: :mod:`~atmospec.highres.transfer_config`
(priors, schedule, physical width bounds), :mod:`~atmospec.highres.transfer_state` (the line
set and its regularisation), :mod:`~atmospec.highres.transfer_optimise` (Adam steps, the
v sin i profile, errors, limits) and :mod:`~atmospec.highres.linetable` (the learned lines as
a table). This module runs them in order.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import torch

from atmospec.errors import CoverageError
from atmospec.highres.broadening import (
    correlation_length,
    intrinsic_width_kms,
    intrinsic_width_range,
    parabola_minimum,
    profile_interval,
)
from atmospec.highres.emulator import LineEmulator, default_device
from atmospec.highres.extrinsic import C_KMS, ExtrinsicModel
from atmospec.highres.fit import FitResult, _solve_continuum, scan_rv
from atmospec.highres.linefinder import find_lines
from atmospec.highres.linetable import line_table
from atmospec.highres.transfer_config import (
    TransferConfig,
    shared_bounds,
    vsini_interval,
    vsini_width_budget,
    width_ceiling,
    width_floor,
)
from atmospec.highres.transfer_optimise import laplace, limits, optimise, profile_vsini
from atmospec.highres.transfer_state import (
    TransferState,
    merge_lines,
    new_state,
    prior,
    restore,
    select_lines,
    to_rest_intrinsic,
)

__all__ = [
    "TransferConfig",
    "intrinsic_width_kms",
    "intrinsic_width_range",
    "line_table",
    "transfer",
    "vsini_width_budget",
]

log = logging.getLogger(__name__)


def transfer(
    wavelength: np.ndarray,
    flux: np.ndarray,
    uncertainty: np.ndarray,
    template: LineEmulator,
    *,
    mask: np.ndarray | None = None,
    rv_range: tuple[float, float] = (-150.0, 150.0),
    config: TransferConfig | None = None,
    device: str | torch.device | None = None,
) -> FitResult:
    """Transfer a template clone to an observed star: re-learn every line's position, width
    and strength from the data, add the lines the template lacks, prune those the star lacks,
    and fit continuum, RV, v sin i (rotation kernel with limb darkening) and the instrumental
    resolution jointly.

    Priors keep the clone physical: template lines stay near their template positions
    (``center_sd_kms``; they fix the radial velocity), widths, and strengths; lines found in
    the residual share one intrinsic velocity width (thermal + microturbulent), each free
    within ``width_sd`` in log, never below ``min_width_kms``; their common shift is free so
    they do not pull the RV; R has a Gaussian prior at HPF's 55,000. Lines whose depth falls
    below ``prune_depth`` are removed after each round.

    Uncertainties: RV and R from the Laplace approximation (continuum marginalised, scaled by
    sqrt(reduced chi-square) when above 1); v sin i from a profile-likelihood scan over
    ``vsini_grid`` with everything else re-optimised at each point (so line widths, which
    trade against rotation, are included), its statistical 68 % interval where the scaled
    Delta chi-square crosses 1, widened by the v sin i range the lines' physical width range
    leaves open and, with R fixed, by R's prior sd (added in quadrature to the statistical
    part; see :func:`~atmospec.highres.transfer_config.vsini_interval`).

    Returns:
        A :class:`~atmospec.highres.fit.FitResult` whose ``lines`` is the learned line list
        (``meta["origin"]`` per line: template / data) and ``meta`` holds the v sin i interval,
        the shared intrinsic width, the line counts and any parameter at a limit.

    Example:
        >>> import numpy as np
        >>> from atmospec.highres import ExtrinsicModel, LineEmulator, LineList
        >>> w = np.linspace(8700.0, 8710.0, 500)
        >>> truth = LineEmulator(LineList([8703.0, 8706.0], [0.02, 0.03], [0.04, 0.04],
        ...                               [0.005, 0.005]), device="cpu")
        >>> ext = ExtrinsicModel(w, rv=5.0, vsini=3.0, device="cpu")
        >>> f = ext(truth).detach().numpy()
        >>> tmpl = LineEmulator(LineList([8703.0], [0.02], [0.04], [0.005]), device="cpu")
        >>> cfg = TransferConfig(rounds=2, epochs=80, vsini_grid=(2.0, 3.0, 4.0),
        ...                      profile_epochs=20)
        >>> res = transfer(w, f, np.full(w.size, 1e-3), tmpl, rv_range=(-20, 20),
        ...                config=cfg, device="cpu")
        >>> abs(res.params["rv"] - 5.0) < 0.5, res.meta["n_lines_data"] >= 1
        (True, True)
    """
    cfg = config or TransferConfig()
    dev = torch.device(device) if device is not None else default_device()
    w = np.asarray(wavelength, dtype=np.float64)
    flux = np.asarray(flux, dtype=np.float64)
    uncertainty = np.asarray(uncertainty, dtype=np.float64)
    bad = np.zeros(w.size, bool) if mask is None else np.asarray(mask, bool).copy()
    bad |= ~np.isfinite(flux) | ~np.isfinite(uncertainty) | (uncertainty <= 0)
    if (~bad).sum() < 10:
        raise CoverageError("transfer: fewer than 10 good pixels")
    noise = float(np.median(uncertainty[~bad]))
    prominence = cfg.prominence if cfg.prominence is not None else 4.0 * noise
    prune = cfg.prune_depth if cfg.prune_depth is not None else noise
    kw: dict[str, Any] = {"dtype": torch.float64, "device": dev}
    fl = torch.as_tensor(np.where(bad, 1.0, flux), **kw)
    sd = torch.as_tensor(np.where(bad, 1.0, uncertainty), **kw)
    wt = torch.as_tensor(~bad, **kw) / sd**2
    n_good = int((~bad).sum())
    ext = ExtrinsicModel(
        w,
        vsini=cfg.vsini,
        resolution=cfg.resolution,
        epsilon=cfg.epsilon,
        macroturbulence=cfg.macroturbulence_kms,
        poly_degree=cfg.poly_degree,
        device=dev,
    )
    settings = template.settings()
    tl = template.lines()
    # only template lines that can reach the data (RV range plus a margin) are kept
    reach = (tl.center > w[0] * (1 + rv_range[0] / C_KMS) - 5) & (
        tl.center < w[-1] * (1 + rv_range[1] / C_KMS) + 5
    )
    tl = tl.select(reach)
    if len(tl) == 0:
        raise CoverageError(
            f"transfer: no template line within the data ({w[0]:.1f}-{w[-1]:.1f}) over the RV "
            f"range {rv_range} km/s"
        )
    lo_s, hi_s = shared_bounds(cfg)
    s0 = math.exp(min(max(math.log(cfg.intrinsic_kms), lo_s), hi_s))
    state = new_state(tl, np.ones(len(tl), bool), tl, settings, dev, s0)

    # 1. RV scan with the template (coarse, then fine), continuum solved at each
    rvs = np.arange(rv_range[0], rv_range[1] + 0.5, 1.0)
    rv0, _ = scan_rv(ext, state.star, fl, wt, rvs)
    rv0, _ = scan_rv(ext, state.star, fl, wt, np.arange(rv0 - 1.5, rv0 + 1.51, 0.1))
    with torch.no_grad():
        ext.rv.fill_(rv0)
        ext.coeffs.copy_(_solve_continuum(ext, ext.broadened(state.star), fl, wt))

    def loss_fn(st: TransferState) -> tuple[torch.Tensor, torch.Tensor]:
        chi2 = (wt * (fl - ext(st.star)) ** 2).sum()
        return 0.5 * chi2 + prior(ext, st, cfg), chi2

    history: list[dict[str, float]] = []
    n_added = 0
    n_pruned = 0
    for r in range(cfg.rounds + 1):
        if r > 0:  # add the lines the model lacks, found in data / model
            with torch.no_grad():
                ratio = (fl / ext(state.star)).cpu().numpy()
            ratio = np.where(bad, 1.0, ratio)
            extra = find_lines(w, ratio, prominence=prominence)
            extra = to_rest_intrinsic(extra, float(ext.rv.detach()), ext, cfg, state)
            n_added += len(extra)
            state = merge_lines(state, extra, settings, dev)
        n_epochs = cfg.epochs * (2 if r == cfg.rounds else 1)
        optimise(ext, state, loss_fn, n_epochs, cfg.lr, cfg, f"transfer round {r}")
        keep = state.star.lines().depth >= prune
        if r < cfg.rounds and not keep.all():
            n_pruned += int((~keep).sum())
            state = select_lines(state, keep, settings, dev)
        with torch.no_grad():
            _, chi2_round = loss_fn(state)
            rms = float(torch.sqrt(((fl - ext(state.star)) ** 2 * (wt > 0)).sum() / n_good))
        history.append(
            {
                "round": r,
                "lines": state.star.n_lines,
                "rms_percent": 100 * rms,
                "chi2": float(chi2_round),
            }
        )
        log.info("transfer round %d: %d lines, RMS %.3f %%", r, state.star.n_lines, 100 * rms)

    # 2. v sin i by profile likelihood (with a grid): Adam moves v sin i slowly through the
    # valley where line widths trade against rotation; the profile re-optimises everything
    # else at each grid value, and the fit continues from its lowest point
    scan: list[tuple[float, float]] = []
    v_joint = float(ext.vsini.detach())
    if cfg.vsini_grid:
        scan, best_snap = profile_vsini(ext, state, loss_fn, cfg)
        v_best = parabola_minimum(scan)
        if best_snap is not None:
            restore(ext, state, best_snap)
        with torch.no_grad():
            ext.ln_vsini.fill_(math.log(v_best))
        optimise(ext, state, loss_fn, cfg.profile_epochs, cfg.lr, cfg,
                  "transfer at the profile's v sin i", fix_vsini=True)  # fmt: skip
    # 3. Laplace errors on RV, vsini, R (continuum marginalised, lines fixed)
    errors = laplace(ext, state, fl, wt, cfg)
    with torch.no_grad():
        model = ext(state.star)
        chi2 = float((wt * (fl - model) ** 2).sum())
    n_free = 2 + int(cfg.fit_resolution) + ext.coeffs.numel()
    dof = n_good - n_free
    factor = max(1.0, math.sqrt(chi2 / max(dof, 1)))
    good = ~bad
    corr = correlation_length(((flux - model.cpu().numpy()) / uncertainty)[good])
    params = {
        "rv": float(ext.rv.detach()),
        "vsini": float(ext.vsini.detach()),
        "resolution": float(ext.resolution.detach()),
    }
    errors_scaled = {k: v * factor for k, v in errors.items()}
    if scan:
        stat = profile_interval(scan, factor**2 * corr, params["vsini"])
    else:
        e = errors_scaled["vsini"]
        stat = (params["vsini"] - e, params["vsini"] + e)
    shared = float(torch.exp(state.ln_s))
    budget = vsini_width_budget(params, shared, cfg)
    interval, parts = vsini_interval(params, shared, stat, cfg)
    if not all(math.isfinite(v) for v in stat):  # no curvature: the width range alone
        stat = (parts["width_range"][0], parts["width_range"][1])
    errors_scaled["vsini"] = 0.5 * (interval[1] - interval[0])
    flags = limits(ext, state, cfg, params, stat, errors)
    w_lo, w_hi = parts["width_range"]
    if w_lo < stat[0] - 1e-6 or w_hi > stat[1] + 1e-6:
        r_lo, r_hi = parts["resolution_shifts"]
        flags.append(
            f"rotation and the lines' own widths are not separated by the line shapes: the "
            f"total broadening puts v sin i anywhere in {w_lo:.2f}-{w_hi:.2f} km/s for line "
            f"widths between {width_floor(cfg):.2f} and {width_ceiling(cfg, shared):.2f} km/s"
            + (
                f" (R within +-{cfg.resolution_sd:.0f} moves the ends by -{r_lo:.2f} / "
                f"+{r_hi:.2f} km/s)"
                if not cfg.fit_resolution
                else ""
            )
            + "; the interval spans it"
        )
    for msg in flags:
        log.warning("transfer: %s", msg)
    lines = state.star.lines()
    origin = np.where(state.template.cpu().numpy(), "template", "data")
    order = np.argsort(state.star.center.detach().cpu().numpy(), kind="stable")
    lines.meta.update({"origin": origin[order].tolist()})
    meta: dict[str, Any] = {
        "method": "semi-empirical transfer",
        "rv_scan_best": rv0,
        "intrinsic_sigma_kms": float(torch.exp(state.ln_s)),
        "vsini_interval_68": list(interval),
        "vsini_interval_statistical": list(stat),
        "vsini_range_width_budget": list(budget),
        "vsini_interval_parts": parts,
        "vsini_joint_fit": v_joint,
        "residual_correlation_px": corr,
        "vsini_profile": {"vsini": [s[0] for s in scan], "chi2": [s[1] for s in scan]},
        "n_lines_template": int(state.template.sum()),
        "n_lines_data": int((~state.template).sum()),
        "n_lines_added": n_added,
        "n_lines_pruned": n_pruned,
        "rounds": history,
        "limits": flags,
        "epsilon": cfg.epsilon,
        "macroturbulence_kms": cfg.macroturbulence_kms,
        "resolution": "fitted, prior " + f"{cfg.resolution:.0f} +- {cfg.resolution_sd:.0f}"
        if cfg.fit_resolution
        else f"fixed at the instrument's {cfg.resolution:.0f}",
        "intrinsic_prior_kms": None
        if cfg.intrinsic_sd is None
        else [cfg.intrinsic_kms, cfg.intrinsic_sd],
        "continuum_coeffs": ext.coeffs.detach().cpu().tolist(),
        "uncertainty_method": "Laplace (inverse Hessian; continuum and the data lines' "
        "shared width marginalised; x sqrt(chi2_red)); vsini: profile likelihood when "
        "vsini_grid is given (every other parameter re-fitted at each value), its 68 % "
        "interval where Delta chi2 / (chi2_red x residual correlation length) crosses 1 "
        "(sqrt(Delta chi2) interpolated between grid points, about the parabola's minimum), "
        "then widened by the line-width range and, with R fixed, R's prior sd in quadrature "
        "(meta vsini_interval_parts)",
        "intrinsic_range_kms": None
        if cfg.intrinsic_range_kms is None
        else list(cfg.intrinsic_range_kms),
        "width_anchor": cfg.width_anchor,
    }
    return FitResult(
        params=params,
        errors=errors,
        errors_scaled=errors_scaled,
        chi2=chi2,
        dof=dof,
        lines=lines,
        wavelength=w,
        flux=flux,
        uncertainty=uncertainty,
        model=model.cpu().numpy(),
        mask=bad,
        meta=meta,
    )
