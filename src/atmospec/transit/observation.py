"""TransitObservation: calibrated, binned light curves of one planet, one per wavelength bin."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from atmospec.errors import InvalidSpectrumError

__all__ = ["TransitObservation"]


@dataclass
class TransitObservation:
    """Spectro-photometric light curves of a transit, the input every detrender takes.

    Column 0 of ``flux`` is the FGS1 photometric channel; columns 1.. are the AIRS-CH0
    spectral channels, in increasing wavelength (the order of ``wavelengths.csv``).

    Attributes:
        planet_id: the planet identifier.
        time_h: mid-times of the time bins (hours), shape ``(n_time,)``.
        wavelength: wavelength of each channel (µm), shape ``(n_wl,)``.
        flux: counts per time bin (restored ADC units), shape ``(n_time, n_wl)``.
        flux_err: 1-sigma uncertainty of ``flux`` estimated from the frames in each bin.
        centroid: pointing regressors ``(n_time, 3)``: FGS1 image centroid x, y and the AIRS-CH0
            spatial centroid (pixels, relative to their median).
        star: star and orbit parameters (``P`` days, ``sma`` in stellar radii, ``i`` degrees).
        meta: calibration record (units, masked pixel counts, binning).

    Example:
        >>> import numpy as np
        >>> obs = TransitObservation("demo", np.linspace(0, 1, 5), np.array([0.7, 2.0]),
        ...                          np.ones((5, 2)), np.full((5, 2), 1e-3), np.zeros((5, 3)))
        >>> obs.n_time, obs.n_wavelength
        (5, 2)
    """

    planet_id: str
    time_h: NDArray[np.float64]
    wavelength: NDArray[np.float64]
    flux: NDArray[np.float64]
    flux_err: NDArray[np.float64]
    centroid: NDArray[np.float64]
    star: dict[str, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n_t, n_wl = self.time_h.size, self.wavelength.size
        for name in ("flux", "flux_err"):
            arr = getattr(self, name)
            if arr.shape != (n_t, n_wl):
                raise InvalidSpectrumError(
                    f"planet {self.planet_id}: {name} has shape {arr.shape}, expected "
                    f"({n_t}, {n_wl}) = (time bins, wavelength bins)"
                )
        if self.centroid.shape[0] != n_t:
            raise InvalidSpectrumError(
                f"planet {self.planet_id}: centroid has {self.centroid.shape[0]} rows for "
                f"{n_t} time bins"
            )

    @property
    def n_time(self) -> int:
        """Number of time bins."""
        return int(self.time_h.size)

    @property
    def n_wavelength(self) -> int:
        """Number of wavelength channels (FGS1 + AIRS-CH0)."""
        return int(self.wavelength.size)

    @property
    def white(self) -> NDArray[np.float64]:
        """The AIRS-CH0 white light curve: the sum of the spectral channels."""
        return np.asarray(self.flux[:, 1:].sum(axis=1), dtype=np.float64)

    def check_light(self) -> None:
        """Refuse light curves no depth can be measured from: a time, flux or flux error that
        is NaN or infinite, or a channel without light (median flux <= 0: all its pixels
        masked, or a dead column). Normalising such a channel leaves a constant the transit
        fits exactly, with a sigma of 0.

        Raises:
            InvalidSpectrumError: naming the planet, the first bad channel (index and
                wavelength) and what is wrong with it.

        Example:
            >>> import numpy as np
            >>> obs = TransitObservation("5", np.linspace(0, 1, 4), np.array([0.7, 2.0, 2.1]),
            ...                          np.ones((4, 3)), np.full((4, 3), 1e-3), np.zeros((4, 3)))
            >>> obs.check_light()                       # fine: returns None
            >>> obs.flux[:, 2] = 0.0
            >>> obs.check_light()  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            atmospec.errors.InvalidSpectrumError: planet 5: channel 2 (2.1 um) has no light ...
        """
        if not np.all(np.isfinite(self.time_h)):
            raise InvalidSpectrumError(f"planet {self.planet_id}: a time is NaN or infinite")
        for name in ("flux", "flux_err"):
            bad = ~np.isfinite(getattr(self, name))
            if bad.any():
                k = int(np.flatnonzero(bad.any(axis=0))[0])
                raise InvalidSpectrumError(
                    f"planet {self.planet_id}: {int(bad.any(axis=0).sum())} channel(s) have NaN "
                    f"or infinite {name}, the first channel {k} ({self.wavelength[k]:.4g} um) "
                    f"in {int(bad[:, k].sum())} of {self.n_time} time bins"
                )
        dark = np.flatnonzero(~(np.median(self.flux, axis=0) > 0))
        if dark.size:
            k = int(dark[0])
            raise InvalidSpectrumError(
                f"planet {self.planet_id}: channel {k} ({self.wavelength[k]:.4g} um) has no "
                f"light (median flux {float(np.median(self.flux[:, k])):.3g}; "
                f"{dark.size} such channel(s)): every pixel of it masked or dead?"
            )

    def normalized(self) -> TransitObservation:
        """A copy with every channel divided by its median (errors scaled alike)."""
        med = np.median(self.flux, axis=0)
        med = np.where(med == 0, 1.0, med)
        return replace(self, flux=self.flux / med, flux_err=self.flux_err / np.abs(med))

    def __repr__(self) -> str:
        return (
            f"TransitObservation(planet {self.planet_id}: {self.n_time} time bins x "
            f"{self.n_wavelength} channels, {self.wavelength.min():.2f}-"
            f"{self.wavelength.max():.2f} um)"
        )
