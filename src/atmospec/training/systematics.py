"""Systematics real spectra carry: calibration slopes, telluric residuals, shifts, LSF mismatch."""

from __future__ import annotations

import functools
import hashlib
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "Systematics",
    "TELLURIC_BANDS",
    "apply_slope",
    "apply_telluric_residuals",
    "apply_shift",
    "apply_resolution_mismatch",
    "telluric_mask",
    "spex_noise_shapes",
    "SNR_WINDOW",
    "digest",
    "log_uniform_range",
]

# Strong telluric H2O absorption between the near-infrared windows (centre, half-width, um).
TELLURIC_BANDS: tuple[tuple[float, float, float], ...] = (
    (1.135, 0.025, 0.3),  # weak 1.13 um band: residual amplitude scaled by 0.3
    (1.40, 0.055, 1.0),
    (1.875, 0.085, 1.0),
)
SNR_WINDOW = (1.20, 1.30)  # um: S/N is quoted as the median S/N in the J-band peak (as SPLAT)


@dataclass(frozen=True)
class Systematics:
    """Which systematics the training-set builder injects, with their ranges (all switchable).

    Defaults are chosen for SpeX prism data (R ~ 75-200, flux calibration to a few per cent):

    - ``slope``: multiply by ``1 + a x + b (x^2 - 1/3)`` with ``x`` = ln(lambda) mapped to
      [-1, 1] over the axis, ``a ~ U(-slope_amplitude, +)``, ``b ~ U(-curvature_amplitude, +)``;
      default 5 % tilt and 3 % curvature (flux-calibration / slit-loss colour terms).
    - ``telluric``: residuals of imperfect telluric correction, a smooth bump in each
      :data:`TELLURIC_BANDS` band with amplitude ``U(-telluric_amplitude, +)`` (default 5 %).
    - ``shift``: wavelength-calibration error, a shift ``d ln(lambda) ~ U(-max_shift, +)``
      (default 5e-4, i.e. about 0.25 SpeX prism pixel).
    - ``resolution``: resolving-power mismatch, extra Gaussian blur to effective resolving
      power ``R_eff`` with ``1/R_extra^2 = 1/R_eff^2 - 1/R_model^2``, ``R_extra`` drawn
      log-uniformly in ``extra_R_range`` (default 200-800, i.e. a model at R=120 degraded to
      ~103-118), applied to a fraction ``resolution_fraction`` (default 0.5) of the spectra.
    - ``probability``: each systematic is applied to a spectrum with this probability.

    A value outside its range raises ValueError naming the field and the range.

    Example:
        >>> Systematics().enabled()
        ['slope', 'telluric', 'shift', 'resolution']
        >>> Systematics.none().enabled()
        []
        >>> Systematics(extra_R_range=(0, 10))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: Systematics.extra_R_range must be a (low, high) range ... with 0 < low <= high...
    """

    slope: bool = True
    telluric: bool = True
    shift: bool = True
    resolution: bool = True
    slope_amplitude: float = 0.05
    curvature_amplitude: float = 0.03
    telluric_amplitude: float = 0.05
    max_shift: float = 5e-4
    extra_R_range: tuple[float, float] = (200.0, 800.0)
    resolution_fraction: float = 0.5
    probability: float = 0.8

    def __post_init__(self) -> None:
        """Refuse values that would end as numpy errors (a resolving power of 0 overflows its
        log-uniform draw) or as non-positive spectra (a factor ``1 + ...`` that reaches 0)."""
        for name in ("slope", "telluric", "shift", "resolution"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(
                    f"Systematics.{name} is a switch (true or false), not {getattr(self, name)!r}"
                )
        for name in ("slope_amplitude", "curvature_amplitude", "telluric_amplitude"):
            _check_number(
                name, getattr(self, name), "0 <= value < 1 (a fraction of the flux)", 0.0, 1.0
            )
        if self.slope_amplitude + 2 / 3 * self.curvature_amplitude >= 1:
            raise ValueError(
                "Systematics.slope_amplitude + 2/3 curvature_amplitude must stay below 1 (the "
                "factor 1 + a x + b (x^2 - 1/3) falls to 1 - a - 2b/3 at an axis end), not "
                f"{self.slope_amplitude} + 2/3 {self.curvature_amplitude}"
            )
        _check_number("max_shift", self.max_shift, "value >= 0 (a shift in ln wavelength)", 0.0)
        for name in ("resolution_fraction", "probability"):
            _check_number(name, getattr(self, name), "0 <= value <= 1 (a fraction)", 0.0, 1.0, True)
        r = log_uniform_range(
            "Systematics.extra_R_range", self.extra_R_range, what=" of resolving powers"
        )
        object.__setattr__(self, "extra_R_range", r)

    @classmethod
    def none(cls) -> Systematics:
        """No systematics (ideal, noise-only training sets)."""
        return cls(slope=False, telluric=False, shift=False, resolution=False)

    def enabled(self) -> list[str]:
        return [k for k in ("slope", "telluric", "shift", "resolution") if getattr(self, k)]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["extra_R_range"] = list(self.extra_R_range)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Systematics:
        return cls(**d)  # extra_R_range (a list in JSON and TOML) becomes a tuple


def log_uniform_range(name: str, value: Any, what: str = "") -> tuple[float, float]:
    """``value`` as the ``(low, high)`` range of a log-uniform draw (an S/N, a flux scale, a
    resolving power); ValueError naming ``name`` (and ``what`` the numbers are) unless it is
    two finite numbers with ``0 < low <= high`` (a 0 overflows the draw's logarithm).

    Example:
        >>> log_uniform_range("snr", [10, 300])
        (10.0, 300.0)
        >>> log_uniform_range("snr", (0.0, 100.0))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: snr must be a (low, high) range with 0 < low <= high, finite (drawn ...
    """
    try:
        r = np.asarray(value, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        r = np.array([np.nan])
    if r.size != 2 or not np.all(np.isfinite(r) & (r > 0)) or r[0] > r[1]:
        raise ValueError(
            f"{name} must be a (low, high) range{what} with 0 < low <= high, finite (drawn "
            f"log-uniformly), not {value!r}"
        )
    return float(r[0]), float(r[1])


def _check_number(
    name: str, value: Any, valid: str, low: float, high: float = np.inf, closed: bool = False
) -> None:
    """ValueError naming ``Systematics.<name>`` unless ``low <= value < high`` (``<= high``
    when ``closed``), finite."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = np.nan
    inside = low <= v <= high if closed else low <= v < high
    if isinstance(value, bool) or not (np.isfinite(v) and inside):
        raise ValueError(f"Systematics.{name} must be a number with {valid}, not {value!r}")


def _xnorm(wave: NDArray[np.float64]) -> NDArray[np.float64]:
    lw = np.log(wave)
    return 2 * (lw - lw[0]) / (lw[-1] - lw[0]) - 1


def apply_slope(
    wave: NDArray[np.float64],
    flux: NDArray[np.float64],
    a: NDArray[np.float64],
    b: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Multiply each row by ``1 + a x + b (x^2 - 1/3)`` (``x``: ln(lambda) mapped to [-1, 1]).

    Example:
        >>> w = np.array([1.0, 2.0]); f = np.ones((1, 2))
        >>> apply_slope(w, f, np.array([0.1]), np.array([0.0])).tolist()
        [[0.9, 1.1]]
    """
    x = _xnorm(wave)
    return flux * (1 + a[:, None] * x + b[:, None] * (x**2 - 1 / 3))


def _band_profile(wave: NDArray[np.float64]) -> NDArray[np.float64]:
    """(n_bands, n_wave) smooth windows (raised cosine) of the telluric bands."""
    out = np.zeros((len(TELLURIC_BANDS), wave.size))
    for k, (c, hw, weight) in enumerate(TELLURIC_BANDS):
        d = np.abs(wave - c) / hw
        out[k] = np.where(d < 1, 0.5 * (1 + np.cos(np.pi * d)), 0.0) * weight
    return out


def apply_telluric_residuals(
    wave: NDArray[np.float64], flux: NDArray[np.float64], amp: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Multiply by ``1 + sum_k amp[:, k] * window_k(lambda)`` over :data:`TELLURIC_BANDS`.

    Example:
        >>> w = np.array([1.0, 1.135, 1.4, 1.875, 2.2])  # the band centres peak at amp
        >>> amp = np.array([[0.1, 0.05, -0.05]])  # the weak 1.13 um band scaled by 0.3
        >>> apply_telluric_residuals(w, np.ones((1, 5)), amp).tolist()
        [[1.0, 1.03, 1.05, 0.95, 1.0]]
    """
    return flux * (1 + amp @ _band_profile(wave))


def telluric_mask(wave: NDArray[np.float64]) -> NDArray[np.bool_]:
    """True inside the two strong telluric bands (1.35-1.45 and 1.80-1.95 um).

    Example:
        >>> telluric_mask(np.array([1.0, 1.135, 1.4, 1.875, 2.2])).tolist()
        [False, False, True, True, False]
    """
    return ((wave > 1.35) & (wave < 1.45)) | ((wave > 1.80) & (wave < 1.95))


def apply_shift(
    wave: NDArray[np.float64], flux: NDArray[np.float64], dlnw: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Shift each row in wavelength by ``d ln(lambda)`` (linear interpolation on the same axis).

    Example:
        >>> w = np.array([1.0, 2.0, 3.0]); f = np.array([[1.0, 2.0, 3.0]])
        >>> apply_shift(w, f, np.array([0.0])).tolist()
        [[1.0, 2.0, 3.0]]
    """
    out = np.empty_like(flux)
    for i in range(flux.shape[0]):
        out[i] = np.interp(wave * np.exp(-dlnw[i]), wave, flux[i])
    return out


def apply_resolution_mismatch(
    wave: NDArray[np.float64], flux: NDArray[np.float64], extra_R: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Blur rows with a Gaussian kernel of resolving power ``extra_R`` (inf = untouched).

    Rows are grouped on a coarse log grid of ``extra_R`` so each group is one sparse product.

    Example:
        >>> w = np.linspace(1.0, 2.0, 11); f = np.zeros((2, 11)); f[:, 5] = 1.0
        >>> out = apply_resolution_mismatch(w, f, np.array([np.inf, 20.0]))
        >>> out[0].tolist() == f[0].tolist(), out[1, 3:8].round(3).tolist()
        (True, [0.0, 0.128, 0.736, 0.13, 0.0])
    """
    from atmospec.transforms import convolve_to_resolution

    out = flux.copy()
    finite = np.isfinite(extra_R)
    if not finite.any():
        return out
    levels = np.round(np.log(extra_R[finite]) * 20) / 20  # 5 % steps in R
    rows = np.flatnonzero(finite)
    for lev in np.unique(levels):
        sel = rows[levels == lev]
        out[sel] = convolve_to_resolution(wave, flux[sel], float(np.exp(lev)))
    return out


@functools.lru_cache(maxsize=8)
def _shapes_cached(key: bytes, n_max: int, min_snr: float) -> NDArray[np.float64]:
    wave = np.frombuffer(key, dtype=np.float64)
    return _read_shapes(wave, n_max, min_snr)


def spex_noise_shapes(
    wave: NDArray[np.float64], *, n_max: int = 200, min_snr: float = 20.0
) -> NDArray[np.float64]:
    """Relative per-pixel sigma shapes from real SpeX prism error arrays, on ``wave``.

    Reads the observed SpeX Prism Library spectra shipped with SPLAT (quality OK, median S/N
    >= ``min_snr``, every ``k``-th file so about ``n_max`` are used), takes each error array,
    resamples it onto ``wave`` and divides by its median in the J peak (:data:`SNR_WINDOW`).
    Multiplied by ``F_J / snr`` a shape gives a realistic sigma spectrum: larger where the
    detector and sky dominate (the telluric bands, the spectrum ends).

    Returns:
        (n_shapes, n_wave) array, each row with median 1 in the S/N window.

    Example:
        >>> w = np.linspace(1.0, 2.3, 30)
        >>> shapes = spex_noise_shapes(w, n_max=2)  # needs the SPLAT data (atmospec data)
        >>> in_j = (w >= SNR_WINDOW[0]) & (w <= SNR_WINDOW[1])
        >>> shapes.shape, np.median(shapes[:, in_j], axis=1).tolist()
        ((2, 30), [1.0, 1.0])
    """
    w = np.ascontiguousarray(wave, dtype=np.float64)
    return _shapes_cached(w.tobytes(), int(n_max), float(min_snr)).copy()


def _read_shapes(wave: NDArray[np.float64], n_max: int, min_snr: float) -> NDArray[np.float64]:
    import pandas as pd
    from astropy.io import fits

    from atmospec.data import require
    from atmospec.transforms import resample

    root = require("splat")
    meta = pd.read_csv(root / "db" / "spectral_data.csv", encoding="utf-8-sig", low_memory=False)
    meta = meta[
        (meta["QUALITY_FLAG"] == "OK")
        & (pd.to_numeric(meta["MEDIAN_SNR"], errors="coerce") >= min_snr)
    ]
    folder = root / "resources" / "Spectra" / "Public" / "SPEX-PRISM"
    files = sorted(str(f) for f in meta["DATA_FILE"].dropna())
    step = max(1, len(files) // max(n_max, 1))
    win = (wave >= SNR_WINDOW[0]) & (wave <= SNR_WINDOW[1])
    shapes = []
    for name in files[::step]:
        path = folder / name
        if not path.exists():
            path = folder / (name + ".gz")
            if not path.exists():
                continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # non-standard Spextool history cards
                data = np.asarray(fits.getdata(path), dtype=np.float64)
        except (OSError, ValueError, TypeError):
            continue
        if data.ndim != 2 or data.shape[0] < 3:
            continue
        w, e = data[0], data[2]
        good = np.isfinite(w) & np.isfinite(e) & (e > 0)
        if good.sum() < 50:
            continue
        w, e = w[good], e[good]
        order = np.argsort(w)
        w, e = w[order], e[order]
        keep = np.concatenate([[True], np.diff(w) > 0])
        w, e = w[keep], e[keep]
        if w[0] > wave[0] or w[-1] < wave[-1]:
            continue
        try:
            er = resample(wave, w, e)
        except Exception:  # noqa: BLE001 - an odd file is skipped, not fatal
            continue
        ref = np.median(er[win]) if win.any() else np.median(er)
        if not np.isfinite(ref) or ref <= 0 or not np.all(np.isfinite(er)):
            continue
        shapes.append(er / ref)
        if len(shapes) >= n_max:
            break
    if not shapes:
        from atmospec.errors import DataNotFoundError

        raise DataNotFoundError(
            f"no SpeX error arrays cover {wave[0]:.3f}-{wave[-1]:.3f} um in {folder}"
        )
    arr = np.array(shapes)
    # Clip pathological pixels (e.g. dead columns) at 50x the J-peak sigma.
    return np.clip(arr, 0.05, 50.0)


def digest(*arrays: NDArray[Any]) -> str:
    """Short sha256 of arrays (used to label axes in metadata).

    Example:
        >>> digest(np.zeros(2)) == hashlib.sha256(bytes(16)).hexdigest()[:16]
        True
        >>> digest(np.zeros(2)), digest(np.zeros(2), np.ones(1)) == digest(np.zeros(2))
        ('374708fff7719dd5', False)
    """
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]
