"""Line broadening budget: physical line widths, the rotation kernel's width, and intervals
read off a profile likelihood."""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "correlation_length",
    "intrinsic_width_kms",
    "intrinsic_width_range",
    "parabola_minimum",
    "profile_interval",
    "rotation_sd_per_vsini",
]


def intrinsic_width_kms(
    teff: float, microturbulence: float = 1.0, macroturbulence: float = 1.5, mass_amu: float = 56.0
) -> float:
    """Gaussian sigma (km/s) of a metal line's intrinsic profile: thermal motion of an atom of
    ``mass_amu`` (iron) at ``teff``, microturbulence and macroturbulence (each a velocity
    dispersion ``xi`` with profile ``exp(-v^2 / xi^2)``, i.e. sigma = xi / sqrt(2)), added in
    quadrature. A prior for :class:`TransferConfig` ``intrinsic_kms``.

    Example:
        >>> round(intrinsic_width_kms(4700.0), 2)   # a K5 dwarf
        1.52
    """
    k_b, amu = 1.380649e-23, 1.66053907e-27
    thermal = math.sqrt(k_b * teff / (mass_amu * amu)) / 1e3
    return math.sqrt(thermal**2 + (microturbulence**2 + macroturbulence**2) / 2.0)


def intrinsic_width_range(
    teff: float,
    microturbulence: tuple[float, float] = (0.5, 1.0),
    macroturbulence: tuple[float, float] = (0.0, 3.0),
    mass_amu: float = 56.0,
) -> tuple[float, float]:
    """(floor, ceiling) of a metal line's intrinsic Gaussian sigma (km/s) in a star of
    ``teff``: thermal motion of an atom of ``mass_amu`` (iron), microturbulence ``xi`` (sigma
    xi / sqrt 2) and radial-tangential macroturbulence ``zeta`` (its disk-integrated profile
    has sigma zeta / 2), each over its range, added in quadrature. The defaults suit FGK
    dwarfs (xi 0.5-1 km/s; zeta up to 3 km/s, Gray 2005). The range of
    :class:`TransferConfig` ``intrinsic_range_kms``: the line widths take up at most this
    much broadening, rotation the rest.

    Example:
        >>> [round(v, 2) for v in intrinsic_width_range(4700.0)]   # a K5 dwarf
        [0.91, 1.86]
    """
    k_b, amu = 1.380649e-23, 1.66053907e-27
    thermal2 = (math.sqrt(k_b * teff / (mass_amu * amu)) / 1e3) ** 2
    lo = math.sqrt(thermal2 + microturbulence[0] ** 2 / 2.0 + macroturbulence[0] ** 2 / 4.0)
    hi = math.sqrt(thermal2 + microturbulence[1] ** 2 / 2.0 + macroturbulence[1] ** 2 / 4.0)
    return lo, hi


def rotation_sd_per_vsini(epsilon: float) -> float:
    """Standard deviation of the rotation profile (limb darkening ``epsilon``) per km/s of
    v sin i: sqrt((1/4 - 7 epsilon/60) / (1 - epsilon/3)), the second moment of Gray's (2005)
    profile, which :func:`~atmospec.highres.extrinsic.rotation_kernel` keeps on any grid.
    0.474 at epsilon 0.6, 0.5 for a uniform disk.

    Example:
        >>> round(rotation_sd_per_vsini(0.6), 3), round(rotation_sd_per_vsini(0.0), 3)
        (0.474, 0.5)
    """
    return math.sqrt((0.25 - 7.0 * epsilon / 60.0) / (1.0 - epsilon / 3.0))


def parabola_minimum(scan: list[tuple[float, float]]) -> float:
    """The minimum of the parabola through the lowest profile point and its two neighbours
    (the lowest point itself at the grid's end or when the three are not convex).

    Example:
        >>> round(parabola_minimum([(1.0, 5.0), (2.0, 1.0), (3.0, 3.0)]), 4)
        2.1667
    """
    v = np.array([p[0] for p in scan])
    c = np.array([p[1] for p in scan])
    i = int(np.argmin(c))
    if i == 0 or i == v.size - 1:
        return float(v[i])
    x, y = v[i - 1 : i + 2], c[i - 1 : i + 2]
    a, b, _ = np.polyfit(x, y, 2)
    if a <= 0:
        return float(v[i])
    return float(np.clip(-b / (2 * a), x[0], x[2]))


def correlation_length(z: np.ndarray, max_lag: int = 50) -> float:
    """Integrated autocorrelation length (pixels) of normalised residuals: 1 + 2 sum rho_k up
    to the first lag where rho falls below zero. Residuals correlated over ``n`` pixels carry
    about 1/n of the independent information their chi-square suggests; model error (line
    shapes) makes them so.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> round(correlation_length(rng.normal(size=20000)))
        1
        >>> x = np.convolve(rng.normal(size=20000), np.ones(4), "same")   # 4-pixel boxcar
        >>> round(correlation_length(x))
        4
    """
    z = np.asarray(z, dtype=np.float64)
    z = z - z.mean()
    var = float(np.mean(z**2))
    if z.size < 4 or var == 0:
        return 1.0
    total = 1.0
    for k in range(1, min(max_lag, z.size // 4)):
        rho = float(np.mean(z[:-k] * z[k:])) / var
        if rho <= 0:
            break
        total += 2.0 * rho
    return max(total, 1.0)


def profile_interval(
    scan: list[tuple[float, float]], scale: float, best: float
) -> tuple[float, float]:
    """Where the scaled Delta chi-square of the profile crosses 1 about its minimum; the grid's
    end when it never does on that side. (``best``, the fit's own value, need not be inside:
    re-fitting at fixed v sin i may go lower.)

    The minimum, its position and its value, is the parabola through the lowest grid point and
    its two neighbours (:func:`parabola_minimum`; the lowest point itself at the grid's end).
    Between grid points the crossing is interpolated linearly in sqrt(Delta chi-square), which
    is linear in the distance from the minimum for a quadratic profile: the crossing is then
    exact at any grid step. Interpolating Delta chi-square itself, or measuring it from the
    lowest grid point, moves the crossing by a fraction of the step (the chord of a convex
    curve lies above it).

    Example:
        >>> grid = [1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0]
        >>> scan = [(v, 100.0 + 4.0 * (v - 2.3) ** 2) for v in grid]   # sigma 0.5 at scale 1
        >>> [round(x, 3) for x in profile_interval(scan, 1.0, 2.3)]
        [1.8, 2.8]
    """
    order = np.argsort([s[0] for s in scan])
    v = np.array([scan[i][0] for i in order], dtype=np.float64)
    c = np.array([scan[i][1] for i in order], dtype=np.float64)
    i0 = int(np.argmin(c))
    v0, c0 = float(v[i0]), float(c[i0])
    if 0 < i0 < v.size - 1:
        a, b, k = np.polyfit(v[i0 - 1 : i0 + 2], c[i0 - 1 : i0 + 2], 2)
        if a > 0:
            v0 = float(np.clip(-b / (2 * a), v[i0 - 1], v[i0 + 1]))
            c0 = min(c0, float(a * v0**2 + b * v0 + k))
    r = np.sqrt(np.maximum(c - c0, 0.0) / max(scale, 1.0))

    def crossing(side: np.ndarray, end: float) -> float:
        prev_v, prev_r = v0, 0.0
        for i in side:
            if r[i] >= 1.0:
                return float(np.interp(1.0, [prev_r, r[i]], [prev_v, v[i]]))
            prev_v, prev_r = float(v[i]), float(r[i])
        return end

    below = np.flatnonzero(v < v0)[::-1]
    above = np.flatnonzero(v > v0)
    return crossing(below, float(v[0])), crossing(above, float(v[-1]))
