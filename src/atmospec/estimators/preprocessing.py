"""Preprocessor: per-spectrum normalisation, side features and target scaling, saved as JSON."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["Preprocessor", "fill_masked"]

_NORMS = ("mean", "max", "zscore", "none")
_TARGETS = ("standard", "bounded")
_SIGMA_FLOOR = 1e-4  # relative uncertainty floor of the log-sigma channel
_SIGMA_MASKED = 10.0  # relative uncertainty given to masked / filled pixels (no information)


def fill_masked(flux: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Replace NaN/inf pixels of each row by linear interpolation; return ``(filled, was_bad)``.

    Example:
        >>> f, bad = fill_masked(np.array([[1.0, np.nan, 3.0]]))
        >>> f.tolist(), bad.tolist()
        ([[1.0, 2.0, 3.0]], [[False, True, False]])
    """
    flux = np.array(flux, dtype=np.float64, ndmin=2)
    bad = ~np.isfinite(flux)
    if bad.any():
        idx = np.arange(flux.shape[1])
        for i in np.flatnonzero(bad.any(axis=1)):
            good = ~bad[i]
            if good.sum() < 2:
                raise ValueError(f"spectrum {i}: fewer than 2 valid pixels, cannot be used")
            flux[i, bad[i]] = np.interp(idx[bad[i]], idx[good], flux[i, good])
    return flux, bad


@dataclass
class Preprocessor:
    """Turn fluxes into network inputs and parameters into network targets (and back).

    Inputs: each spectrum is divided by its own mean (``normalize="mean"``; also ``"max"``,
    ``"zscore"`` as in TelescopeML, or ``"none"``), optionally log-transformed, and optionally
    joined by a second channel ``log10(sigma / scale)`` (the per-pixel relative uncertainty;
    masked pixels get a large value so the network knows they carry no information). With
    ``side_features`` the raw minimum and maximum flux of each spectrum are returned as two
    column-standardised scalars (TelescopeML's extra inputs). Masked (NaN) pixels are filled
    by interpolation, never passed on as NaN.

    Targets: ``"standard"`` (column z-score) or ``"bounded"`` (mapped to [0, 1] inside the grid
    ranges, for sigmoid outputs that cannot leave the grid).

    Everything learned is stored in :meth:`to_dict` (plain JSON), never pickled.

    Example:
        >>> pp = Preprocessor(normalize="mean", target="bounded")
        >>> X = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0]]); y = np.array([[1000.0], [2000.0]])
        >>> pp = pp.fit(X, y, param_names=("teff",), bounds={"teff": (900.0, 2400.0)})
        >>> x = pp.transform(X)["x"]  # (n, channels, n_wave); channel 0: flux / mean
        >>> x[:, 0].round(3).tolist()
        [[0.5, 1.0, 1.5], [0.5, 1.0, 1.5]]
        >>> pp.inverse_targets(pp.transform_targets(y)).round(2).tolist()
        [[1000.0], [2000.0]]
        >>> Preprocessor.from_dict(pp.to_dict()) == pp
        True
    """

    normalize: str = "mean"
    log_flux: bool = False
    sigma_channel: bool = False
    side_features: bool = False
    target: str = "standard"
    param_names: tuple[str, ...] = ()
    bounds: dict[str, tuple[float, float]] = field(default_factory=dict)
    target_mean: list[float] = field(default_factory=list)
    target_std: list[float] = field(default_factory=list)
    side_mean: list[float] = field(default_factory=list)
    side_std: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.normalize not in _NORMS:
            raise ValueError(f"normalize must be one of {_NORMS}, not {self.normalize!r}")
        if self.target not in _TARGETS:
            raise ValueError(f"target must be one of {_TARGETS}, not {self.target!r}")
        self.param_names = tuple(self.param_names)
        self.bounds = {k: (float(v[0]), float(v[1])) for k, v in self.bounds.items()}

    @property
    def n_channels(self) -> int:
        return 2 if self.sigma_channel else 1

    # -- fitting -----------------------------------------------------------------------
    def fit(
        self,
        X: ArrayLike,
        y: ArrayLike,
        *,
        param_names: Sequence[str],
        bounds: Mapping[str, tuple[float, float]] | None = None,
    ) -> Preprocessor:
        """Learn target scaling (and side-feature scaling) from training data; returns self."""
        y = np.asarray(y, dtype=np.float64)
        self.param_names = tuple(param_names)
        if y.ndim != 2 or y.shape[1] != len(self.param_names):
            raise ValueError(f"y must have shape (n, {len(self.param_names)}), found {y.shape}")
        if bounds is None:
            bounds = {
                p: (float(y[:, i].min()), float(y[:, i].max())) for i, p in enumerate(param_names)
            }
        missing = [p for p in self.param_names if p not in bounds]
        if missing:
            raise ValueError(f"bounds missing for parameter(s) {missing}")
        self.bounds = {p: (float(bounds[p][0]), float(bounds[p][1])) for p in self.param_names}
        self.target_mean = y.mean(axis=0).tolist()
        self.target_std = np.where(y.std(axis=0) > 0, y.std(axis=0), 1.0).tolist()
        if self.side_features:
            raw = self._raw_side(np.asarray(X, dtype=np.float64))
            sd = raw.std(axis=0)
            self.side_mean = raw.mean(axis=0).tolist()
            self.side_std = np.where(sd > 0, sd, 1.0).tolist()
        return self

    # -- inputs ------------------------------------------------------------------------
    @staticmethod
    def _raw_side(X: NDArray[np.float64]) -> NDArray[np.float64]:
        X = np.array(X, ndmin=2)
        return np.stack([np.nanmin(X, axis=1), np.nanmax(X, axis=1)], axis=1)

    def transform(
        self, X: ArrayLike, sigma: ArrayLike | None = None
    ) -> dict[str, NDArray[np.float32]]:
        """Return ``{"x": (n, channels, n_wave)}`` plus ``"side": (n, 2)`` when enabled."""
        flux, bad = fill_masked(np.asarray(X, dtype=np.float64))
        if sigma is not None:
            sig = np.array(sigma, dtype=np.float64, ndmin=2)
            if sig.shape != flux.shape:
                raise ValueError(f"sigma has shape {sig.shape}, flux {flux.shape}")
            sig = np.where(np.isfinite(sig) & (sig > 0), sig, np.inf)
        elif self.sigma_channel:
            raise ValueError(
                "this model reads per-pixel uncertainties: pass sigma (Spectrum.uncertainty)"
            )
        else:
            sig = None
        if self.normalize == "mean":
            scale = np.abs(flux.mean(axis=1, keepdims=True))
            x = flux / scale
        elif self.normalize == "max":
            scale = np.abs(flux).max(axis=1, keepdims=True)
            x = flux / scale
        elif self.normalize == "zscore":
            mu = flux.mean(axis=1, keepdims=True)
            scale = flux.std(axis=1, keepdims=True)
            x = (flux - mu) / scale
        else:
            scale = np.ones((flux.shape[0], 1))
            x = flux.copy()
        if self.log_flux:
            x = np.log10(np.clip(x, 1e-6, None))
        chans = [x]
        if self.sigma_channel:
            assert sig is not None
            rel = sig / scale
            rel[bad] = _SIGMA_MASKED
            chans.append(np.log10(np.clip(rel, _SIGMA_FLOOR, _SIGMA_MASKED)))
        out = {"x": np.stack(chans, axis=1).astype(np.float32)}
        if self.side_features:
            raw = self._raw_side(flux)
            out["side"] = ((raw - np.array(self.side_mean)) / np.array(self.side_std)).astype(
                np.float32
            )
        return out

    # -- targets -----------------------------------------------------------------------
    def _lo_hi(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        lo = np.array([self.bounds[p][0] for p in self.param_names])
        hi = np.array([self.bounds[p][1] for p in self.param_names])
        return lo, hi

    def transform_targets(self, y: ArrayLike) -> NDArray[np.float32]:
        """Physical parameters -> network targets (z-scores, or [0, 1] within bounds)."""
        y = np.asarray(y, dtype=np.float64)
        if self.target == "bounded":
            lo, hi = self._lo_hi()
            return np.clip((y - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)
        return ((y - np.array(self.target_mean)) / np.array(self.target_std)).astype(np.float32)

    def inverse_targets(self, z: ArrayLike) -> NDArray[np.float64]:
        """Network targets -> physical parameters."""
        z = np.asarray(z, dtype=np.float64)
        if self.target == "bounded":
            lo, hi = self._lo_hi()
            return lo + z * (hi - lo)
        return z * np.array(self.target_std) + np.array(self.target_mean)

    def inverse_scale(self, s: ArrayLike) -> NDArray[np.float64]:
        """Scale a standard deviation from target units to physical units."""
        s = np.asarray(s, dtype=np.float64)
        if self.target == "bounded":
            lo, hi = self._lo_hi()
            return s * (hi - lo)
        return s * np.array(self.target_std)

    # -- persistence -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "normalize": self.normalize,
            "log_flux": self.log_flux,
            "sigma_channel": self.sigma_channel,
            "side_features": self.side_features,
            "target": self.target,
            "param_names": list(self.param_names),
            "bounds": {k: list(v) for k, v in self.bounds.items()},
            "target_mean": list(self.target_mean),
            "target_std": list(self.target_std),
            "side_mean": list(self.side_mean),
            "side_std": list(self.side_std),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Preprocessor:
        kw = dict(d)
        kw["param_names"] = tuple(kw.get("param_names", ()))
        kw["bounds"] = {k: tuple(v) for k, v in kw.get("bounds", {}).items()}
        return cls(**kw)
