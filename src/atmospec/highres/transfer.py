"""Semi-empirical transfer: re-learn a template clone's lines on a real star, with priors."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
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
    rotation_sd_per_vsini,
)
from atmospec.highres.emulator import LineEmulator, default_device
from atmospec.highres.extrinsic import C_KMS, ExtrinsicModel
from atmospec.highres.fit import FitResult, _solve_continuum, scan_rv
from atmospec.highres.linefinder import LineList, find_lines

__all__ = [
    "TransferConfig",
    "intrinsic_width_kms",
    "intrinsic_width_range",
    "line_table",
    "transfer",
    "vsini_width_budget",
]

log = logging.getLogger(__name__)

_FWHM = 2.0 * math.sqrt(2.0 * math.log(2.0))


@dataclass(frozen=True)
class TransferConfig:
    """Priors and schedule of :func:`transfer`.

    Args:
        rounds: residual line-search rounds (each adds lines the model lacks, then refits).
        epochs: Adam steps per round (the last round runs twice as many).
        lr: Adam learning rate.
        prominence: smallest residual depth searched for new lines; None: 4 x the median
            per-pixel noise.
        prune_depth: lines whose central depth falls below this are removed after each
            round; None: the per-pixel noise.
        resolution: the instrument's resolving power (HPF: 55,000, Mahadevan et al. 2012):
            the Gaussian instrumental profile, fixed unless ``fit_resolution``.
        fit_resolution: fit R with a Gaussian prior (mean ``resolution``, sd
            ``resolution_sd``). Off by default: with line widths learned from the data, a
            Gaussian instrumental width and the lines' Gaussian widths are degenerate (on
            WASP-69 a free R ran to 86,000, 11 prior sd away, the lines narrowing to match).
        resolution_sd: prior sd of R when fitted.
        center_sd_kms: prior sd of a template line's shift from its template position
            (km/s); 0 (default) keeps template lines at their template positions, so they
            alone fix the radial velocity.
        new_center_sd_kms: sd of a new line's shift about the mean shift of the new lines
            (their common shift is free, so they do not pull the radial velocity).
        amp_sd: prior sd of a template line's ln amplitude about the template's.
        width_sd: prior sd of a line's ln Gaussian width about the shared intrinsic width
            (new lines) or the template's (template lines).
        min_width_kms: smallest Gaussian sigma of a line, in velocity (thermal width of iron
            at ~3,000 K is 0.7 km/s).
        intrinsic_kms: initial shared intrinsic Gaussian sigma (thermal + microturbulence).
        intrinsic_sd: sd (in log) of a Gaussian prior on the shared intrinsic width about
            ``intrinsic_kms``, or None (flat). The lines' own widths and the rotation kernel
            are nearly degenerate below the resolution element: without this prior the
            data lines take up part of the rotational broadening.
        intrinsic_range_kms: (floor, ceiling) of the shared intrinsic Gaussian sigma (km/s), a
            flat prior between the physically possible widths (see
            :func:`intrinsic_width_range`), or None (only ``min_width_kms`` below). With it, the
            per-line widths cannot take up the rotational broadening: the remainder beyond the
            ceiling is rotation, and below the floor nothing is left for lines to absorb.
        width_anchor: ``"template"``: a template line's width prior is about the template's
            own width (right when the template is the star's temperature); ``"shared"``: every
            line's width is about the shared intrinsic width (a template much hotter or cooler
            than the star has the wrong thermal widths).
        epsilon: linear limb-darkening coefficient of the rotation kernel.
        vsini: initial projected rotation, km/s.
        vsini_grid: grid (km/s) of an optional profile-likelihood scan of v sin i (empty: no
            scan; the interval is then the Laplace one).
        profile_epochs: Adam steps re-optimising everything else at each grid point.
        poly_degree: continuum polynomial degree.
    """

    rounds: int = 3
    epochs: int = 150
    lr: float = 0.01
    prominence: float | None = None
    prune_depth: float | None = None
    resolution: float = 55_000.0
    fit_resolution: bool = False
    resolution_sd: float = 2_750.0
    center_sd_kms: float = 0.0
    new_center_sd_kms: float = 1.5
    amp_sd: float = 2.0
    width_sd: float = 0.3
    min_width_kms: float = 0.7
    intrinsic_kms: float = 1.2
    intrinsic_sd: float | None = None
    intrinsic_range_kms: tuple[float, float] | None = None
    width_anchor: str = "template"
    epsilon: float = 0.6
    vsini: float = 3.0
    vsini_grid: tuple[float, ...] = ()
    profile_epochs: int = 100
    poly_degree: int = 2


def _width_floor(cfg: TransferConfig) -> float:
    """The smallest Gaussian sigma (km/s) of any line."""
    lo = cfg.intrinsic_range_kms[0] if cfg.intrinsic_range_kms else 0.0
    return max(cfg.min_width_kms, lo)


def _shared_bounds(cfg: TransferConfig) -> tuple[float, float]:
    """ln bounds of the shared intrinsic sigma (km/s)."""
    hi = cfg.intrinsic_range_kms[1] if cfg.intrinsic_range_kms else math.inf
    return math.log(_width_floor(cfg)), math.log(hi)


@dataclass
class _State:
    star: LineEmulator
    template: torch.Tensor  # True for lines that came from the template
    center_t: torch.Tensor  # template centres / ln amplitudes / ln widths (template lines)
    ln_amp_t: torch.Tensor
    ln_sigma_t: torch.Tensor
    ln_s: torch.Tensor = field(default_factory=lambda: torch.zeros(()))


def _emulator_from(lines: LineList, settings: dict[str, Any], dev: torch.device) -> LineEmulator:
    return LineEmulator(lines, **settings, device=dev)


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
    progress: bool = True,
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
    trade against rotation, are included), its 68 % interval where the scaled
    Delta chi-square crosses 1.

    Returns:
        A :class:`~atmospec.highres.fit.FitResult` whose ``lines`` is the learned line list
        (``meta["origin"]`` per line: template / data) and ``meta`` holds the v sin i interval,
        the shared intrinsic width, the line counts and any parameter at a limit.

    Example:
        >>> import numpy as np, torch
        >>> w = np.linspace(8700.0, 8710.0, 500)
        >>> truth = LineEmulator(LineList([8703.0, 8706.0], [0.02, 0.03], [0.04, 0.04],
        ...                               [0.005, 0.005]), device="cpu")
        >>> ext = ExtrinsicModel(w, rv=5.0, vsini=3.0, device="cpu")
        >>> f = ext(truth).detach().numpy()
        >>> tmpl = LineEmulator(LineList([8703.0], [0.02], [0.04], [0.005]), device="cpu")
        >>> cfg = TransferConfig(rounds=2, epochs=80, vsini_grid=(2.0, 3.0, 4.0),
        ...                      profile_epochs=20)
        >>> res = transfer(w, f, np.full(w.size, 1e-3), tmpl, rv_range=(-20, 20),
        ...                config=cfg, device="cpu", progress=False)
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
    lo_s, hi_s = _shared_bounds(cfg)
    s0 = math.exp(min(max(math.log(cfg.intrinsic_kms), lo_s), hi_s))
    state = _new_state(tl, np.ones(len(tl), bool), tl, settings, dev, s0)

    # 1. RV scan with the template (coarse, then fine), continuum solved at each
    rvs = np.arange(rv_range[0], rv_range[1] + 0.5, 1.0)
    rv0, _ = scan_rv(ext, state.star, fl, wt, rvs)
    rv0, _ = scan_rv(ext, state.star, fl, wt, np.arange(rv0 - 1.5, rv0 + 1.51, 0.1))
    with torch.no_grad():
        ext.rv.fill_(rv0)
        ext.coeffs.copy_(_solve_continuum(ext, ext.broadened(state.star), fl, wt))

    def loss_fn(st: _State) -> tuple[torch.Tensor, torch.Tensor]:
        chi2 = (wt * (fl - ext(st.star)) ** 2).sum()
        return 0.5 * chi2 + _prior(ext, st, cfg), chi2

    history: list[dict[str, float]] = []
    n_added = 0
    n_pruned = 0
    for r in range(cfg.rounds + 1):
        if r > 0:  # add the lines the model lacks, found in data / model
            with torch.no_grad():
                ratio = (fl / ext(state.star)).cpu().numpy()
            ratio = np.where(bad, 1.0, ratio)
            extra = find_lines(w, ratio, prominence=prominence)
            extra = _to_rest_intrinsic(extra, float(ext.rv.detach()), ext, cfg, state)
            n_added += len(extra)
            state = _merge(state, extra, settings, dev)
        n_epochs = cfg.epochs * (2 if r == cfg.rounds else 1)
        _optimise(ext, state, loss_fn, n_epochs, cfg.lr, cfg, progress, f"transfer round {r}")
        keep = state.star.lines().depth >= prune
        if r < cfg.rounds and not keep.all():
            n_pruned += int((~keep).sum())
            state = _select(state, keep, settings, dev)
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
        scan, best_snap = _profile_vsini(ext, state, loss_fn, cfg, progress)
        v_best = parabola_minimum(scan)
        if best_snap is not None:
            _restore(ext, state, best_snap)
        with torch.no_grad():
            ext.ln_vsini.fill_(math.log(v_best))
        _optimise(ext, state, loss_fn, cfg.profile_epochs, cfg.lr, cfg, progress,
                  "transfer at the profile's v sin i", fix_vsini=True)  # fmt: skip
    # 3. Laplace errors on RV, vsini, R (continuum marginalised, lines fixed)
    errors = _laplace(ext, state, fl, wt, cfg)
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
    budget = vsini_width_budget(params, float(torch.exp(state.ln_s)), cfg)
    if not all(math.isfinite(v) for v in stat):  # no curvature: the budget alone
        stat = budget
    interval = (min(stat[0], budget[0]), max(stat[1], budget[1]))
    errors_scaled["vsini"] = 0.5 * (interval[1] - interval[0])
    flags = _limits(ext, state, cfg, params, stat, errors)
    if budget[0] < stat[0] - 1e-6 or budget[1] > stat[1] + 1e-6:
        flags.append(
            f"rotation and the lines' own widths are not separated by the line shapes: the "
            f"total broadening puts v sin i anywhere in {budget[0]:.2f}-{budget[1]:.2f} km/s "
            f"for line widths between {_width_floor(cfg):.2f} and "
            f"{_ceiling(cfg, float(torch.exp(state.ln_s))):.2f} km/s and R within "
            f"+-{cfg.resolution_sd:.0f}; the interval spans it"
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
        "interval where Delta chi2 / (chi2_red x residual correlation length) crosses 1",
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


def _new_state(
    lines: LineList,
    is_template: np.ndarray,
    tmpl: LineList,
    settings: dict[str, Any],
    dev: torch.device,
    intrinsic_kms: float,
) -> _State:
    kw: dict[str, Any] = {"dtype": torch.float64, "device": dev}
    star = _emulator_from(lines, settings, dev)
    return _State(
        star,
        torch.as_tensor(is_template, device=dev),
        torch.as_tensor(tmpl.center, **kw),
        torch.as_tensor(np.log(tmpl.amplitude), **kw),
        torch.as_tensor(np.log(tmpl.sigma), **kw),
        torch.tensor(math.log(intrinsic_kms), **kw),
    )


def _lines_of(state: _State) -> LineList:
    return state.star.lines()


def _merge(state: _State, extra: LineList, settings: dict[str, Any], dev: torch.device) -> _State:
    cur = _lines_of(state)
    # star.lines() is sorted by centre; keep the template flags in the same order
    order = np.argsort(state.star.center.detach().cpu().numpy(), kind="stable")
    flags = state.template.cpu().numpy()[order]
    idx = np.flatnonzero(flags)
    tmpl_pos = np.cumsum(state.template.cpu().numpy()) - 1  # index into template arrays
    t_idx = tmpl_pos[order][idx]
    merged = LineList(
        np.concatenate([cur.center, extra.center]),
        np.concatenate([cur.amplitude, extra.amplitude]),
        np.concatenate([cur.sigma, extra.sigma]),
        np.concatenate([cur.gamma, extra.gamma]),
        dict(cur.meta),
    )
    is_t = np.concatenate([flags, np.zeros(len(extra), bool)])
    # LineList sorts by centre: apply the same stable sort to the flags
    o2 = np.argsort(np.concatenate([cur.center, extra.center]), kind="stable")
    is_t = is_t[o2]
    src = np.concatenate([np.where(flags, 0, -1), np.full(len(extra), -1)])
    src[: len(flags)][idx] = t_idx
    src = src[o2]
    return _rebuild(state, merged, is_t, src, settings, dev)


def _select(state: _State, keep: np.ndarray, settings: dict[str, Any], dev: torch.device) -> _State:
    cur = _lines_of(state)
    order = np.argsort(state.star.center.detach().cpu().numpy(), kind="stable")
    flags = state.template.cpu().numpy()[order]
    tmpl_pos = (np.cumsum(state.template.cpu().numpy()) - 1)[order]
    src = np.where(flags, tmpl_pos, -1)
    return _rebuild(state, cur.select(keep), flags[keep], src[keep], settings, dev)


def _rebuild(
    state: _State,
    lines: LineList,
    is_t: np.ndarray,
    src: np.ndarray,
    settings: dict[str, Any],
    dev: torch.device,
) -> _State:
    """A new emulator at ``lines`` (current values) keeping the template references of the
    template lines (``src``: index into the previous template arrays, -1 for data lines)."""
    t = src[is_t]
    ti = torch.as_tensor(t, device=dev, dtype=torch.int64)
    star = _emulator_from(lines, settings, dev)
    return _State(
        star,
        torch.as_tensor(is_t, device=dev),
        state.center_t[ti],
        state.ln_amp_t[ti],
        state.ln_sigma_t[ti],
        state.ln_s.detach().clone(),
    )


def _to_rest_intrinsic(
    extra: LineList, rv: float, ext: ExtrinsicModel, cfg: TransferConfig, state: _State
) -> LineList:
    """Lines found in the observed residual, moved to the rest frame with their width reduced
    by the instrumental and rotational broadening (quadrature), at the shared intrinsic width
    when nothing is left; the integrated optical depth (amplitude) is kept."""
    if len(extra) == 0:
        return extra
    center = extra.center / (1.0 + rv / C_KMS)
    v_inst = C_KMS / float(ext.resolution.detach()) / _FWHM
    v_rot = 0.6 * float(ext.vsini.detach())
    v_obs = extra.sigma / center * C_KMS
    v_int = float(torch.exp(state.ln_s))
    v = np.sqrt(np.maximum(v_obs**2 - v_inst**2 - v_rot**2, v_int**2))
    v = np.clip(v, _width_floor(cfg), 3 * v_int)
    sigma = center * v / C_KMS
    return LineList(center, extra.amplitude, sigma, 0.05 * sigma, dict(extra.meta))


def _prior(ext: ExtrinsicModel, st: _State, cfg: TransferConfig) -> torch.Tensor:
    star = st.star
    lam = star.center0
    out = torch.zeros((), dtype=lam.dtype, device=lam.device)
    if cfg.fit_resolution:
        out = out + 0.5 * ((ext.resolution - cfg.resolution) / cfg.resolution_sd) ** 2
    t = st.template
    if bool(t.any()):
        if cfg.center_sd_kms > 0:
            sd_c = st.center_t * cfg.center_sd_kms / C_KMS
            out = out + 0.5 * (((star.center[t] - st.center_t) / sd_c) ** 2).sum()
        out = out + 0.5 * (((star.ln_amp[t] - st.ln_amp_t) / cfg.amp_sd) ** 2).sum()
        ref = (
            st.ln_sigma_t if cfg.width_anchor == "template" else torch.log(lam[t] / C_KMS) + st.ln_s
        )
        out = out + 0.5 * (((star.ln_sigma[t] - ref) / cfg.width_sd) ** 2).sum()
    if cfg.intrinsic_sd is not None:
        out = out + 0.5 * ((st.ln_s - math.log(cfg.intrinsic_kms)) / cfg.intrinsic_sd) ** 2
    d = ~t
    if bool(d.any()):
        shift = star.d_center[d] / lam[d] * C_KMS  # km/s
        out = out + 0.5 * (((shift - shift.mean()) / cfg.new_center_sd_kms) ** 2).sum()
        ln_ref = torch.log(lam[d] / C_KMS) + st.ln_s
        out = out + 0.5 * (((star.ln_sigma[d] - ln_ref) / cfg.width_sd) ** 2).sum()
    return out


def _optimise(
    ext: ExtrinsicModel,
    st: _State,
    loss_fn: Any,
    n_epochs: int,
    lr: float,
    cfg: TransferConfig,
    progress: bool,
    desc: str,
    *,
    fix_vsini: bool = False,
) -> None:
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
    ln_min = torch.log(star.center0 * _width_floor(cfg) / C_KMS)
    lo_s, hi_s = _shared_bounds(cfg)
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
            bar.set_postfix(chi2_red=f"{float(chi2) / n:.2f}")
    star.set_windows()
    for p in star.parameters():
        p.requires_grad_(False)
    st.ln_s.requires_grad_(False)


class _Widened(torch.nn.Module):
    """The star with the Gaussian widths of its data lines scaled by ``exp(ds)``."""

    def __init__(self, st: _State, ds: torch.Tensor) -> None:
        super().__init__()
        self.st, self.ds = st, ds

    def forward(self, wl: torch.Tensor) -> torch.Tensor:
        from torch.func import functional_call

        star = self.st.star
        ln_sigma = star.ln_sigma + self.ds * (~self.st.template).to(star.ln_sigma.dtype)
        return functional_call(star, {"ln_sigma": ln_sigma}, (wl,))


def _laplace(
    ext: ExtrinsicModel, st: _State, fl: torch.Tensor, wt: torch.Tensor, cfg: TransferConfig
) -> dict[str, float]:
    """Laplace 1-sigma of RV, v sin i and R with the continuum and the shared intrinsic width
    of the data lines (their common log-width shift, the direction along which line widths
    trade against rotation and resolution) marginalised."""
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
    free = [0, 1] + ([2] if cfg.fit_resolution else []) + list(range(3, theta0.numel()))
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


def _ceiling(cfg: TransferConfig, shared: float) -> float:
    return cfg.intrinsic_range_kms[1] if cfg.intrinsic_range_kms else 3.0 * shared


def vsini_width_budget(
    params: dict[str, float], shared: float, cfg: TransferConfig
) -> tuple[float, float]:
    """The v sin i range along the degeneracy valley. Variances add under convolution, so the
    fit fixes the total squared broadening T^2 = s^2 + (k v sin i)^2 + s_inst(R)^2 (s the
    lines' shared intrinsic sigma, k the rotation kernel's sd per km/s); how it divides
    between rotation and the lines is left to their physical limits. Lower end: lines at
    their ceiling (without ``intrinsic_range_kms``: 3 x the fitted width) and R one prior sd
    below; upper end: lines at their floor and R one sd above.

    Example:
        >>> cfg = TransferConfig(intrinsic_range_kms=(0.9, 1.9))
        >>> lo, hi = vsini_width_budget({"vsini": 3.0, "resolution": 55_000.0}, 1.9, cfg)
        >>> lo < 3.0 < hi
        True
    """
    k = rotation_sd_per_vsini(cfg.epsilon)
    r = params["resolution"]

    def inst(res: float) -> float:
        return C_KMS / res / _FWHM

    total = shared**2 + (k * params["vsini"]) ** 2 + inst(r) ** 2
    lo2 = total - _ceiling(cfg, shared) ** 2 - inst(r - cfg.resolution_sd) ** 2
    hi2 = total - _width_floor(cfg) ** 2 - inst(r + cfg.resolution_sd) ** 2
    return math.sqrt(max(lo2, 0.0)) / k, math.sqrt(max(hi2, 0.0)) / k


def _snapshot(ext: ExtrinsicModel, st: _State) -> dict[str, Any]:
    return {
        "ext": {k: v.detach().clone() for k, v in ext.state_dict().items()},
        "star": {k: v.detach().clone() for k, v in st.star.state_dict().items()},
        "ln_s": st.ln_s.detach().clone(),
    }


def _restore(ext: ExtrinsicModel, st: _State, snap: dict[str, Any]) -> None:
    ext.load_state_dict(snap["ext"])
    st.star.load_state_dict(snap["star"])
    st.star.set_windows()
    st.ln_s = snap["ln_s"].clone()


def _profile_vsini(
    ext: ExtrinsicModel, st: _State, loss_fn: Any, cfg: TransferConfig, progress: bool
) -> tuple[list[tuple[float, float]], dict[str, Any] | None]:
    """chi2 (prior included) at each grid v sin i with the other parameters re-optimised; the
    best fit itself is included. The grid is walked outward from the best fit on each side,
    each point starting from its neighbour's solution (a continuous path: the lines' widths
    change smoothly as rotation takes over their broadening). Returns the profile and the
    state at its lowest grid point (None when the fit itself is lowest); the fit's state is
    restored."""
    best = _snapshot(ext, st)
    v_best = float(ext.vsini.detach())
    out: list[tuple[float, float]] = []
    with torch.no_grad():
        loss, _ = loss_fn(st)
    out.append((v_best, 2.0 * float(loss)))
    lowest, low_snap = out[0][1], None
    below = sorted((v for v in cfg.vsini_grid if v < v_best), reverse=True)
    above = sorted(v for v in cfg.vsini_grid if v >= v_best)
    for side in (below, above):
        _restore(ext, st, best)
        for v in side:
            with torch.no_grad():
                ext.ln_vsini.fill_(math.log(v))
            _optimise(ext, st, loss_fn, cfg.profile_epochs, cfg.lr, cfg, progress,
                      f"vsini {v:g}", fix_vsini=True)  # fmt: skip
            with torch.no_grad():
                loss, _ = loss_fn(st)
            out.append((float(v), 2.0 * float(loss)))
            if out[-1][1] < lowest:
                lowest, low_snap = out[-1][1], _snapshot(ext, st)
    _restore(ext, st, best)
    ext.ln_vsini.requires_grad_(True)
    return sorted(out), low_snap


def _limits(
    ext: ExtrinsicModel,
    st: _State,
    cfg: TransferConfig,
    params: dict[str, float],
    interval: tuple[float, float],
    errors: dict[str, float],
) -> list[str]:
    """Messages for parameters at a limit (a clamp or the end of the scan grid) or whose
    uncertainty is undefined (the likelihood is not curved there)."""
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
    floor = _width_floor(cfg)
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


def line_table(lines: LineList) -> Any:
    """A line list as a table a spectroscopist reads: rest-frame vacuum wavelength (Å), the
    line's central depth and equivalent width (mÅ, each line alone, before rotation and
    instrument), its intrinsic FWHM in km/s, and where it came from (``template`` / ``data``,
    from ``lines.meta["origin"]`` when present).

    Example:
        >>> t = line_table(LineList([8700.0], [0.02], [0.04], [0.002]))
        >>> t.colnames[:3], round(float(t["ew_mA"][0]), 1)
        (['wavelength_A', 'depth', 'ew_mA'], 18.7)
    """
    from astropy.table import Table
    from scipy.special import voigt_profile

    n = len(lines)
    fwhm = lines.fwhm
    half = 10.0 * fwhm + 20.0 * lines.gamma
    x = np.linspace(-1.0, 1.0, 801)[None, :] * half[:, None]
    absorbed = 1.0 - np.exp(
        -lines.amplitude[:, None] * voigt_profile(x, lines.sigma[:, None], lines.gamma[:, None])
    )
    ew = np.trapezoid(absorbed, x, axis=1) if n else np.zeros(0)
    origin = lines.meta.get("origin")
    table = Table(
        {
            "wavelength_A": np.round(lines.center, 4),
            "depth": np.round(lines.depth, 4),
            "ew_mA": np.round(1e3 * ew, 2),
            "fwhm_kms": np.round(fwhm / lines.center * C_KMS, 2),
            "origin": np.asarray(origin if origin is not None and len(origin) == n else ["?"] * n),
        }
    )
    table["wavelength_A"].unit = "Angstrom"
    table["ew_mA"].unit = "mAngstrom"
    table["fwhm_kms"].unit = "km/s"
    table.meta["description"] = (
        "rest-frame vacuum wavelength; depth and equivalent width of each line alone, before "
        "rotation and instrumental broadening; intrinsic FWHM (Voigt)"
    )
    return table
