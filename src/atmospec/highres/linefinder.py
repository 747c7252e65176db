"""Finding absorption lines in a high-resolution spectrum and the per-line table (LineList)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from atmospec.errors import FileFormatError, InvalidSpectrumError

__all__ = ["LineList", "find_lines", "continuum_envelope"]

_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


@dataclass
class LineList:
    """A table of absorption lines: the per-line parameters of a line-by-line model.

    Each line adds an optical depth ``amplitude * V(λ - center; sigma, gamma)`` where V is an
    area-normalised Voigt profile, so ``amplitude`` is the line's integrated optical depth in
    wavelength units (its equivalent width when the line is weak). Wavelengths are in the unit
    of the spectrum the lines came from (Å for HPF and muler templates).

    Example:
        >>> ll = LineList(center=[8000.0], amplitude=[0.02], sigma=[0.05], gamma=[0.01])
        >>> len(ll), round(float(ll.fwhm[0]), 4)
        (1, 0.1288)
    """

    center: NDArray[np.float64]
    amplitude: NDArray[np.float64]
    sigma: NDArray[np.float64]
    gamma: NDArray[np.float64]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("center", "amplitude", "sigma", "gamma"):
            setattr(self, name, np.atleast_1d(np.asarray(getattr(self, name), dtype=np.float64)))
        n = self.center.size
        if any(getattr(self, k).size != n for k in ("amplitude", "sigma", "gamma")):
            raise InvalidSpectrumError("LineList: center, amplitude, sigma, gamma differ in length")
        order = np.argsort(self.center, kind="stable")
        for name in ("center", "amplitude", "sigma", "gamma"):
            setattr(self, name, getattr(self, name)[order])

    def __len__(self) -> int:
        return int(self.center.size)

    @property
    def fwhm(self) -> NDArray[np.float64]:
        """Voigt FWHM (Olivero & Longbothum 1977)."""
        fg = _FWHM_PER_SIGMA * self.sigma
        fl = 2.0 * self.gamma
        return np.asarray(0.5346 * fl + np.sqrt(0.2166 * fl**2 + fg**2))

    @property
    def depth(self) -> NDArray[np.float64]:
        """Central depth 1 - exp(-amplitude * V(0)) of each line taken alone."""
        from scipy.special import voigt_profile

        peak = voigt_profile(0.0, self.sigma, self.gamma)
        return np.asarray(1.0 - np.exp(-self.amplitude * peak))

    def extended(self, other: LineList) -> LineList:
        """These lines and ``other``'s in one list (sorted by centre; this list's meta).

        Example:
            >>> a = LineList([8001.0], [0.02], [0.05], [0.01], {"source": "template"})
            >>> b = a.extended(LineList([8000.0], [0.01], [0.04], [0.01]))
            >>> b.center.tolist(), b.meta["source"]
            ([8000.0, 8001.0], 'template')
        """
        return LineList(
            np.concatenate([self.center, other.center]),
            np.concatenate([self.amplitude, other.amplitude]),
            np.concatenate([self.sigma, other.sigma]),
            np.concatenate([self.gamma, other.gamma]),
            dict(self.meta),
        )

    def select(self, keep: ArrayLike) -> LineList:
        """The lines where ``keep`` (boolean mask or indices) selects."""
        k = np.asarray(keep)
        return LineList(
            self.center[k], self.amplitude[k], self.sigma[k], self.gamma[k], dict(self.meta)
        )

    def to_table(self) -> Any:
        """An astropy Table with one row per line (center, amplitude, sigma, gamma, fwhm, depth)."""
        from astropy.table import Table

        table = Table(
            {
                "center": self.center,
                "amplitude": self.amplitude,
                "sigma": self.sigma,
                "gamma": self.gamma,
                "fwhm": self.fwhm,
                "depth": self.depth,
            }
        )
        table.meta.update({k: v for k, v in self.meta.items() if _is_plain(v)})
        return table

    def write(self, path: str | Path) -> Path:
        """Write the table atomically as ECSV (a text table with typed columns and metadata)."""
        from atmospec._fileio import atomic_path

        with atomic_path(path) as tmp:
            self.to_table().write(tmp, format="ascii.ecsv", overwrite=True)
        return Path(path)

    @classmethod
    def read(cls, path: str | Path) -> LineList:
        """Read a table written by :meth:`write`."""
        from astropy.table import Table

        try:
            t = Table.read(path, format="ascii.ecsv")
        except Exception as err:  # noqa: BLE001 - astropy raises many types
            raise FileFormatError(f"{path}: not an ECSV line table ({err})") from err
        missing = {"center", "amplitude", "sigma", "gamma"} - set(t.colnames)
        if missing:
            raise FileFormatError(f"{path}: line table lacks column(s) {sorted(missing)}")
        return cls(t["center"], t["amplitude"], t["sigma"], t["gamma"], dict(t.meta))


def _is_plain(v: Any) -> bool:
    return isinstance(v, (str, int, float, bool, list, dict)) or v is None


def continuum_envelope(
    wavelength: ArrayLike,
    flux: ArrayLike,
    *,
    window: float,
    quantile: float = 0.95,
    smooth: int = 5,
) -> NDArray[np.float64]:
    """The upper envelope of a spectrum: a smooth continuum to divide lines out of.

    The flux is median-filtered over ``smooth`` pixels (suppressing noise spikes), split into
    chunks ``window`` wide (wavelength units), and the ``quantile`` of each chunk is placed at
    the chunk's brightest pixel; a monotone cubic (PCHIP) through those points is the envelope.

    Example:
        >>> import numpy as np
        >>> w = np.linspace(0.0, 10.0, 1001); f = 2.0 + 0.1 * w
        >>> f[500:505] -= 0.5   # an absorption line
        >>> c = continuum_envelope(w, f, window=1.0, quantile=1.0, smooth=1)
        >>> bool(np.allclose(c[495:510], 2.0 + 0.1 * w[495:510], atol=0.02))
        True
    """
    from scipy.interpolate import PchipInterpolator
    from scipy.ndimage import median_filter

    w = np.asarray(wavelength, dtype=np.float64)
    f = np.asarray(flux, dtype=np.float64)
    good = np.isfinite(f)
    w, fs = w[good], median_filter(f[good], size=max(int(smooth), 1), mode="nearest")
    edges = np.arange(w[0], w[-1] + window, window)
    xs: list[float] = []
    ys: list[float] = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        m = (w >= lo) & (w < hi)
        if m.sum() < 3:
            continue
        xs.append(float(w[m][np.argmax(fs[m])]))
        ys.append(float(np.quantile(fs[m], quantile)))
    if len(xs) < 2:
        raise InvalidSpectrumError(
            f"continuum_envelope: window {window} leaves fewer than 2 chunks over "
            f"{w[0]:g}-{w[-1]:g}; use a smaller window"
        )
    xa, idx = np.unique(np.asarray(xs), return_index=True)
    grid = np.clip(np.asarray(wavelength, dtype=np.float64), xa[0], xa[-1])  # flat beyond ends
    env = PchipInterpolator(xa, np.asarray(ys)[idx])(grid)
    return np.asarray(env, dtype=np.float64)


def find_lines(
    wavelength: ArrayLike,
    flux: ArrayLike,
    *,
    prominence: float = 0.01,
    distance: int = 3,
    max_lines: int | None = None,
    gaussian_fraction: float = 0.8,
) -> LineList:
    """Detect absorption lines in a continuum-normalised spectrum and initialise their parameters.

    Lines are local minima of ``flux`` with a prominence of at least ``prominence`` (a fraction
    of the continuum, 1) and at least ``distance`` pixels apart (scipy.signal.find_peaks). Each
    line's full width at half prominence sets its width, split between a Gaussian (``sigma``)
    and a Lorentzian (``gamma``) part; its depth sets the integrated optical depth ``amplitude``
    so the line alone reproduces the observed central optical depth.

    Args:
        wavelength: increasing wavelengths.
        flux: continuum-normalised flux (continuum at 1).
        prominence: the smallest line depth kept.
        distance: the minimum separation of two lines in pixels.
        max_lines: keep only the most prominent lines.
        gaussian_fraction: share of the measured FWHM given to the Gaussian core.

    Example:
        >>> import numpy as np
        >>> w = np.linspace(5000.0, 5010.0, 2001)
        >>> f = np.exp(-0.5 * np.exp(-0.5 * ((w - 5005.0) / 0.05) ** 2))
        >>> ll = find_lines(w, f, prominence=0.05)
        >>> len(ll), round(float(ll.center[0]), 2)
        (1, 5005.0)
    """
    from scipy.signal import find_peaks, peak_widths
    from scipy.special import voigt_profile

    w = np.asarray(wavelength, dtype=np.float64)
    f = np.asarray(flux, dtype=np.float64)
    if w.ndim != 1 or w.shape != f.shape or w.size < 5:
        raise InvalidSpectrumError(
            f"find_lines: need 1-D wavelength and flux of equal length >= 5, got {w.shape}, "
            f"{f.shape}"
        )
    f = np.where(np.isfinite(f), f, 1.0)
    peaks, props = find_peaks(-f, prominence=prominence, distance=max(int(distance), 1))
    if peaks.size == 0:
        none = np.empty(0)
        return LineList(none, none, none, none, {"prominence": prominence})
    prom = props["prominences"]
    if max_lines is not None and peaks.size > max_lines:
        keep = np.sort(np.argsort(prom)[::-1][:max_lines])
        peaks = peaks[keep]
        prom = prom[keep]
    width_px = peak_widths(-f, peaks, rel_height=0.5)[0]
    dlam = np.gradient(w)[peaks]
    fwhm = np.maximum(width_px, 1.0) * dlam
    sigma = gaussian_fraction * fwhm / _FWHM_PER_SIGMA
    gamma = (1.0 - gaussian_fraction) * fwhm / 2.0
    depth = np.clip(np.minimum(prom, 1.0 - f[peaks]), 1e-4, 0.999)
    tau0 = -np.log1p(-depth)
    amplitude = tau0 / voigt_profile(0.0, sigma, gamma)
    return LineList(w[peaks], amplitude, sigma, gamma, {"prominence": prominence})
