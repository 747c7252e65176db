"""The calibration chain from raw Ariel frames to binned spectro-photometric light curves."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from atmospec.errors import FileFormatError
from atmospec.transit.io import CalibrationFrames, RawObservation
from atmospec.transit.observation import TransitObservation

__all__ = [
    "CalibrationConfig",
    "restore_adc",
    "hot_pixels",
    "correct_linearity",
    "subtract_dark",
    "correlated_double_sampling",
    "flat_field",
    "bin_time",
    "fill_masked_spectral",
    "fill_masked_image",
    "spectral_columns",
    "check_detector",
    "calibrate",
]


@dataclass(frozen=True)
class CalibrationConfig:
    """Settings of :func:`calibrate`.

    Args:
        time_bin: AIRS-CH0 CDS frames summed per time bin (FGS1 uses the same time span);
            None picks ``max(1, n_cds // target_bins)``.
        target_bins: the number of time bins aimed at when ``time_bin`` is None.
        hot_sigma: sigma-clipping threshold on the dark frame that flags hot pixels.
        odd_dt_offset: seconds added to the integration time of odd (long) frames for the dark
            subtraction, as in the challenge's starter notebook.
        fgs_dt: integration time of an FGS1 short frame (s); long frames add ``fgs_dt`` again.
        mask_pixels: mask dead and hot pixels (turn off only to show what they do).
        fill_masked: replace masked pixels by interpolation from their neighbours, frame by
            frame (AIRS-CH0: same row of the adjacent columns; FGS1: PSF-curvature-corrected
            geometric mean of the 4-neighbours), so pointing jitter does not move flux onto
            a zeroed pixel.
        linearity: apply the linearity correction.
        chunk_bins: time bins processed at once (bounds the memory of 11,250-frame visits).

    Example:
        >>> from atmospec.transit.simulator import SimulationConfig, simulate_planet
        >>> raw, _ = simulate_planet("1", SimulationConfig(n_exposures=8, airs_cols=12),
        ...                          np.random.default_rng(0))
        >>> obs = calibrate(raw, CalibrationConfig(time_bin=2))
        >>> obs.n_time, obs.meta["time_bin_cds"], calibrate(raw).n_time
        (4, 2, 8)
    """

    time_bin: int | None = None
    target_bins: int = 100
    hot_sigma: float = 5.0
    odd_dt_offset: float = 0.1
    fgs_dt: float = 0.1
    mask_pixels: bool = True
    fill_masked: bool = True
    linearity: bool = True
    chunk_bins: int = 16


def restore_adc(frames: NDArray[np.integer], gain: float, offset: float) -> NDArray[np.float64]:
    """Undo the analog-to-digital conversion: ``counts = raw / gain + offset``.

    Example:
        >>> import numpy as np
        >>> restore_adc(np.array([437], dtype=np.uint16), 0.437, -1000.0)
        array([0.])
    """
    return np.asarray(frames, dtype=np.float64) / gain + offset


def hot_pixels(dark: NDArray[np.float64], sigma: float = 5.0) -> NDArray[np.bool_]:
    """Pixels whose dark current is a ``sigma`` outlier (iterative sigma clipping, 5 rounds).

    Example:
        >>> import numpy as np
        >>> dark = np.random.default_rng(0).normal(0.01, 0.001, size=(10, 10))
        >>> dark[1, 2] = 5.0
        >>> np.argwhere(hot_pixels(dark)).tolist()
        [[1, 2]]
    """
    from astropy.stats import sigma_clip

    return np.asarray(sigma_clip(dark, sigma=sigma, maxiters=5).mask, dtype=bool)


def correct_linearity(
    signal: NDArray[np.float64], coeffs: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Apply the per-pixel polynomial ``sum_k coeffs[k] * signal**k`` (lowest power first).

    ``coeffs`` has shape ``(k, rows, cols)``; ``signal`` ``(..., rows, cols)``.

    Example:
        >>> import numpy as np
        >>> c = np.zeros((3, 1, 1)); c[1] = 1.0; c[2] = 1e-3
        >>> correct_linearity(np.array([[[100.0]]]), c)
        array([[[110.]]])
    """
    out = np.broadcast_to(coeffs[-1], signal.shape).astype(np.float64)
    for c in coeffs[-2::-1]:
        out = out * signal + c
    return out


def subtract_dark(
    signal: NDArray[np.float64], dark: NDArray[np.float64], dt: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Remove the dark current accumulated over each frame's integration time ``dt`` (s).

    Example:
        >>> import numpy as np
        >>> subtract_dark(np.full((2, 1, 1), 10.0), np.array([[2.0]]), np.array([0.5, 4.0])).ravel()
        array([9., 2.])
    """
    return signal - dark[None] * dt[:, None, None]


def correlated_double_sampling(signal: NDArray[np.float64]) -> NDArray[np.float64]:
    """Long (odd) minus short (even) read of each exposure: removes bias and reset noise.

    Example:
        >>> import numpy as np
        >>> correlated_double_sampling(np.array([1.0, 5.0, 2.0, 9.0])[:, None, None]).ravel()
        array([4., 7.])
    """
    n = signal.shape[0] // 2 * 2
    return signal[1:n:2] - signal[0:n:2]


def flat_field(signal: NDArray[np.float64], flat: NDArray[np.float64]) -> NDArray[np.float64]:
    """Divide by the relative pixel response (non-positive flat values become NaN).

    Example:
        >>> import numpy as np
        >>> flat_field(np.full((1, 1, 3), 6.0), np.array([[2.0, 0.0, -1.0]]))
        array([[[ 3., nan, nan]]])
    """
    safe = np.where(flat > 0, flat, np.nan)
    return signal / safe[None]


def fill_masked_spectral(cds: NDArray[np.float64], mask: NDArray[np.bool_]) -> NDArray[np.float64]:
    """Replace masked pixels of spectral frames ``(n, rows, cols)`` by the same row of the
    neighbouring columns, scaled by the columns' flux ratio.

    The spatial profile changes slowly with wavelength and moves with the pointing in every
    column alike, so a neighbour's pixel follows the masked one through the jitter; a masked
    pixel left at zero would instead turn every pointing offset into a flux change of its
    column. Columns whose neighbours are masked in the same row keep the zero.

    Example:
        >>> import numpy as np
        >>> cds = np.ones((2, 3, 3)); cds[:, 1, 1] = 0.0
        >>> mask = np.zeros((3, 3), bool); mask[1, 1] = True
        >>> fill_masked_spectral(cds, mask)[:, 1, 1].tolist()
        [1.0, 1.0]
    """
    out = cds.copy()
    n_rows, n_cols = mask.shape
    mean = cds.mean(axis=0)
    for r, c in zip(*np.nonzero(mask), strict=True):
        parts = []
        for c2 in (c - 1, c + 1):
            if not (0 <= c2 < n_cols) or mask[r, c2]:
                continue
            shared = ~mask[:, c] & ~mask[:, c2]
            den = float(mean[shared, c2].sum())
            if den > 0:
                parts.append(cds[:, r, c2] * float(mean[shared, c].sum()) / den)
        out[:, r, c] = np.mean(parts, axis=0) if parts else 0.0
    return out


def fill_masked_image(cds: NDArray[np.float64], mask: NDArray[np.bool_]) -> NDArray[np.float64]:
    """Replace masked pixels of images ``(n, y, x)`` by the geometric mean of their unmasked
    4-neighbours times the image's own peak-curvature factor.

    For a Gaussian point-spread function the log-flux is quadratic, so a pixel is the geometric
    mean of its four neighbours times ``exp(1 / (2 sigma^2))`` wherever the star sits: the fill
    follows the pointing jitter. The factor is the median of that ratio over unmasked pixels.

    Example:
        >>> import numpy as np
        >>> y, x = np.mgrid[0:7, 0:7]
        >>> img = np.exp(-((x - 3.2) ** 2 + (y - 2.9) ** 2) / 2.0)[None]
        >>> mask = np.zeros((7, 7), bool); mask[3, 3] = True
        >>> bad = img.copy(); bad[:, 3, 3] = 0
        >>> round(float(fill_masked_image(bad, mask)[0, 3, 3] / img[0, 3, 3]), 6)
        1.0
    """
    out = cds.copy()
    ny, nx = mask.shape
    mean = cds.mean(axis=0)
    pos = (mean > 0) & ~mask

    def neighbours(r: int, c: int) -> list[tuple[int, int]]:
        nb = [(r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)]
        return [(a, b) for a, b in nb if 0 <= a < ny and 0 <= b < nx]

    ratios = []
    for r, c in zip(*np.nonzero(pos), strict=True):
        nb = neighbours(r, c)
        if len(nb) == 4 and all(pos[a, b] for a, b in nb):
            ratios.append(np.log(mean[r, c]) - np.mean([np.log(mean[a, b]) for a, b in nb]))
    factor = float(np.exp(np.median(ratios))) if ratios else 1.0
    for r, c in zip(*np.nonzero(mask), strict=True):
        nb = [(a, b) for a, b in neighbours(r, c) if pos[a, b]]
        if nb:
            vals = np.stack([np.clip(cds[:, a, b], 1e-12, None) for a, b in nb])
            out[:, r, c] = factor * np.exp(np.log(vals).mean(axis=0))
        else:
            out[:, r, c] = 0.0
    return out


def bin_time(x: NDArray[np.float64], n: int) -> NDArray[np.float64]:
    """Sum consecutive groups of ``n`` along axis 0 (an incomplete last group is dropped).

    Example:
        >>> import numpy as np
        >>> bin_time(np.arange(7.0), 3)
        array([ 3., 12.])
    """
    m = x.shape[0] // n
    return np.asarray(x[: m * n].reshape(m, n, *x.shape[1:]).sum(axis=1), dtype=np.float64)


def spectral_columns(raw: RawObservation) -> NDArray[np.int64]:
    """AIRS-CH0 detector columns of the target bins ``wavelengths[1:]``, in that order.

    Raises:
        FileFormatError: a target wavelength matches no detector column.

    Example:
        >>> from atmospec.transit.simulator import SimulationConfig, simulate_planet
        >>> raw, _ = simulate_planet("1", SimulationConfig(n_exposures=2, airs_cols=12),
        ...                          np.random.default_rng(0))
        >>> cols = spectral_columns(raw)
        >>> cols.tolist(), bool(np.allclose(raw.airs_wavelength_um[cols], raw.wavelengths[1:]))
        ([9, 8, 7, 6, 5, 4, 3, 2, 1], True)
    """
    target = raw.wavelengths[1:]
    axis = raw.airs_wavelength_um
    idx = np.abs(axis[None, :] - target[:, None]).argmin(axis=1)
    err = np.abs(axis[idx] - target)
    if (err > 1e-6 * np.maximum(target, 1.0)).any():
        bad = int(np.argmax(err))
        raise FileFormatError(
            f"planet {raw.planet_id}: target wavelength {target[bad]:.6f} um (wavelengths.csv "
            f"bin {bad + 2}) matches no AIRS-CH0 column of axis_info (nearest {axis[idx[bad]]:.6f})"
        )
    return idx.astype(np.int64)


#: Largest fraction of a detector's science pixels allowed at the ADC ceiling.
SATURATION_LIMIT = 0.01
_ADC_MAX = np.iinfo(np.uint16).max


def check_detector(raw: RawObservation, cols: NDArray[np.int64]) -> None:
    """Refuse degenerate frames before calibrating: a detector whose frames are one constant
    value (all zero, or any other: no light and no noise), more than 1 % of the science pixels
    at the 16-bit ADC ceiling (saturated), or a flat field positive (and finite) over fewer
    than half of the science pixels.

    Raises:
        FileFormatError: naming the planet folder, the instrument and what was found.

    Example:
        >>> from atmospec.transit.simulator import SimulationConfig, simulate_planet
        >>> raw, _ = simulate_planet("1", SimulationConfig(n_exposures=2, airs_cols=12),
        ...                          np.random.default_rng(0))
        >>> check_detector(raw, spectral_columns(raw))  # fine: returns None
        >>> raw.frames["AIRS-CH0"][:] = 0
        >>> check_detector(raw, spectral_columns(raw))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        atmospec.errors.FileFormatError: planet 1: every AIRS-CH0 signal value is 0: ...
    """
    where = raw.source if raw.source is not None else f"planet {raw.planet_id}"
    for inst in ("AIRS-CH0", "FGS1"):
        frames = raw.frames[inst]
        science = frames[:, :, cols] if inst == "AIRS-CH0" else frames
        frac = float((science == _ADC_MAX).mean())
        if frac > SATURATION_LIMIT:
            raise FileFormatError(
                f"{where}: {100 * frac:.1f} % of the {inst} science pixels are at the ADC "
                f"ceiling {_ADC_MAX} (saturated); their flux is unknown"
            )
        lo, hi = int(science.min()), int(science.max())
        if lo == hi:
            raise FileFormatError(
                f"{where}: every {inst} signal value is {lo}: a constant detector holds no "
                "light and no noise (an empty or corrupt signal file?)"
            )
        flat = raw.calibration[inst].flat
        flat = flat[:, cols] if inst == "AIRS-CH0" else flat
        good = np.isfinite(flat) & (flat > 0)
        if not good.any():
            raise FileFormatError(
                f"{where}: the {inst} flat field ({inst}_calibration_0/flat.parquet) has no "
                "positive value over the science pixels; a flat field is the relative pixel "
                "response, about 1"
            )
        if good.mean() < 0.5:
            raise FileFormatError(
                f"{where}: only {100 * good.mean():.0f} % of the {inst} flat-field pixels are "
                f"positive ({inst}_calibration_0/flat.parquet); a flat field is the relative "
                "pixel response, about 1"
            )


def _process(
    frames: NDArray[np.integer],
    cal: CalibrationFrames,
    gain: float,
    offset: float,
    dt: NDArray[np.float64],
    mask: NDArray[np.bool_],
    config: CalibrationConfig,
    spectral: bool = True,
) -> NDArray[np.float64]:
    """ADC, linearity, dark, CDS and flat for a chunk of frames; masked pixels are filled from
    their neighbours (or become 0 when ``config.fill_masked`` is off)."""
    sig = restore_adc(frames, gain, offset)
    if config.linearity:
        sig = correct_linearity(sig, cal.linear_corr)
    sig = subtract_dark(sig, cal.dark, dt)
    cds = flat_field(correlated_double_sampling(sig), cal.flat)
    cds[:, mask] = 0.0
    cds = np.nan_to_num(cds, nan=0.0)
    if mask.any() and config.fill_masked:
        cds = fill_masked_spectral(cds, mask) if spectral else fill_masked_image(cds, mask)
    return cds


def calibrate(raw: RawObservation, config: CalibrationConfig | None = None) -> TransitObservation:
    """Calibrate one planet: ADC restore, hot/dead masking, linearity correction, dark
    subtraction, correlated double sampling, flat fielding, spectral extraction (sum over the
    spatial rows) and time binning.

    The result's flux is in restored ADC counts per time bin (the sum of ``time_bin`` CDS
    exposures); column 0 is the FGS1 photometry (sum over its image), columns 1.. the AIRS-CH0
    spectral columns matching ``wavelengths.csv``.

    Example:
        >>> from atmospec.transit.simulator import SimulationConfig, simulate_planet
        >>> raw, _ = simulate_planet("1", SimulationConfig(n_exposures=8, airs_cols=12),
        ...                          np.random.default_rng(0))
        >>> obs = calibrate(raw)
        >>> obs.flux.shape, obs.meta["n_frames"], bool((obs.flux > 0).all())
        ((8, 10), {'AIRS-CH0': 16, 'FGS1': 32}, True)
    """
    config = config or CalibrationConfig()
    airs, fgs = raw.frames["AIRS-CH0"], raw.frames["FGS1"]
    cols = spectral_columns(raw)
    cal_a, cal_f = raw.calibration["AIRS-CH0"], raw.calibration["FGS1"]

    check_detector(raw, cols)
    masks: dict[str, NDArray[np.bool_]] = {}
    for inst, cal in (("AIRS-CH0", cal_a), ("FGS1", cal_f)):
        bad = cal.dead | hot_pixels(cal.dark, config.hot_sigma) | ~(cal.flat > 0)
        masks[inst] = bad if config.mask_pixels else np.zeros_like(bad)

    dt_a = raw.integration_s[: airs.shape[0]].astype(np.float64).copy()
    if dt_a.size != airs.shape[0]:
        raise FileFormatError(
            f"planet {raw.planet_id}: {dt_a.size} integration times for {airs.shape[0]} frames"
        )
    dt_a[1::2] += config.odd_dt_offset
    dt_f = np.full(fgs.shape[0], config.fgs_dt)
    dt_f[1::2] += config.fgs_dt

    n_cds_a, n_cds_f = airs.shape[0] // 2, fgs.shape[0] // 2
    if n_cds_a < 1 or n_cds_f < 1:
        raise FileFormatError(f"planet {raw.planet_id}: fewer than 2 frames per instrument")
    ratio = max(1, n_cds_f // n_cds_a)
    tb = config.time_bin or max(1, n_cds_a // config.target_bins)
    n_bins = min(n_cds_a // tb, n_cds_f // (tb * ratio))
    if n_bins < 1:
        raise FileFormatError(
            f"planet {raw.planet_id}: {n_cds_a} CDS exposures cannot fill one bin of {tb}"
        )

    # restrict AIRS to the spectral columns (calibration frames alike)
    cal_a_cut = CalibrationFrames(
        dark=cal_a.dark[:, cols],
        dead=cal_a.dead[:, cols],
        flat=cal_a.flat[:, cols],
        read=cal_a.read[:, cols],
        linear_corr=cal_a.linear_corr[:, :, cols],
    )
    mask_a = masks["AIRS-CH0"][:, cols]
    rows = np.arange(cal_a.shape[0], dtype=np.float64)
    fy, fx = np.mgrid[0 : cal_f.shape[0], 0 : cal_f.shape[1]].astype(np.float64)

    spec = np.empty((n_bins, cols.size))
    spec_err = np.empty((n_bins, cols.size))
    phot = np.empty(n_bins)
    phot_err = np.empty(n_bins)
    cent = np.empty((n_bins, 3))
    time = np.empty(n_bins)
    for start in range(0, n_bins, config.chunk_bins):
        stop = min(n_bins, start + config.chunk_bins)
        fa = slice(2 * start * tb, 2 * stop * tb)
        cds = _process(
            airs[fa][:, :, cols], cal_a_cut, *raw.adc["AIRS-CH0"], dt_a[fa], mask_a, config
        )
        per_exp = cds.sum(axis=1)  # spectral extraction: sum over spatial rows
        nb = stop - start
        grouped = per_exp.reshape(nb, tb, -1)
        spec[start:stop] = grouped.sum(axis=1)
        spec_err[start:stop] = _bin_error(grouped, cds, cal_a_cut.read, mask_a, tb)
        prof = bin_time(cds.sum(axis=2), tb)
        cent[start:stop, 2] = (prof * rows).sum(axis=1) / np.where(
            prof.sum(axis=1) == 0, 1.0, prof.sum(axis=1)
        )
        time[start:stop] = raw.time_h["AIRS-CH0"][fa].reshape(nb, 2 * tb).mean(axis=1)

        ff = slice(2 * start * tb * ratio, 2 * stop * tb * ratio)
        cdf = _process(
            fgs[ff], cal_f, *raw.adc["FGS1"], dt_f[ff], masks["FGS1"], config, spectral=False
        )
        img = bin_time(cdf, tb * ratio)
        tot = img.sum(axis=(1, 2))
        phot[start:stop] = tot
        grouped_f = cdf.sum(axis=(1, 2)).reshape(nb, tb * ratio, 1)
        phot_err[start:stop] = _bin_error(grouped_f, cdf, cal_f.read, masks["FGS1"], tb * ratio)[
            :, 0
        ]
        safe = np.where(tot == 0, 1.0, tot)
        cent[start:stop, 0] = (img * fx).sum(axis=(1, 2)) / safe
        cent[start:stop, 1] = (img * fy).sum(axis=(1, 2)) / safe
    cent -= np.median(cent, axis=0)
    # exposure mid-times inside each bin, relative to the bin time (for supersampled models)
    exp_a = raw.time_h["AIRS-CH0"][: 2 * n_bins * tb].reshape(n_bins, tb, 2).mean(axis=2)
    exp_f = raw.time_h["FGS1"][: 2 * n_bins * tb * ratio].reshape(n_bins, tb * ratio, 2)
    offsets = {
        "AIRS-CH0": np.median(exp_a - time[:, None], axis=0).tolist(),
        "FGS1": np.median(exp_f.mean(axis=2) - time[:, None], axis=0).tolist(),
    }

    flux = np.column_stack([phot, spec])
    err = np.column_stack([phot_err, spec_err])
    meta = {
        "flux_unit": "restored ADC counts per time bin (sum of CDS exposures)",
        "time_unit": "h",
        "wavelength_unit": "um",
        "time_bin_cds": tb,
        "fgs_per_airs": ratio,
        "n_frames": {"AIRS-CH0": int(airs.shape[0]), "FGS1": int(fgs.shape[0])},
        "masked_pixels": {
            "AIRS-CH0": int(masks["AIRS-CH0"][:, cols].sum()),
            "FGS1": int(masks["FGS1"].sum()),
        },
        "dead_pixels": {"AIRS-CH0": int(cal_a.dead[:, cols].sum()), "FGS1": int(cal_f.dead.sum())},
        "spectral_columns": [int(cols[0]), int(cols[-1])],
        "exposure_offsets_h": offsets,
    }
    return TransitObservation(
        planet_id=raw.planet_id,
        time_h=time,
        wavelength=raw.wavelengths.astype(np.float64),
        flux=flux,
        flux_err=err,
        centroid=cent,
        star=dict(raw.star),
        meta=meta,
    )


def _bin_error(
    grouped: NDArray[np.float64],
    cds: NDArray[np.float64],
    read: NDArray[np.float64],
    mask: NDArray[np.bool_],
    tb: int,
) -> NDArray[np.float64]:
    """Error of a bin sum: the scatter of its exposures, or a photon + read model when tb < 4."""
    if tb >= 4:
        return np.asarray(grouped.std(axis=1, ddof=1) * np.sqrt(tb), dtype=np.float64)
    flux = np.clip(grouped.sum(axis=1), 0.0, None)
    r2 = np.where(mask, 0.0, read**2).sum(axis=0)
    r2 = r2.sum() if grouped.shape[-1] == 1 else r2
    return np.asarray(np.sqrt(flux + 2.0 * tb * r2), dtype=np.float64)
