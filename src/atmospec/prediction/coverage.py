"""Coverage policy: put an observed spectrum on a model's wavelength axis, refuse or mask gaps."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, get_args

import numpy as np
from numpy.typing import ArrayLike, NDArray

from atmospec.errors import CoverageError, InvalidSpectrumError
from atmospec.io.flux_density import MODEL_FLUX_UNIT
from atmospec.resolution import SPEX_PRISM_MIN_R, stated_resolution, to_model_resolution

if TYPE_CHECKING:
    from atmospec.spectrum import Spectrum

__all__ = [
    "ModelInput",
    "CoveragePolicy",
    "POLICIES",
    "prepare_input",
    "sampling_resolution",
    "MODEL_FLUX_UNIT",
    "MIN_BIN_FILL",
    "SPEX_PRISM_MIN_R",
    "min_resolution_of",
]

CoveragePolicy = Literal["gaps", "refuse", "mask"]
"""``gaps`` (the default): mask the holes between valid pixels, refuse bins beyond them (beyond
the spectrum's range, or on invalid pixels at one of its ends); ``refuse``: refuse both;
``mask``: mask both."""

POLICIES: tuple[str, ...] = get_args(CoveragePolicy)

MIN_BIN_FILL: float = 0.5
"""A model bin is usable when valid data pixels fill at least this fraction of its width."""

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


def min_resolution_of(grid: str | None) -> float | None:
    """The resolving power of the spectra a model of ``grid`` describes: the SpeX prism's
    lowest (:data:`SPEX_PRISM_MIN_R`) for a built-in grid, None (unknown) for any other.

    Example:
        >>> min_resolution_of("dback24"), min_resolution_of("runs/my_grid.h5")
        (75.0, None)
    """
    from atmospec.grids import BUILTIN_GRIDS

    return SPEX_PRISM_MIN_R if grid in BUILTIN_GRIDS else None


@dataclass
class ModelInput:
    """One spectrum resampled onto a model's wavelength axis, ready for a network.

    Attributes:
        source: file path or library key (for messages and tables).
        name: short label.
        flux: (n_wave,) flux on the model axis, divided by its median over usable bins; masked
            bins hold values interpolated from their neighbours (never NaN).
        sigma: (n_wave,) 1-sigma uncertainties on the same scale; ``inf`` on masked bins (the
            network reads them as "no information").
        masked: (n_wave,) True for bins the spectrum does not cover (coverage policy "mask").
        scale: the factor the resampled flux was divided by.
        notes: what was done to the spectrum (unit conversion, masking, assumed errors).
        spectrum: the spectrum as used (flux unit converted, assumed errors filled in).
        sampling_resolution: median lambda / dlambda of the spectrum's valid pixels over
            the model's range (:func:`sampling_resolution`).
        low_resolution: the spectrum resolves less than the model's resolution (sampled too
            coarsely, or so stated; a note says what that does; see ``min_resolution`` of
            :func:`prepare_input`).

    Example:
        >>> inp = ModelInput("a.fits", "a", np.array([1.0, 2.0, 3.0, 1.0]),
        ...                  np.array([0.1, 0.1, 0.1, np.inf]), np.arange(4) == 3, 1.0)
        >>> inp.masked_fraction, round(inp.snr, 1)
        (0.25, 20.0)
    """

    source: str
    name: str
    flux: FloatArray
    sigma: FloatArray
    masked: BoolArray
    scale: float
    notes: list[str] = field(default_factory=list)
    spectrum: Spectrum | None = None
    sampling_resolution: float = float("nan")
    low_resolution: bool = False

    @property
    def masked_fraction(self) -> float:
        """Fraction of the model's bins that are masked."""
        return float(self.masked.mean())

    @property
    def snr(self) -> float:
        """Median S/N per model bin over the usable bins."""
        good = ~self.masked
        return float(np.median(self.flux[good] / self.sigma[good]))


def _ranges(wave: FloatArray, sel: BoolArray) -> str:
    """The runs of ``sel`` on ``wave`` in words (a single bin as one wavelength).

    Example:
        >>> w = np.linspace(1.0, 2.0, 11)
        >>> _ranges(w, (w > 1.05) & (w < 1.35) | (w == 1.5) | (w > 1.85))
        '1.100-1.300 um, 1.500 um, 1.900-2.000 um'
        >>> _ranges(w, np.arange(11) % 2 == 0)
        '1.000 um, 1.200 um, 1.400 um, 1.600 um, 1.800 um, 2.000 um'
        >>> _ranges(np.linspace(1.0, 2.0, 21), np.arange(21) % 2 == 0)
        '1.000 um, 1.100 um, 1.200 um, 1.300 um, 1.400 um, 1.500 um and 5 more up to 2.000 um'
    """
    idx = np.flatnonzero(sel)
    if idx.size == 0:
        return ""
    runs = np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1)
    text = ", ".join(
        f"{wave[r[0]]:.3f} um" if r.size == 1 else f"{wave[r[0]]:.3f}-{wave[r[-1]]:.3f} um"
        for r in runs[:6]
    )
    more = f" and {len(runs) - 6} more up to {wave[runs[-1][-1]]:.3f} um" if len(runs) > 6 else ""
    return text + more


def sampling_resolution(pixels: ArrayLike, lo: float, hi: float) -> float:
    """Median ``lambda / dlambda`` of the ``pixels`` (centres, um) between ``lo`` and ``hi``
    (NaN when fewer than two fall there): an upper bound on twice the resolving power.

    Example:
        >>> import numpy as np
        >>> w = np.exp(np.linspace(np.log(1.0), np.log(2.0), 70))  # 100 pixels per e-fold
        >>> round(sampling_resolution(w, 1.0, 2.0))
        100
    """
    from atmospec.transforms import bin_edges

    w = np.asarray(pixels, dtype=np.float64)
    if w.size < 2:
        return float("nan")
    inside = (w >= lo) & (w <= hi)
    if inside.sum() < 2:
        return float("nan")
    return float(np.median(w[inside] / np.diff(bin_edges(w))[inside]))


def _low_resolution_note(
    sampling: float, min_resolution: float, model: str, declared: float | None = None
) -> str:
    if declared is not None and declared < sampling / 2:
        what = f"its stated resolving power R {declared:g} is"
    else:
        what = (
            f"pixels at lambda/dlambda {sampling:.0f}: the spectrum resolves at most R "
            f"{sampling / 2:.0f},"
        )
    return (
        f"{what} coarser than the R >= {min_resolution:.0f} {model} was built "
        "for, so its features are broader than the models' (a learned model's answers are "
        "biased, log g most) and each pixel feeds several bins with the same noise (their "
        "errors are correlated: the intervals are too narrow). A chi-square fit on the data's "
        "own pixels (atmospec fit, and each grid the default prediction answers by chi-square) "
        + (
            f"compares it with the models smoothed to R {declared:g}"
            if declared is not None and declared < min_resolution
            else "averages each model over each pixel, and with the spectrum's resolving power "
            "stated (--resolution) it compares it with the models smoothed to that"
        )
    )


def _to_model_units(spectrum: Spectrum, notes: list[str]) -> Spectrum:
    """Normalised flux passes; F_lambda / F_nu are converted to F_lambda; anything else fails
    (:func:`atmospec.io.flux_density.as_flux_lambda`, whose notes are added)."""
    from atmospec.io.flux_density import as_flux_lambda

    out, said = as_flux_lambda(spectrum, MODEL_FLUX_UNIT)
    notes.extend(said)
    return out


def _the(model: str) -> str:
    """``model`` with one leading "the" ("model X" -> "the model X"; "the model" stays).

    Example:
        >>> _the("model dback24-spex"), _the("the model")
        ('the model dback24-spex', 'the model')
    """
    return model if model.startswith("the ") else f"the {model}"


def _check_wavelength_units(spectrum: Spectrum, wave: FloatArray, model: str) -> None:
    lo, hi = float(spectrum.wavelength[0]), float(spectrum.wavelength[-1])
    if hi >= wave[0] and lo <= wave[-1]:
        return
    from atmospec.io.units import unit_slip_error

    axis = f"{_the(model)} axis {wave[0]:.3f}-{wave[-1]:.3f} um"
    slip = unit_slip_error(spectrum.source, lo, hi, float(wave[0]), float(wave[-1]), axis)
    if slip is not None:
        raise slip
    from atmospec.resolution import highres_hint

    fine = highres_hint(spectrum.wavelength)
    raise CoverageError(
        f"{spectrum.source}: the spectrum ({lo:.4g}-{hi:.4g} um) does not overlap {_the(model)} "
        f"axis ({wave[0]:.3f}-{wave[-1]:.3f} um); "
        + (fine or "use a model trained for this wavelength range")
    )


def _uncertainty(spectrum: Spectrum, assume_snr: float | None, notes: list[str]) -> FloatArray:
    flux = spectrum.flux
    unc = spectrum.uncertainty
    if unc is not None and assume_snr is None:
        usable = ~spectrum.mask & np.isfinite(flux)
        u = unc[usable]
        bad = ~np.isfinite(u) | (u <= 0)
        if u.size and bad.mean() > 0.5:
            n_zero = int(np.sum(np.isfinite(u) & (u <= 0)))
            n_nan = int(np.sum(~np.isfinite(u)))
            raise InvalidSpectrumError(
                f"{spectrum.source}: {int(bad.sum())} of {u.size} uncertainties are zero, "
                f"negative or missing ({n_zero} zero/negative, {n_nan} NaN); prediction intervals "
                "need 1-sigma errors per pixel. Provide the error column, or state a typical "
                "S/N with assume_snr= (CLI --assume-snr)"
            )
        return np.asarray(unc, dtype=np.float64)
    if assume_snr is None:
        from atmospec.io.error_columns import snr_hint

        raise InvalidSpectrumError(
            f"{spectrum.source}: the spectrum has no uncertainties; prediction intervals need "
            "1-sigma errors per pixel (Monte Carlo over the flux errors). Provide them "
            "(Spectrum(..., uncertainty=...), an error column in the file), or state a typical "
            "S/N with assume_snr= (CLI --assume-snr)" + snr_hint(spectrum.meta)
        )
    sigma, note = assumed_uncertainty(spectrum, assume_snr)
    notes.append(note)
    return sigma


def assumed_uncertainty(spectrum: Spectrum, assume_snr: float) -> tuple[FloatArray, str]:
    """A constant 1-sigma error ``median |flux| / assume_snr`` on every pixel (for a spectrum
    without usable errors), and the note that says so.

    Example:
        >>> from atmospec.spectrum import Spectrum
        >>> sigma, note = assumed_uncertainty(Spectrum([1.0, 2.0, 3.0], [2.0, 4.0, 6.0]), 20)
        >>> sigma.tolist(), note
        ([0.2, 0.2, 0.2], 'uncertainties assumed: constant sigma = median |flux| / 20 (assume_snr)')
    """
    if not np.isfinite(assume_snr) or assume_snr <= 0:
        raise ValueError(f"assume_snr must be a positive number, got {assume_snr!r}")
    flux = spectrum.flux
    good = ~spectrum.mask & np.isfinite(flux)
    level = float(np.median(np.abs(flux[good]))) / float(assume_snr)
    unusable = spectrum.meta.get("errors_unusable")
    note = (
        f"uncertainties assumed: constant sigma = median |flux| / {assume_snr:g} (assume_snr)"
        + (f"; the file's error column was not used ({unusable})" if unusable else "")
    )
    return np.full(flux.shape, level), note


def prepare_input(
    spectrum: Spectrum,
    wavelength: ArrayLike,
    *,
    policy: CoveragePolicy = "gaps",
    max_masked_fraction: float = 0.5,
    assume_snr: float | None = None,
    model: str = "the model",
    min_resolution: float | None = None,
    model_resolution: float | None = None,
) -> ModelInput:
    """Resample ``spectrum`` onto a model's ``wavelength`` axis under a coverage policy.

    Every data pixel that is masked, has a non-finite flux, or a zero, negative or missing
    uncertainty is invalid. Each model bin receives the flux-conserving (spectres) average of
    the valid pixels inside it, with propagated errors; a bin is usable when the spectrum
    covers it wholly and valid pixels fill at least :data:`MIN_BIN_FILL` of it.

    Policies for unusable bins:

    * ``"gaps"`` (default): mask the bins that invalid pixels between valid ones leave empty
      (a telluric band set to NaN, flagged pixels, zero errors), as ``"mask"`` does and as
      the chi-square fit drops them, and say so in the notes; refuse bins beyond the valid
      pixels' span (beyond the spectrum's range, or on a run of invalid pixels at one of its
      ends: the model would be read where there are no data at all).
    * ``"refuse"``: raise :class:`~atmospec.errors.CoverageError` (bins outside the
      spectrum's range) or :class:`~atmospec.errors.InvalidSpectrumError` (NaN fluxes, zero or
      missing errors inside it), naming the wavelength ranges.
    * ``"mask"``: mark them masked (flux interpolated from neighbours, sigma infinite, so the
      network is told they carry no information; NaN never reaches it), up to
      ``max_masked_fraction`` of the bins.

    Units: wavelengths must be micron (a spectrum whose range only overlaps the model after
    an Å / nm / cm / m conversion is refused with that hint); flux may be normalised (no
    unit), F_lambda or F_nu (converted to F_lambda, noted); other units are refused.

    Args:
        spectrum: the observed spectrum.
        wavelength: the model's axis (``estimator.wavelength_``), micron.
        policy: ``"gaps"``, ``"refuse"`` or ``"mask"``.
        max_masked_fraction: with ``"gaps"`` or ``"mask"``, refuse spectra missing more of
            the axis.
        assume_snr: when the spectrum has no errors, assume this constant S/N (noted).
        model: model name used in messages.
        min_resolution: the resolving power of the spectra the model describes (None:
            unknown). A spectrum sampled below twice it, or whose stated resolving power
            (:func:`atmospec.resolution.stated_resolution`) is below it, is noted as coarser
            (:data:`SPEX_PRISM_MIN_R` for the built-in grids).
        model_resolution: the resolving power of the model's spectra (None: unknown). A
            spectrum that resolves more is first smoothed to it
            (:func:`atmospec.resolution.to_model_resolution`, noted);
            :data:`atmospec.resolution.SPEX_PRISM_R` for the built-in grids.

    Example:
        >>> import numpy as np
        >>> from atmospec.spectrum import Spectrum
        >>> w = np.linspace(1.0, 2.0, 201)
        >>> s = Spectrum(w, np.ones(201), np.full(201, 0.05), name="flat")
        >>> m = prepare_input(s, np.linspace(1.1, 1.9, 20))
        >>> round(float(m.flux.mean()), 6), bool(np.all(m.sigma < 0.05)), bool(m.masked.any())
        (1.0, True, False)
        >>> prepare_input(s, np.linspace(1.5, 2.5, 20))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        atmospec.errors.CoverageError: flat: the spectrum covers 1.000-2.000 um but the model reads 1.474-2.526 um: 10 of 20 bins (2.026-2.500 um) lie outside it...
    """
    from atmospec.transforms import bin_edges, check_coverage, resampling_matrix

    if policy not in POLICIES:
        raise ValueError(f"coverage policy must be 'gaps', 'refuse' or 'mask', not {policy!r}")
    wave = np.asarray(wavelength, dtype=np.float64)
    notes: list[str] = []
    _check_wavelength_units(spectrum, wave, model)
    spectrum = _to_model_units(spectrum, notes)
    src = spectrum.source
    unc = _uncertainty(spectrum, assume_snr, notes)
    ok = ~spectrum.mask & np.isfinite(spectrum.flux) & np.isfinite(unc) & (unc > 0)
    sampling = sampling_resolution(spectrum.wavelength[ok], float(wave[0]), float(wave[-1]))
    if model_resolution is not None:
        given = spectrum if spectrum.uncertainty is unc else spectrum.copy(uncertainty=unc)
        smoothed, said = to_model_resolution(given, model_resolution, axis=wave)
        if said:
            spectrum, unc = smoothed, np.asarray(smoothed.uncertainty, dtype=np.float64)
            notes.extend(said)
    flux = spectrum.flux
    nan_flux = ~spectrum.mask & ~np.isfinite(flux)
    bad_unc = ~spectrum.mask & np.isfinite(flux) & (~np.isfinite(unc) | (unc <= 0))
    valid = ~spectrum.mask & ~nan_flux & ~bad_unc
    if valid.sum() < 2:
        raise InvalidSpectrumError(f"{src}: fewer than 2 valid pixels ({int(valid.sum())})")

    W, covered = resampling_matrix(wave, spectrum.wavelength)
    Wv = W[:, np.flatnonzero(valid)]
    fill = np.asarray(Wv.sum(axis=1)).ravel()
    usable = covered & (fill >= MIN_BIN_FILL)
    safe = np.where(fill > 0, fill, 1.0)
    f_v = np.where(valid, flux, 0.0)[valid]
    u_v = np.where(valid, unc, 0.0)[valid]
    out_flux = np.asarray(Wv @ f_v).ravel() / safe
    out_var = np.asarray(Wv.multiply(Wv) @ (u_v**2)).ravel() / safe**2

    if not usable.all():
        edges = bin_edges(wave)
        span = (
            f"the spectrum covers {spectrum.wavelength[0]:.3f}-{spectrum.wavelength[-1]:.3f} um "
            f"but {model} reads {edges[0]:.3f}-{edges[-1]:.3f} um"
        )
        outside = ~covered
        gap = covered & ~usable
        told = "(the network is told they are missing, never given NaN)"
        gaps_why = (
            " (the default coverage 'gaps' masks holes between valid pixels, never beyond them)"
        )
        frac = float((~usable).mean())  # what masking every bin without data would mask
        use_mask = (
            f"; use coverage='mask' (CLI --coverage mask) to mask these bins {told}, or a model "
            "for this range"
            if frac <= max_masked_fraction
            else f"; masked, they would leave {1 - frac:.0%} of the axis (more than "
            f"{max_masked_fraction:.0%} masked is refused): `atmospec fit FILE --grid NAME` fits "
            "the pixels there are, or use a model for this range"
        )
        if outside.any() and policy != "mask":
            raise CoverageError(
                f"{src}: {span}: {int(outside.sum())} of {wave.size} bins "
                f"({_ranges(wave, outside)}) lie outside it"
                f"{gaps_why if policy == 'gaps' else ''}{use_mask}"
            )
        if policy == "gaps":
            # A run of invalid pixels at an end of the spectrum is no hole: the data stop there.
            w_valid = spectrum.wavelength[valid]
            beyond = ~check_coverage(w_valid, wave, policy="mask")
            if beyond.any():
                raise CoverageError(
                    f"{src}: its valid pixels span {w_valid[0]:.3f}-{w_valid[-1]:.3f} um (the "
                    f"pixels beyond are NaN, flagged or without errors) but {model} reads "
                    f"{edges[0]:.3f}-{edges[-1]:.3f} um: {int(beyond.sum())} of {wave.size} bins "
                    f"({_ranges(wave, beyond)}) lie beyond them{gaps_why}{use_mask}"
                )
        if policy == "refuse":
            hint = (
                "; use coverage='gaps' (CLI --coverage gaps, the default) or 'mask' to mask "
                f"these bins {told}"
            )
            # Name the cause of the gaps inside the covered range.
            gap_w = _ranges(wave, gap)
            if nan_flux.any():
                raise InvalidSpectrumError(
                    f"{src}: {int(nan_flux.sum())} pixels have NaN or infinite flux "
                    f"({_ranges(spectrum.wavelength, nan_flux)}), leaving {int(gap.sum())} model "
                    f"bins ({gap_w}) without data{hint}"
                )
            if bad_unc.any():
                raise InvalidSpectrumError(
                    f"{src}: {int(bad_unc.sum())} pixels have zero, negative or missing "
                    f"uncertainties ({_ranges(spectrum.wavelength, bad_unc)}), leaving "
                    f"{int(gap.sum())} model bins ({gap_w}) without data{hint}"
                )
            raise CoverageError(
                f"{src}: {int(gap.sum())} model bins ({gap_w}) fall on masked pixels (NaN or "
                f"invalid values in the file, or the spectrum's mask){hint}"
            )
        if frac > max_masked_fraction:
            raise CoverageError(
                f"{src}: {span}; {int((~usable).sum())} of {wave.size} bins "
                f"({frac:.0%}) would be masked, more than max_masked_fraction = "
                f"{max_masked_fraction:.0%}; the estimate would rest on too little of the spectrum "
                "(`atmospec fit FILE --grid NAME` fits the pixels there are, with a note)"
            )
        if outside.any():
            notes.append(
                f"{int(outside.sum())} bins outside the spectrum ({_ranges(wave, outside)}) masked"
            )
        if gap.any():
            why = (
                "NaN fluxes"
                if nan_flux.any()
                else "bad uncertainties"
                if bad_unc.any()
                else ("masked pixels")
            )
            notes.append(f"{int(gap.sum())} bins on {why} ({_ranges(wave, gap)}) masked")

    idx = np.arange(wave.size)
    out_flux[~usable] = np.interp(idx[~usable], idx[usable], out_flux[usable])
    sigma = np.sqrt(out_var)
    scale = float(np.median(out_flux[usable]))
    if not np.isfinite(scale) or scale <= 0:
        raise InvalidSpectrumError(
            f"{src}: the median flux over the model's range is {scale:g}; a positive flux is "
            "needed (is the spectrum background-subtracted to zero, or in magnitudes?)"
        )
    sigma = np.where(usable, sigma / scale, np.inf)
    if np.any(sigma[usable] <= 0):
        raise InvalidSpectrumError(f"{src}: resampled uncertainties are zero on some bins")
    declared = stated_resolution(spectrum)
    resolving = min(sampling / 2, declared) if declared is not None else sampling / 2
    low = min_resolution is not None and resolving < min_resolution
    if low:
        notes.append(_low_resolution_note(sampling, float(min_resolution or 0.0), model, declared))
    return ModelInput(
        source=src,
        name=spectrum.name,
        flux=out_flux / scale,
        sigma=sigma,
        masked=~usable,
        scale=scale,
        notes=notes,
        spectrum=spectrum if spectrum.uncertainty is unc else spectrum.copy(uncertainty=unc),
        sampling_resolution=sampling,
        low_resolution=low,
    )
