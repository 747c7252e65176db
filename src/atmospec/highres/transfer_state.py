"""The transfer's line set: the star's emulator, which lines came from the template and
their template values, how lines are added and pruned, and the regularisation prior that
keeps the clone physical."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from atmospec.highres.emulator import LineEmulator
from atmospec.highres.extrinsic import C_KMS, ExtrinsicModel
from atmospec.highres.linefinder import LineList
from atmospec.highres.transfer_config import FWHM, TransferConfig, width_floor

__all__ = [
    "TransferState",
    "merge_lines",
    "new_state",
    "prior",
    "restore",
    "select_lines",
    "snapshot",
    "to_rest_intrinsic",
]


@dataclass
class TransferState:
    """The star's line emulator during a transfer, which of its lines came from the template
    (``template``, in the emulator's parameter order) with their template centres, ln
    amplitudes and ln widths (the priors' anchors), and the ln shared intrinsic width.

    Example:
        >>> em = LineEmulator(LineList([8702.0, 8704.0], [0.03, 0.02], [0.04, 0.04],
        ...                            [0.005, 0.005]), device="cpu")
        >>> def t(x):
        ...     return torch.tensor([x], dtype=torch.float64)
        >>> st = TransferState(em, torch.tensor([True, False]), t(8702.0), t(0.03).log(),
        ...                    t(0.04).log())          # the first line is the template's
        >>> st.star.n_lines, int(st.template.sum()), float(torch.exp(st.ln_s))   # 1 km/s
        (2, 1, 1.0)
    """

    star: LineEmulator
    template: torch.Tensor  # True for lines that came from the template
    center_t: torch.Tensor  # template centres / ln amplitudes / ln widths (template lines)
    ln_amp_t: torch.Tensor
    ln_sigma_t: torch.Tensor
    ln_s: torch.Tensor = field(default_factory=lambda: torch.zeros(()))


def _emulator_from(lines: LineList, settings: dict[str, Any], dev: torch.device) -> LineEmulator:
    return LineEmulator(lines, **settings, device=dev)


def new_state(
    lines: LineList,
    is_template: np.ndarray,
    tmpl: LineList,
    settings: dict[str, Any],
    dev: torch.device,
    intrinsic_kms: float,
) -> TransferState:
    """A state at ``lines`` (``is_template`` marks the template's), anchored to the template
    lines ``tmpl``, with the shared intrinsic width at ``intrinsic_kms``.

    Example:
        >>> ll = LineList([8702.0, 8704.0], [0.03, 0.02], [0.04, 0.04], [0.005, 0.005])
        >>> is_t = np.array([True, False])
        >>> settings = LineEmulator(ll, device="cpu").settings()
        >>> st = new_state(ll, is_t, ll.select(is_t), settings, torch.device("cpu"), 1.2)
        >>> st.template.tolist(), st.center_t.tolist(), round(float(torch.exp(st.ln_s)), 6)
        ([True, False], [8702.0], 1.2)
    """
    kw: dict[str, Any] = {"dtype": torch.float64, "device": dev}
    star = _emulator_from(lines, settings, dev)
    return TransferState(
        star,
        torch.as_tensor(is_template, device=dev),
        torch.as_tensor(tmpl.center, **kw),
        torch.as_tensor(np.log(tmpl.amplitude), **kw),
        torch.as_tensor(np.log(tmpl.sigma), **kw),
        torch.tensor(math.log(intrinsic_kms), **kw),
    )


def _lines_of(state: TransferState) -> LineList:
    return state.star.lines()


def merge_lines(
    state: TransferState, extra: LineList, settings: dict[str, Any], dev: torch.device
) -> TransferState:
    """The state with ``extra`` (lines found in the data) added, the template lines keeping
    their anchors.

    Example:
        >>> ll = LineList([8702.0, 8704.0], [0.03, 0.02], [0.04, 0.04], [0.005, 0.005])
        >>> settings, cpu = LineEmulator(ll, device="cpu").settings(), torch.device("cpu")
        >>> st = new_state(ll, np.ones(2, bool), ll, settings, cpu, 1.2)
        >>> st = merge_lines(st, LineList([8701.0], [0.01], [0.04], [0.005]), settings, cpu)
        >>> st.star.lines().center.tolist(), st.template.tolist(), st.center_t.tolist()
        ([8701.0, 8702.0, 8704.0], [False, True, True], [8702.0, 8704.0])
    """
    cur = _lines_of(state)
    # star.lines() is sorted by centre; keep the template flags in the same order
    order = np.argsort(state.star.center.detach().cpu().numpy(), kind="stable")
    flags = state.template.cpu().numpy()[order]
    idx = np.flatnonzero(flags)
    tmpl_pos = np.cumsum(state.template.cpu().numpy()) - 1  # index into template arrays
    t_idx = tmpl_pos[order][idx]
    merged = cur.extended(extra)
    is_t = np.concatenate([flags, np.zeros(len(extra), bool)])
    # LineList sorts by centre: apply the same stable sort to the flags
    o2 = np.argsort(np.concatenate([cur.center, extra.center]), kind="stable")
    is_t = is_t[o2]
    src = np.concatenate([np.where(flags, 0, -1), np.full(len(extra), -1)])
    src[: len(flags)][idx] = t_idx
    src = src[o2]
    return _rebuild(state, merged, is_t, src, settings, dev)


def select_lines(
    state: TransferState, keep: np.ndarray, settings: dict[str, Any], dev: torch.device
) -> TransferState:
    """The state with only the lines where ``keep`` (in centre order) is True (pruning).

    Example:
        >>> ll = LineList([8702.0, 8703.0, 8704.0], [0.03, 0.01, 0.02], [0.04] * 3, [0.005] * 3)
        >>> settings, cpu = LineEmulator(ll, device="cpu").settings(), torch.device("cpu")
        >>> is_t = np.array([True, False, True])           # 8703 Å was found in the data
        >>> st = new_state(ll, is_t, ll.select(is_t), settings, cpu, 1.2)
        >>> st = select_lines(st, np.array([False, True, True]), settings, cpu)
        >>> st.star.lines().center.tolist(), st.template.tolist(), st.center_t.tolist()
        ([8703.0, 8704.0], [False, True], [8704.0])
    """
    cur = _lines_of(state)
    order = np.argsort(state.star.center.detach().cpu().numpy(), kind="stable")
    flags = state.template.cpu().numpy()[order]
    tmpl_pos = (np.cumsum(state.template.cpu().numpy()) - 1)[order]
    src = np.where(flags, tmpl_pos, -1)
    return _rebuild(state, cur.select(keep), flags[keep], src[keep], settings, dev)


def _rebuild(
    state: TransferState,
    lines: LineList,
    is_t: np.ndarray,
    src: np.ndarray,
    settings: dict[str, Any],
    dev: torch.device,
) -> TransferState:
    """A new emulator at ``lines`` (current values) keeping the template references of the
    template lines (``src``: index into the previous template arrays, -1 for data lines)."""
    t = src[is_t]
    ti = torch.as_tensor(t, device=dev, dtype=torch.int64)
    star = _emulator_from(lines, settings, dev)
    return TransferState(
        star,
        torch.as_tensor(is_t, device=dev),
        state.center_t[ti],
        state.ln_amp_t[ti],
        state.ln_sigma_t[ti],
        state.ln_s.detach().clone(),
    )


def to_rest_intrinsic(
    extra: LineList, rv: float, ext: ExtrinsicModel, cfg: TransferConfig, state: TransferState
) -> LineList:
    """Lines found in the observed residual, moved to the rest frame with their width reduced
    by the instrumental and rotational broadening (quadrature), at the shared intrinsic width
    when nothing is left; the integrated optical depth (amplitude) is kept.

    Example:
        >>> ll = LineList([8703.0], [0.02], [0.04], [0.005])
        >>> st = new_state(ll, np.ones(1, bool), ll, LineEmulator(ll, device="cpu").settings(),
        ...                torch.device("cpu"), 1.2)
        >>> ext = ExtrinsicModel(np.linspace(8700.0, 8706.0, 300), vsini=3.0, device="cpu")
        >>> c = 8703.0 * (1 + 3.0 / C_KMS)                 # observed at RV 3 km/s, 3.5 km/s wide
        >>> found = LineList([c], [0.01], [c * 3.5 / C_KMS], [0.001])
        >>> rest = to_rest_intrinsic(found, 3.0, ext, TransferConfig(), st)
        >>> round(float(rest.center[0]), 6), round(float(rest.sigma[0] / rest.center[0] * C_KMS), 2)
        (8703.0, 1.91)
    """
    if len(extra) == 0:
        return extra
    center = extra.center / (1.0 + rv / C_KMS)
    v_inst = C_KMS / float(ext.resolution.detach()) / FWHM
    v_rot = 0.6 * float(ext.vsini.detach())
    v_obs = extra.sigma / center * C_KMS
    v_int = float(torch.exp(state.ln_s))
    v = np.sqrt(np.maximum(v_obs**2 - v_inst**2 - v_rot**2, v_int**2))
    v = np.clip(v, width_floor(cfg), 3 * v_int)
    sigma = center * v / C_KMS
    return LineList(center, extra.amplitude, sigma, 0.05 * sigma, dict(extra.meta))


def prior(ext: ExtrinsicModel, st: TransferState, cfg: TransferConfig) -> torch.Tensor:
    """The negative log prior that keeps the clone physical: template lines near their
    template positions, strengths and widths, data lines' widths near the shared intrinsic
    width and their shifts near their common shift, R near the instrument's (when fitted).

    Example:
        >>> ll = LineList([8702.0, 8704.0], [0.03, 0.02], [0.04, 0.04], [0.005, 0.005])
        >>> st = new_state(ll, np.ones(2, bool), ll, LineEmulator(ll, device="cpu").settings(),
        ...                torch.device("cpu"), 1.2)
        >>> ext = ExtrinsicModel(np.linspace(8700.0, 8706.0, 300), device="cpu")
        >>> cfg = TransferConfig()                         # amp_sd 2: ln A one sd away
        >>> float(prior(ext, st, cfg).detach())            # every line at its template values
        0.0
        >>> with torch.no_grad():
        ...     _ = st.star.ln_amp[0].add_(2.0)
        >>> float(prior(ext, st, cfg).detach())
        0.5
    """
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


def snapshot(ext: ExtrinsicModel, st: TransferState) -> dict[str, Any]:
    """A copy of every fitted value (extrinsic model, lines, shared width).

    Example:
        >>> ll = LineList([8702.0], [0.03], [0.04], [0.005])
        >>> st = new_state(ll, np.ones(1, bool), ll, LineEmulator(ll, device="cpu").settings(),
        ...                torch.device("cpu"), 1.2)
        >>> ext = ExtrinsicModel(np.linspace(8700.0, 8706.0, 300), rv=3.0, device="cpu")
        >>> snap = snapshot(ext, st)
        >>> with torch.no_grad():
        ...     _ = ext.rv.fill_(9.0)
        >>> sorted(snap), float(snap["ext"]["rv"])             # a copy: still 3 km/s
        (['ext', 'ln_s', 'star'], 3.0)
    """
    return {
        "ext": {k: v.detach().clone() for k, v in ext.state_dict().items()},
        "star": {k: v.detach().clone() for k, v in st.star.state_dict().items()},
        "ln_s": st.ln_s.detach().clone(),
    }


def restore(ext: ExtrinsicModel, st: TransferState, snap: dict[str, Any]) -> None:
    """Put back the values of a :func:`snapshot`.

    Example:
        >>> ll = LineList([8702.0], [0.03], [0.04], [0.005])
        >>> st = new_state(ll, np.ones(1, bool), ll, LineEmulator(ll, device="cpu").settings(),
        ...                torch.device("cpu"), 1.2)
        >>> ext = ExtrinsicModel(np.linspace(8700.0, 8706.0, 300), rv=3.0, device="cpu")
        >>> snap = snapshot(ext, st)
        >>> with torch.no_grad():
        ...     _ = ext.rv.fill_(9.0)
        ...     _ = st.star.ln_amp.fill_(0.0)
        >>> restore(ext, st, snap)
        >>> float(ext.rv.detach()), round(float(st.star.amplitude[0].detach()), 6)
        (3.0, 0.03)
    """
    ext.load_state_dict(snap["ext"])
    st.star.load_state_dict(snap["star"])
    st.star.set_windows()
    st.ln_s = snap["ln_s"].clone()
