"""Spectrum: the one object users hold for an observed or model spectrum."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from atmospec.errors import AtmospecError, InvalidSpectrumError, UnitError

if TYPE_CHECKING:
    import astropy.units as u
    from matplotlib.axes import Axes

__all__ = ["Spectrum", "validate_arrays", "invalid_pixels"]


def validate_arrays(
    wavelength: NDArray[np.float64],
    flux: NDArray[np.float64],
    uncertainty: NDArray[np.float64] | None,
    *,
    mask: NDArray[np.bool_] | None = None,
    source: str = "spectrum",
    require_positive_flux: bool = False,
) -> None:
    """Check the rules every spectrum obeys; raise :class:`InvalidSpectrumError` naming ``source``.

    Rules: 1-D arrays of equal length (at least 2 points); finite, strictly increasing (sorted,
    unique) wavelengths on *every* pixel; on the unmasked pixels (``mask`` True = bad): finite
    flux and, where given, finite positive uncertainties; at least 2 unmasked pixels. With
    ``require_positive_flux`` the unmasked flux must also be > 0 (model grids, log-flux
    estimators).

    Example:
        >>> import numpy as np
        >>> validate_arrays(np.array([1.0, 2.0]), np.array([1.0, 1.0]), None)
        >>> validate_arrays(np.array([2.0, 1.0]), np.array([1.0, 1.0]), None, source="a.fits")
        Traceback (most recent call last):
        ...
        atmospec.errors.InvalidSpectrumError: a.fits: wavelengths are not sorted in increasing order (first decrease at index 1: 2 -> 1)
        >>> nan = float("nan")
        >>> validate_arrays(np.array([1.0, 2.0, 3.0]), np.array([1.0, nan, 1.0]), None,
        ...                 mask=np.array([False, True, False]))  # masked NaN is allowed
    """
    if wavelength.ndim != 1 or flux.ndim != 1:
        raise InvalidSpectrumError(
            f"{source}: expected 1-D wavelength and flux, found shapes "
            f"{wavelength.shape} and {flux.shape}"
        )
    if wavelength.size != flux.size:
        raise InvalidSpectrumError(
            f"{source}: wavelength has {wavelength.size} points but flux has {flux.size}"
        )
    if wavelength.size < 2:
        raise InvalidSpectrumError(
            f"{source}: a spectrum needs at least 2 points, found {flux.size}"
        )
    if uncertainty is not None and uncertainty.shape != flux.shape:
        raise InvalidSpectrumError(
            f"{source}: uncertainty has shape {uncertainty.shape}, flux {flux.shape}"
        )
    if mask is not None and mask.shape != flux.shape:
        raise InvalidSpectrumError(f"{source}: mask has shape {mask.shape}, flux {flux.shape}")
    bad = ~np.isfinite(wavelength)
    if bad.any():
        raise InvalidSpectrumError(
            f"{source}: {int(bad.sum())} wavelength value(s) are NaN or infinite "
            f"(first at index {int(np.argmax(bad))})"
        )
    step = np.diff(wavelength)
    if (step == 0).any():
        i = int(np.argmax(step == 0))
        raise InvalidSpectrumError(
            f"{source}: wavelengths are not unique ({wavelength[i]:g} repeats at index {i + 1})"
        )
    if (step < 0).any():
        i = int(np.argmax(step < 0))
        raise InvalidSpectrumError(
            f"{source}: wavelengths are not sorted in increasing order (first decrease at index "
            f"{i + 1}: {wavelength[i]:g} -> {wavelength[i + 1]:g})"
        )
    good = np.ones(flux.shape, dtype=bool) if mask is None else ~mask
    if good.sum() < 2:
        raise InvalidSpectrumError(
            f"{source}: fewer than 2 unmasked pixels ({int(good.sum())} of {good.size})"
        )
    wave, flux = wavelength[good], flux[good]
    bad = ~np.isfinite(flux)
    if bad.any():
        raise InvalidSpectrumError(
            f"{source}: {int(bad.sum())} flux value(s) are NaN or infinite (first at "
            f"{wave[int(np.argmax(bad))]:g} um); remove them or mark them with a mask"
        )
    if require_positive_flux and (flux <= 0).any():
        i = int(np.argmax(flux <= 0))
        raise InvalidSpectrumError(
            f"{source}: {int((flux <= 0).sum())} flux value(s) are zero or negative (first "
            f"{flux[i]:g} at {wave[i]:g} um); positive flux is required here"
        )
    if uncertainty is not None:
        unc = uncertainty[good]
        bad = ~np.isfinite(unc) | (unc <= 0)
        if bad.any():
            i = int(np.argmax(bad))
            raise InvalidSpectrumError(
                f"{source}: {int(bad.sum())} uncertainty value(s) are missing, zero, negative or "
                f"NaN (first {unc[i]:g} at {wave[i]:g} um); uncertainties must be > 0"
            )


def invalid_pixels(
    flux: NDArray[np.float64], uncertainty: NDArray[np.float64] | None = None
) -> NDArray[np.bool_]:
    """The pixels :func:`validate_arrays` would reject: non-finite flux, bad uncertainties.

    Readers of archive products (SpeX library, JWST x1d) use this to *mask* such pixels, where
    NaN is the documented way of flagging them, instead of refusing the file.

    Example:
        >>> import numpy as np
        >>> invalid_pixels(np.array([1.0, np.nan, 2.0]), np.array([0.1, 0.1, -1.0])).tolist()
        [False, True, True]
    """
    bad = ~np.isfinite(flux)
    if uncertainty is not None:
        bad |= ~np.isfinite(uncertainty) | (uncertainty <= 0)
    return bad


class Spectrum:
    """An observed or model spectrum: wavelength (µm), flux, uncertainty, mask and metadata.

    Wavelengths are stored in micron; the flux keeps the unit it was given (``flux_unit``,
    an astropy unit string; ``""`` means normalised / dimensionless). ``mask`` is True where a
    pixel is *bad* and must not be used. Arrays are validated on construction: sorted, unique,
    finite wavelengths; finite flux where unmasked; positive uncertainties where given.

    Args:
        wavelength: wavelengths, in ``wave_unit`` (micron by default).
        flux: flux densities, in ``flux_unit``.
        uncertainty: 1-sigma uncertainties, same unit as flux, or None.
        mask: boolean array, True marks pixels to ignore (e.g. NaN in the file).
        meta: free metadata (source file, object name, provenance).
        flux_unit: astropy unit string of the flux.
        wave_unit: astropy unit of the given wavelengths (converted to micron).
        name: a short label used in tables and plots.

    Example:
        >>> import numpy as np
        >>> s = Spectrum([1.0, 1.5, 2.0], [2.0, 4.0, 2.0], uncertainty=[0.1, 0.1, 0.1], name="demo")
        >>> float(s.normalize().flux.max())
        1.0
        >>> Spectrum([10000.0, 20000.0], [1.0, 1.0], wave_unit="AA").wavelength
        array([1., 2.])
    """

    def __init__(
        self,
        wavelength: ArrayLike,
        flux: ArrayLike,
        uncertainty: ArrayLike | None = None,
        *,
        mask: ArrayLike | None = None,
        meta: Mapping[str, Any] | None = None,
        flux_unit: str = "",
        wave_unit: str = "um",
        name: str | None = None,
        validate: bool = True,
    ) -> None:
        wave = np.asarray(wavelength, dtype=np.float64)
        if wave_unit not in ("um", "micron"):
            wave = _to_micron(wave, wave_unit)
        self.wavelength: NDArray[np.float64] = wave
        self.flux: NDArray[np.float64] = np.asarray(flux, dtype=np.float64)
        self.uncertainty: NDArray[np.float64] | None = (
            None if uncertainty is None else np.asarray(uncertainty, dtype=np.float64)
        )
        self.mask: NDArray[np.bool_] = (
            np.zeros(self.flux.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        )
        self.meta: dict[str, Any] = dict(meta or {})
        self.flux_unit = _check_unit(flux_unit)
        self.name = name or str(self.meta.get("name", self.meta.get("source", "spectrum")))
        if validate:
            self.validate()

    # ------------------------------------------------------------------ checks
    @property
    def source(self) -> str:
        """Where the spectrum came from (file path or library key), for messages."""
        return str(self.meta.get("source", self.name))

    def validate(self, *, require_positive_flux: bool = False) -> Spectrum:
        """Check the spectrum's rules (see :func:`validate_arrays`); return self, raise if broken."""
        validate_arrays(
            self.wavelength,
            self.flux,
            self.uncertainty,
            mask=self.mask,
            source=self.source,
            require_positive_flux=require_positive_flux,
        )
        return self

    def __len__(self) -> int:
        return int(self.flux.size)

    def __repr__(self) -> str:
        unit = self.flux_unit or "normalised"
        return (
            f"Spectrum({self.name!r}, {len(self)} px, {self.wavelength[0]:.4g}-"
            f"{self.wavelength[-1]:.4g} um, flux [{unit}], masked={int(self.mask.sum())})"
        )

    # ------------------------------------------------------------- derivation
    def copy(self, **changes: Any) -> Spectrum:
        """A deep copy with some attributes replaced (``flux=``, ``meta=``, ...)."""
        new = copy.deepcopy(self)
        for key, value in changes.items():
            setattr(new, key, value)
        return new

    def with_arrays(
        self,
        wavelength: ArrayLike,
        flux: ArrayLike,
        uncertainty: ArrayLike | None = None,
        mask: ArrayLike | None = None,
        **meta: Any,
    ) -> Spectrum:
        """A new spectrum with other arrays, keeping name, unit and metadata (plus ``meta``)."""
        return Spectrum(
            wavelength,
            flux,
            uncertainty,
            mask=mask,
            meta={**self.meta, **meta},
            flux_unit=self.flux_unit,
            name=self.name,
        )

    def good(self) -> Spectrum:
        """The spectrum without its masked pixels."""
        keep = ~self.mask
        unc = None if self.uncertainty is None else self.uncertainty[keep]
        return self.with_arrays(self.wavelength[keep], self.flux[keep], unc)

    def trim(self, wmin: float, wmax: float) -> Spectrum:
        """The part of the spectrum with ``wmin <= wavelength <= wmax`` (micron)."""
        keep = (self.wavelength >= wmin) & (self.wavelength <= wmax)
        unc = None if self.uncertainty is None else self.uncertainty[keep]
        return self.with_arrays(self.wavelength[keep], self.flux[keep], unc, mask=self.mask[keep])

    def normalize(self, how: str = "max", *, band: tuple[float, float] | None = None) -> Spectrum:
        """Divide flux (and uncertainty) by its maximum, median or mean over unmasked pixels.

        ``band`` restricts the statistic to a wavelength interval in micron. The result is
        dimensionless (``flux_unit == ""``).
        """
        sel = ~self.mask
        if band is not None:
            sel &= (self.wavelength >= band[0]) & (self.wavelength <= band[1])
        if not sel.any():
            raise InvalidSpectrumError(f"{self.source}: no unmasked pixels in band {band}")
        funcs: dict[str, Callable[[NDArray[np.float64]], Any]] = {
            "max": np.max,
            "median": np.median,
            "mean": np.mean,
        }
        if how not in funcs:
            raise ValueError(f"normalize(how={how!r}): expected one of {sorted(funcs)}")
        scale = float(funcs[how](self.flux[sel]))
        if not np.isfinite(scale) or scale <= 0:
            raise InvalidSpectrumError(
                f"{self.source}: cannot normalise by {how} = {scale:g}; flux must be positive"
            )
        unc = None if self.uncertainty is None else self.uncertainty / scale
        new = self.with_arrays(self.wavelength, self.flux / scale, unc, mask=self.mask)
        new.flux_unit = ""
        new.meta["normalisation"] = {"how": how, "band": band, "scale": scale}
        return new

    # ------------------------------------------------------------- transforms
    def resample(self, wavelength: ArrayLike, *, coverage: str = "refuse") -> Spectrum:
        """The spectrum on new wavelength bins (micron), integrated flux conserved.

        Delegates to :func:`atmospec.transforms.resample` (the spectres algorithm,
        uncertainties propagated) on the unmasked pixels. Target bins the spectrum does not
        cover raise :class:`~atmospec.errors.CoverageError` (``coverage="refuse"``) or come
        back masked (``coverage="mask"``).

        Example:
            >>> import numpy as np
            >>> s = Spectrum(np.linspace(1.0, 2.0, 101), np.full(101, 3.0), np.full(101, 0.3))
            >>> r = s.resample([1.2, 1.5, 1.8])
            >>> bool(np.allclose(r.flux, 3.0))
            True
            >>> round(float(r.uncertainty[1]), 4)  # 0.3 * sqrt(29 * 0.01**2 + 2 * 0.005**2) / 0.3
            0.0543
        """
        from atmospec.transforms import resample

        if coverage not in ("refuse", "mask"):
            raise ValueError(f"resample(coverage={coverage!r}): expected 'refuse' or 'mask'")
        new = np.asarray(wavelength, dtype=np.float64)
        src = self.good() if self.mask.any() else self
        fill = None if coverage == "refuse" else np.nan
        unc: NDArray[np.float64] | None = None
        try:
            if src.uncertainty is None:
                flux = resample(new, src.wavelength, src.flux, fill=fill)
            else:
                flux, unc = resample(new, src.wavelength, src.flux, src.uncertainty, fill=fill)
        except AtmospecError as err:
            raise type(err)(f"{self.source}: {err}") from None
        return self.with_arrays(new, flux, unc, mask=~np.isfinite(flux))

    def convolve(self, resolution: float | ArrayLike, *, r_in: float | None = None) -> Spectrum:
        """The spectrum smoothed by a Gaussian line-spread function to resolving power
        ``resolution`` (lambda / FWHM).

        Delegates to :func:`atmospec.transforms.convolve_to_resolution` on the unmasked
        pixels; ``r_in`` is the spectrum's own resolving power (None: a model at infinite
        resolution). ``meta["resolution"]`` states the result's: the number, or for a
        per-pixel ``resolution`` the curve ``{"wavelength": ..., "R": ...}``
        (:func:`atmospec.resolution.resolution_at`). Uncertainties are kept as they are (smoothing correlates the noise of
        neighbouring pixels; it does not lower it per pixel in a way one sigma can say).

        Example:
            >>> import numpy as np
            >>> w = np.linspace(1.0, 1.1, 2001)
            >>> s = Spectrum(w, 1.0 - 0.5 * np.exp(-0.5 * ((w - 1.05) / 1e-5) ** 2))
            >>> bool(s.convolve(1000.0).flux.min() > 0.95)  # a narrow line is washed out
            True
        """
        from atmospec.transforms import convolve_to_resolution

        src = self.good() if self.mask.any() else self
        flux = convolve_to_resolution(src.wavelength, src.flux, resolution, r_in)
        r = np.asarray(resolution, dtype=np.float64)  # one R, or a curve (true when cut)
        curve = {"wavelength": src.wavelength.tolist(), "R": r.tolist()} if r.ndim else None
        stated = float(r) if curve is None else curve
        return src.with_arrays(src.wavelength, flux, src.uncertainty, resolution=stated)

    def add_noise(
        self,
        snr: float | None = None,
        sigma: float | ArrayLike | None = None,
        *,
        rng: np.random.Generator | int,
    ) -> Spectrum:
        """A noisy copy: Gaussian noise at a median signal-to-noise ratio ``snr`` or with a
        per-pixel ``sigma`` (give one), from the explicit ``rng`` (a Generator or a seed).

        Delegates to :func:`atmospec.transforms.add_noise`. The new uncertainty is the old
        one and the added sigma in quadrature (just the added sigma for a noise-free input).

        Example:
            >>> import numpy as np
            >>> s = Spectrum(np.linspace(1.0, 2.0, 4000), np.ones(4000))
            >>> noisy = s.add_noise(snr=50, rng=0)
            >>> float(noisy.uncertainty[0]), bool(abs(noisy.snr / 50 - 1) < 0.1)
            (0.02, True)
        """
        from atmospec.transforms import add_noise

        flux, sig = add_noise(self.flux, snr, sigma, rng=rng)
        unc = sig if self.uncertainty is None else np.sqrt(self.uncertainty**2 + sig**2)
        return self.with_arrays(self.wavelength, flux, unc, mask=self.mask)

    @property
    def snr(self) -> float:
        """Median signal-to-noise ratio over unmasked pixels (NaN without uncertainties)."""
        if self.uncertainty is None:
            return float("nan")
        good = ~self.mask
        return float(np.median(self.flux[good] / self.uncertainty[good]))

    # ------------------------------------------------------------------ units
    def quantities(self) -> tuple[u.Quantity, u.Quantity, u.Quantity | None]:
        """Wavelength, flux and uncertainty as astropy quantities."""
        import astropy.units as u

        unit = u.Unit(self.flux_unit) if self.flux_unit else u.dimensionless_unscaled
        unc = None if self.uncertainty is None else self.uncertainty * unit
        return self.wavelength * u.um, self.flux * unit, unc

    def to_flux_unit(self, unit: str) -> Spectrum:
        """Convert the flux to another unit, F_λ ↔ F_ν included (astropy spectral density).

        Example:
            >>> s = Spectrum([1.0, 2.0], [1.0, 1.0], flux_unit="W m-2 um-1")
            >>> f = s.to_flux_unit("Jy")
            >>> f"{f.flux[0]:.4e}"  # F_nu = F_lambda lambda^2 / c = 1e6 W/m2/m (1e-6 m)^2 / c
            '3.3356e+11'
        """
        import astropy.units as u

        if not self.flux_unit:
            raise UnitError(
                f"{self.source}: the flux is normalised (no unit); it cannot be converted to {unit}"
            )
        try:
            target = u.Unit(unit)
            wave = self.wavelength * u.um
            equiv = u.spectral_density(wave)
            flux = (self.flux * u.Unit(self.flux_unit)).to(target, equivalencies=equiv)
            unc = None
            if self.uncertainty is not None:
                unc = (self.uncertainty * u.Unit(self.flux_unit)).to(target, equivalencies=equiv)
        except (u.UnitsError, ValueError) as err:
            raise UnitError(
                f"{self.source}: cannot convert flux from {self.flux_unit!r} to {unit!r}: {err}"
            ) from err
        new = self.with_arrays(
            self.wavelength, flux.value, None if unc is None else unc.value, mask=self.mask
        )
        new.flux_unit = target.to_string()
        return new

    # --------------------------------------------------------- I/O and interop
    @classmethod
    def read(cls, path: str | Path, **kwargs: Any) -> Spectrum:
        """Read a spectrum file, detecting its format (see :func:`atmospec.io.read`)."""
        from atmospec.io import read

        return read(path, **kwargs)

    def write(self, path: str | Path, **kwargs: Any) -> Path:
        """Write to ECSV or FITS by extension, atomically (see :func:`atmospec.io.write`)."""
        from atmospec.io import write

        return write(self, path, **kwargs)

    def to_specutils(self) -> Any:
        """This spectrum as a ``specutils.Spectrum`` (``Spectrum1D`` before specutils 2)."""
        from atmospec.io.specutils_bridge import to_specutils

        return to_specutils(self)

    @classmethod
    def from_specutils(cls, spec: Any, **kwargs: Any) -> Spectrum:
        """Build a Spectrum from a ``specutils`` spectrum."""
        from atmospec.io.specutils_bridge import from_specutils

        return from_specutils(spec, **kwargs)

    def plot(self, ax: Axes | None = None, **kwargs: Any) -> Axes:
        """Draw flux (with a 1-sigma band when uncertainties exist) against wavelength."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(8, 4))
        good = ~self.mask
        line = ax.plot(self.wavelength[good], self.flux[good], label=self.name, **kwargs)[0]
        if self.uncertainty is not None:
            ax.fill_between(
                self.wavelength[good],
                (self.flux - self.uncertainty)[good],
                (self.flux + self.uncertainty)[good],
                color=line.get_color(),
                alpha=0.25,
                lw=0,
            )
        ax.set_xlabel("wavelength [µm]")
        ax.set_ylabel(f"flux [{self.flux_unit}]" if self.flux_unit else "normalised flux")
        return ax


def _check_unit(unit: str) -> str:
    if not unit:
        return ""
    import astropy.units as u

    try:
        return u.Unit(unit).to_string()
    except ValueError as err:
        raise UnitError(f"unknown flux unit {unit!r}: {err}") from err


def _to_micron(wave: NDArray[np.float64], unit: str) -> NDArray[np.float64]:
    import astropy.units as u

    try:
        q = (wave * u.Unit(unit)).to(u.um, equivalencies=u.spectral())
    except (ValueError, u.UnitsError) as err:
        raise UnitError(
            f"wavelength unit {unit!r} cannot be converted to micron: {err}; "
            "give a length unit such as 'AA', 'nm' or 'um'"
        ) from err
    return np.asarray(q.value, dtype=np.float64)
