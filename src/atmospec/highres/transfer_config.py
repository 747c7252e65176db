"""Priors, schedule and physical line-width bounds of the semi-empirical transfer
(:func:`atmospec.highres.transfer.transfer`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from atmospec.highres.broadening import rotation_sd_per_vsini
from atmospec.highres.extrinsic import C_KMS

__all__ = [
    "TransferConfig",
    "shared_bounds",
    "vsini_interval",
    "vsini_width_budget",
    "width_ceiling",
    "width_floor",
]

FWHM = 2.0 * math.sqrt(2.0 * math.log(2.0))
"""FWHM of a Gaussian per unit sigma."""


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
        epsilon: linear limb-darkening coefficient of the rotation kernel. 0.6 suits a K dwarf
            near 0.9 um: the power-2 law of Claret & Southworth (2023; PHOENIX, Teff 4,700 K,
            log g 4.5, TESS band 0.6-1.0 um) gives the rotation kernel's width of a linear law
            with epsilon 0.59, and the kernel's width changes by 0.1 % between the two.
        macroturbulence_kms: radial-tangential macroturbulence zeta (km/s), convolved as its
            own cusp-cored profile (:func:`~atmospec.highres.extrinsic.macroturbulence_kernel`);
            0 (default): none, the lines' Gaussian widths then take it up (with
            ``intrinsic_range_kms`` including it, as :func:`intrinsic_width_range` does by
            default). With a value here, give the lines' range without macroturbulence
            (``intrinsic_width_range(teff, macroturbulence=(0.0, 0.0))``).
        vsini: initial projected rotation, km/s.
        vsini_grid: grid (km/s) of an optional profile-likelihood scan of v sin i (empty: no
            scan; the interval is then the Laplace one).
        profile_epochs: Adam steps re-optimising everything else at each grid point.
        poly_degree: continuum polynomial degree.

    Example:
        >>> cfg = TransferConfig(rounds=1, vsini_grid=(2.0, 3.0, 4.0))
        >>> cfg.epochs, cfg.resolution, cfg.fit_resolution
        (150, 55000.0, False)
        >>> cfg.rounds = 2   # frozen: derive a variant with dataclasses.replace
        Traceback (most recent call last):
        ...
        dataclasses.FrozenInstanceError: cannot assign to field 'rounds'
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
    macroturbulence_kms: float = 0.0
    vsini: float = 3.0
    vsini_grid: tuple[float, ...] = ()
    profile_epochs: int = 100
    poly_degree: int = 2


def width_floor(cfg: TransferConfig) -> float:
    """The smallest Gaussian sigma (km/s) of any line.

    Example:
        >>> width_floor(TransferConfig())
        0.7
        >>> width_floor(TransferConfig(min_width_kms=0.7, intrinsic_range_kms=(0.9, 1.9)))
        0.9
    """
    lo = cfg.intrinsic_range_kms[0] if cfg.intrinsic_range_kms else 0.0
    return max(cfg.min_width_kms, lo)


def shared_bounds(cfg: TransferConfig) -> tuple[float, float]:
    """ln bounds of the shared intrinsic sigma (km/s).

    Example:
        >>> lo, hi = shared_bounds(TransferConfig(intrinsic_range_kms=(0.9, 1.9)))
        >>> round(math.exp(lo), 6), round(math.exp(hi), 6)
        (0.9, 1.9)
        >>> shared_bounds(TransferConfig())[1]
        inf
    """
    hi = cfg.intrinsic_range_kms[1] if cfg.intrinsic_range_kms else math.inf
    return math.log(width_floor(cfg)), math.log(hi)


def width_ceiling(cfg: TransferConfig, shared: float) -> float:
    """The largest Gaussian sigma (km/s) of the lines' shared width: the physical ceiling, or
    3 x the fitted ``shared`` width without ``intrinsic_range_kms``.

    Example:
        >>> round(width_ceiling(TransferConfig(), 1.2), 6)
        3.6
        >>> width_ceiling(TransferConfig(intrinsic_range_kms=(0.9, 1.9)), 1.2)
        1.9
    """
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
        return C_KMS / res / FWHM

    total = shared**2 + (k * params["vsini"]) ** 2 + inst(r) ** 2
    lo2 = total - width_ceiling(cfg, shared) ** 2 - inst(r - cfg.resolution_sd) ** 2
    hi2 = total - width_floor(cfg) ** 2 - inst(r + cfg.resolution_sd) ** 2
    return math.sqrt(max(lo2, 0.0)) / k, math.sqrt(max(hi2, 0.0)) / k


def _vsini_at(total2: float, line_sigma: float, resolution: float, k: float) -> float:
    """v sin i that leaves the total squared broadening ``total2`` with the lines at
    ``line_sigma`` and the instrument at ``resolution`` (0 when nothing is left)."""
    inst = C_KMS / resolution / FWHM
    return math.sqrt(max(total2 - line_sigma**2 - inst**2, 0.0)) / k


def vsini_interval(
    params: dict[str, float],
    shared: float,
    statistical: tuple[float, float],
    cfg: TransferConfig,
) -> tuple[tuple[float, float], dict[str, list[float]]]:
    """The 68 % interval of v sin i from its three parts, and the parts.

    - **width range**: the fit fixes the total squared broadening (see
      :func:`vsini_width_budget`); the lines' physical width range (floor to ceiling) maps to a
      v sin i range at the instrument's R, on which the line shapes are silent (a flat prior
      between hard physical bounds).
    - **statistical**: the profile likelihood's (or the Laplace) interval about the fitted
      v sin i, its half-widths below and above.
    - **resolution**: with R fixed (``fit_resolution`` off), R's prior sd moves v sin i by a
      further shift at each end of the width range (the instrument taking more or less of the
      total). With R fitted, the profile already re-fits R at each v sin i, so this part is 0.

    The statistical and resolution parts are independent errors: their half-widths add in
    quadrature at each end of the width range. (Taking the larger of the two would understate
    the interval when both are comparable.)

    Example:
        >>> cfg = TransferConfig(intrinsic_range_kms=(0.9, 1.9))
        >>> p = {"vsini": 3.0, "resolution": 55_000.0}
        >>> (lo, hi), parts = vsini_interval(p, 1.9, (2.7, 3.3), cfg)
        >>> w_lo, w_hi = parts["width_range"]    # lines at their ceiling: v sin i as fitted
        >>> abs(w_lo - 3.0) < 1e-12 and lo < 3.0 - 0.3 and hi > w_hi
        True
    """
    k = rotation_sd_per_vsini(cfg.epsilon)
    v, r = params["vsini"], params["resolution"]
    total2 = shared**2 + (k * v) ** 2 + (C_KMS / r / FWHM) ** 2
    lines_hi, lines_lo = width_ceiling(cfg, shared), width_floor(cfg)
    w_lo = min(_vsini_at(total2, lines_hi, r, k), v)
    w_hi = max(_vsini_at(total2, lines_lo, r, k), v)
    if cfg.fit_resolution:
        res_lo = res_hi = 0.0
    else:
        res_lo = w_lo - _vsini_at(total2, lines_hi, r - cfg.resolution_sd, k)
        res_hi = _vsini_at(total2, lines_lo, r + cfg.resolution_sd, k) - w_hi
    stat_lo = max(v - statistical[0], 0.0) if math.isfinite(statistical[0]) else 0.0
    stat_hi = max(statistical[1] - v, 0.0) if math.isfinite(statistical[1]) else 0.0
    lo = max(w_lo - math.hypot(stat_lo, res_lo), 0.0)
    hi = w_hi + math.hypot(stat_hi, res_hi)
    parts = {
        "width_range": [w_lo, w_hi],
        "statistical_halfwidths": [stat_lo, stat_hi],
        "resolution_shifts": [res_lo, res_hi],
    }
    return (lo, hi), parts
