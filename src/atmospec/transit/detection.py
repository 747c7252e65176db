"""Is there a transit in this visit? A matched-filter scan of the white light curve."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import NDArray

from atmospec.errors import InvalidSpectrumError
from atmospec.transit.observation import TransitObservation

__all__ = ["NoTransitError", "TransitDetection", "detect_transit", "require_transit"]

#: Detection threshold on the depth's signal-to-noise at the best mid-time. The scan tries
#: ~80 mid-times, so a pure-noise curve reaches ~3 sigma by chance; 7 leaves a wide margin.
SNR_THRESHOLD = 7.0
#: Time bins needed both inside and outside the transit for a depth to be measurable.
MIN_BINS = 3


class NoTransitError(InvalidSpectrumError):
    """A visit holds no detectable transit, so no transmission spectrum can be measured.

    Example:
        >>> import numpy as np
        >>> obs = TransitObservation("9", np.linspace(0, 6, 60), np.array([0.7, 2.0]),
        ...     np.ones((60, 2)), np.ones((60, 2)), np.zeros((60, 3)),
        ...     star={"P": 3.0, "sma": 10.0, "i": 90.0})
        >>> try:
        ...     require_transit(obs)
        ... except InvalidSpectrumError as err:  # a NoTransitError is an InvalidSpectrumError
        ...     print(type(err).__name__, "-", str(err)[:51])
        NoTransitError - planet 9: the AIRS-CH0 white light curve is exactly
    """


@dataclass(frozen=True)
class TransitDetection:
    """The outcome of :func:`detect_transit`.

    Attributes:
        detected: a transit with depth S/N >= the threshold was found.
        snr: depth / sigma at the best mid-time (0 when no mid-time was testable).
        depth: white-light depth at the best mid-time (fraction of the stellar flux).
        depth_sigma: its 1-sigma (residual scatter x red-noise factor).
        t0_h: best mid-time (h), or None.
        duration_h: the transit duration the orbit in the star info implies (h).
        span_h: the time covered by the visit (h).
        reason: one sentence saying why the transit was or was not detected.

    Example:
        >>> import numpy as np
        >>> from atmospec.transit.lightcurve import TransitGeometry, TransitModel
        >>> t = np.linspace(0.0, 6.0, 80)
        >>> f = TransitModel(t, TransitGeometry(3.0, 3.0, 10.0, 90.0))(0.1, 0.3, 0.2)
        >>> noise = np.random.default_rng(0).normal(0.0, 1e-4, (80, 2))
        >>> obs = TransitObservation("1", t, np.array([0.7, 2.0]), 1e4 * f[:, None] * (1 + noise),
        ...     np.ones((80, 2)), np.zeros((80, 3)), star={"P": 3.0, "sma": 10.0, "i": 90.0})
        >>> det = detect_transit(obs)
        >>> det.detected, round(det.t0_h, 2), round(det.depth, 3), round(det.duration_h, 2)
        (True, 3.0, 0.01, 2.53)
        >>> det.to_dict()["span_h"]
        6.0
    """

    detected: bool
    snr: float
    depth: float
    depth_sigma: float
    t0_h: float | None
    duration_h: float
    span_h: float
    reason: str

    def to_dict(self) -> dict[str, object]:
        """Plain-JSON form (for summaries and spectrum metadata)."""
        return asdict(self)


def _white(obs: TransitObservation) -> NDArray[np.float64] | None:
    w = np.asarray(obs.flux[:, 1:].sum(axis=1), dtype=np.float64)
    med = float(np.median(w)) if w.size else 0.0
    if not np.all(np.isfinite(w)) or med <= 0:
        return None
    return w / med


def detect_transit(
    obs: TransitObservation, threshold: float = SNR_THRESHOLD, degree: int = 2
) -> TransitDetection:
    """Scan mid-times over the visit for a limb-darkened transit of the star's orbit.

    For every mid-time that leaves at least 3 time bins in transit and 3 out of it, the
    AIRS-CH0 white light curve is fitted by least squares as a baseline (polynomial of
    ``degree`` in time, the pointing regressors, and an exponential ramp at the start of the
    visit) minus ``depth x`` the transit shape; the depth's sigma is the residual scatter
    times the red-noise factor. The transit is detected when the best depth is positive with
    S/N >= ``threshold``. A baseline is fitted only where the bins outnumber its parameters
    by 3 (fewer leave no residual to measure the scatter with). A visit shorter than the
    transit or with too few time bins (no mid-time testable), a constant or non-positive light
    curve, or a depth below the threshold is reported as not detected, with the reason.

    Example:
        >>> import numpy as np
        >>> t = np.linspace(0, 6, 120)
        >>> obs = TransitObservation("flat", t, np.array([0.7, 2.0]), np.ones((120, 2)) * 1e4,
        ...     np.ones((120, 2)), np.zeros((120, 3)), star={"P": 3.0, "sma": 10.0, "i": 90.0})
        >>> detect_transit(obs).detected
        False
    """
    from atmospec.transit.detrenders._core import beta_factor, regressors
    from atmospec.transit.lightcurve import TransitGeometry, TransitModel

    missing = [k for k in ("P", "sma", "i") if k not in obs.star]
    if missing:
        raise InvalidSpectrumError(
            f"planet {obs.planet_id}: star info lacks {missing}; transit detection needs the "
            "orbit (P days, sma stellar radii, i degrees) from *_star_info.csv"
        )
    t = np.asarray(obs.time_h, dtype=np.float64)
    span = float(t.max() - t.min()) if t.size else 0.0
    geo0 = TransitGeometry.from_star(obs.star, float(t.mean()) if t.size else 0.0)
    duration = geo0.duration_h()

    def result(detected: bool, reason: str, **kw: float | None) -> TransitDetection:
        values = {"snr": 0.0, "depth": 0.0, "depth_sigma": 0.0, "t0_h": None, **kw}
        return TransitDetection(
            detected,
            float(values["snr"] or 0.0),
            float(values["depth"] or 0.0),
            float(values["depth_sigma"] or 0.0),
            None if values["t0_h"] is None else float(values["t0_h"]),
            duration,
            span,
            reason,
        )

    y = _white(obs)
    if y is None:
        return result(
            False,
            "the AIRS-CH0 white light curve is not finite or has no positive flux: the "
            "detector frames hold no usable light",
        )
    if float(np.ptp(y)) == 0.0:
        return result(
            False,
            "the AIRS-CH0 white light curve is exactly constant (no noise, no signal): the "
            "detector frames are degenerate",
        )
    if duration <= 0:
        return result(False, "the orbit in the star info never transits (impact parameter > 1)")

    model = TransitModel(t, geo0, obs.meta.get("exposure_offsets_h", {}).get("AIRS-CH0"))
    # baseline: polynomial in time, the pointing regressors, and a start-of-visit ramp
    # exp(-(t - t_start) / tau) whose time scale is picked by the least-squares fit
    base0 = regressors(obs, degree, centroid=True)
    since = t - t.min()
    ramps = [np.exp(-since / s) for s in np.geomspace(0.03, 2.0, 6)] if span > 0 else []
    bases = [base0] + [np.column_stack([base0, r]) for r in ramps]
    rp_unit = 0.1
    best: tuple[float, float, float, float] | None = None
    n_params = 0  # parameters of the largest model a testable mid-time had too few bins for
    candidates = np.linspace(t.min() - 0.5 * duration, t.max() + 0.5 * duration, 81)
    for t0 in candidates:
        shape = (1.0 - model(rp_unit, 0.25, 0.15, t0_h=float(t0))) / rp_unit**2
        n_in = int((shape > 0.1 * max(float(shape.max()), 1e-12)).sum())
        n_out = int((shape < 1e-9).sum())
        if n_in < MIN_BINS or n_out < MIN_BINS:
            continue
        fits = []
        for base in bases:
            X = np.column_stack([base, -shape])
            if t.size - X.shape[1] < MIN_BINS:
                # as many parameters as bins fit the curve exactly: a zero residual would
                # make any depth look infinitely significant
                n_params = max(n_params, X.shape[1])
                continue
            coef, *_ = np.linalg.lstsq(X, y, rcond=None)
            r = y - X @ coef
            fits.append((float(r @ r), X, coef, r))
        if not fits:
            continue
        _, X, coef, r = min(fits, key=lambda f: f[0])
        dof = max(t.size - X.shape[1], 1)
        s2 = float(r @ r) / dof * beta_factor(r) ** 2
        try:
            var = float(np.linalg.inv(X.T @ X)[-1, -1]) * s2
        except np.linalg.LinAlgError:
            continue
        sigma = np.sqrt(var) if var > 0 else 0.0
        depth = float(coef[-1])
        snr = depth / sigma if sigma > 0 else (np.inf if depth > 0 else 0.0)
        if best is None or snr > best[0]:
            best = (float(snr), depth, float(sigma), float(t0))
    if best is None and n_params:
        return result(
            False,
            f"the visit has {t.size} time bins, too few for the {n_params} parameters of the "
            f"transit and baseline model with {MIN_BINS} bins to spare: the residual scatter, "
            "and so the depth's S/N, cannot be measured",
        )
    if best is None:
        return result(
            False,
            f"the visit spans {span:.3g} h in {t.size} time bins, but a transit of this orbit "
            f"lasts {duration:.3g} h: no mid-time leaves {MIN_BINS} bins in transit and "
            f"{MIN_BINS} out of it, so no depth can be measured",
        )
    snr, depth, sigma, t0 = best
    kw = {"snr": snr, "depth": depth, "depth_sigma": sigma, "t0_h": t0}
    if snr >= threshold:
        return result(True, f"transit detected at {t0:.3f} h, depth S/N {snr:.1f}", **kw)
    return result(
        False,
        f"no transit: the best depth over the visit is {depth * 1e6:.0f} +- {sigma * 1e6:.0f} "
        f"ppm (S/N {snr:.1f} < {threshold:g})",
        **kw,
    )


def require_transit(obs: TransitObservation, threshold: float = SNR_THRESHOLD) -> TransitDetection:
    """:func:`detect_transit`, raising :class:`NoTransitError` when nothing is detected.

    Raises:
        NoTransitError: the visit holds no detectable transit (the message says why).

    Example:
        >>> import numpy as np
        >>> from atmospec.transit.lightcurve import TransitGeometry, TransitModel
        >>> t = np.linspace(0.0, 6.0, 80)
        >>> f = TransitModel(t, TransitGeometry(3.0, 3.0, 10.0, 90.0))(0.1, 0.3, 0.2)
        >>> flux = 1e4 * (1 + np.random.default_rng(0).normal(0.0, 1e-4, (80, 2)))
        >>> star = {"P": 3.0, "sma": 10.0, "i": 90.0}
        >>> obs = TransitObservation("2", t, np.array([0.7, 2.0]), flux * f[:, None],
        ...                          np.ones((80, 2)), np.zeros((80, 3)), star=star)
        >>> round(require_transit(obs).snr, -1)
        120.0
        >>> require_transit(TransitObservation("3", t, obs.wavelength, flux, obs.flux_err,
        ...                 obs.centroid, star=star))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        atmospec.transit.detection.NoTransitError: planet 3: no transit: the best depth ...
    """
    det = detect_transit(obs, threshold)
    if not det.detected:
        raise NoTransitError(
            f"planet {obs.planet_id}: {det.reason}; no transmission spectrum is reported"
        )
    return det
