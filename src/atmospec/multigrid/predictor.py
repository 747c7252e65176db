"""Predict with every grid that covers an object, side by side and combined."""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from atmospec.errors import AtmospecError, DataNotFoundError
from atmospec.prediction.predictor import Predictor
from atmospec.prediction.result import PredictionResult
from atmospec.prediction.sampling import spectrum_seed
from atmospec.prediction.sources import read_spectrum

from .calibration import Calibration, load_calibration, stale_reason
from .combine import Combined, combine
from .estimate import COMMON_PARAMS, GridEstimate, chi2_estimate
from .flux_reading import FluxReading, flux_reading
from .grid_setup import (
    answer_notes,
    check_given,
    check_parameters,
    route_discrepancy,
    unmeasured_notes,
)
from .learned import base_answers, coarse_input, from_result, is_coarse, learned_estimates
from .result import MultiGridResult
from .routes import (
    DEFAULT_ROUTES,
    NPE_MODEL_ERROR_RATIO,
    GridRoute,
    model_error_ratio,
    parse_routes,
)

if TYPE_CHECKING:
    from atmospec.grids import ModelGrid
    from atmospec.prediction.coverage import ModelInput
    from atmospec.prediction.options import BatchOptions
    from atmospec.spectrum import Spectrum

    from .shipping import MultiGridSpec

__all__ = [
    "GridRoute",
    "DEFAULT_ROUTES",
    "MultiGridPredictor",
    "MultiGridResult",
    "NPE_MODEL_ERROR_RATIO",
    "model_error_ratio",
    "parse_routes",
]

log = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]


class MultiGridPredictor:
    """Several grids asked about every spectrum, each reported and all combined.

    The primary route (the first of ``routes``, by default the default NPE/CNN chain on
    Sonora Diamondback) prepares and routes spectra exactly as
    :class:`~atmospec.prediction.predictor.Predictor` does; every other grid answers through its
    learned model or by chi-square over its nodes with its learned model-error covariance
    (:mod:`atmospec.discrepancy`). :func:`~atmospec.multigrid.combine.combine` decides which
    grids cover the object and mixes their answers. Two warnings come out, apart:
    ``outside_grid`` (the object lies outside the primary grid's parameters; the grids that
    cover it still answer) and ``misfit_flag`` (the residuals exceed what the model of
    mismatch allows for most of the covering grids: both of two, two of three).

    ``calibration``: the correction for the errors every grid shares (learned from labelled
    real objects, :mod:`atmospec.multigrid.calibration`) applied to the combined estimate;
    ``"shipped"`` (default) uses the shipped one when it was learned for these grids, a path
    or a :class:`~atmospec.multigrid.calibration.Calibration` another, None none.

    ``discrepancy`` maps grid names to their model-discrepancy models (default: the folder a
    route names, ``GRID=FOLDER``, else the shipped one of a built-in grid,
    :func:`~atmospec.multigrid.grid_setup.route_discrepancy`; None for a grid: none); a model
    learned for another grid is refused. Every grid must vary ``teff``; one that does not vary
    ``logg`` or ``mh`` joins, and the notes say where the combined value comes from.
    ``predictors`` maps grid names to learned predictors already built (a batch worker's,
    rebuilt from what the runner shipped, :meth:`shipping_spec`); the others are built from
    the routes.

    It has the interface :func:`~atmospec.prediction.batch.run_catalog` uses (``prepare``,
    ``predict_inputs``, ``model_id``, ``grid``, ``policy``...).

    Example:
        >>> mp = MultiGridPredictor()  # doctest: +SKIP
        >>> res = mp.predict(atmospec.library.load("10703_10070"))  # HD 3651B  # doctest: +SKIP
        >>> res.table()["teff_median", "outside_grid", "grids_used"]  # doctest: +SKIP
    """

    def __init__(
        self,
        routes: Sequence[GridRoute | str] = DEFAULT_ROUTES,
        *,
        draws: int = 1000,
        seed: int = 0,
        ood: bool = True,
        discrepancy: dict[str, Any] | None = None,
        predictors: dict[str, Predictor] | None = None,
        calibration: Calibration | str | os.PathLike[str] | None = "shipped",
        **predictor_kw: Any,
    ) -> None:
        from atmospec.grids import load_grid

        self.routes = [r if isinstance(r, GridRoute) else GridRoute(r) for r in routes]
        if not self.routes:
            raise ValueError("give at least one grid")
        names = [r.grid for r in self.routes]
        if len(set(names)) != len(names):
            raise ValueError(f"a grid is listed twice: {names}")
        labels = [r.label for r in self.routes]
        if len(set(labels)) < len(labels):
            raise ValueError(
                "two grids would share the columns of one name ("
                + ", ".join(f"{r.grid} -> {r.label}" for r in self.routes)
                + "): give each grid file a name of its own"
            )
        self.draws = int(draws)
        self.seed = seed
        first = self.routes[0]
        if first.model is None:
            raise ValueError(
                f"the first grid ({first.grid}) is the primary one and needs a learned model "
                "(NAME=MODEL, e.g. dback24=default)"
            )
        kw = dict(predictor_kw, draws=draws, seed=seed)
        built = dict(predictors or {})
        self.primary = built.get(first.grid) or Predictor(first.model, ood=ood, **kw)
        self._kw = kw
        self._fallback: Predictor | None = None
        self.learned: dict[str, Predictor] = {}
        for r in self.routes[1:]:
            if r.model is not None:
                self.learned[r.grid] = built.get(r.grid) or Predictor(r.model, ood=False, **kw)
        # Each learned model's variant for spectra coarser than the SpeX prism's (R < 75)
        from atmospec.models import COARSE_VARIANTS

        self.coarse: dict[str, Predictor] = {
            r.grid: Predictor(COARSE_VARIANTS[r.model], ood=False, **kw)
            for r in self.routes
            if r.model is not None and r.model in COARSE_VARIANTS
        }
        self.grids: dict[str, ModelGrid] = {r.grid: load_grid(r.grid) for r in self.routes}
        for r in self.routes:
            check_parameters(r, self.grids[r.grid])
        for g in self.grids.values():
            # every spectrum scans every node of every grid (twice): a grid that fits in
            # memory is read once instead of from disk per spectrum (~30 % of the time)
            if len(g) * g.n_wave * 8 <= IN_MEMORY_BYTES:
                g.load()
        self.discrepancy: dict[str, Any] = {}
        self.discrepancy_notes: dict[str, str] = {}
        given = dict(discrepancy or {})
        for r in self.routes:
            if r.grid in given:
                check_given(r.grid, given[r.grid], self.grids[r.grid])
                self.discrepancy[r.grid] = given[r.grid]
                continue
            self.discrepancy[r.grid], note = route_discrepancy(r, self.grids[r.grid])
            if note:
                self.discrepancy_notes[r.grid] = note
        self.coverage = self.primary.coverage
        self.policy = self.primary.policy
        # every learned model is named: retraining any of them, or learning a grid's model of
        # mismatch again (it decides which grids cover an object), makes a calibration stale
        from atmospec.discrepancy import model_digest

        others = "".join(f"|{g}={p.model_id}" for g, p in self.learned.items())
        errors = "".join(
            f"|{g}~{model_digest(d)}"
            for g, d in self.discrepancy.items()
            if d is not None and hasattr(d, "meta")
        )
        self.base_model_id = (
            "grids:" + "+".join(names) + "|" + self.primary.model_id + others + errors
        )
        self.calibration, self.calibration_note = self._calibration(calibration)
        # The coarse variants answer only spectra no calibration object is (it was learned on
        # prism spectra), so they are part of the run's identity, not of the calibration's.
        coarse = ",".join(f"{g}={p.model_id}" for g, p in self.coarse.items())
        self.model_id = (
            self.base_model_id
            + (f"|coarse:{coarse}" if coarse else "")
            + (f"|calibrated:{self.calibration.digest()}" if self.calibration is not None else "")
        )

    def _calibration(
        self, given: Calibration | str | os.PathLike[str] | None
    ) -> tuple[Calibration | None, str]:
        """The correction for the grids' shared systematic error that applies to this
        predictor's answers (None, and why, when there is none)."""
        if given is None:
            return None, "no correction for the grids' shared systematic error (turned off)"
        if isinstance(given, Calibration):
            cal = given
        else:
            try:
                cal = load_calibration(None if given == "shipped" else given)
            except DataNotFoundError as err:
                return None, f"no correction for the grids' shared systematic error ({err})"
        if cal.model_id != self.base_model_id:
            return None, "no correction for the grids' shared systematic error: " + stale_reason(
                cal.model_id, self.base_model_id
            )
        return cal, ""

    @property
    def grid(self) -> ModelGrid:
        return self.grids[self.routes[0].grid]

    def shipping_spec(self, options: BatchOptions) -> MultiGridSpec:
        """This predictor as data that a batch worker (Dask) rebuilds once per process."""
        from .shipping import MultiGridSpec

        return MultiGridSpec.of(self, options)

    @property
    def max_masked_fraction(self) -> float:
        return self.primary.max_masked_fraction

    @property
    def assume_snr(self) -> float | None:
        return self.primary.assume_snr

    @property
    def precision(self) -> str:
        return self.primary.precision

    def prepare(self, spectrum: Spectrum) -> ModelInput:
        """The spectrum on the primary model's axis (routing noted), as ``Predictor.prepare``.

        With the default chain, a spectrum the NPE would serve goes to the CNN instead when
        the primary grid's model error is not small against its noise
        (:func:`model_error_ratio` above :data:`NPE_MODEL_ERROR_RATIO`) and the NPE was
        trained with photon noise only; an NPE trained with model-error realisations (its
        record's ``model_error``) serves it, as the CNN would.
        """
        inp = self.primary.prepare(spectrum)
        if inp.low_resolution and self.routes[0].grid in self.coarse:
            return coarse_input(self.coarse[self.routes[0].grid], spectrum, inp)
        policy = self.primary.policy
        disc = self.discrepancy.get(self.routes[0].grid)
        if policy is None or disc is None or not inp.notes:
            return inp
        if not inp.notes[-1].startswith(f"served by {policy.primary} "):
            return inp
        member = self.primary.members[getattr(inp, "member", "")]
        npe = getattr(member, "npe", None)  # the NPE's member (the row it would serve)
        trained_with = (getattr(npe, "meta_", None) or {}).get("model_error")
        if trained_with:
            inp.notes.append(
                f"{policy.primary} was trained with {trained_with.get('grid', '')} model-error "
                "realisations: its posterior includes the model error"
            )
            return inp
        ratio = model_error_ratio(disc, member.wavelength, inp.flux, inp.sigma)
        if ratio <= NPE_MODEL_ERROR_RATIO:
            inp.notes.append(
                f"model error / noise = {ratio:.2f} <= {NPE_MODEL_ERROR_RATIO}: the NPE's "
                "photon-noise posterior is not made narrow by model error"
            )
            return inp
        if self._fallback is None:
            from atmospec.models import DEFAULT_CHAIN

            self._fallback = Predictor(DEFAULT_CHAIN[1], ood=False, **self._kw)
        routed = self._fallback.prepare(spectrum)
        routed.notes[:] = [
            policy.fallback_note(
                f"the learned model error of {self.routes[0].grid} is {ratio:.2f} x the noise "
                f"(> {NPE_MODEL_ERROR_RATIO}); the NPE knows only photon noise, the CNN was "
                "trained with model-error realisations"
            )
        ]
        return routed

    def _intervals(self, each: str) -> str:
        return (
            "percentiles of an equal-weight mixture of the answers of every grid that covers "
            "the object (each: " + each + "; chi-square grids: node posterior under noise plus "
            "the grid's model-error covariance)"
            + (
                "; then shifted and widened by the grids' shared systematic error learned from "
                "labelled real objects"
                if self.calibration is not None
                else ""
            )
        )

    @property
    def intervals(self) -> str:
        """What the percentiles of this predictor's rows are (:meth:`Predictor.intervals` of
        each learned grid's, within the mixture of grids)."""
        return self._intervals(self.primary.base_intervals)

    def predict(self, spectra: Any) -> MultiGridResult:
        """Predict one spectrum or a list (Spectrum objects or file paths)."""
        items = spectra if isinstance(spectra, (list, tuple)) else [spectra]
        inputs = [self.prepare(read_spectrum(s)) for s in items]
        return self.predict_inputs(inputs)

    def predict_inputs(self, inputs: list[ModelInput], **_: Any) -> MultiGridResult:
        """Predict spectra prepared by :meth:`prepare` with every grid, and combine."""
        t0 = time.perf_counter()
        first = self.coarse.get(self.routes[0].grid)
        coarse = [is_coarse(first, inp) for inp in inputs]
        base = base_answers(self.primary, first, inputs)
        learned: dict[str, list[GridEstimate | None]] = {
            self.routes[0].grid: [
                from_result(base, i, self.routes[0].grid) for i in range(len(base))
            ]
        }
        for g, pred in self.learned.items():
            learned[g] = learned_estimates(g, pred, self.coarse.get(g), inputs, coarse)
        estimates: list[dict[str, GridEstimate]] = []
        combined: list[Combined] = []
        readings: list[FluxReading | None] = []
        notes = [list(n) for n in base.notes] if base.notes else [[] for _ in inputs]
        for i, inp in enumerate(inputs):
            rng = np.random.default_rng([*spectrum_seed(self.seed, inp.source), 7])
            per: dict[str, GridEstimate] = {}
            scans: dict[str, GridEstimate] = {}
            for r in self.routes:
                try:
                    assert inp.spectrum is not None
                    scan = chi2_estimate(
                        inp.spectrum,
                        self.grids[r.grid],
                        draws=self.draws,
                        rng=rng,
                        discrepancy=self.discrepancy[r.grid],
                    )
                    # Where the object lies: the classic best fit over the grid's whole range
                    # (fitted error floor); its edge pressing decides coverage.
                    scans[r.grid] = (
                        scan
                        if self.discrepancy[r.grid] is None
                        else chi2_estimate(
                            inp.spectrum, self.grids[r.grid], draws=200, rng=rng, discrepancy=None
                        )
                    )
                except AtmospecError as err:
                    notes[i].append(f"{r.grid}: no answer ({err})")
                    continue
                own = learned.get(r.grid, [None] * len(inputs))[i]
                if own is not None:
                    # The learned model's samples; the node scan's misfit, model and band.
                    scan = dataclasses.replace(
                        own,
                        misfit=scan.misfit,
                        wavelength=scan.wavelength,
                        flux=scan.flux,
                        uncertainty=scan.uncertainty,
                        model_flux=scan.model_flux,
                        band=scan.band,
                        notes=own.notes + scan.notes,
                    )
                elif r.model is not None and r.grid in self.learned:
                    scan.notes.append(
                        f"{r.grid}: its model could not take the spectrum; chi-square"
                    )
                per[r.grid] = scan
                if self.discrepancy_notes.get(r.grid):
                    notes[i].append(self.discrepancy_notes[r.grid])
            if not per:
                raise AtmospecError(f"{inp.source}: no grid could answer")
            comb = combine(
                per,
                draws=self.draws,
                rng=rng,
                reference=scans,
                disagreement=None if self.calibration is None else self.calibration.disagreement,
            )
            primary = self.routes[0].grid
            if comb.weights.get(primary, 0.0) == 0.0 and base.notes:
                # the primary grid's own routing notes describe an answer that was not used
                k = len(base.notes[i])
                notes[i][:k] = [
                    f"{primary} (its answer not used for this object): {n}" for n in notes[i][:k]
                ]
            comb.notes.extend(unmeasured_notes(per, comb.weights, self.grids))
            comb.notes.extend(answer_notes(per, comb.weights, notes[i] + comb.notes))
            if self.calibration is not None:
                self.calibration.correct(comb, inp.snr, rng)
            elif self.calibration_note:
                comb.notes.append(self.calibration_note)
            assert inp.spectrum is not None
            reading = flux_reading(inp.spectrum, self.grids, self.discrepancy)
            readings.append(reading)
            notes[i].extend(comb.notes + ([reading.note()] if reading and reading.suspect else []))
            estimates.append(per)
            combined.append(comb)
        return self._result(base, estimates, combined, notes, t0, readings)

    def _result(
        self,
        base: PredictionResult,
        estimates: list[dict[str, GridEstimate]],
        combined: list[Combined],
        notes: list[list[str]],
        t0: float,
        readings: list[FluxReading | None],
    ) -> MultiGridResult:
        n = len(combined)
        p = len(COMMON_PARAMS)
        samples = (
            np.stack([c.samples for c in combined]).astype(np.float32)
            if n
            else np.zeros((0, self.draws, p), np.float32)
        )
        point = samples.mean(axis=1, dtype=np.float64) if n else np.zeros((0, p))
        point_std = samples.std(axis=1, dtype=np.float64) if n else np.zeros((0, p))
        at_bound = np.zeros((n, p), dtype=bool)
        bounds: dict[str, tuple[float, float]] = {}
        for q in COMMON_PARAMS:
            los = [e.bounds[q][0] for per in estimates for e in per.values() if q in e.bounds]
            his = [e.bounds[q][1] for per in estimates for e in per.values() if q in e.bounds]
            if los:
                bounds[q] = (float(min(los)), float(max(his)))
        for i, (per, c) in enumerate(zip(estimates, combined, strict=True)):
            used = [per[g] for g, w in c.weights.items() if w > 0]
            for j, q in enumerate(COMMON_PARAMS):
                flags = [e.at_bound[e.param_names.index(q)] for e in used if q in e.param_names]
                at_bound[i, j] = bool(flags) and all(flags)
        fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(PredictionResult)}
        res = MultiGridResult(
            **{
                **fields,
                "param_names": COMMON_PARAMS,
                "samples": samples,
                "point": point,
                "point_std": point_std,
                "at_bound": at_bound,
                "bounds": bounds,
                "notes": notes,
                "intervals": self._intervals(base.intervals),
            },
            routes=list(self.routes),
            estimates=estimates,
            combined=combined,
            flux_readings=readings,
        )
        res.ood_flag = np.array(
            [
                res.outside_grid(i) or res.misfit_flag(i) or res.flux_unit_suspect(i)
                for i in range(n)
            ],
            dtype=bool,
        )
        res.ood_reason = [_reason(res, i) for i in range(n)]
        res.fit_of_answering_grids()
        res.model_id = self.model_id
        res.wall_time_s = time.perf_counter() - t0
        return res


IN_MEMORY_BYTES = 512 * 2**20
"""Grids whose fluxes take at most this much memory (float64) are held in memory while a
multi-grid predictor lives (the shipped ones take 1-9 MB); larger ones are read per scan."""


def _reason(res: MultiGridResult, i: int) -> str:
    why = []
    if res.outside_grid(i):
        why.append(f"outside_grid:{res.primary}")
    if res.misfit_flag(i):
        why.append("misfit")
    if res.flux_unit_suspect(i):
        why.append("flux_unit")
    return ",".join(why)
