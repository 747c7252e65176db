"""The scatter of an answer between independent spectra of one object (the statistical part).

Two spectra of the same object, taken on different nights and reduced apart, differ by photon
noise and by everything that changes between observations (slit losses, telluric correction,
flux calibration). Whatever the atmosphere models get wrong is the same for both. The
difference between two answers therefore measures the *statistical* part of the uncertainty,
which the rest of the interval (model error, the spread between grids, the shared systematic
error of :mod:`atmospec.multigrid.calibration`) does not contain.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["RepeatScatter"]

FloatArray = NDArray[np.float64]


@dataclass
class RepeatScatter:
    """The scatter of one parameter between independent spectra of the same object:
    ``sd(S/N)^2 = floor^2 + (per_snr / S/N)^2``, fitted by maximum likelihood on the
    differences between two spectra of each of a set of objects (``d ~ N(0, sd1^2 + sd2^2)``).

    It is the *statistical* part of the uncertainty (what repeating the observation would
    change); the rest of the interval (model error, the spread between grids, the shared
    systematic error) is common to every spectrum of an object.

    Example:
        >>> r = RepeatScatter("teff", floor=20.0, per_snr=3000.0, objects=[])
        >>> round(r.predict(100.0), 1)
        36.1
    """

    param: str
    floor: float
    per_snr: float
    objects: list[str]

    def predict(self, snr: float) -> float:
        s = max(float(snr), 1.0) if np.isfinite(snr) else 1.0
        return float(np.hypot(self.floor, self.per_snr / s))

    @classmethod
    def fit(
        cls,
        param: str,
        diff: Sequence[float] | FloatArray,
        snr1: Sequence[float] | FloatArray,
        snr2: Sequence[float] | FloatArray,
        objects: Sequence[str],
    ) -> RepeatScatter:
        """Maximum-likelihood ``floor`` and ``per_snr`` from paired differences."""
        from scipy.optimize import minimize

        d, s1, s2 = (np.asarray(v, dtype=np.float64) for v in (diff, snr1, snr2))
        if d.size < 4:
            raise ValueError(f"{param}: need >= 4 objects with two spectra")
        scale = float(np.std(d)) or 1.0

        def nll(theta: FloatArray) -> float:
            f2, k2 = np.exp(2 * theta[0]) * scale**2, np.exp(2 * theta[1]) * scale**2
            var = 2 * f2 + k2 * (1 / s1**2 + 1 / s2**2)
            return float(0.5 * np.sum(d**2 / var + np.log(var)))

        best = min(
            (
                minimize(nll, np.array(x0), method="Nelder-Mead")
                for x0 in ((-1, 3), (0, 0), (-3, 4))
            ),
            key=lambda r: r.fun,
        )
        floor, per_snr = np.exp(best.x) * scale
        return cls(param, float(floor), float(per_snr), [str(o) for o in objects])

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
