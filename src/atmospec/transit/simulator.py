"""A seeded simulator of Ariel-like transit visits, written in the challenge's raw format."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from atmospec._fileio import provenance, write_json
from atmospec.transit.io import (
    CalibrationFrames,
    RawObservation,
    write_dataset_tables,
    write_planet,
)
from atmospec.transit.lightcurve import TransitGeometry, TransitModel

__all__ = ["SimulationConfig", "PlanetTruth", "simulate_planet", "simulate_dataset"]

# Molecular band centres and widths (um) inside 1.9-3.9 um: H2O, CH4, CO, NH3 (approximate).
_BANDS: tuple[tuple[float, float], ...] = (
    (1.90, 0.10),
    (2.30, 0.08),
    (2.35, 0.05),
    (2.70, 0.15),
    (3.00, 0.10),
    (3.30, 0.10),
)
_H = 6.62607015e-34
_C = 2.99792458e8
_KB = 1.380649e-23


@dataclass(frozen=True)
class SimulationConfig:
    """What the simulator makes: detector size, cadence, brightness and systematics.

    Every systematic defaults to a realistic level; :meth:`clean` turns all of them off, and
    :meth:`only` keeps one. Amplitudes are fractional (1e-3 = 1000 ppm) unless stated.

    Args:
        n_exposures: AIRS-CH0 CDS exposures (two frames each); the real data has 5,625.
        fgs_per_airs: FGS1 exposures per AIRS-CH0 exposure (12 in the real data).
        airs_rows: AIRS-CH0 detector rows (real: 32).
        airs_cols: AIRS-CH0 detector columns (real: 356).
        fgs_size: FGS1 detector side (real: 32).
        detector_wl: wavelengths of the first and last AIRS-CH0 column (um, decreasing).
        target_wl: the range of AIRS-CH0 columns that become spectral bins.
        duration_h: length of the visit (hours).
        column_rate: peak count rate of one AIRS-CH0 column (counts/s).
        fgs_rate: FGS1 count rate (counts/s, whole image).
        electrons_per_count: detector conversion: photon noise is Poisson in electrons. The
            default 8 gives each simulated exposure the photon noise of several real ones, so
            that 400 exposures reach roughly the precision of a full 5,625-exposure visit.
        adc_gain: ADC gain: raw = (counts - offset) * gain, rounded to uint16.
        adc_offset: ADC offset.
        photon_noise: draw photon noise.
        read_noise: read noise per read (counts); 0 turns it off.
        nonlinearity: quadratic linearity coefficient c2 (true = m + c2 m**2).
        gain_drift: amplitude of the multiplicative drift I(lambda)(1 + f(t) g(lambda)).
        jitter_px: rms pointing jitter (pixels).
        jitter_loss: fractional flux loss per pixel of pointing offset.
        jitter_timescale_h: correlation time of the pointing (hours).
        ramp: amplitude of the exponential ramp at the start of the visit.
        pink_noise: rms of the 1/f (pink) flux noise per exposure.
        pink_shared: weight of the 1/f part shared by all channels (common mode).
        pink_channel: weight of the 1/f part drawn independently for each channel.
        dead_fraction: fraction of dead pixels.
        hot_fraction: fraction of hot pixels.
        depth_range: range of the planets' mean transit depth (log-uniform).
        quantize: round to uint16 like the real ADC (False keeps float frames, in memory only:
            the rounding is itself a noise of ~1e-5 per pixel read).

    Example:
        >>> c = SimulationConfig(n_exposures=200, airs_cols=24)
        >>> c.time_bin, c.only("jitter_px").jitter_loss, c.only("jitter_px").ramp
        (2, 0.003, 0.0)
    """

    n_exposures: int = 400
    fgs_per_airs: int = 2
    airs_rows: int = 16
    airs_cols: int = 40
    fgs_size: int = 8
    detector_wl: tuple[float, float] = (4.10, 1.60)
    target_wl: tuple[float, float] = (1.95, 3.90)
    duration_h: float = 7.5
    column_rate: float = 8.0e4
    fgs_rate: float = 5.0e5
    electrons_per_count: float = 8.0
    adc_gain: float = 0.4369
    adc_offset: float = -1000.0
    photon_noise: bool = True
    read_noise: float = 13.0
    nonlinearity: float = 1.0e-7
    gain_drift: float = 1.0e-3
    jitter_px: float = 0.15
    jitter_loss: float = 3.0e-3
    jitter_timescale_h: float = 0.15
    ramp: float = 1.5e-3
    pink_noise: float = 3.0e-4
    pink_shared: float = 0.7
    pink_channel: float = 0.7
    dead_fraction: float = 0.01
    hot_fraction: float = 0.01
    depth_range: tuple[float, float] = (2.0e-3, 2.0e-2)
    quantize: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def clean(self) -> SimulationConfig:
        """The same visit without noise or systematics (a perfect detector).

        Example:
            >>> c = SimulationConfig().clean()
            >>> c.photon_noise, c.read_noise, c.gain_drift, c.dead_fraction
            (False, 0.0, 0.0, 0.0)
        """
        return replace(
            self,
            photon_noise=False,
            read_noise=0.0,
            gain_drift=0.0,
            jitter_px=0.0,
            ramp=0.0,
            pink_noise=0.0,
            dead_fraction=0.0,
            hot_fraction=0.0,
            quantize=False,
        )

    def only(self, *names: str, **levels: float) -> SimulationConfig:
        """A clean visit with only the named systematics kept (at this config's level or at
        the levels given as keywords).

        Example:
            >>> c = SimulationConfig().only("ramp")
            >>> c.ramp > 0, c.gain_drift, c.photon_noise
            (True, 0.0, False)
        """
        base = self.clean()
        kept = {n: getattr(self, n) for n in names} | levels
        if "jitter_px" in kept:
            kept.setdefault("jitter_loss", self.jitter_loss)
        return replace(base, **kept)

    @property
    def time_bin(self) -> int:
        """CDS exposures per time bin that :func:`calibrate` picks by default (100 bins)."""
        return max(1, self.n_exposures // 100)


@dataclass
class PlanetTruth:
    """What was injected: the depth spectrum ``(Rp/Rs)**2`` per bin, limb darkening, orbit.

    Example:
        >>> cfg = SimulationConfig(n_exposures=4, airs_cols=12)
        >>> _, truth = simulate_planet("3", cfg, np.random.default_rng(0))
        >>> float(truth.wavelength[0]), truth.depth.size, round(float(truth.depth[0]), 4)
        (0.7, 10, 0.011)
        >>> truth.geometry.period_d == truth.star["P"], truth.u1.shape
        (True, (10,))
    """

    planet_id: str
    wavelength: NDArray[np.float64]
    depth: NDArray[np.float64]
    u1: NDArray[np.float64]
    u2: NDArray[np.float64]
    geometry: TransitGeometry
    star: dict[str, float]


def _planck(wl_um: NDArray[np.float64], teff: float) -> NDArray[np.float64]:
    lam = wl_um * 1e-6
    return np.asarray(1.0 / lam**5 / np.expm1(_H * _C / (lam * _KB * teff)), dtype=np.float64)


def _ou(rng: np.random.Generator, n: int, dt: float, tau: float) -> NDArray[np.float64]:
    """Unit-variance Ornstein-Uhlenbeck series with correlation time ``tau``."""
    phi = np.exp(-dt / tau)
    x = np.empty(n)
    x[0] = rng.normal()
    eps = rng.normal(size=n) * np.sqrt(1 - phi**2)
    for k in range(1, n):
        x[k] = phi * x[k - 1] + eps[k]
    return x


def _pink(rng: np.random.Generator, n: int, size: int) -> NDArray[np.float64]:
    """``size`` independent unit-rms 1/f noise series of length ``n`` (FFT shaping)."""
    freqs = np.fft.rfftfreq(n)
    amp = np.zeros_like(freqs)
    amp[1:] = 1.0 / np.sqrt(freqs[1:])
    spec = amp * (rng.normal(size=(size, freqs.size)) + 1j * rng.normal(size=(size, freqs.size)))
    x = np.fft.irfft(spec, n=n, axis=1)
    return np.asarray(x / x.std(axis=1, keepdims=True), dtype=np.float64)


def _draw_planet(
    rng: np.random.Generator, config: SimulationConfig, wavelengths: NDArray[np.float64]
) -> tuple[dict[str, float], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], float]:
    star = {
        "Rs": float(rng.uniform(0.6, 1.8)),
        "Ms": float(rng.uniform(0.6, 1.4)),
        "Ts": float(rng.uniform(4000.0, 6500.0)),
        "Mp": float(rng.uniform(0.05, 3.0)),
        "e": 0.0,
        "P": float(rng.uniform(2.5, 8.0)),
        "sma": 0.0,
        "i": float(rng.uniform(87.5, 90.0)),
    }
    # transit duration between ~25% and ~45% of the visit
    frac = rng.uniform(0.25, 0.45)
    duration = frac * config.duration_h
    b_max = 0.7
    star["sma"] = float(star["P"] * 24.0 / (np.pi * duration))
    cos_i = min(np.cos(np.radians(star["i"])), b_max / star["sma"])
    star["i"] = float(np.degrees(np.arccos(cos_i)))
    d0 = float(np.exp(rng.uniform(*np.log(config.depth_range))))
    depth = np.full(wavelengths.size, d0)
    for centre, width in _BANDS:
        depth += rng.uniform(0.0, 0.05) * d0 * np.exp(-0.5 * ((wavelengths - centre) / width) ** 2)
    depth += rng.uniform(0.0, 0.03) * d0 * (0.7 / wavelengths) ** 4
    # quadratic limb darkening, linear in wavelength (stronger for cooler stars)
    cool = (6500.0 - star["Ts"]) / 2500.0
    u1 = 0.20 + 0.10 * cool - rng.uniform(0.04, 0.08) * (wavelengths - 2.5)
    u2 = 0.15 + 0.05 * cool - rng.uniform(0.01, 0.03) * (wavelengths - 2.5)
    t0 = config.duration_h / 2 + rng.normal(0.0, 0.1 * config.duration_h / 7.5 * 2)
    return star, depth, u1, u2, float(t0)


def simulate_planet(
    planet_id: str, config: SimulationConfig, rng: np.random.Generator
) -> tuple[RawObservation, PlanetTruth]:
    """Simulate one visit: raw uint16 frames, calibration files and the injected truth.

    The scene is a blackbody star seen through a smooth throughput, dimmed by a limb-darkened
    transit whose radius ratio varies with wavelength, multiplied by the systematics of
    ``config`` (gain drift ``1 + f(t) g(lambda)``, pointing jitter that also moves the FGS1
    image, an exponential ramp, 1/f noise); the detector adds dark current, hot and dead
    pixels, a quadratic non-linearity, photon and read noise, and the ADC quantisation.

    Example:
        >>> import numpy as np
        >>> cfg = SimulationConfig(n_exposures=8, airs_cols=40, airs_rows=4, fgs_size=4)
        >>> raw, truth = simulate_planet("1", cfg, np.random.default_rng(0))
        >>> raw.frames["AIRS-CH0"].shape, raw.frames["AIRS-CH0"].dtype.name, truth.depth.size
        ((16, 4, 40), 'uint16', 31)
    """
    c = config
    col_wl = np.linspace(c.detector_wl[0], c.detector_wl[1], c.airs_cols)
    in_target = (col_wl >= c.target_wl[0]) & (col_wl <= c.target_wl[1])
    target = np.sort(col_wl[in_target])
    wavelengths = np.concatenate([[0.7], target])
    star, depth, u1, u2, t0 = _draw_planet(rng, c, wavelengths)
    geo = TransitGeometry.from_star(star, t0)

    n = c.n_exposures
    step = c.duration_h / n
    t_exp = (np.arange(n) + 0.5) * step  # exposure mid-times (h)
    r = c.fgs_per_airs
    t_fgs = (np.arange(n * r) + 0.5) * step / r

    # --- transit light curves: FGS1 channel and each AIRS column -------------------------
    model_a = TransitModel(t_exp, geo)
    lc_cols = np.ones((n, c.airs_cols))
    chan_of_col = np.full(c.airs_cols, -1)
    for j in np.flatnonzero(in_target):
        k = int(np.searchsorted(target, col_wl[j])) + 1
        chan_of_col[j] = k
        lc_cols[:, j] = model_a(np.sqrt(depth[k]), u1[k], u2[k])
    lc_fgs = TransitModel(t_fgs, geo)(np.sqrt(depth[0]), u1[0], u2[0])

    # --- systematics -------------------------------------------------------------------------
    tau = t_exp / c.duration_h
    sys_cols = np.ones((n, c.airs_cols))
    sys_fgs = np.ones(n * r)
    g_lam = 1.0 + rng.uniform(-0.5, 0.5) * (col_wl - 2.5)
    g_fgs = 1.0 + rng.uniform(-0.5, 0.5) * (0.7 - 2.5)
    if c.gain_drift > 0:
        coef = rng.normal(size=3)
        period, phase = rng.uniform(0.4, 1.2), rng.uniform(0, 2 * np.pi)

        def drift(x: NDArray[np.floating[Any]]) -> NDArray[np.float64]:
            f = coef[0] * x + coef[1] * x**2 + coef[2] * np.sin(2 * np.pi * x / period + phase)
            return np.asarray(f, dtype=np.float64)

        scale = c.gain_drift / max(np.abs(drift(tau)).max(), 1e-12)
        sys_cols *= 1.0 + scale * drift(tau)[:, None] * g_lam[None]
        sys_fgs *= 1.0 + scale * drift(t_fgs / c.duration_h) * g_fgs
    dx = np.zeros(n * r)
    dy = np.zeros(n * r)
    if c.jitter_px > 0:
        dx = c.jitter_px * _ou(rng, n * r, step / r, c.jitter_timescale_h)
        dy = c.jitter_px * _ou(rng, n * r, step / r, c.jitter_timescale_h)
        kx, ky = rng.uniform(-1, 1, size=2)
        loss = c.jitter_loss * (kx * dx + ky * dy - (dx**2 + dy**2) / max(c.jitter_px, 1e-9))
        h_lam = (col_wl / 2.5) ** -1.0
        loss_a = loss.reshape(n, r).mean(axis=1)
        sys_cols *= 1.0 + loss_a[:, None] * h_lam[None]
        sys_fgs *= 1.0 + 2.0 * loss
    if c.ramp > 0:
        tau_r = rng.uniform(0.2, 0.6)
        amp = c.ramp * (1.0 + 0.3 * (col_wl - 2.5))
        sys_cols *= 1.0 - amp[None] * np.exp(-t_exp / tau_r)[:, None]
        sys_fgs *= 1.0 - 0.5 * c.ramp * np.exp(-t_fgs / tau_r)
    if c.pink_noise > 0:
        common = _pink(rng, n, 1)[0]
        own = _pink(rng, n, c.airs_cols)
        a, b = c.pink_shared, c.pink_channel
        sys_cols *= 1.0 + c.pink_noise * (a * common[:, None] + b * own.T)
        sys_fgs *= 1.0 + c.pink_noise * (a * np.repeat(common, r) + b * _pink(rng, n * r, 1)[0])

    # --- scene: star spectrum x throughput ----------------------------------------------------
    throughput = np.exp(-0.5 * ((col_wl - 2.6) / 1.0) ** 2)
    sed = _planck(col_wl, star["Ts"]) * throughput
    col_rate = c.column_rate * sed / sed.max()
    rate_cols = col_rate[None] * lc_cols * sys_cols  # (n, cols) counts/s

    rows = np.arange(c.airs_rows, dtype=np.float64)
    width = 1.2 + 0.3 * (col_wl - 1.6)
    centre = (c.airs_rows - 1) / 2 + 2.0 * dy.reshape(n, r).mean(axis=1)
    prof = np.exp(-0.5 * ((rows[None, :, None] - centre[:, None, None]) / width[None, None]) ** 2)
    prof /= prof.sum(axis=1, keepdims=True)
    rate_a = rate_cols[:, None, :] * prof  # (n, rows, cols)

    fs = c.fgs_size
    fy, fx = np.mgrid[0:fs, 0:fs].astype(np.float64)
    cx, cy = (fs - 1) / 2 + 2.0 * dx, (fs - 1) / 2 + 2.0 * dy
    psf = np.exp(-0.5 * ((fx[None] - cx[:, None, None]) ** 2 + (fy[None] - cy[:, None, None]) ** 2))
    psf /= psf.sum(axis=(1, 2), keepdims=True)
    rate_f = c.fgs_rate * (lc_fgs * sys_fgs)[:, None, None] * psf

    # --- detector --------------------------------------------------------------------------
    dt_a = np.tile([0.1, 4.6], n)  # accumulation time of each read since reset (s)
    dt_f = np.tile([0.1, 0.2], n * r)
    frames: dict[str, NDArray[Any]] = {}
    calibs: dict[str, CalibrationFrames] = {}
    for inst, rate, dt, shape in (
        ("AIRS-CH0", rate_a, dt_a, (c.airs_rows, c.airs_cols)),
        ("FGS1", rate_f, dt_f, (fs, fs)),
    ):
        frames[inst], calibs[inst] = _detector(rng, c, rate, dt, shape)

    # reads are placed symmetrically about each exposure's mid-time
    time_a = np.repeat(t_exp, 2) + np.tile([-2.25, 2.25], n) / 3600.0
    time_f = np.repeat(t_fgs, 2) + np.tile([-0.05, 0.05], n * r) / 3600.0
    raw = RawObservation(
        planet_id=str(planet_id),
        frames=frames,
        calibration=calibs,
        adc={"AIRS-CH0": (c.adc_gain, c.adc_offset), "FGS1": (c.adc_gain, c.adc_offset)},
        time_h={"AIRS-CH0": time_a, "FGS1": time_f},
        integration_s=np.tile([0.1, 4.5], n),
        airs_wavelength_um=col_wl,
        wavelengths=wavelengths,
        star=star,
    )
    truth = PlanetTruth(str(planet_id), wavelengths, depth, u1, u2, geo, star)
    return raw, truth


def _detector(
    rng: np.random.Generator,
    c: SimulationConfig,
    rate: NDArray[np.float64],
    dt: NDArray[np.float64],
    shape: tuple[int, int],
) -> tuple[NDArray[Any], CalibrationFrames]:
    """Reads of a detector for the given pixel rates (counts/s) with reads at ``dt`` seconds."""
    n_exp = rate.shape[0]
    flat = 1.0 + 0.02 * rng.normal(size=shape)
    dark = np.abs(rng.normal(0.01, 0.005, size=shape))
    npix = shape[0] * shape[1]
    hot = np.zeros(shape, dtype=bool)
    dead = np.zeros(shape, dtype=bool)
    if c.hot_fraction > 0:
        hot.flat[rng.choice(npix, max(1, round(c.hot_fraction * npix)), replace=False)] = True
        dark[hot] = rng.uniform(50.0, 500.0, size=int(hot.sum()))
    if c.dead_fraction > 0:
        dead.flat[rng.choice(npix, max(1, round(c.dead_fraction * npix)), replace=False)] = True
        dead &= ~hot
    read = (
        np.full(shape, c.read_noise) * (1.0 + 0.1 * rng.normal(size=shape))
        if c.read_noise
        else np.full(shape, 1.0)
    )
    c2 = c.nonlinearity * (1.0 + 0.1 * rng.normal(size=shape))
    bias = rng.normal(50.0, 5.0, size=shape)

    dark_t = np.broadcast_to(dark, (n_exp, *shape)).copy()
    if hot.any():  # random telegraph: hot pixels switch between two dark levels
        state = rng.random(size=(n_exp, int(hot.sum()))) < 0.5
        dark_t[:, hot] *= np.where(state, 1.3, 0.7)
    e_rate = (rate * flat[None] + dark_t) * c.electrons_per_count  # electrons/s per exposure
    t_short, t_long = dt[0], dt[1]
    q_short = e_rate * t_short
    q_mid = e_rate * (t_long - t_short)
    if c.photon_noise:
        q_short = q_short + np.sqrt(np.clip(q_short, 0, None)) * rng.normal(size=q_short.shape)
        q_mid = q_mid + np.sqrt(np.clip(q_mid, 0, None)) * rng.normal(size=q_mid.shape)
    reads = np.empty((2 * n_exp, *shape))
    reads[0::2] = bias + q_short / c.electrons_per_count
    reads[1::2] = bias + (q_short + q_mid) / c.electrons_per_count
    if c.read_noise > 0:
        reads += read[None] * rng.normal(size=reads.shape)
    # non-linearity: the detector records m with m + c2 m^2 = true
    measured = np.where(
        c2 > 0,
        (np.sqrt(1.0 + 4.0 * c2 * np.clip(reads, 0, None)) - 1.0)
        / (2.0 * np.where(c2 > 0, c2, 1.0)),
        reads,
    )
    raw = (measured - c.adc_offset) * c.adc_gain
    if dead.any():
        raw[:, dead] = rng.integers(0, 400, size=(raw.shape[0], int(dead.sum())))
    if c.quantize:
        raw = np.clip(np.rint(raw), 0, np.iinfo(np.uint16).max).astype(np.uint16)
    lin = np.zeros((6, *shape))
    lin[1] = 1.0
    lin[2] = c2
    return raw, CalibrationFrames(dark=dark, dead=dead, flat=flat, read=read, linear_corr=lin)


def simulate_dataset(
    out: str | Path,
    n_planets: int,
    config: SimulationConfig | None = None,
    *,
    seed: int = 0,
    split: str = "train",
    callback: Callable[[int], None] | None = None,
) -> list[PlanetTruth]:
    """Write ``n_planets`` simulated visits to ``out`` in the Ariel raw layout.

    Produces ``out/{split}/PLANET_ID/...``, ``axis_info.parquet``, ``adc_info.csv``,
    ``wavelengths.csv``, ``{split}_star_info.csv``, ``{split}_labels.csv`` (the injected
    depths) and ``simulation.json`` (config, seed and provenance). Planet ``i`` uses the
    random stream ``(seed, i)``, so a dataset is reproducible and its planets independent.
    A progress bar shows unless the ``atmospec`` logger is set above INFO.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> truths = simulate_dataset(d, 2, SimulationConfig(n_exposures=4), seed=1)
        >>> [t.planet_id for t in truths], sorted(p.name for p in (d / "train").iterdir())
        (['1000000', '1000001'], ['1000000', '1000001'])
        >>> sorted(p.name for p in d.glob("*.csv"))
        ['adc_info.csv', 'train_labels.csv', 'train_star_info.csv', 'wavelengths.csv']
    """
    from tqdm.auto import tqdm

    from atmospec._logging import progress_enabled

    config = config or SimulationConfig()
    out = Path(out)
    truths: list[PlanetTruth] = []
    stars: dict[str, dict[str, float]] = {}
    labels: dict[str, NDArray[np.float64]] = {}
    raw = None
    for i in tqdm(range(n_planets), desc="simulating", disable=not progress_enabled()):
        pid = str(planet_id_for(seed, i))
        raw, truth = simulate_planet(pid, config, np.random.default_rng([seed, i]))
        write_planet(raw, out, split)
        truths.append(truth)
        stars[pid] = truth.star
        labels[pid] = truth.depth
        if callback is not None:
            callback(i)
    if raw is not None:
        write_dataset_tables(out, raw, stars=stars, labels=labels, split=split)
    write_json(
        out / "simulation.json",
        {
            "config": asdict(config),
            "n_planets": n_planets,
            "split": split,
            "provenance": provenance(seed=seed, generator="atmospec.transit.simulator"),
        },
    )
    return truths


def planet_id_for(seed: int, index: int) -> int:
    """The planet id of planet ``index`` of the dataset made with ``seed``.

    Example:
        >>> planet_id_for(3, 7)
        3000007
    """
    return seed * 1_000_000 + index
