"""Spectra that resolve more than the models: smoothed to the models' resolving power.

The built-in grids' models describe SpeX prism spectra (resolving power about 120 with the
0.5 arcsec slit most of the library used). A spectrum from an instrument of higher resolution
(SpeX SXD, X-shooter, FIRE, GNIRS, NIRSpec gratings ...) binned onto the models' axis keeps
line depths and band edges sharper than any model has (binning alone is a boxcar one bin
wide, R ~ 470 on the prism's pixels), which biases every answer. Such a spectrum is first
binned onto a fine logarithmic grid and smoothed there with a Gaussian line-spread function
to the models' resolving power, as the instrument of the models would have seen it.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

if TYPE_CHECKING:
    from scipy import sparse

    from atmospec.spectrum import Spectrum

__all__ = [
    "SPEX_PRISM_R",
    "SPEX_PRISM_MAX_R",
    "SPEX_PRISM_MIN_R",
    "FINE_SAMPLING",
    "resolution_at",
    "stated_resolution",
    "read_resolution",
    "check_resolution",
    "pixel_sampling",
    "HIGHRES_SAMPLING",
    "highres_hint",
    "to_model_resolution",
    "model_smoothing",
]

log = logging.getLogger(__name__)

SPEX_PRISM_R: float = 120.0
"""Resolving power of SpeX prism spectra with the 0.5 arcsec slit (the library's usual
set-up): the resolution the built-in grids' spectra and the models trained on them have."""

SPEX_PRISM_MAX_R: float = 250.0
"""The sharpest SpeX prism spectra (0.3 arcsec slit). A spectrum stated to resolve more is
smoothed to :data:`SPEX_PRISM_R`; one within the prism's range is left as it is, as the
library spectra the models of mismatch were learned from are."""

SPEX_PRISM_MIN_R: float = 75.0
"""The lowest resolving power of the SpeX prism (0.8 arcsec slit; about 120 with the 0.5
arcsec slit the built-in grids' spectra have, :data:`SPEX_PRISM_R`, and about 200 with the
0.3 arcsec slit). Spectra of R 75-250 are what the models and their models of mismatch were
learned on; a spectrum stated to resolve less gets the models smoothed to it on the
chi-square routes (:func:`model_smoothing`). A spectrum sampled at lambda / dlambda below
twice this (two pixels per resolution element) resolves less than any SpeX prism spectrum
too: library spectra sample at 410-710 over 0.90-2.45 um (median 470)."""

FINE_SAMPLING: float = 1000.0
"""Median lambda / dlambda per pixel above which a spectrum with no stated resolution is
taken to come from an instrument of higher resolution than the prism (SpeX prism files
sample at 410-710; SXD at ~3000, X-shooter and FIRE above 10000)."""

_OVERSAMPLE = 10.0  # pixels per model FWHM on the grid the smoothing works on
_MIN_FILL = 0.5  # a fine-grid bin is data when valid pixels fill half of it
_MIN_KERNEL = 0.8  # ... and is kept when data fill 80 % of its smoothing kernel
_FWHM_TO_SIGMA = 1.0 / np.sqrt(8.0 * np.log(2.0))
_BOX_FWHM2 = 8.0 * np.log(2.0) / 12.0  # FWHM^2 of a boxcar of unit width, as a Gaussian


def resolution_at(spectrum: Spectrum, wavelength: ArrayLike) -> NDArray[np.float64] | None:
    """The resolving power ``spectrum.meta["resolution"]`` states, at ``wavelength`` (micron).

    The statement is one positive number (``--resolution 40``; Spextool's ``RES`` card), a
    curve ``{"wavelength": [...], "R": [...]}`` (micron; ``--resolution FILE`` of an
    instrument whose R varies, as JWST/NIRSpec PRISM's does), interpolated and held constant
    beyond its ends, or one value per pixel of the spectrum (what
    :meth:`~atmospec.spectrum.Spectrum.convolve` writes for an array). None when nothing
    usable is stated.

    Example:
        >>> import numpy as np
        >>> from atmospec.spectrum import Spectrum
        >>> curve = {"wavelength": [1.0, 2.0], "R": [30.0, 60.0]}
        >>> s = Spectrum(np.linspace(0.9, 2.4, 50), np.ones(50), meta={"resolution": curve})
        >>> resolution_at(s, [0.8, 1.5, 2.5]).tolist()
        [30.0, 45.0, 60.0]
    """
    w = np.asarray(wavelength, dtype=np.float64)
    value = spectrum.meta.get("resolution")
    if isinstance(value, dict) and "wavelength" in value and "R" in value:
        cw = np.asarray(value["wavelength"], dtype=np.float64).ravel()
        cr = np.asarray(value["R"], dtype=np.float64).ravel()
    elif (
        isinstance(value, (list, tuple, np.ndarray)) and np.size(value) == spectrum.wavelength.size
    ):
        cw = np.asarray(spectrum.wavelength, dtype=np.float64)
        cr = np.asarray(value, dtype=np.float64).ravel()
    else:
        try:
            r = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return None
        return np.full(w.shape, r) if np.isfinite(r) and r > 0 else None
    ok = np.isfinite(cw) & np.isfinite(cr) & (cr > 0)
    if cw.size != cr.size or ok.sum() < 2:
        return None
    order = np.argsort(cw[ok])
    return np.interp(w, cw[ok][order], cr[ok][order])


def stated_resolution(spectrum: Spectrum) -> float | None:
    """The resolving power ``spectrum.meta["resolution"]`` states (set by
    :meth:`~atmospec.spectrum.Spectrum.convolve`, ``--resolution`` on the command line, or a
    reader), as one number: the number stated, or the lowest of a stated curve over the
    spectrum's pixels (the coarsest it is stated to resolve; :func:`resolution_at`). None
    when nothing usable is stated.

    Example:
        >>> import numpy as np
        >>> from atmospec.spectrum import Spectrum
        >>> s = Spectrum(np.linspace(1.0, 2.0, 50), np.ones(50), meta={"resolution": 40})
        >>> stated_resolution(s), stated_resolution(Spectrum(s.wavelength, s.flux))
        (40.0, None)
        >>> curve = {"wavelength": [1.0, 2.0], "R": [30.0, 60.0]}
        >>> stated_resolution(Spectrum(s.wavelength, s.flux, meta={"resolution": curve}))
        30.0
    """
    r = resolution_at(spectrum, spectrum.wavelength)
    return None if r is None or r.size == 0 else float(np.min(r))


def check_resolution(value: Any) -> Any:
    """``value`` when it can state a resolving power: one positive finite R, or a curve
    ``{"wavelength": [...], "R": [...]}`` of positive finite R values; else ValueError.

    Example:
        >>> check_resolution(40.0), check_resolution({"wavelength": [1.0, 2.0], "R": [30, 60]})
        (40.0, {'wavelength': [1.0, 2.0], 'R': [30, 60]})
        >>> check_resolution(-3.0)
        Traceback (most recent call last):
        ...
        ValueError: resolution must be a positive finite R, not -3.0
    """
    if isinstance(value, dict):
        w, r = value.get("wavelength"), value.get("R")
        if not w or not r or len(w) != len(r) or not all(0.0 < x < float("inf") for x in r):
            raise ValueError(
                "resolution must be one positive R or a curve {'wavelength': [...], 'R': "
                "[...]} of positive R values"
            )
    elif not 0.0 < value < float("inf"):
        raise ValueError(f"resolution must be a positive finite R, not {value}")
    return value


def read_resolution(text: str) -> float | dict[str, list[float]]:
    """``--resolution``'s value: one resolving power, or a table file of R against wavelength.

    The table (CSV / text / ECSV / FITS, as JWST's instrument dispersion files) needs a
    wavelength column (``wavelength``, ``wave``, ``lambda``; micron unless its unit says
    otherwise) and a resolving-power column (``R``, ``resolution``, ``resolving_power``);
    every R must be positive and finite. Errors name the file and the problem.

    Example:
        >>> read_resolution("40")
        40.0
        >>> import pathlib, tempfile
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "prism.csv"
        >>> _ = f.write_text("wavelength,R\\n1.0,30\\n2.0,60\\n")
        >>> read_resolution(str(f))
        {'wavelength': [1.0, 2.0], 'R': [30.0, 60.0]}
    """
    from pathlib import Path

    from atmospec.errors import FileFormatError

    try:
        number = float(text)
    except ValueError:
        number = None
    if number is not None:
        return check_resolution(number)
    if not Path(text).is_file():
        raise FileFormatError(
            f"--resolution {text!r}: neither a resolving power (a positive number) nor a file "
            "of R against wavelength"
        )
    import astropy.units as u
    from astropy.table import Table

    try:
        table = (
            Table.read(text, format="fits")
            if text.lower().endswith((".fits", ".fit"))
            else Table.read(text, format="ascii")
        )
    except Exception as err:  # noqa: BLE001 - any reader failure is the file's problem
        raise FileFormatError(
            f"{text}: cannot read a table of R against wavelength ({err})"
        ) from err
    names = {c.lower(): c for c in table.colnames}
    wcol = next((names[k] for k in ("wavelength", "wave", "lambda") if k in names), None)
    rcol = next((names[k] for k in ("r", "resolution", "resolving_power") if k in names), None)
    if wcol is None or rcol is None:
        raise FileFormatError(
            f"{text}: a table of R against wavelength needs a wavelength column (wavelength, "
            f"wave or lambda) and an R column (R, resolution or resolving_power); it has "
            f"{', '.join(table.colnames)}"
        )
    wave = np.asarray(table[wcol], dtype=np.float64)
    unit = table[wcol].unit
    if unit is not None and str(unit).strip():
        from atmospec.io._common import parse_unit

        unit_text = parse_unit(str(unit), source=text, column=wcol) or "um"
        wave = (wave * u.Unit(unit_text)).to_value(u.um, equivalencies=u.spectral())
    res = np.asarray(table[rcol], dtype=np.float64)
    if wave.size < 2 or not (np.all(np.isfinite(wave)) and np.all(wave > 0)):
        raise FileFormatError(f"{text}: the wavelengths must be two or more positive numbers")
    if not (np.all(np.isfinite(res)) and np.all(res > 0)):
        raise FileFormatError(f"{text}: every resolving power must be a positive number")
    if not 0.05 < float(np.median(wave)) < 100.0:
        raise FileFormatError(
            f"{text}: wavelengths around {float(np.median(wave)):g} are not micron; give the "
            "column its unit (e.g. 'wavelength [nm]' in an ECSV header, TUNIT in FITS)"
        )
    order = np.argsort(wave)
    return {"wavelength": wave[order].tolist(), "R": res[order].tolist()}


def pixel_sampling(wavelength: ArrayLike) -> float:
    """Median ``lambda / dlambda`` of the pixels (centres, micron): twice the highest
    resolving power the pixels can carry (NaN for fewer than two pixels).

    Example:
        >>> import numpy as np
        >>> round(pixel_sampling(np.exp(np.linspace(0.0, 1.0, 501))))  # 500 pixels per e-fold
        500
    """
    from atmospec.transforms import bin_edges

    w = np.asarray(wavelength, dtype=np.float64)
    if w.size < 2:
        return float("nan")
    return float(np.median(w / np.diff(bin_edges(w))))


HIGHRES_SAMPLING = 10_000.0
"""Median lambda/dlambda of the pixels above which a spectrum is a high-resolution one (the
library's prism spectra are sampled at 300-700, echelle spectra at tens of thousands)."""


def highres_hint(wavelength: ArrayLike) -> str:
    """``""``, or for a spectrum sampled finer than :data:`HIGHRES_SAMPLING` the sentence that
    names the commands for it (appended to a refusal for too little overlap with a grid of
    low-resolution models).

    Example:
        >>> highres_hint(np.linspace(0.8656, 0.8768, 2048))[:52]
        'sampled at lambda/dlambda 159,000, it is a high-reso'
        >>> highres_hint(np.linspace(0.7, 2.5, 500))
        ''
    """
    sampling = pixel_sampling(wavelength)
    if not sampling >= HIGHRES_SAMPLING:  # also NaN: fewer than two pixels
        return ""
    rounded = float(f"{sampling:.3g}")  # three figures, written in full: 158,000
    return (
        f"sampled at lambda/dlambda {rounded:,.0f}, it is a high-resolution spectrum: the "
        "`atmospec highres` commands (`fit`, `transfer`) model those line by line"
    )


def to_model_resolution(
    spectrum: Spectrum, r_model: float | None, axis: ArrayLike | None = None
) -> tuple[Spectrum, list[str]]:
    """``spectrum`` at the models' resolving power ``r_model`` when it resolves more.

    A spectrum resolves more when its stated resolving power (:func:`stated_resolution`)
    exceeds :data:`SPEX_PRISM_MAX_R`, or, with none stated, when its pixels sample finer
    than :data:`FINE_SAMPLING` (its resolving power is then taken as half its sampling, an
    upper bound: state it with ``--resolution`` when it is lower). Its valid pixels are
    binned (flux-conserving, errors propagated) onto a logarithmic grid with ten pixels per
    model FWHM, smoothed there with a Gaussian of FWHM ``sqrt(1/r_model^2 - 1/R^2)`` (the
    grid's own boxcar subtracted), and, with ``axis`` (micron), binned onto that axis. The
    uncertainties are those of the binned pixels before smoothing: smoothing correlates
    the noise of neighbouring bins, which one sigma per bin cannot say, so each bin keeps
    the error of its own data. Bins where data fill less than 80 % of the kernel (the ends,
    gaps) are dropped or masked. ``r_model`` None (a grid of unknown resolution) or a
    spectrum that does not resolve more returns it unchanged, with no note.

    Example:
        >>> import numpy as np
        >>> from atmospec.spectrum import Spectrum
        >>> w = np.linspace(1.0, 1.4, 8001)  # lambda/dlambda ~ 24000: R taken as 12000
        >>> line = 1.0 - 0.5 * np.exp(-0.5 * ((w - 1.2) / 5e-5) ** 2)  # EW 6.27e-5 um
        >>> out, notes = to_model_resolution(Spectrum(w, line, np.full(w.size, 0.01)), 120.0)
        >>> # at R 120 the line is a Gaussian of sigma 1.2 / 120 / 2.355 = 4.25e-3 um, so its
        >>> # depth is EW / (sigma sqrt(2 pi)) = 0.0059
        >>> round(1.0 - float(out.flux.min()), 4), notes[0][:21]
        (0.0059, 'smoothed from R 12000')
    """
    if r_model is None:
        return spectrum, []
    stated = stated_resolution(spectrum)
    good = ~spectrum.mask & np.isfinite(spectrum.flux)
    if spectrum.uncertainty is not None:
        good &= np.isfinite(spectrum.uncertainty) & (spectrum.uncertainty > 0)
    if good.sum() < 2:
        return spectrum, []
    if stated is not None:
        if stated <= max(SPEX_PRISM_MAX_R, r_model):
            return spectrum, []
        r_in, how = stated, "stated"
    else:
        sampling = pixel_sampling(spectrum.wavelength[good])
        if not sampling > FINE_SAMPLING:
            return spectrum, []
        r_in, how = sampling / 2.0, "from the pixels: no stated R, so at most half the sampling"
    out = _smoothed(spectrum, good, r_model, r_in)
    target = None if axis is None else np.asarray(axis, dtype=np.float64)
    if (
        target is not None
        and np.sum((target > out.wavelength[0]) & (target < out.wavelength[-1])) > 2
    ):
        out = _binned(out, ~out.mask, target)  # else the route says what it does not cover
    note = (
        f"smoothed from R {r_in:.0f} ({how}) to the models' R {r_model:.0f} before binning: the "
        "models describe spectra of that resolution"
        + (" (state the spectrum's own with --resolution if it is lower)" if stated is None else "")
    )
    log.debug("%s: %s", spectrum.source, note)  # the caller carries the note to the user
    return out, [note]


def model_smoothing(
    spectrum: Spectrum, r_model: float | None, axis: ArrayLike
) -> tuple[sparse.csr_matrix | None, tuple[float, float], list[str]]:
    """The matrix that smooths models on ``axis`` down to a spectrum stated to resolve less.

    A spectrum whose stated resolving power (:func:`stated_resolution`) is below
    :data:`SPEX_PRISM_MIN_R` has broader lines and band edges than any model of resolving
    power ``r_model`` (wide-slit prism spectra, JWST/NIRSpec PRISM ...); data cannot be made
    sharper, so the models are smoothed instead, with a Gaussian of FWHM
    ``sqrt(1/R^2 - 1/r_model^2)`` in ln(lambda)
    (:func:`atmospec.transforms.convolve_to_resolution`). Returns ``(M, (lo, hi), notes)``:
    ``M @ flux`` is a model at the spectrum's R, and only data pixels inside ``lo-hi``
    (micron) should be compared with it: within one resolution element of the axis's ends
    the kernel runs off the models and is cut. With no stated R (the pixels cannot tell the
    line-spread function), an R within the models' range, or ``r_model`` None (a grid of
    unknown resolution), ``M`` is None and nothing is noted. A stated curve of R against
    wavelength (:func:`resolution_at`) smooths each wavelength to its own R, wherever it is
    below the models'.

    Example:
        >>> import numpy as np
        >>> from atmospec.spectrum import Spectrum
        >>> axis = np.exp(np.linspace(np.log(0.9), np.log(2.5), 600))
        >>> s = Spectrum(axis, np.ones(600), meta={"resolution": 40})
        >>> M, (lo, hi), notes = model_smoothing(s, 120.0, axis)
        >>> line = np.exp(-0.5 * ((axis - 1.6) / (1.6 / 120 / 2.3548)) ** 2)  # a line at R 120
        >>> wide = M @ line
        >>> sd = np.sqrt(np.sum(wide * (axis - 1.6) ** 2) / np.sum(wide))
        >>> round(1.6 / (2.3548 * sd)), round(lo, 3), notes[0][:28]  # its R now: 40
        (40, 0.921, 'the models smoothed from R 1')
        >>> model_smoothing(Spectrum(axis, np.ones(600), meta={"resolution": 75}), 120.0, axis)[0]
        >>> curve = {"wavelength": [1.0, 2.0], "R": [30.0, 60.0]}  # R 40 at 1.33, 55 at 1.83 um
        >>> prism = Spectrum(axis, np.ones(600), meta={"resolution": curve})
        >>> M, _, notes = model_smoothing(prism, 120.0, axis)
        >>> def r_of(c):
        ...     line = M @ np.exp(-0.5 * ((axis - c) / (c / 120 / 2.3548)) ** 2)
        ...     return c / (2.3548 * np.sqrt(np.sum(line * (axis - c) ** 2) / np.sum(line)))
        >>> round(r_of(4 / 3)), round(r_of(11 / 6)), notes[0][38:71]
        (40, 55, "spectrum's stated R 30-60 (by wav")
    """
    w = np.asarray(axis, dtype=np.float64)
    stated = stated_resolution(spectrum)
    r_axis = resolution_at(spectrum, w)
    if (
        r_model is None
        or stated is None
        or r_axis is None
        or stated >= min(SPEX_PRISM_MIN_R, r_model)
    ):
        return None, (float(w[0]), float(w[-1])), []
    # where a stated curve reaches the models' R, (almost) nothing is added: R / 1.01 blurs by
    # R ~ 850, negligible against the models' 120
    r_out = np.minimum(r_axis, r_model / 1.01)
    smooth = _smoothing_matrix(w.tobytes(), r_out.tobytes(), float(r_model))
    fwhm = np.sqrt(1.0 / r_out[[0, -1]] ** 2 - 1.0 / r_model**2)  # in ln(lambda), at the ends
    lo, hi = float(w[0] * np.exp(fwhm[0])), float(w[-1] * np.exp(-fwhm[1]))
    inside = (w >= spectrum.wavelength[0]) & (w <= spectrum.wavelength[-1])
    span = r_axis[inside] if inside.any() else r_axis
    what = (
        f"R {stated:g}"
        if float(np.ptp(span)) < 1e-6 * stated
        else f"R {float(span.min()):.0f}-{float(span.max()):.0f} (by wavelength)"
    )
    note = (
        f"the models smoothed from R {r_model:.0f} to the spectrum's stated {what}, "
        f"coarser than the R {SPEX_PRISM_MIN_R:.0f}-{SPEX_PRISM_MAX_R:.0f} they stand for, "
        f"and pixels beyond {lo:.3f}-{hi:.3f} um (within one resolution element of the models' "
        "ends) are not compared"
    )
    log.debug("%s: %s", spectrum.source, note)
    return smooth, (lo, hi), [note]


@functools.lru_cache(maxsize=16)
def _smoothing_matrix(axis: bytes, r_out: bytes, r_model: float) -> sparse.csr_matrix:
    """The (n, n) matrix smoothing spectra on ``axis`` from ``r_model`` to ``r_out`` (both
    float64 buffers): built once per grid axis and stated R, since every chi-square route of a
    prediction, and every spectrum of a batch, asks for the same one."""
    from scipy import sparse

    from atmospec.transforms import convolve_to_resolution

    w = np.frombuffer(axis, dtype=np.float64)
    smooth = convolve_to_resolution(w, np.eye(w.size), np.frombuffer(r_out), r_model).T
    smooth[np.abs(smooth) < 1e-12] = 0.0
    return sparse.csr_matrix(smooth)


def _grid(lo: float, hi: float, r_model: float) -> NDArray[np.float64]:
    step = 1.0 / (_OVERSAMPLE * r_model)  # in ln(lambda): FWHM / 10
    n = max(int(np.floor((np.log(hi) - np.log(lo)) / step)), 2)
    return np.exp(np.log(lo) + step * (np.arange(n) + 0.5))


def _binned(spectrum: Spectrum, good: NDArray[np.bool_], target: NDArray[np.float64]) -> Spectrum:
    """Flux-conserving binning of the good pixels onto ``target`` (bins they fill to half)."""
    from atmospec.transforms import resampling_matrix

    W, covered = resampling_matrix(target, spectrum.wavelength)
    Wv = W[:, np.flatnonzero(good)]
    fill = np.asarray(Wv.sum(axis=1)).ravel()
    usable = covered & (fill >= _MIN_FILL)
    safe = np.where(fill > 0, fill, 1.0)
    flux = np.asarray(Wv @ spectrum.flux[good]).ravel() / safe
    unc = None
    if spectrum.uncertainty is not None:
        var = np.asarray(Wv.multiply(Wv) @ spectrum.uncertainty[good] ** 2).ravel() / safe**2
        unc = np.where(usable, np.sqrt(var), np.nan)
    keep = np.flatnonzero(covered)
    return spectrum.with_arrays(
        target[keep],
        np.where(usable, flux, np.nan)[keep],
        None if unc is None else unc[keep],
        mask=~usable[keep],
    )


def _smoothed(spectrum: Spectrum, good: NDArray[np.bool_], r_model: float, r_in: float) -> Spectrum:
    """Bin onto the fine log grid, smooth with the normalised Gaussian kernel, trim the ends."""
    from scipy.ndimage import convolve1d

    fine = _grid(float(spectrum.wavelength[good][0]), float(spectrum.wavelength[good][-1]), r_model)
    binned = _binned(spectrum, good, fine)
    box = 1.0 / (_OVERSAMPLE * r_model)
    inv2 = (1.0 / r_model) ** 2 - (1.0 / r_in) ** 2 - _BOX_FWHM2 * box**2  # no overflow at huge R
    sigma = np.sqrt(max(inv2, 0.0)) * _FWHM_TO_SIGMA
    data = ~binned.mask
    if sigma <= 0:
        return binned
    half = int(np.ceil(4.0 * sigma / box))
    offsets = np.arange(-half, half + 1)
    kernel = np.exp(-0.5 * (offsets * box / sigma) ** 2)
    f = np.where(data, binned.flux, 0.0)
    # zero beyond the ends, output as long as the data even when the kernel is longer
    weight = convolve1d(data.astype(np.float64), kernel, mode="constant")
    smooth = convolve1d(f, kernel, mode="constant") / np.where(weight > 0, weight, 1.0)
    keep = data & (weight >= _MIN_KERNEL * kernel.sum())
    inside = np.flatnonzero(keep)
    if inside.size < 2:
        from atmospec.errors import InvalidSpectrumError

        raise InvalidSpectrumError(
            f"{spectrum.source}: too short to smooth to R {r_model:.0f}: its data span less "
            "than a few of the models' resolution elements"
        )
    lo, hi = inside[0], inside[-1] + 1  # the ends are dropped, gaps inside are masked
    return binned.with_arrays(
        binned.wavelength[lo:hi],
        np.where(keep, smooth, np.nan)[lo:hi],
        None if binned.uncertainty is None else binned.uncertainty[lo:hi],
        mask=~keep[lo:hi],
        resolution=r_model,
    )
