"""The Detrender contract: fit(observation) -> DepthSpectrum; diagnose() -> figures."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from atmospec._fileio import atomic_path
from atmospec.errors import FileFormatError, InvalidSpectrumError, ModelInputError
from atmospec.transit.observation import TransitObservation

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from atmospec.spectrum import Spectrum
    from atmospec.transit.detection import TransitDetection

__all__ = ["DepthSpectrum", "Detrender", "sigma_model_from", "split_sigma"]


@dataclass
class DepthSpectrum:
    """A transmission spectrum: transit depth ``(Rp/Rs)**2`` and its 1-sigma per wavelength bin.

    Example:
        >>> import numpy as np
        >>> s = DepthSpectrum(np.array([0.7, 2.0]), np.array([0.01, 0.0102]), np.array([5e-5, 8e-5]))
        >>> s.depth_ppm.tolist()
        [10000.0, 10200.0]
    """

    wavelength: NDArray[np.float64]
    depth: NDArray[np.float64]
    sigma: NDArray[np.float64]
    planet_id: str = ""
    method: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.wavelength = np.asarray(self.wavelength, dtype=np.float64)
        self.depth = np.asarray(self.depth, dtype=np.float64)
        self.sigma = np.asarray(self.sigma, dtype=np.float64)
        if not (self.wavelength.shape == self.depth.shape == self.sigma.shape):
            raise InvalidSpectrumError(
                f"depth spectrum {self.planet_id}: wavelength, depth and sigma shapes differ "
                f"({self.wavelength.shape}, {self.depth.shape}, {self.sigma.shape})"
            )

    @property
    def depth_ppm(self) -> NDArray[np.float64]:
        """The depths in parts per million."""
        return self.depth * 1e6

    def to_spectrum(self) -> Spectrum:
        """The core :class:`~atmospec.spectrum.Spectrum` (flux = depth, uncertainty = sigma)."""
        from atmospec.spectrum import Spectrum

        return Spectrum(
            self.wavelength,
            self.depth,
            self.sigma,
            name=f"{self.planet_id} ({self.method})",
            meta={"quantity": "transit depth (Rp/Rs)^2", **self.meta},
        )

    def write(self, path: str | Path) -> Path:
        """Write an ECSV table (wavelength um, depth, sigma) with the metadata, atomically."""
        from astropy.table import Table

        table = Table(
            {"wavelength": self.wavelength, "depth": self.depth, "sigma": self.sigma},
            meta={"planet_id": self.planet_id, "method": self.method, **_plain(self.meta)},
        )
        table["wavelength"].unit = "um"
        path = Path(path)
        with atomic_path(path) as tmp:
            table.write(tmp, format="ascii.ecsv", overwrite=True)
        return path

    @classmethod
    def read(cls, path: str | Path) -> DepthSpectrum:
        """Read a file written by :meth:`write`."""
        from astropy.table import Table

        try:
            table = Table.read(path, format="ascii.ecsv")
            meta = dict(table.meta)
            return cls(
                np.asarray(table["wavelength"]),
                np.asarray(table["depth"]),
                np.asarray(table["sigma"]),
                planet_id=str(meta.pop("planet_id", "")),
                method=str(meta.pop("method", "")),
                meta=meta,
            )
        except (KeyError, ValueError) as err:
            raise FileFormatError(f"{path}: not a depth-spectrum ECSV ({err})") from err


def _plain(meta: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in meta.items():
        if isinstance(v, np.ndarray):
            out[k] = v.tolist()
        elif isinstance(v, np.generic):
            out[k] = v.item()
        else:
            out[k] = v
    return out


def split_sigma(spec: DepthSpectrum) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """A spectrum's sigma split into each bin's own part and the part all bins share (the
    white-light depth's); methods that do not separate them have a shared part of 0.

    Example:
        >>> import numpy as np
        >>> s = DepthSpectrum(np.ones(2), np.ones(2), np.array([5.0, 5.0]),
        ...                   meta={"sigma_relative": [3.0, 3.0], "white_depth_sigma": 4.0})
        >>> own, shared = split_sigma(s)
        >>> float(own[0]), float(shared[1])
        (3.0, 4.0)
    """
    if "sigma_relative" in spec.meta and "white_depth_sigma" in spec.meta:
        own = np.asarray(spec.meta["sigma_relative"], dtype=np.float64)
        shared = np.full(own.shape, float(spec.meta["white_depth_sigma"]))
        return own, shared
    return spec.sigma.copy(), np.zeros_like(spec.sigma)


def sigma_model_from(
    y: NDArray[np.float64], specs: list[DepthSpectrum], target: str = "likelihood"
) -> tuple[float, float, float]:
    """The (scale, shared scale, floor) sigma model fitted to the true depths ``y``
    (concatenated over the planets of ``specs``).

    ``target="likelihood"`` maximises their Gaussian likelihood; ``"coverage"`` then multiplies
    all three by one factor so that the 68 % intervals hold 68 % of these depths. With errors
    heavier-tailed than Gaussian the likelihood's optimum widens the bars until they cover
    more than 68 %; the coverage target trades a little likelihood for intervals that mean
    what they say.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> y = rng.standard_t(3, 40000) * 1e-4                 # heavy tails
        >>> spec = DepthSpectrum(np.linspace(2, 3, y.size), np.zeros(y.size),
        ...                      np.full(y.size, 1e-4))
        >>> from atmospec.transit.scoring import coverage
        >>> a, _, c = sigma_model_from(y, [spec], target="coverage")
        >>> round(coverage(y, 0.0, np.hypot(a * 1e-4, c)), 2)
        0.68
    """
    from atmospec.transit.scoring import (
        fit_sigma_components,
        fit_sigma_model,
        sigma_scale_for_coverage,
    )

    if target not in ("likelihood", "coverage"):
        raise ModelInputError(f"target must be 'likelihood' or 'coverage', not {target!r}")
    mu = np.concatenate([s.depth for s in specs])
    parts = [split_sigma(s) for s in specs]
    own = np.concatenate([p[0] for p in parts])
    shared = np.concatenate([p[1] for p in parts])
    if np.any(shared > 0):
        a, b, c = fit_sigma_components(y, mu, own, shared)
    else:
        (a, c), b = fit_sigma_model(y, mu, own), 1.0
    if target == "coverage":
        k = sigma_scale_for_coverage(y, mu, np.sqrt((a * own) ** 2 + (b * shared) ** 2 + c**2))
        a, b, c = a * k, b * k, c * k
    return a, b, c


class Detrender(ABC):
    """Removes instrument systematics and measures the transit depth at every wavelength.

    Subclasses implement :meth:`fit`; after it, ``observation_``, ``model_`` (the full fitted
    model, normalised flux, ``(n_time, n_wl)``), ``transit_`` (its transit part) and
    ``spectrum_`` are set and :meth:`diagnose` draws them.

    Example:
        >>> from atmospec.transit.detrenders.polynomial import PolynomialDetrender
        >>> from atmospec.transit.lightcurve import TransitGeometry, TransitModel
        >>> t = np.linspace(0.0, 6.0, 80)
        >>> f = TransitModel(t, TransitGeometry(3.0, 3.0, 10.0, 90.0))(0.1, 0.3, 0.2)
        >>> flux = 1e4 * f[:, None] * (1 + np.random.default_rng(0).normal(0, 1e-4, (80, 3)))
        >>> obs = TransitObservation("1", t, np.array([0.7, 2.0, 3.0]), flux, np.ones((80, 3)),
        ...     np.zeros((80, 3)), star={"P": 3.0, "sma": 10.0, "i": 90.0})
        >>> det = PolynomialDetrender()
        >>> isinstance(det, Detrender), det.fit(obs) is det.spectrum_, det.model_.shape
        (True, True, (80, 3))
        >>> det.set_sigma_model(1.0, 1.0, 1e-3)   # a 1000 ppm floor, added in quadrature
        >>> det.fit(obs).sigma.round(3), len(det.diagnose())
        (array([0.001, 0.001, 0.001]), 3)
    """

    name: str = "detrender"  # the method's label; CNNDetrender sets it per instance (cnn1d, cnn2d)
    #: sigma_total = sqrt((sigma_scale * sigma)^2 + sigma_floor^2), or, for methods that
    #: report a bin's own sigma (``meta["sigma_relative"]``) and the white-light depth's
    #: (``meta["white_depth_sigma"]``) separately, sqrt((sigma_scale * own)^2 +
    #: (sigma_shared_scale * white)^2 + sigma_floor^2); set by :meth:`calibrate_sigma` on
    #: simulated planets with known depths
    sigma_scale: float = 1.0
    sigma_shared_scale: float = 1.0
    sigma_floor: float = 0.0
    #: depth S/N a visit's transit must reach before a spectrum is measured
    #: (:func:`~atmospec.transit.detection.require_transit`); None skips the check
    transit_threshold: float | None = 7.0

    detection_: TransitDetection

    observation_: TransitObservation
    model_: NDArray[np.float64]
    transit_: NDArray[np.float64]
    spectrum_: DepthSpectrum

    @abstractmethod
    def fit(self, observation: TransitObservation) -> DepthSpectrum:
        """Measure the depth spectrum of ``observation`` (depth and 1-sigma per bin)."""

    def check_transit(self, observation: TransitObservation) -> None:
        """Refuse a visit without a detectable transit (sets ``detection_``).

        Raises:
            InvalidSpectrumError: a channel holds NaN, infinite or no flux
                (:meth:`~atmospec.transit.observation.TransitObservation.check_light`),
                whatever the threshold.
            NoTransitError: no transit reaches :attr:`transit_threshold` (the reason is given).
        """
        from atmospec.transit.detection import SNR_THRESHOLD, NoTransitError, detect_transit

        observation.check_light()
        threshold = self.transit_threshold
        self.detection_ = detect_transit(observation, threshold or SNR_THRESHOLD)
        if threshold is not None and not self.detection_.detected:
            raise NoTransitError(
                f"planet {observation.planet_id} ({self.name}): {self.detection_.reason}; "
                "no transmission spectrum is reported"
            )

    def calibrate_sigma(
        self,
        observations: list[TransitObservation],
        depths: list[NDArray[np.float64]],
        target: str = "likelihood",
    ) -> tuple[float, float, float]:
        """Fit planets with known depths (disjoint from those to be measured) and set
        :attr:`sigma_scale`, :attr:`sigma_shared_scale` and :attr:`sigma_floor` to maximise
        their Gaussian likelihood (``target="coverage"``: then scaled together so 68 % of
        their depths fall inside the 68 % intervals; see :func:`sigma_model_from`). Returns
        the three."""
        self.sigma_scale, self.sigma_shared_scale, self.sigma_floor = 1.0, 1.0, 0.0
        # planets with known depths have their transit: fit them all, whatever their S/N
        threshold, self.transit_threshold = self.transit_threshold, None
        try:
            specs = [self.fit(o) for o in observations]
        finally:
            self.transit_threshold = threshold
        y = np.concatenate([np.asarray(d) for d in depths])
        self.set_sigma_model(*sigma_model_from(y, specs, target))
        return self.sigma_scale, self.sigma_shared_scale, self.sigma_floor

    def set_sigma_model(self, scale: float, shared_scale: float, floor: float) -> None:
        """Set the calibrated sigma model (see :attr:`sigma_scale`).

        Raises:
            ModelInputError: a scale that is not finite and > 0, or a floor not finite and >= 0
                (either would write NaN, zero or meaningless sigmas).
        """
        values = {"scale": scale, "shared_scale": shared_scale, "floor": floor}
        for key, v in values.items():
            ok = np.isfinite(v) and (v >= 0 if key == "floor" else v > 0)
            if not ok:
                rule = "finite and >= 0" if key == "floor" else "finite and > 0"
                raise ModelInputError(f"{self.name}: sigma model {key} must be {rule}, not {v}")
        self.sigma_scale, self.sigma_shared_scale, self.sigma_floor = scale, shared_scale, floor

    def _scaled(self, spec: DepthSpectrum) -> DepthSpectrum:
        if hasattr(self, "detection_"):
            spec.meta["transit_snr"] = round(self.detection_.snr, 2)
        own, shared = split_sigma(spec)
        if (self.sigma_scale, self.sigma_shared_scale, self.sigma_floor) != (1.0, 1.0, 0.0):
            spec.sigma = np.sqrt(
                (own * self.sigma_scale) ** 2
                + (shared * self.sigma_shared_scale) ** 2
                + self.sigma_floor**2
            )
            spec.meta["sigma_scale"] = self.sigma_scale
            spec.meta["sigma_shared_scale"] = self.sigma_shared_scale
            spec.meta["sigma_floor"] = self.sigma_floor
        return spec

    def _check_fitted(self) -> None:
        if not hasattr(self, "spectrum_"):
            raise RuntimeError(f"{type(self).__name__}: call fit(observation) before diagnose()")

    def diagnose(self, truth: NDArray[np.float64] | None = None) -> list[Figure]:
        """Figures: white-light curve with the model, residuals (time x wavelength), and the
        spectrum with its 1-sigma bars (and the true depths if given)."""
        from matplotlib.figure import Figure  # no pyplot: no backend switch

        self._check_fitted()
        obs, spec = self.observation_.normalized(), self.spectrum_
        t = obs.time_h
        figs: list[Figure] = []

        fig = Figure(figsize=(7, 4))
        ax = fig.subplots()
        white = obs.flux[:, 1:].mean(axis=1)
        model = self.model_[:, 1:].mean(axis=1)
        ax.plot(t, white, ".", ms=3, label="AIRS-CH0 white light")
        ax.plot(t, model, "-", label=f"{self.name} model")
        ax.plot(t, self.transit_[:, 1:].mean(axis=1) * np.median(model), "--", label="transit")
        ax.set(xlabel="time (h)", ylabel="normalised flux", title=f"planet {obs.planet_id}")
        ax.legend()
        figs.append(fig)

        fig = Figure(figsize=(7, 4))
        ax = fig.subplots()
        resid = (obs.flux - self.model_) * 1e6
        lim = float(np.nanpercentile(np.abs(resid), 99)) or 1.0
        im = ax.imshow(
            resid.T,
            aspect="auto",
            origin="lower",
            cmap="RdBu_r",
            vmin=-lim,
            vmax=lim,
            extent=(t[0], t[-1], -0.5, obs.n_wavelength - 0.5),
        )
        fig.colorbar(im, ax=ax, label="residual (ppm)")
        ax.set(xlabel="time (h)", ylabel="channel (0 = FGS1)", title="residuals")
        figs.append(fig)

        fig = Figure(figsize=(7, 4))
        ax = fig.subplots()
        ax.errorbar(
            spec.wavelength,
            spec.depth_ppm,
            spec.sigma * 1e6,
            fmt="o",
            ms=3,
            label=f"{self.name} (1 sigma)",
        )
        if truth is not None:
            ax.plot(spec.wavelength, np.asarray(truth) * 1e6, "k-", lw=1, label="injected")
        ax.set(xlabel="wavelength (um)", ylabel="transit depth (ppm)", title="spectrum")
        ax.legend()
        figs.append(fig)
        return figs
