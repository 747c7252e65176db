"""Learning a grid's discrepancy model from real, unlabelled SpeX prism library spectra.

Recipe (:func:`fit_discrepancy`):

1. Select field dwarfs M7-T8 of the library (quality OK, median S/N >= 20, no known or
   spectral binaries, no companions, gravity class field or unclassified) and split them by
   *object* (SOURCE_KEY) into a fit half and an evaluation half with a seeded permutation.
2. Fit every fit-half spectrum with the grid (all nodes, free flux scale); spectra whose best
   Teff sits on the grid's Teff edge are outside the grid and left out.
3. Collect the fractional residuals ``(d - m) / m'`` on a common wavelength axis (``m'`` the
   model with a floor at 5 % of its median, see :class:`DiscrepancyModel`), group them in
   Teff bins and estimate per bin the uncentred second moment minus the photon-noise
   variance; its leading eigenvectors are the correlated modes (one per eight spectra of the
   bin, at most ``n_modes``) and the remaining diagonal the floor. The bins have fixed
   physical edges, merged until each holds enough spectra for two modes; an object's bin is
   where its photon-noise fit puts it, so late-T dwarfs keep a bin of their own.
4. Optionally (``n_iter``) refit with the new covariance (the best node moves) and
   re-estimate. The shipped models use none: for late-T dwarfs the refit prefers hotter
   nodes (a fractional covariance on a hotter model allows more residual in their methane
   bands), and residuals learned there would describe a too-hot model's missing methane
   rather than the grid's error at the object's own temperature.
5. Scale each bin so that the median chi-square per pixel of the fit half is 1 (where no
   scale reaches it, so that the median squared whitened residual is that of a unit
   Gaussian), refit the fit half with the final covariance, and set the misfit threshold at
   the ``1 - false_alarm_rate`` quantile of its scores.
6. Set the likelihood temperature from the fit half's repeat spectra
   (:mod:`atmospec.discrepancy.temperature`).
7. Evaluate on the other half: whitened-residual variance and the false-alarm rate.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from atmospec.discrepancy.likelihood import scan_nodes
from atmospec.discrepancy.model import DiscrepancyModel
from atmospec.discrepancy.moments import CLIP, moments, residual_rows
from atmospec.discrepancy.scaling import (
    MIN_MODES,
    SPECTRA_PER_MODE,
    bin_modes,
    by_bin,
    calibrate_bin,
    dof_scores,
    teff_bins,
    whitened_scores,
)
from atmospec.discrepancy.temperature import LibraryFit, fit_temperature, grid_pull_std

if TYPE_CHECKING:
    from atmospec.grids import ModelGrid

__all__ = [
    "select_spectra",
    "split_objects",
    "fit_discrepancy",
    "LibraryFit",
    "fit_library",
    "calibrate_temperature",
    "recalibrate_temperature",
]

log = logging.getLogger(__name__)
FloatArray = NDArray[np.float64]

AXIS_RANGE = (0.70, 2.50)  # micron: the SpeX prism range where library spectra have signal
TEFF_EDGES = (1300.0, 1600.0, 1900.0, 2200.0)  # K: candidate Teff bin edges (see scaling.teff_bins)
_MIN_PER_BIN = 40  # spectra needed in total to learn any model


def select_spectra(snr_min: float = 20.0, spt: str = "M7-T8") -> pd.DataFrame:
    """Library spectra usable to learn model error: single field dwarfs of good quality.

    Example:
        >>> t = select_spectra()  # doctest: +SKIP
        >>> len(t) > 900, bool((~t.companion).all())  # doctest: +SKIP
        (True, True)
    """
    from atmospec import library

    t = library.query(spt=spt, snr_min=snr_min, quality="OK", binary=False)
    young = t["gravity_class"].astype("string").str.upper().isin(["INT-G", "VL-G"])
    t = t[~t["companion"] & ~young.fillna(False).astype(bool)]
    return t.reset_index(drop=True)


def split_objects(source_keys: Any, seed: int = 0) -> tuple[list[int], list[int]]:
    """Split objects (not spectra) in two halves with a seeded permutation: (fit, evaluation).

    Example:
        >>> a, b = split_objects([5, 1, 3, 3, 9], seed=0)
        >>> sorted(a + b), len(a)
        ([1, 3, 5, 9], 2)
    """
    keys = np.unique(np.asarray(source_keys, dtype=np.int64))
    perm = np.random.default_rng(seed).permutation(keys.size)
    half = keys.size // 2
    return sorted(keys[perm[:half]].tolist()), sorted(keys[perm[half:]].tolist())


class _Prepared:
    """A library spectrum made ready against one grid (resampler cached)."""

    def __init__(self, key: str, source_key: int, grid: ModelGrid) -> None:
        from atmospec import library
        from atmospec.fitting.data import prepare

        spec = library.load(key)
        self.key = key
        self.source_key = int(source_key)
        self.data = prepare(spec, grid, wave_range=AXIS_RANGE)


def fit_library(
    prepared: _Prepared,
    grid: ModelGrid,
    grid_flux: FloatArray,
    discrepancy: DiscrepancyModel | None,
) -> LibraryFit:
    """Fit one prepared spectrum with every grid node (with or without the discrepancy).

    Example:
        >>> from atmospec.grids import load_grid
        >>> grid = load_grid("burrows06")
        >>> hd = _Prepared("10703_10070", 10070, grid)  # HD 3651B, ~800 K
        >>> fit_library(hd, grid, grid.flux(slice(None)), None).best
        {'teff': 800.0, 'logg': 4.5, 'mh': 0.0, 'cloudy': 0.0}
    """
    from atmospec.fitting.chi2 import chi2_with_scale
    from atmospec.fitting.data import fitted_parameters

    data = prepared.data
    models = data.model(grid_flux)
    teffs = grid.params["teff"].to_numpy(dtype=np.float64)
    if discrepancy is None:
        neg2, scale = chi2_with_scale(models, data.flux, data.uncertainty)
    else:
        chi2, logdet, scale = scan_nodes(
            models, data.flux, data.uncertainty, teffs, discrepancy, data.wavelength
        )
        neg2 = chi2 + logdet
    best = int(np.argmin(neg2))
    row = grid.params.iloc[best]
    return LibraryFit(
        key=prepared.key,
        source_key=prepared.source_key,
        wavelength=data.wavelength,
        flux=data.flux,
        error=data.uncertainty,
        model=scale[best] * models[best],
        teff=float(teffs[best]),
        best={p: float(row[p]) for p in grid.param_names},
        neg2_loglike=neg2,
        n_fitted=len(fitted_parameters(grid)) + 1,
    )


def fit_discrepancy(
    grid_name: str,
    *,
    seed: int = 0,
    snr_min: float = 20.0,
    n_modes: int = 6,
    n_iter: int = 2,
    false_alarm_rate: float = 0.05,
    max_spectra: int | None = None,
    scale_modes: bool = True,
) -> tuple[DiscrepancyModel, dict[str, Any]]:
    """Learn the discrepancy model of a grid from the SpeX library (see the module doc).

    Args:
        grid_name: ``"dback24"``, ``"btsettl08"`` or ``"burrows06"`` (or a user grid at SpeX
            prism resolution).
        seed: seed of the object split.
        snr_min: minimum median S/N of the spectra used.
        n_modes: correlated residual modes per Teff bin.
        n_iter: refits with the updated covariance after the first, plain fit.
        false_alarm_rate: fraction of the fit half above the misfit threshold.
        max_spectra: use at most this many spectra per half (quick builds and tests).
        scale_modes: step 5 scales the modes with the floor (the shipped models); False
            scales the floor alone (see :func:`atmospec.discrepancy.scaling.calibrate_bin`).

    Returns:
        The model (with ``meta``: split, selection, calibration and evaluation) and a record of
        the per-spectrum scores for figures.

    Example:
        >>> fit_discrepancy("dback24", max_spectra=3)  # a model needs 40 spectra at least
        Traceback (most recent call last):
        ...
        ValueError: dback24: only 3 library spectra inside the grid; at least 40 are needed...
    """
    from tqdm.auto import tqdm

    from atmospec._logging import progress_enabled
    from atmospec.errors import CoverageError
    from atmospec.grids import grid_identity, load_grid

    no_bars = not progress_enabled()
    grid = load_grid(grid_name)
    axis = grid.wavelength[(grid.wavelength >= AXIS_RANGE[0]) & (grid.wavelength <= AXIS_RANGE[1])]
    if axis.size < 2:  # else every library spectrum is skipped, and the count says "0 inside"
        raise CoverageError(
            f"{grid.path}: grid {grid.name!r} spans {grid.wavelength[0]:.2f}-"
            f"{grid.wavelength[-1]:.2f} um, outside the {AXIS_RANGE[0]:.2f}-{AXIS_RANGE[1]:.2f} "
            "um of the SpeX prism library spectra a model of mismatch is learned from"
        )
    table = select_spectra(snr_min)
    fit_ids, eval_ids = split_objects(table["source_key"], seed)
    halves = {
        "fit": table[table["source_key"].isin(fit_ids)],
        "eval": table[table["source_key"].isin(eval_ids)],
    }
    if max_spectra is not None:
        halves = {k: v.head(max_spectra) for k, v in halves.items()}
    grid_flux = grid.flux(slice(None))
    t_axis = np.unique(grid.params["teff"].to_numpy(dtype=np.float64))
    edge = (float(t_axis[0]), float(t_axis[-1]))
    prepared: dict[str, list[_Prepared]] = {}
    skipped: dict[str, int] = {}
    for half, rows in halves.items():
        ok, bad = [], 0
        for key, src in tqdm(
            list(zip(rows["key"], rows["source_key"], strict=True)),
            desc=f"loading {half} half",
            disable=no_bars,
        ):
            try:
                ok.append(_Prepared(key, src, grid))
            except Exception as err:  # noqa: BLE001 - a bad library file is counted, not fatal
                log.warning("%s: skipped (%s)", key, err)
                bad += 1
        prepared[half] = ok
        skipped[half] = bad

    def run(half: str, model: DiscrepancyModel | None) -> tuple[list[LibraryFit], int]:
        fits = [
            fit_library(p, grid, grid_flux, model)
            for p in tqdm(prepared[half], desc=f"fitting {half} half", disable=no_bars)
        ]
        inside = [f for f in fits if edge[0] < f.teff < edge[1]]
        return inside, len(fits) - len(inside)

    fits, n_edge = run("fit", None)
    if len(fits) < _MIN_PER_BIN:
        raise ValueError(
            f"{grid.name}: only {len(fits)} library spectra inside the grid; at least "
            f"{_MIN_PER_BIN} are needed to learn a discrepancy model"
        )
    edges = teff_bins(np.array([f.teff for f in fits]), TEFF_EDGES)
    # an object's bin is where the photon-noise fit puts it, for every iteration: the refit
    # with a covariance moves late T dwarfs into the L/T bin (that covariance absorbs their
    # methane), which would empty the T bin that is meant to describe them
    first_teff = {f.key: f.teff for f in fits}
    model: DiscrepancyModel | None = None
    # the reference-flux rule of the model, before any model exists
    ref = DiscrepancyModel(
        axis, np.array([1.0]), np.zeros((1, axis.size)), np.zeros((1, 1, axis.size)), ""
    )
    factors: list[float] = []
    for it in range(n_iter + 1):
        if it > 0:
            fits, n_edge = run("fit", model)
        first = np.array([first_teff.get(f.key, f.teff) for f in fits])
        labels = np.searchsorted(edges, first)
        centres, floors, modes = [], [], []
        modes_per_bin: list[int] = []
        for b in range(edges.size + 1):
            members = [f for f, lab in zip(fits, labels, strict=True) if lab == b]
            k = bin_modes(len(members), n_modes)
            if k < 1:
                continue
            res, var = residual_rows(members, axis, ref)
            fl, md = moments(res, var, k)
            md = np.concatenate([md, np.zeros((n_modes - k, axis.size))])
            modes_per_bin.append(k)
            centres.append(float(np.median(first[labels == b])))
            floors.append(fl)
            modes.append(md)
        order = np.argsort(centres)
        centres_arr = np.array(centres)[order]
        # equal medians (coarse grids) would break the interpolation: keep the first
        keep = np.concatenate([[True], np.diff(centres_arr) > 0])
        modes_per_bin = np.asarray(modes_per_bin)[order][keep].tolist()
        model = DiscrepancyModel(
            wavelength=axis,
            teff=centres_arr[keep],
            floor=np.array(floors)[order][keep],
            modes=np.array(modes)[order][keep],
            grid=grid.name,
        )
        labels_c = [int(np.argmin(np.abs(model.teff - t))) for t in first]
        factors = [
            calibrate_bin(
                [f for f, lab in zip(fits, labels_c, strict=True) if lab == b],
                model,
                b,
                scale_modes=scale_modes,
            )
            for b in range(model.teff.size)
        ]
        log.info("%s iteration %d: bins %s, factors %s", grid.name, it, model.teff, factors)
    assert model is not None
    # the threshold comes from the fit half scored as a new spectrum will be: at its best
    # node under the final covariance
    fits, n_edge = run("fit", model)
    fit_scores = dof_scores(fits, model)
    threshold = float(np.quantile(fit_scores, 1.0 - false_alarm_rate))
    model.misfit_threshold = threshold
    model.false_alarm_rate = false_alarm_rate
    temp = calibrate_temperature(model, grid, grid_flux, prepared["fit"])
    ev, n_edge_eval = run("eval", model)
    ev_scores = dof_scores(ev, model)
    plain = [fit_library(p, grid, grid_flux, None) for p in prepared["eval"]]
    plain_red = [
        float(np.sum(((f.flux - f.model) / f.error) ** 2) / (f.flux.size - f.n_fitted))
        for f in plain
    ]
    split_record = {
        "method": "seeded permutation of SOURCE_KEY (objects), first half fits",
        "seed": seed,
        "fit_objects": fit_ids,
        "eval_objects_sha256": hashlib.sha256(",".join(map(str, eval_ids)).encode()).hexdigest(),
        "n_fit_objects": len(fit_ids),
        "n_eval_objects": len(eval_ids),
    }
    model.meta = {
        "seed": seed,
        "grid_file": str(Path(grid.path).resolve()),
        "grid_sha256": grid_identity(grid).sha256,  # checked where the model is used
        "split": split_record,
        "selection": {
            "library": "SpeX prism library (splat 1.14)",
            "spt": "M7-T8",
            "snr_min": snr_min,
            "quality": "OK",
            "excluded": "known/spectral binaries, companions, INT-G and VL-G",
            "wave_range_um": list(AXIS_RANGE),
            "n_spectra_fit": len(fits),
            "n_spectra_fit_on_teff_edge": n_edge,
            "n_skipped_unreadable": skipped,
        },
        "recipe": {
            "n_modes": n_modes,
            "teff_edge_candidates": list(TEFF_EDGES),
            "teff_edges": edges.tolist(),
            "n_iter": n_iter,
            "clip": CLIP,
            "reference_fraction": model.reference_fraction,
            "spectra_per_mode": SPECTRA_PER_MODE,
            "min_modes_per_bin": MIN_MODES,
            "modes_per_bin": modes_per_bin,
            "bin_scale_factors": factors,
            # recorded only when not the default, so the shipped records stay reproducible
            **({} if scale_modes else {"bin_scale_applies_to": "floor"}),
        },
        "calibration": {
            "score": "chi2 / (n_pix - n_fitted) under noise + discrepancy at the best node",
            "false_alarm_rate": false_alarm_rate,
            "threshold": threshold,
            "fit_median_score": float(np.median(fit_scores)),
        },
        "evaluation": {
            "n_spectra": len(ev),
            "n_on_teff_edge": n_edge_eval,
            "whitened_variance_mean": float(np.mean(whitened_scores(ev, model))),
            "whitened_variance_median": float(np.median(whitened_scores(ev, model))),
            "false_alarm_rate": float(np.mean(ev_scores > threshold)),
            "plain_chi2_red_median": float(np.median(plain_red)),
            "repeat_pull_std": grid_pull_std(ev, grid, model.temperature),
            "by_teff_bin": by_bin(ev, ev_scores, model, grid),
        },
        "temperature_calibration": temp,
    }
    record = {
        "fit_keys": [f.key for f in fits],
        "eval_keys": [f.key for f in ev],
        "fit_teff": [f.teff for f in fits],
        "fit_scores": fit_scores.tolist(),
        "eval_teff": [f.teff for f in ev],
        "eval_scores": ev_scores.tolist(),
    }
    return model, record


def calibrate_temperature(
    model: DiscrepancyModel,
    grid: ModelGrid,
    grid_flux: FloatArray,
    prepared: list[_Prepared],
) -> dict[str, Any]:
    """Set ``model.temperature`` from the repeat spectra among ``prepared`` (fit half).

    Example:
        >>> from atmospec.discrepancy.model import load_discrepancy
        >>> from atmospec.grids import load_grid
        >>> grid, model = load_grid("burrows06"), load_discrepancy("burrows06")
        >>> two = [_Prepared(k, 10207, grid) for k in ("11138_10207", "10666_10207")]
        >>> rec = calibrate_temperature(model, grid, grid.flux(slice(None)), two)
        >>> rec["n_objects"], rec["tau"], round(rec["pull_std_at_tau_1"], 2)  # tau needs 5
        (1, 1.0, 1.9)
    """
    from tqdm.auto import tqdm

    from atmospec._logging import progress_enabled

    counts: dict[int, int] = {}
    for p in prepared:
        counts[p.source_key] = counts.get(p.source_key, 0) + 1
    repeats = [p for p in prepared if counts[p.source_key] >= 2]
    model.temperature = 1.0
    fits = [
        fit_library(p, grid, grid_flux, model)
        for p in tqdm(repeats, desc="fitting repeat spectra", disable=not progress_enabled())
    ]
    node_teff = grid.params["teff"].to_numpy(dtype=np.float64)
    tau, n_obj = fit_temperature(fits, node_teff)
    model.temperature = tau
    return {
        "method": "repeat spectra of fit-half objects: Teff pulls of unit rms",
        "tau": tau,
        "n_objects": n_obj,
        "pull_std_at_tau_1": grid_pull_std(fits, grid, 1.0),
    }


def recalibrate_temperature(folder: Any) -> DiscrepancyModel:
    """Compute the temperature of a saved model again from its recorded fit half; save it.

    Also records the repeat-pull spread on the evaluation half at that temperature.
    """
    from atmospec.discrepancy.route import check_learned_for
    from atmospec.grids import BUILTIN_GRIDS, load_grid

    model = DiscrepancyModel.load(folder)
    # a user grid is found by the file it was learned from (its name need not be in the cache)
    builtin = model.grid in BUILTIN_GRIDS
    grid = load_grid(model.grid if builtin else model.meta.get("grid_file") or model.grid)
    check_learned_for(model, grid)
    table = select_spectra(float(model.meta["selection"]["snr_min"]))
    fit_ids = set(model.meta["split"]["fit_objects"])
    grid_flux = grid.flux(slice(None))
    halves = {}
    for half, rows in (
        ("fit", table[table["source_key"].isin(fit_ids)]),
        ("eval", table[~table["source_key"].isin(fit_ids)]),
    ):
        counts = rows["source_key"].value_counts()
        rows = rows[rows["source_key"].isin(counts[counts >= 2].index)]
        halves[half] = [
            _Prepared(k, s, grid) for k, s in zip(rows["key"], rows["source_key"], strict=True)
        ]
    temp = calibrate_temperature(model, grid, grid_flux, halves["fit"])
    ev = [fit_library(p, grid, grid_flux, model) for p in halves["eval"]]
    model.meta["temperature_calibration"] = temp
    model.meta.setdefault("evaluation", {})["repeat_pull_std"] = grid_pull_std(
        ev, grid, model.temperature
    )
    model.meta.pop("path", None)
    model.meta.pop("weights_sha256", None)
    model.save(Path(folder))
    return model
