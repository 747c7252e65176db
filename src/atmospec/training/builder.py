"""Training-set builder: grid spectra (on and off the nodes) made realistic, streamed to HDF5."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from atmospec._logging import progress_enabled
from atmospec.errors import CoverageError, FileFormatError

from .lattice import Lattice, target_params
from .systematics import (
    SNR_WINDOW,
    Systematics,
    apply_resolution_mismatch,
    apply_shift,
    apply_slope,
    apply_telluric_residuals,
    log_uniform_range,
    spex_noise_shapes,
    telluric_mask,
)

if TYPE_CHECKING:
    from atmospec.grids import ModelGrid
    from atmospec.spectrum import Spectrum

__all__ = [
    "AXIS_PRESETS",
    "target_axis",
    "build_training_set",
    "TrainingSet",
    "Lattice",
    "target_params",
]

# name -> (description, lambda_min um, lambda_max um, n pixels); all log-uniform in wavelength.
AXIS_PRESETS: dict[str, tuple[str, float, float, int]] = {
    "spex-prism": (
        "TelescopeML's SpeX prism axis: 104 bins, 0.897-2.512 um, R~100 sampling",
        0.897,
        2.512,
        104,
    ),
    "spex-dense": (
        "SpeX-prism-like axis at ~2.5 pixels per R=120 element: 300 bins, 0.90-2.45 um",
        0.90,
        2.45,
        300,
    ),
}
_FORMAT = "atmospec-training-set"


def target_axis(axis: str | ArrayLike | Spectrum) -> NDArray[np.float64]:
    """The wavelength axis (µm) of a training set: a preset name, a Spectrum, or explicit bins.

    Example:
        >>> w = target_axis("spex-prism")
        >>> w.size, round(float(w[0]), 3), round(float(w[-1]), 3)
        (104, 0.897, 2.512)
    """
    if isinstance(axis, str):
        if axis not in AXIS_PRESETS:
            raise ValueError(f"unknown axis preset {axis!r}; choose one of {sorted(AXIS_PRESETS)}")
        _, lo, hi, n = AXIS_PRESETS[axis]
        return np.exp(np.linspace(np.log(lo), np.log(hi), n))
    wave = getattr(axis, "wavelength", axis)
    w = np.asarray(wave, dtype=np.float64)
    if w.ndim != 1 or w.size < 8 or np.any(np.diff(w) <= 0):
        raise ValueError("a target axis needs at least 8 strictly increasing wavelengths")
    return w


def _interpolation_amplitudes(
    value: float | Mapping[str, float], continuous: Sequence[str]
) -> NDArray[np.float64]:
    """Per continuous parameter amplitude of the interpolation-error augmentation."""
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(continuous))
        if unknown:
            raise ValueError(
                f"interpolation_error names {unknown}, not continuous grid parameters "
                f"{list(continuous)}"
            )
        amp = np.array([float(value.get(p, 0.0)) for p in continuous])
    else:
        amp = np.full(len(continuous), float(value))
    if not np.all(np.isfinite(amp)) or np.any(amp < 0):
        raise ValueError(f"interpolation_error must be >= 0, not {value}")
    return amp


def _interpolation_residuals(
    grid: ModelGrid, lattice: Lattice, win: NDArray[np.int64]
) -> NDArray[np.float32]:
    """Node residuals of the lattice's member rows on the native window, indexed by grid row."""
    from .interpolation_error import node_residuals

    members = np.array(sorted(set(lattice.lookup.values())), dtype=np.int64)
    flux = np.asarray(grid.flux(members), dtype=np.float64)[:, win]
    res = node_residuals(lattice, members, np.log(np.clip(flux, 1e-300, None)))
    out = np.zeros((lattice.values.shape[0], *res.shape[1:]), dtype=np.float32)
    out[members] = res
    return out


@dataclass
class _Plan:
    rows: NDArray[np.int64]  # (n, m) corner rows (m = 1 for node samples)
    weights: NDArray[np.float64]  # (n, m)
    values: NDArray[np.float64]  # (n, n_all_params)
    node: NDArray[np.int64]  # node row or -1
    cell: NDArray[np.int64]  # cell id or -1


def _plan(
    grid: ModelGrid,
    lattice: Lattice,
    nodes: NDArray[np.int64],
    n: int,
    off_fraction: float,
    cell_mode: str,
    rng: np.random.Generator,
) -> _Plan:
    n_off = int(round(n * off_fraction))
    cells = lattice.cells(nodes, cell_mode) if n_off else np.zeros((0, 1), dtype=np.int64)
    if n_off and cells.shape[0] == 0:
        raise ValueError(
            f"no complete grid cell is available for off-node sampling ({cell_mode!r} mode, "
            f"{nodes.size} allowed nodes); use off_node_fraction=0"
        )
    n_node = n - n_off
    if n_node and nodes.size == 0:
        raise ValueError("no grid node is allowed for on-node samples; pass nodes=")
    reps = int(np.ceil(n_node / max(nodes.size, 1)))
    # Every allowed node in turn, reshuffled each pass (none at all when all are off-node).
    passes = [rng.permutation(nodes) for _ in range(reps)]
    node_rows = np.concatenate(passes)[:n_node] if passes else np.zeros(0, dtype=np.int64)
    m = cells.shape[1] if n_off else 1
    rows = np.zeros((n, m), dtype=np.int64)
    weights = np.zeros((n, m))
    rows[:n_node] = node_rows[:, None]
    weights[:n_node, 0] = 1.0
    values = np.zeros((n, lattice.values.shape[1]))
    values[:n_node] = lattice.values[node_rows]
    cell = np.full(n, -1, dtype=np.int64)
    node = np.full(n, -1, dtype=np.int64)
    node[:n_node] = node_rows
    if n_off:
        c, w, v, which = lattice.sample(cells, n_off, rng)
        rows[n_node:], weights[n_node:], values[n_node:], cell[n_node:] = c, w, v, which
    order = rng.permutation(n)
    return _Plan(rows[order], weights[order], values[order], node[order], cell[order])


def build_training_set(
    grid: ModelGrid,
    path: str | os.PathLike[str],
    *,
    n_samples: int,
    axis: str | ArrayLike | Spectrum = "spex-dense",
    nodes: ArrayLike | None = None,
    off_node_fraction: float = 0.5,
    cell_mode: str = "inside",
    snr: tuple[float, float] | Sequence[float] = (10.0, 300.0),
    snr_levels: Sequence[float] | None = None,
    noise_shapes: str = "spex",
    systematics: Systematics | None = None,
    flux_scale: tuple[float, float] = (0.1, 10.0),
    mask_telluric: float = 0.0,
    interpolation_error: float | Mapping[str, float] = 0.0,
    snr_reference_dlnw: float | None = None,
    bounds: Mapping[str, tuple[float, float]] | None = None,
    seed: int = 0,
    batch_size: int = 1024,
    discrepancy: Any = None,
    discrepancy_amplitude: float = 1.0,
) -> TrainingSet:
    """Build a training set from a model grid and stream it to an HDF5 file.

    Each sample is a grid node or an off-node point (log-flux multilinear interpolation inside a
    grid cell), degraded like a real spectrum: resolving-power mismatch and a small wavelength
    shift (on the native grid), flux-conserving resampling onto the target ``axis``,
    multiplicative calibration slope and telluric residuals, random flux scale, and Gaussian
    noise whose per-pixel sigma follows a real SpeX error array scaled to the drawn S/N
    (median S/N in 1.20-1.30 µm). Deterministic under ``seed``.

    Args:
        grid: the model grid (``atmospec.grids.load_grid``).
        path: output ``.h5`` file (written atomically).
        n_samples: number of spectra.
        axis: target wavelength axis: a preset (:data:`AXIS_PRESETS`), a Spectrum, or bins.
        nodes: grid rows allowed (e.g. a split's ``train``); default all.
        off_node_fraction: fraction of samples drawn between nodes.
        cell_mode: ``"inside"`` (every corner of the cell is an allowed node: training) or
            ``"touching"`` (at least one corner is: points around held-out test nodes).
        snr: (low, high) range, S/N drawn log-uniformly.
        snr_levels: instead of a range, discrete S/N values assigned in turn (evaluation sets).
        noise_shapes: ``"spex"`` (real SpeX error-array shapes) or ``"flat"`` (constant sigma).
        systematics: which systematics to inject (default :class:`Systematics()`); use
            ``Systematics.none()`` for none.
        flux_scale: (low, high) range of a log-uniform random flux scale.
        mask_telluric: probability that a spectrum has its telluric bands masked (NaN flux).
        interpolation_error: amplitude of the grid-interpolation-error augmentation of off-node
            samples (0: off; 1: the size of the grid's own leave-one-node-out residuals; see
            :mod:`atmospec.training.interpolation_error`), one value for every continuous
            parameter or a mapping ``{param: amplitude}`` (others 0). Teaches the sigma heads
            that a real spectrum between nodes is not an exact interpolation.
        snr_reference_dlnw: S/N values refer to pixels of this width in ln(lambda) (e.g. the
            pixels of another axis); the per-pixel S/N on this axis is scaled by
            ``sqrt(pixel width / snr_reference_dlnw)``, so two axes see the same observation.
            Default: S/N per pixel of this axis.
        bounds: parameter ranges stored with the set (default: range of the allowed nodes).
        seed: random seed.
        batch_size: spectra processed and written per step.
        discrepancy: a model-discrepancy model (:mod:`atmospec.discrepancy`; a name such as
            ``"dback24-spex"`` or an object): each spectrum gets one realisation of the
            grid's learned model error before noise is drawn (see
            :mod:`atmospec.training.discrepancy_augment`); None: off.
        discrepancy_amplitude: scale of those realisations (1: as learned).

    Returns:
        The :class:`TrainingSet` opened on ``path``.

    Example:
        >>> import tempfile
        >>> from atmospec.grids import ModelGrid
        >>> d = Path(tempfile.mkdtemp()); wave = np.linspace(1.0, 2.0, 60)
        >>> with ModelGrid.create(d / "toy.h5", wave, ("teff", "logg"), name="toy") as w:
        ...     for t in (1000.0, 2000.0):
        ...         for g in (4.0, 5.0):
        ...             w.add({"teff": t, "logg": g}, g * wave ** -(t / 1000))
        >>> ts = build_training_set(ModelGrid(d / "toy.h5"), d / "set.h5", n_samples=8,
        ...                         axis=np.linspace(1.1, 1.9, 16), noise_shapes="flat",
        ...                         systematics=Systematics.none(), flux_scale=(1.0, 1.0),
        ...                         snr_levels=[100.0])
        >>> ts
        TrainingSet('set.h5', n=8, params=('teff', 'logg'), n_wave=16)
        >>> X, y, sigma = ts.arrays()
        >>> int((ts.node >= 0).sum()), np.unique(sigma.round(6)).tolist()  # 4 on nodes; 1/S/N
        (4, [0.01])
        >>> y[:4].round(1).tolist()  # on nodes and between them
        [[2000.0, 5.0], [1000.0, 5.0], [1000.0, 4.0], [1543.6, 4.9]]
    """
    import h5py

    from atmospec._fileio import atomic_path, provenance
    from atmospec.transforms import resample

    _check_options(
        n_samples, snr, snr_levels, flux_scale, off_node_fraction, cell_mode, mask_telluric
    )
    rng = np.random.default_rng([seed, 0])
    sys_cfg = Systematics() if systematics is None else systematics
    wave = target_axis(axis)
    names = target_params(grid)
    allowed = (
        np.arange(len(grid)) if nodes is None else np.unique(np.asarray(nodes, dtype=np.int64))
    )
    if allowed.size == 0:
        raise ValueError("no grid node allowed (empty nodes=)")
    lattice = Lattice(grid, allowed if cell_mode == "inside" else None)
    cols = [grid.param_names.index(p) for p in names]
    if bounds is None:
        vals = lattice.values[allowed]
        bounds = {
            p: (float(vals[:, c].min()), float(vals[:, c].max()))
            for p, c in zip(names, cols, strict=True)
        }
    native = np.asarray(grid.wavelength, dtype=np.float64)
    lo_w, hi_w = wave[0] * 0.95, wave[-1] * 1.05
    win = np.flatnonzero((native >= lo_w) & (native <= hi_w))
    if win.size < 2:  # disjoint axes, e.g. a grid's wavelengths in Angstrom read as micron
        raise CoverageError(
            f"grid {grid.name!r} does not cover the target axis: the grid spans "
            f"{native[0]:g}-{native[-1]:g} um, the target axis {wave[0]:g}-{wave[-1]:g} um"
            f"{_unit_hint(native, wave)}"
        )
    win = np.arange(max(win[0] - 2, 0), min(win[-1] + 3, native.size))
    nat = native[win]
    try:
        resample(wave, nat, np.ones(nat.size))
    except CoverageError as err:
        raise CoverageError(f"grid {grid.name!r} does not cover the target axis: {err}") from None
    snr_win = (wave >= SNR_WINDOW[0]) & (wave <= SNR_WINDOW[1])
    if not snr_win.any():
        raise ValueError(f"the target axis must include the S/N window {SNR_WINDOW} um")
    shapes = spex_noise_shapes(wave) if noise_shapes == "spex" else np.ones((1, wave.size))
    if noise_shapes not in ("spex", "flat"):
        raise ValueError(f"noise_shapes must be 'spex' or 'flat', not {noise_shapes!r}")
    plan = _plan(grid, lattice, allowed, n_samples, off_node_fraction, cell_mode, rng)
    amp = _interpolation_amplitudes(interpolation_error, lattice.continuous)
    interp = None
    if amp.any() and off_node_fraction > 0:
        interp = _interpolation_residuals(grid, lattice, win), amp
    tmask = telluric_mask(wave)
    disc = None
    if discrepancy is not None:
        from .discrepancy_augment import resolve_discrepancy

        disc = (resolve_discrepancy(discrepancy), float(discrepancy_amplitude), lattice.col["teff"])
    pix_factor = np.ones(wave.size)
    if snr_reference_dlnw is not None:
        dlnw = np.gradient(np.log(wave))
        pix_factor = np.sqrt(dlnw / float(snr_reference_dlnw))
    config = {
        "grid": grid.name,
        "n_samples": n_samples,
        "off_node_fraction": off_node_fraction,
        "cell_mode": cell_mode,
        "snr": list(snr),
        "snr_levels": None if snr_levels is None else list(snr_levels),
        "noise_shapes": noise_shapes,
        "n_noise_shapes": int(shapes.shape[0]),
        "systematics": sys_cfg.to_dict(),
        "flux_scale": list(flux_scale),
        "mask_telluric": mask_telluric,
        "interpolation_error": dict(zip(lattice.continuous, amp.tolist(), strict=True)),
        "snr_reference_dlnw": snr_reference_dlnw,
        "seed": seed,
        "n_nodes_allowed": int(allowed.size),
        "axis": axis if isinstance(axis, str) else "custom",
        "discrepancy": _discrepancy_record(disc),
    }
    bar = None
    if progress_enabled():
        from tqdm.auto import tqdm

        bar = tqdm(total=n_samples, desc=f"building {Path(path).name}", unit="spec")
    p = len(names)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        h5.attrs["format"] = _FORMAT
        h5.attrs["param_names"] = json.dumps(list(names))
        h5.attrs["bounds"] = json.dumps({k: list(v) for k, v in bounds.items()})
        h5.attrs["config"] = json.dumps(config)
        h5.attrs["provenance"] = json.dumps(provenance(seed=seed, grid=grid.name), default=str)
        h5.create_dataset("wavelength", data=wave)
        chunk = (min(256, n_samples), wave.size)
        d_flux = h5.create_dataset("flux", (n_samples, wave.size), "f4", chunks=chunk)
        d_sig = h5.create_dataset("sigma", (n_samples, wave.size), "f4", chunks=chunk)
        d_clean = h5.create_dataset("clean", (n_samples, wave.size), "f4", chunks=chunk)
        d_par = h5.create_dataset("params", (n_samples, p), "f8")
        d_snr = h5.create_dataset("snr", (n_samples,), "f8")
        h5.create_dataset("node", data=plan.node)
        h5.create_dataset("cell", data=plan.cell)
        d_par[:] = plan.values[:, cols]
        for start in range(0, n_samples, batch_size):
            sl = slice(start, min(start + batch_size, n_samples))
            f, s, snr_b, c = _make_batch(
                grid,
                plan,
                sl,
                win,
                nat,
                wave,
                seed,
                sys_cfg,
                shapes,
                snr,
                snr_levels,
                flux_scale,
                mask_telluric,
                tmask,
                snr_win,
                pix_factor,
                lattice,
                interp,
                disc,
            )
            d_flux[sl], d_sig[sl], d_snr[sl], d_clean[sl] = f, s, snr_b, c
            if bar is not None:
                bar.update(sl.stop - sl.start)
    if bar is not None:
        bar.close()
    return TrainingSet(path)


def _check_options(
    n_samples: int,
    snr: Any,
    snr_levels: Sequence[float] | None,
    flux_scale: Any,
    off_node_fraction: float,
    cell_mode: str,
    mask_telluric: float,
) -> None:
    """Refuse option values that would end as numpy errors or non-finite training spectra
    (an S/N of 0 gives infinite sigmas) or that would be read as another mode."""
    if int(n_samples) < 1:
        raise ValueError(f"n_samples must be at least 1, not {n_samples}")
    if cell_mode not in ("inside", "touching"):  # "touching" would let held-out nodes in
        raise ValueError(f"cell_mode must be 'inside' or 'touching', not {cell_mode!r}")
    if snr_levels is not None:
        levels = np.asarray(snr_levels, dtype=np.float64).ravel()
        if levels.size == 0 or not np.all(np.isfinite(levels) & (levels > 0)):
            raise ValueError(f"snr_levels must be finite S/N values > 0, not {list(snr_levels)}")
    else:
        log_uniform_range("snr", snr)
    log_uniform_range("flux_scale", flux_scale)
    for name, value in (("off_node_fraction", off_node_fraction), ("mask_telluric", mask_telluric)):
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"{name} is a fraction between 0 and 1, not {value}")


def _unit_hint(native: NDArray[np.float64], wave: NDArray[np.float64]) -> str:
    ratio = float(np.median(native) / np.median(wave))
    if 300 < ratio < 1e5:
        return (
            f"; the grid's wavelengths are ~{ratio:.0f} times the target's: written in "
            "Angstrom or nm rather than micron? Convert the grid again with its wavelength unit "
            "(e.g. the folder loader's wave_unit='Angstrom')"
        )
    return ""


def _make_batch(
    grid: ModelGrid,
    plan: _Plan,
    sl: slice,
    win: NDArray[np.int64],
    nat: NDArray[np.float64],
    wave: NDArray[np.float64],
    seed: int,
    sys_cfg: Systematics,
    shapes: NDArray[np.float64],
    snr: Any,
    snr_levels: Sequence[float] | None,
    flux_scale: tuple[float, float],
    mask_telluric: float,
    tmask: NDArray[np.bool_],
    snr_win: NDArray[np.bool_],
    pix_factor: NDArray[np.float64],
    lattice: Lattice,
    interp: tuple[NDArray[np.float32], NDArray[np.float64]] | None,
    disc: tuple[Any, float, int] | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    from atmospec.transforms import resample

    # Independent streams per batch and purpose: the same seed gives the same systematics,
    # S/N, noise shape and flux scale per sample on any target axis.
    rng = np.random.default_rng([seed, 1, sl.start, 0])
    nrng = np.random.default_rng([seed, 1, sl.start, 1])
    grng = np.random.default_rng([seed, 1, sl.start, 2])

    rows, w = plan.rows[sl], plan.weights[sl]
    n = int(rows.shape[0])
    uniq, inv = np.unique(rows, return_inverse=True)
    flux_u = np.asarray(grid.flux(uniq), dtype=np.float64)[:, win]
    logf = np.log(np.clip(flux_u, 1e-300, None))[inv.reshape(rows.shape)]  # (n, m, n_nat)
    mixed = np.einsum("nm,nmw->nw", w, logf)
    if interp is not None:
        from .interpolation_error import interpolation_perturbation

        off = plan.node[sl] < 0  # on-node samples are exact: no perturbation
        cont = [lattice.col[p] for p in lattice.continuous]
        r_off = rows[off]
        irng = np.random.default_rng([seed, 1, sl.start, 3])
        mixed[off] += interpolation_perturbation(
            r_off,
            w[off],
            lattice.values[r_off][:, :, cont],
            plan.values[sl][off][:, cont],
            interp[0],
            interp[1],
            irng,
        )
    native = np.exp(mixed)
    prob = sys_cfg.probability
    if sys_cfg.resolution:
        r_lo, r_hi = sys_cfg.extra_R_range
        extra = np.exp(rng.uniform(np.log(r_lo), np.log(r_hi), n))
        extra[rng.uniform(size=n) > sys_cfg.resolution_fraction] = np.inf
        native = apply_resolution_mismatch(nat, native, extra)
    if sys_cfg.shift:
        d = rng.uniform(-sys_cfg.max_shift, sys_cfg.max_shift, n) * (rng.uniform(size=n) < prob)
        native = apply_shift(nat, native, d)
    flux = resample(wave, nat, native)
    if sys_cfg.slope:
        on = rng.uniform(size=n) < prob
        a = rng.uniform(-sys_cfg.slope_amplitude, sys_cfg.slope_amplitude, n) * on
        b = rng.uniform(-sys_cfg.curvature_amplitude, sys_cfg.curvature_amplitude, n) * on
        flux = apply_slope(wave, flux, a, b)
    if sys_cfg.telluric:
        amp = rng.uniform(-sys_cfg.telluric_amplitude, sys_cfg.telluric_amplitude, (n, 3))
        amp *= (rng.uniform(size=n) < prob)[:, None]
        flux = apply_telluric_residuals(wave, flux, amp)
    if disc is not None:
        from .discrepancy_augment import discrepancy_realisations

        model, amplitude, teff_col = disc
        drng = np.random.default_rng([seed, 1, sl.start, 4])
        teff = plan.values[sl][:, teff_col]
        flux = flux + discrepancy_realisations(model, wave, flux, teff, drng, amplitude)
    ref = np.median(flux[:, snr_win], axis=1, keepdims=True)
    scale = np.exp(nrng.uniform(np.log(flux_scale[0]), np.log(flux_scale[1]), (n, 1)))
    flux = flux / ref * scale
    if snr_levels is not None:
        levels = np.asarray(snr_levels, dtype=float)
        snr_b = levels[np.arange(sl.start, sl.stop) % levels.size]
    else:
        lo, hi = float(snr[0]), float(snr[1])
        snr_b = np.exp(nrng.uniform(np.log(lo), np.log(hi), n))
    shape = shapes[nrng.integers(0, shapes.shape[0], n)]
    hit = nrng.uniform(size=n) < mask_telluric
    sigma = shape * scale / snr_b[:, None] / pix_factor
    noisy = flux + sigma * grng.standard_normal(flux.shape)
    if mask_telluric > 0:
        noisy[np.ix_(hit, tmask)] = np.nan
        flux[np.ix_(hit, tmask)] = np.nan
        sigma[np.ix_(hit, tmask)] = np.inf
    return noisy, sigma, snr_b, flux


def _discrepancy_record(disc: tuple[Any, float, int] | None) -> dict[str, Any] | None:
    from .discrepancy_augment import describe

    return None if disc is None else describe(disc[0], disc[1])


class TrainingSet:
    """A training set in an HDF5 file: fluxes, sigmas, parameters, S/N, node/cell labels.

    Arrays are read lazily (``flux`` and ``sigma`` are h5py datasets); :meth:`arrays` loads a
    subset into memory as ``(X, y, sigma)`` for ``Estimator.fit``.

    Example:
        >>> import tempfile
        >>> from atmospec.grids import ModelGrid
        >>> d = Path(tempfile.mkdtemp()); wave = np.linspace(1.0, 2.0, 60)
        >>> with ModelGrid.create(d / "toy.h5", wave, ("teff",), name="toy") as w:
        ...     for t in (1000.0, 2000.0):
        ...         w.add({"teff": t}, wave ** -(t / 1000))
        >>> _ = build_training_set(ModelGrid(d / "toy.h5"), d / "set.h5", n_samples=4,
        ...                        axis=np.linspace(1.1, 1.9, 16), off_node_fraction=0.0,
        ...                        noise_shapes="flat", systematics=Systematics.none())
        >>> with TrainingSet(d / "set.h5") as ts:
        ...     X, y, sigma = ts.arrays([0, 1])
        ...     len(ts), X.shape, ts.fit_kwargs()["bounds"], ts.has_clean
        (4, (2, 16), {'teff': (1000.0, 2000.0)}, True)
        >>> try:
        ...     TrainingSet(d / "toy.h5")  # a grid file, not a training set
        ... except FileFormatError as err:
        ...     print(str(err).split(": ")[-1])
        not an atmospec training set (format attribute)
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        import h5py

        self.path = Path(path)
        try:
            self._h5 = h5py.File(self.path, "r")
        except OSError as err:
            raise FileFormatError(
                f"{self.path}: not a readable HDF5 training set ({err})"
            ) from None
        if self._h5.attrs.get("format") != _FORMAT:
            self._h5.close()
            raise FileFormatError(f"{self.path}: not an atmospec training set (format attribute)")
        self.param_names: tuple[str, ...] = tuple(json.loads(self._h5.attrs["param_names"]))
        self.bounds: dict[str, tuple[float, float]] = {
            k: (float(v[0]), float(v[1])) for k, v in json.loads(self._h5.attrs["bounds"]).items()
        }
        self.config: dict[str, Any] = json.loads(self._h5.attrs["config"])
        self.wavelength: NDArray[np.float64] = self._h5["wavelength"][:]

    def __len__(self) -> int:
        return int(self._h5["params"].shape[0])

    def __repr__(self) -> str:
        return (
            f"TrainingSet({self.path.name!r}, n={len(self)}, params={self.param_names}, "
            f"n_wave={self.wavelength.size})"
        )

    def close(self) -> None:
        self._h5.close()

    def __enter__(self) -> TrainingSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def params(self) -> NDArray[np.float64]:
        return self._h5["params"][:]

    @property
    def snr(self) -> NDArray[np.float64]:
        return self._h5["snr"][:]

    @property
    def node(self) -> NDArray[np.int64]:
        return self._h5["node"][:]

    @property
    def cell(self) -> NDArray[np.int64]:
        return self._h5["cell"][:]

    @property
    def flux(self) -> Any:
        return self._h5["flux"]

    @property
    def sigma(self) -> Any:
        return self._h5["sigma"]

    @property
    def provenance(self) -> dict[str, Any]:
        return json.loads(self._h5.attrs["provenance"])

    @property
    def has_clean(self) -> bool:
        """Whether the set stores the noise-free fluxes (older sets do not)."""
        return "clean" in self._h5

    def clean(self, idx: ArrayLike | None = None) -> NDArray[np.float64]:
        """The noise-free fluxes behind ``flux`` (NaN where masked), for ``fit(clean=...)``."""
        if not self.has_clean:
            raise FileFormatError(f"{self.path}: this training set stores no noise-free fluxes")
        sel: Any = slice(None) if idx is None else np.sort(np.asarray(idx, dtype=np.int64))
        return np.asarray(self._h5["clean"][sel], dtype=np.float64)

    def arrays(
        self, idx: ArrayLike | None = None
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """``(X, y, sigma)`` in memory for the rows ``idx`` (all by default)."""
        if idx is None:
            sel: Any = slice(None)
            y = self.params
        else:
            sel = np.sort(np.asarray(idx, dtype=np.int64))
            y = self._h5["params"][sel]
        X = self._h5["flux"][sel].astype(np.float64)
        s = self._h5["sigma"][sel].astype(np.float64)
        return X, y, s

    def fit_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``Estimator.fit``: wavelength, param_names, bounds."""
        return {
            "wavelength": self.wavelength,
            "param_names": self.param_names,
            "bounds": self.bounds,
        }
