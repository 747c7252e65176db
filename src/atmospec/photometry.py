"""Filters, synthetic photometry, flux calibration from magnitudes, and radii from the scale."""

from __future__ import annotations

import functools
import gzip
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

from atmospec.errors import CoverageError, DataNotFoundError, FileFormatError, UnitError
from atmospec.spectrum import Spectrum

__all__ = [
    "Filter",
    "load_filter",
    "list_filters",
    "synthetic_flux",
    "synthetic_magnitude",
    "flux_calibrate",
    "radius_from_scale",
    "scale_from_radius",
    "ZERO_POINTS_JY",
    "FILTER_FILES",
    "FLAMBDA_UNIT",
    "R_JUP_M",
    "PC_M",
]

FLAMBDA_UNIT = "W m-2 um-1"
"""The absolute F_λ unit of calibrated spectra."""

ZERO_POINTS_JY: dict[str, float] = {"J": 1594.0, "H": 1024.0, "Ks": 666.7}
"""2MASS zero-magnitude flux densities F_ν in Jy (Cohen, Wheaton & Megeath 2003, AJ 126, 1090,
Table 2). The zero point of a band is the photon rate of a flat F_ν spectrum of this value."""

FILTER_FILES: dict[str, str] = {"J": "j_2mass", "H": "h_2mass", "Ks": "ks_2mass"}
"""Band name -> file stem in splat's ``resources/Filters`` (2MASS RSRs of Cohen et al. 2003)."""

R_JUP_M = 7.1492e7
"""Jupiter's equatorial radius in metres (IAU 2015 nominal; astropy's ``R_jup``)."""
PC_M = 3.0856775814913673e16
"""One parsec in metres."""

_C_UM_HZ = 2.99792458e14  # speed of light in um * Hz
_JY_TO_W_M2_HZ = 1e-26


@dataclass(frozen=True)
class Filter:
    """A filter's relative spectral response per photon, on a wavelength grid in µm.

    Args:
        name: band name (``"J"``).
        wavelength: increasing wavelengths, µm.
        response: relative response (any scale), >= 0.
        zero_point_jy: F_ν (Jy) of a flat spectrum that has magnitude 0 in this band, or None.
        source: the file it was read from.

    Example:
        >>> box = Filter("box", np.array([1.1, 1.2, 1.3]), np.ones(3))
        >>> box.range, round(box.pivot_wavelength, 4)
        ((1.1, 1.3), 1.1979)
    """

    name: str
    wavelength: NDArray[np.float64]
    response: NDArray[np.float64]
    zero_point_jy: float | None = None
    source: str = ""

    @property
    def range(self) -> tuple[float, float]:
        """The wavelength interval where the response is non-zero (µm): the curve is linear
        between its samples, so it reaches from the zero sample before the first non-zero
        one to the zero sample after the last (as the pivot wavelength and zero point
        integrate it).

        Example:
            >>> Filter("pad", np.array([1.0, 1.1, 1.3, 1.4]), np.array([0.0, 1.0, 1.0, 0.0])).range
            (1.0, 1.4)
        """
        nz = np.flatnonzero(self.response > 0)
        lo, hi = max(int(nz[0]) - 1, 0), min(int(nz[-1]) + 1, self.response.size - 1)
        return float(self.wavelength[lo]), float(self.wavelength[hi])

    @property
    def pivot_wavelength(self) -> float:
        """λ_p = sqrt(∫ S λ dλ / ∫ S / λ dλ) in µm (photon-counting definition)."""
        w, s = self.wavelength, self.response
        return float(np.sqrt(np.trapezoid(s * w, w) / np.trapezoid(s / w, w)))

    @property
    def zero_point_flambda(self) -> float:
        """The photon-weighted mean F_λ (W m⁻² µm⁻¹) of the zero-point flat-F_ν spectrum.

        Cohen et al. (2003) list 3.129e-13, 1.133e-13 and 4.283e-14 W cm⁻² µm⁻¹ for J, H, Ks.
        """
        if self.zero_point_jy is None:
            raise UnitError(f"filter {self.name}: no zero point defined")
        w = self.wavelength
        flam = self.zero_point_jy * _JY_TO_W_M2_HZ * _C_UM_HZ / w**2  # W m-2 um-1
        return _photon_mean(w, flam, self.response)


def _photon_mean(
    wave: NDArray[np.float64], flam: NDArray[np.float64], response: NDArray[np.float64]
) -> float:
    """<F_λ> = ∫ F_λ S λ dλ / ∫ S λ dλ: the photon-counting mean over the band."""
    weight = response * wave
    return float(np.trapezoid(flam * weight, wave) / np.trapezoid(weight, wave))


def _filters_dir() -> Path:
    from atmospec.data import require

    return require("splat") / "resources" / "Filters"


def list_filters() -> list[str]:
    """File stems of the filter curves in splat's resources (e.g. ``j_2mass``, ``mko_j``).

    Example:
        >>> stems = list_filters()
        >>> "j_2mass" in stems, stems == sorted(stems)
        (True, True)
    """
    return sorted(p.name.split(".")[0] for p in _filters_dir().glob("*.txt.gz"))


@functools.lru_cache(maxsize=64)
def _read_curve(path: str) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    try:
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except (OSError, EOFError) as err:
        raise FileFormatError(f"{path}: cannot read the filter curve ({err})") from err
    rows = []
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields or line.lstrip().startswith("#"):
            continue
        try:
            rows.append((float(fields[0]), float(fields[1])))
        except (ValueError, IndexError):
            if rows:  # a bad line after the data started
                raise FileFormatError(
                    f"{path}: line {number}: expected 'wavelength response', found {line!r}"
                ) from None
            continue  # a column-name line such as 'Wavelength  Transmission'
    if len(rows) < 3:
        raise FileFormatError(f"{path}: fewer than 3 rows in the filter curve")
    data = np.asarray(rows, dtype=np.float64)
    order = np.argsort(data[:, 0], kind="stable")
    wave, resp = data[order, 0], np.clip(data[order, 1], 0.0, None)
    if np.any(np.diff(wave) <= 0):
        raise FileFormatError(f"{path}: repeated wavelengths in the filter curve")
    if wave.max() > 100:  # some curves are tabulated in Angstrom
        wave = wave * 1e-4
    return wave, resp


def load_filter(name: str) -> Filter:
    """A filter curve from splat's resources: ``"J"``, ``"H"``, ``"Ks"`` (2MASS) or a file stem.

    Curves are relative spectral responses per photon (the 2MASS ones are Cohen et al. 2003);
    2MASS bands carry their zero points (:data:`ZERO_POINTS_JY`).

    Example:
        >>> j = load_filter("J")  # doctest: +SKIP
        >>> round(j.pivot_wavelength, 3)  # doctest: +SKIP
        1.241
    """
    stem = FILTER_FILES.get(name, name)
    path = _filters_dir() / f"{stem}.txt.gz"
    if not path.exists():
        raise DataNotFoundError(
            f"no filter {name!r}: {path} does not exist; use J, H, Ks or one of "
            "atmospec.photometry.list_filters()"
        )
    wave, resp = _read_curve(str(path))
    return Filter(name, wave, resp, ZERO_POINTS_JY.get(name), str(path))


def _as_filter(band: str | Filter) -> Filter:
    return band if isinstance(band, Filter) else load_filter(band)


def synthetic_flux(spectrum: Spectrum, band: str | Filter, *, max_masked: float = 0.25) -> float:
    """The photon-weighted mean F_λ of ``spectrum`` in ``band``: ∫F_λ S λ dλ / ∫S λ dλ.

    The spectrum must cover the band (CoverageError otherwise); masked pixels are bridged by
    linear interpolation unless they carry more than ``max_masked`` of the band's weight
    (bridging biases faint, noisy bands where the masked pixels are the negative ones). F_ν
    spectra are converted to F_λ; a normalised spectrum gives a relative value.

    Example:
        >>> box = Filter("box", np.array([1.1, 1.2, 1.3]), np.ones(3))
        >>> w = np.linspace(1.0, 1.5, 51)
        >>> round(synthetic_flux(Spectrum(w, np.full(51, 3.0)), box), 6)
        3.0
        >>> round(synthetic_flux(Spectrum(w, 2.0 * w), box), 4)  # weight λ favours the red end
        2.4056
        >>> synthetic_flux(Spectrum(w[:20], np.ones(20)), box)
        Traceback (most recent call last):
        ...
        atmospec.errors.CoverageError: spectrum: covers 1.000-1.190 um but band box needs 1.100-...
    """
    filt = _as_filter(band)
    lo, hi = filt.range
    if spectrum.flux_unit:
        spectrum = spectrum.to_flux_unit(FLAMBDA_UNIT)
    good = ~spectrum.mask
    wave_all = spectrum.wavelength
    if wave_all[0] > lo or wave_all[-1] < hi:
        raise CoverageError(
            f"{spectrum.source}: covers {wave_all[0]:.3f}-{wave_all[-1]:.3f} um but band "
            f"{filt.name} needs {lo:.3f}-{hi:.3f} um"
        )
    # integrate on the union of both grids inside the band
    inside = (wave_all > lo) & (wave_all < hi)
    grid = np.union1d(
        filt.wavelength[(filt.wavelength >= lo) & (filt.wavelength <= hi)], wave_all[inside]
    )
    resp = np.interp(grid, filt.wavelength, filt.response)
    weight = resp * grid
    masked_near = np.interp(grid, wave_all, (~good).astype(float)) > 0
    masked_weight = np.trapezoid(weight * masked_near, grid) / np.trapezoid(weight, grid)
    if masked_weight > max_masked:
        raise CoverageError(
            f"{spectrum.source}: {100 * masked_weight:.0f}% of band {filt.name} falls on masked "
            f"pixels (limit {100 * max_masked:.0f}%)"
        )
    flam = np.interp(grid, wave_all[good], spectrum.flux[good])
    return _photon_mean(grid, flam, resp)


def synthetic_magnitude(spectrum: Spectrum, band: str | Filter) -> float:
    """The Vega-system magnitude of an absolutely calibrated spectrum in ``band``.

    m = -2.5 log10(<F_λ> / <F_λ>_0), where <F_λ>_0 is the photon-weighted mean of a flat F_ν
    spectrum at the band's zero point (2MASS: 1594 / 1024 / 666.7 Jy, Cohen et al. 2003).

    Example:
        >>> import numpy as np
        >>> w = np.linspace(1.0, 2.5, 600)
        >>> flat = Spectrum(w, np.full(w.size, 1594.0), flux_unit="Jy")
        >>> round(synthetic_magnitude(flat, "J"), 6)  # doctest: +SKIP
        0.0
    """
    filt = _as_filter(band)
    if not spectrum.flux_unit:
        raise UnitError(
            f"{spectrum.source}: the flux is normalised; magnitudes need an absolute flux "
            "(use flux_calibrate first)"
        )
    flux = synthetic_flux(spectrum, filt)
    if not flux > 0:
        raise CoverageError(
            f"{spectrum.source}: mean flux in band {filt.name} is {flux:g}; no magnitude"
        )
    return float(-2.5 * np.log10(flux / filt.zero_point_flambda))


def flux_calibrate(
    spectrum: Spectrum,
    mags: Mapping[str, float] | None = None,
    errors: Mapping[str, float] | None = None,
) -> Spectrum:
    """Scale a (normalised) spectrum to absolute F_λ (W m⁻² µm⁻¹) from its 2MASS magnitudes.

    For each band b with magnitude m_b the scale is s_b = <F_λ>_0,b 10^(-0.4 m_b) / <f>_b with
    <f>_b the spectrum's photon-weighted mean in the band. Several bands are combined as the
    inverse-variance weighted mean of log s_b (σ_ln s = 0.4 ln10 σ_m; equal weights without
    errors). ``mags`` defaults to ``spectrum.meta["mags"]`` (library spectra carry them).
    ``meta["flux_calibration"]`` records per-band scales and the spread between bands.

    Example:
        >>> import numpy as np
        >>> w = np.linspace(1.0, 2.5, 600)
        >>> s = Spectrum(w, np.ones(w.size))  # normalised
        >>> cal = flux_calibrate(s, {"J": 10.0})  # doctest: +SKIP
        >>> round(synthetic_magnitude(cal, "J"), 6)  # doctest: +SKIP
        10.0
    """
    mags = dict(mags if mags is not None else spectrum.meta.get("mags") or {})
    if errors is None:
        errors = spectrum.meta.get("mag_errors") or {}
    used = {b: float(m) for b, m in mags.items() if m is not None and np.isfinite(m)}
    if not used:
        raise UnitError(
            f"{spectrum.source}: no magnitudes to calibrate with (give mags={{'J': ...}})"
        )
    relative = spectrum if not spectrum.flux_unit else spectrum.to_flux_unit(FLAMBDA_UNIT)
    log_s, weights, per_band = [], [], {}
    for band, mag in used.items():
        filt = load_filter(band)
        target = filt.zero_point_flambda * 10 ** (-0.4 * mag)
        mean = synthetic_flux(relative, filt)
        if not mean > 0:
            raise CoverageError(
                f"{spectrum.source}: mean flux in band {band} is {mean:g}; cannot scale to it"
            )
        scale = target / mean
        err = errors.get(band)
        sigma = (
            0.4 * np.log(10) * float(err)
            if err is not None and np.isfinite(err) and err > 0
            else 1.0
        )
        log_s.append(np.log(scale))
        weights.append(1.0 / sigma**2)
        per_band[band] = scale
    w = np.asarray(weights)
    ls = np.asarray(log_s)
    scale = float(np.exp(np.sum(w * ls) / np.sum(w)))
    unc = None if relative.uncertainty is None else relative.uncertainty * scale
    out = relative.with_arrays(relative.wavelength, relative.flux * scale, unc, mask=relative.mask)
    out.flux_unit = _flambda_unit_string()
    out.meta["flux_calibration"] = {
        "scale": scale,
        "bands": {b: used[b] for b in per_band},
        "scale_per_band": per_band,
        "spread_mag": float(2.5 / np.log(10) * np.ptp(ls)) if len(ls) > 1 else 0.0,
        "zero_points": "Cohen, Wheaton & Megeath 2003 (AJ 126, 1090)",
    }
    return out


def _flambda_unit_string() -> str:
    import astropy.units as u

    return u.Unit(FLAMBDA_UNIT).to_string()


def radius_from_scale(scale: ArrayLike, parallax_mas: ArrayLike) -> NDArray[np.float64] | float:
    """Radius (R_Jup) from the dilution factor (R/d)² between observed and surface flux.

    F_obs = (R/d)² F_surface, so R = d sqrt(scale) with d = 1000 / parallax pc. Works on arrays
    (e.g. Monte-Carlo draws of scale and parallax to propagate their errors).

    Example:
        >>> # 1 R_Jup at 10 pc (100 mas): scale = (R_Jup / 10 pc)^2
        >>> round(float(radius_from_scale((R_JUP_M / (10 * PC_M)) ** 2, 100.0)), 9)
        1.0
    """
    s = np.asarray(scale, dtype=np.float64)
    plx = np.asarray(parallax_mas, dtype=np.float64)
    if np.any(s < 0) or np.any(plx <= 0):
        raise ValueError("radius_from_scale: scale must be >= 0 and parallax > 0 mas")
    r = np.sqrt(s) * (1000.0 / plx) * PC_M / R_JUP_M
    return float(r) if r.ndim == 0 else r


def scale_from_radius(
    radius_rjup: ArrayLike, parallax_mas: ArrayLike
) -> NDArray[np.float64] | float:
    """The dilution factor (R/d)² for a radius in R_Jup at a parallax in mas (inverse above).

    Example:
        >>> f"{scale_from_radius(1.0, 100.0):.4e}"
        '5.3680e-20'
    """
    r = np.asarray(radius_rjup, dtype=np.float64)
    plx = np.asarray(parallax_mas, dtype=np.float64)
    if np.any(r < 0) or np.any(plx <= 0):
        raise ValueError("scale_from_radius: radius must be >= 0 and parallax > 0 mas")
    s = (r * R_JUP_M / ((1000.0 / plx) * PC_M)) ** 2
    return float(s) if s.ndim == 0 else s
