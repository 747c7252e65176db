"""Transit light curves with quadratic limb darkening (Mandel & Agol 2002, computed by batman)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["TransitGeometry", "TransitModel", "transit_light_curve"]


@dataclass(frozen=True)
class TransitGeometry:
    """The orbit of a transiting planet on a circular orbit.

    Args:
        t0_h: mid-transit time (hours, same clock as the observation).
        period_d: orbital period (days).
        a_rs: semi-major axis in stellar radii.
        inc_deg: inclination (degrees).

    Example:
        >>> geo = TransitGeometry.from_star({"P": 3.0, "sma": 10.0, "i": 90.0}, t0_h=2.0)
        >>> geo.t0_h, round(geo.duration_h(), 3)
        (2.0, 2.526)
        >>> TransitGeometry(0.0, 3.0, 10.0, 80.0).duration_h()   # impact parameter 1.7: no transit
        0.0
    """

    t0_h: float
    period_d: float
    a_rs: float
    inc_deg: float

    @classmethod
    def from_star(cls, star: dict[str, float], t0_h: float) -> TransitGeometry:
        """From a ``*_star_info.csv`` row (``P`` days, ``sma`` stellar radii, ``i`` degrees)."""
        return cls(t0_h=t0_h, period_d=star["P"], a_rs=star["sma"], inc_deg=star["i"])

    def duration_h(self, rp: float = 0.1) -> float:
        """Total transit duration T14 in hours (Seager & Mallén-Ornelas 2003, circular orbit).

        Example:
            >>> round(TransitGeometry(0.0, 3.0, 10.0, 90.0).duration_h(0.1), 3)
            2.526
        """
        inc = np.radians(self.inc_deg)
        b = self.a_rs * np.cos(inc)
        arg = np.sqrt(max((1 + rp) ** 2 - b**2, 0.0)) / (self.a_rs * np.sin(inc))
        return float(self.period_d * 24.0 / np.pi * np.arcsin(min(arg, 1.0)))


class TransitModel:
    """Relative flux of a star transited by a planet, for a fixed set of times.

    Wraps ``batman.TransitModel`` (quadratic limb darkening, analytic Mandel & Agol formulae);
    the time grid is fixed at construction, radius ratio and limb darkening vary per call.
    With ``offsets_h`` the flux is the mean over the exposures at ``time_h + offsets_h``, the
    exact model of a time bin that sums those exposures.

    Args:
        time_h: the times (hours).
        geometry: the orbit.
        offsets_h: exposure times relative to each bin time (hours), or None.

    Example:
        >>> import numpy as np
        >>> m = TransitModel(np.array([-5.0, 0.0]), TransitGeometry(0.0, 3.0, 10.0, 90.0))
        >>> f = m(0.1, 0.0, 0.0)   # no limb darkening: the dip is exactly rp**2
        >>> float(f[0]), round(float(1 - f[1]), 10)
        (1.0, 0.01)
    """

    def __init__(
        self,
        time_h: NDArray[np.floating[Any]],
        geometry: TransitGeometry,
        offsets_h: NDArray[np.float64] | list[float] | None = None,
    ) -> None:
        from atmospec._optional import require

        batman = require("batman", "transit")

        self.time_h = np.asarray(time_h, dtype=np.float64)
        self.geometry = geometry
        self.offsets_h = np.zeros(1) if offsets_h is None else np.asarray(offsets_h, np.float64)
        grid = (self.time_h[:, None] + self.offsets_h[None, :]).ravel()
        self._params = self._make_params(geometry, 0.1, 0.1, 0.1)
        self._model: Any = batman.TransitModel(self._params, grid / 24.0)

    @staticmethod
    def _make_params(geo: TransitGeometry, rp: float, u1: float, u2: float) -> Any:
        from atmospec._optional import require

        batman = require("batman", "transit")

        p = batman.TransitParams()
        p.t0 = geo.t0_h / 24.0
        p.per = geo.period_d
        p.rp = rp
        p.a = geo.a_rs
        p.inc = geo.inc_deg
        p.ecc = 0.0
        p.w = 90.0
        p.limb_dark = "quadratic"
        p.u = [u1, u2]
        return p

    def __call__(
        self, rp: float, u1: float, u2: float, t0_h: float | None = None
    ) -> NDArray[np.float64]:
        """Relative flux for radius ratio ``rp`` and quadratic limb darkening ``(u1, u2)``."""
        p = self._params
        p.rp = abs(float(rp))
        p.u = [float(u1), float(u2)]
        p.t0 = (self.geometry.t0_h if t0_h is None else float(t0_h)) / 24.0
        flux = np.asarray(self._model.light_curve(p), dtype=np.float64)
        if self.offsets_h.size > 1:
            flux = flux.reshape(self.time_h.size, self.offsets_h.size).mean(axis=1)
        return flux if rp >= 0 else 2.0 - flux


def transit_light_curve(
    time_h: NDArray[np.float64], rp: float, u1: float, u2: float, geometry: TransitGeometry
) -> NDArray[np.float64]:
    """One-shot :class:`TransitModel` evaluation.

    Example:
        >>> import numpy as np
        >>> geo = TransitGeometry(0.0, 3.0, 10.0, 90.0)
        >>> f = transit_light_curve(np.array([0.0]), 0.1, 0.3, 0.2, geo)
        >>> bool(1 - f[0] > 0.01)   # limb darkening deepens the centre of the transit
        True
    """
    return TransitModel(time_h, geometry)(rp, u1, u2)
