"""Predict atmospheric parameters of observed spectra with a learned estimator, with intervals."""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

from atmospec.errors import AtmospecError, ModelFileError
from atmospec.prediction.coverage import CoveragePolicy, ModelInput
from atmospec.prediction.members import EstimatorMember
from atmospec.prediction.objectfit import ObjectModel, object_model
from atmospec.prediction.result import (
    INTERVALS_NOTE,
    NPE_INTERVALS_NOTE,
    PredictionResult,
    concat_rows,
    interval_scope,
    subset_rows,
)
from atmospec.prediction.routing import RoutedInput
from atmospec.prediction.sampling import spectrum_seed
from atmospec.prediction.sources import read_spectrum

if TYPE_CHECKING:
    from atmospec.grids import ModelGrid
    from atmospec.prediction.engine import Engine
    from atmospec.prediction.members import Member
    from atmospec.prediction.ood import OODDetector
    from atmospec.prediction.routing import SelectionPolicy
    from atmospec.spectrum import Spectrum

__all__ = ["predict", "Predictor", "BUNDLE_FILE"]

log = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]


@functools.lru_cache(maxsize=4)
def _load_grid_cached(name: str) -> ModelGrid:
    from atmospec.grids import load_grid

    return load_grid(name).load()


def _resolve_grid(grid: ModelGrid | str | None, default: str) -> ModelGrid | None:
    if grid is None:
        grid = default
        if not grid:
            return None
    if isinstance(grid, str):
        return _load_grid_cached(grid)
    return grid


BUNDLE_FILE = "predictor.json"
"""The record of a Predictor saved with several members (see :meth:`Predictor.export_files`)."""


class Predictor:
    """Estimators with their grid and OOD detector, ready to predict many spectra.

    ``model="default"`` runs the selection policy of :data:`atmospec.models.DEFAULT_CHAIN`:
    the neural posterior estimator (``npe_dback24``) serves a spectrum when its shipped
    calibration passes and the spectrum is inside its domain (whole wavelength axis covered,
    S/N inside its trained range, not flagged out of distribution); otherwise the CNN
    (``dback24-spex``) serves it, and the row's ``model_id`` and notes say which and why
    (:class:`~atmospec.prediction.routing.SelectionPolicy`). Any other model is used alone.

    Args:
        model: ``"default"``, a registry name (``"dback24-spex"``, ``"npe_dback24"``...), a
            saved model folder (a learned estimator or an NPE), an Estimator or an
            NPEstimator.
        grid: the model grid (or its name) for the chi-square and the model plot; default the
            grid the estimator records in its metadata.
        ood: True (calibrate on first use and cache under the data directory), False, an
            :class:`~atmospec.prediction.ood.OODDetector` (single model), or a mapping
            ``{model_id: OODDetector}``.
        draws: samples per spectrum (Monte Carlo draws for a learned estimator, posterior
            draws for an NPE; >= 1,000 recommended).
        coverage: ``"gaps"`` (default: mask holes between valid pixels, refuse bins beyond
            them), ``"refuse"`` or ``"mask"``
            (see :func:`~atmospec.prediction.coverage.prepare_input`).
        max_masked_fraction: passed to ``prepare_input``.
        assume_snr: passed to ``prepare_input``.
        seed: base seed; each spectrum's draws use ``(seed, crc32(source))``.
        max_rows: network rows held in memory at a time.
        num_threads: worker threads of the inference :class:`~atmospec.prediction.engine.Engine`
            (default ``min(2, cpu count)``).
        precision: ``"float32"`` (default) or ``"bfloat16"`` for the noisy copies (about
            twice as fast on CPUs with bfloat16 instructions; percentiles move by < 1 % of the
            grid range).

    Example:
        >>> from atmospec.estimators.baselines import RandomForestEstimator
        >>> from atmospec.spectrum import Spectrum
        >>> rng = np.random.default_rng(0)
        >>> wave = np.linspace(1.0, 2.0, 12); t = rng.uniform(0, 1, (60, 1))
        >>> rf = RandomForestEstimator(n_estimators=3).fit(1 + t * wave, t, wavelength=wave,
        ...                                                param_names=["t"])
        >>> pred = Predictor(rf, ood=False, draws=100)  # no grid recorded: no chi-square
        >>> pred.model_id[:21], pred.grid
        ('random_forest-nogrid-', None)
        >>> spec = Spectrum(wave, 1 + 0.5 * wave, np.full(12, 0.02), name="obj")  # t = 0.5
        >>> row = pred.predict(spec).table()[0]
        >>> round(float(row["t_median"]), 2), bool(row["t_p16"] < 0.5 < row["t_p84"])
        (0.47, True)
        >>> red = Spectrum(wave + 0.5, spec.flux, spec.uncertainty, name="red")
        >>> pred.predict(red)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        atmospec.errors.CoverageError: red: the spectrum covers 1.500-2.500 um but model ...
    """

    def __init__(
        self,
        model: Any = "default",
        *,
        grid: ModelGrid | str | None = None,
        ood: bool | OODDetector | Mapping[str, OODDetector] = True,
        draws: int = 1000,
        coverage: CoveragePolicy = "gaps",
        max_masked_fraction: float = 0.5,
        assume_snr: float | None = None,
        seed: int = 0,
        max_rows: int = 65536,
        num_threads: int | None = None,
        precision: Literal["float32", "bfloat16"] = "float32",
    ) -> None:
        from atmospec.prediction.members import load_member

        if draws < 1:
            raise ValueError(f"draws must be >= 1, got {draws}")
        self.precision: Literal["float32", "bfloat16"] = precision
        self.draws = int(draws)
        self.coverage: CoveragePolicy = coverage
        self.max_masked_fraction = max_masked_fraction
        self.assume_snr = assume_snr
        self.seed = seed
        self.max_rows = max_rows
        kw: dict[str, Any] = {"num_threads": num_threads, "precision": precision}
        kw["max_rows"] = max_rows
        self.policy: SelectionPolicy | None = None
        self.members: dict[str, Member] = {}
        if isinstance(model, str) and model == "default":
            from atmospec.models import DEFAULT_CHAIN

            self._set_chain(DEFAULT_CHAIN[0], DEFAULT_CHAIN[1], kw)
        elif isinstance(model, (str, os.PathLike)) and (Path(model) / BUNDLE_FILE).is_file():
            import json

            record = json.loads((Path(model) / BUNDLE_FILE).read_text(encoding="utf-8"))
            self._set_chain(
                str(Path(model) / record["primary"]),
                str(Path(model) / record["fallback"]),
                kw,
                names=record.get("names", {}),
            )
        else:
            member = load_member(model, **kw)
            self.members = {member.model_id: member}
        from atmospec.models import COARSE_VARIANTS

        # a single shipped model with a variant for spectra coarser than the SpeX prism's
        self._coarse_variant = (
            COARSE_VARIANTS.get(model) if isinstance(model, str) and model != "default" else None
        )
        if self.policy is None:
            self.model_id = next(iter(self.members))
        else:
            self.model_id = "default:" + "+".join(self._chain_ids)
        self.grids = {mid: _resolve_grid(grid, m.grid_name) for mid, m in self.members.items()}
        self.detectors: dict[str, OODDetector | None] = {}
        self.ood_notes: dict[str, str] = {}
        for mid, m in self.members.items():
            if ood is True:
                self.detectors[mid] = self._detector(m)
            elif ood is False:
                self.detectors[mid] = None
            elif isinstance(ood, Mapping):
                self.detectors[mid] = ood.get(mid)
                if self.detectors[mid] is None:
                    self.ood_notes[mid] = f"no OOD score: no detector given for {mid}"
            else:
                self.detectors[mid] = ood

    # -- members -----------------------------------------------------------------------
    def _set_chain(
        self,
        primary: str,
        fallback: str,
        kw: dict[str, Any],
        names: Mapping[str, str] | None = None,
    ) -> None:
        from atmospec.posteriors.calibration import CalibrationStatus
        from atmospec.prediction.members import NPEMember, load_member
        from atmospec.prediction.routing import SelectionPolicy

        names = names or {}
        back = load_member(fallback, name=names.get("fallback", ""), **kw)
        problem = ""
        front: Member | None = None
        try:
            front = load_member(primary, name=names.get("primary", ""), **kw)
        except AtmospecError as err:
            problem = f"cannot be loaded ({err})"
        if front is not None and not isinstance(front, NPEMember):
            raise ModelFileError(f"{primary}: the first model of the chain must be an NPE")
        if front is not None and front.param_names != back.param_names:
            problem = f"its parameters {front.param_names} differ from {back.param_names}"
        if problem or front is None:
            status = CalibrationStatus(False, float("nan"), float("nan"), problem)
            name = names.get("primary") or Path(primary).name
        else:
            status = front.calibration
            name = front.name
        self.policy = SelectionPolicy(name, back.name, status)
        self._chain_ids = [back.model_id] if front is None else [front.model_id, back.model_id]
        if front is not None and self.policy.primary_usable:
            self.members = {front.model_id: front, back.model_id: back}
            self._primary: Member | None = front
        else:
            self.members = {back.model_id: back}
            self._primary = None
        self._fallback = back
        self._chain_members = {"primary": front, "fallback": back}

    @property
    def _only(self) -> Member:
        return next(iter(self.members.values()))

    @property
    def intervals(self) -> str:
        """What the percentiles of this predictor's rows are: the NPE's posterior, the
        network's Monte Carlo, or each for its rows with a chain that serves rows with either,
        and what they hold of model error (:attr:`scope`); recorded in a batch run's
        ``run.json`` and its tables' header.

        Example:
            >>> Predictor("default").intervals[:32]
            'rows the NPE serves: percentiles'
            >>> Predictor("t-dwarf").intervals.split("; ")[-1][:52]
            "the model's training spectra were exact grid spectra"
        """
        return f"{self.base_intervals}; {self.scope}"

    @property
    def scope(self) -> str:
        """What the intervals hold of real spectra's model error (one sentence per kind of
        training among the members; :func:`~atmospec.prediction.result.interval_scope`)."""
        said = [interval_scope(m.meta, m.kind) for m in self.members.values()]
        return "; ".join(dict.fromkeys(said))

    @property
    def base_intervals(self) -> str:
        """How the percentiles are made, without :attr:`scope` (a multi-grid answer, which
        holds what one grid's leaves out, quotes this)."""
        from atmospec.prediction.members import NPEMember

        npe = any(isinstance(m, NPEMember) for m in self.members.values())
        network = any(not isinstance(m, NPEMember) for m in self.members.values())
        if npe and network:
            return (
                f"rows the NPE serves: {NPE_INTERVALS_NOTE}; rows a network serves: "
                + INTERVALS_NOTE
            )
        return NPE_INTERVALS_NOTE if npe else INTERVALS_NOTE

    @property
    def estimator(self) -> Any:
        """The estimator of the (last) member: the CNN of ``"default"``, else the model."""
        m = list(self.members.values())[-1]
        return m.estimator if isinstance(m, EstimatorMember) else m.npe

    @property
    def engine(self) -> Engine:
        """The inference engine of the learned estimator (not for an NPE alone)."""
        m = list(self.members.values())[-1]
        if not isinstance(m, EstimatorMember):
            raise AttributeError("an NPE predictor has no Monte Carlo engine")
        return m.engine

    @property
    def grid(self) -> ModelGrid | None:
        """The grid of the (last) member."""
        return list(self.grids.values())[-1]

    @property
    def detector(self) -> OODDetector | None:
        """The OOD detector of the (last) member."""
        return list(self.detectors.values())[-1]

    def _detector(self, member: Member) -> OODDetector | None:
        from atmospec.prediction.ood import OODDetector, ood_cache_path

        grid = self.grids[member.model_id]
        if grid is None:
            self.ood_notes[member.model_id] = "no OOD score: the model records no grid (pass grid=)"
            return None
        path = ood_cache_path(member.ood_key)
        if path.exists():
            try:
                det = OODDetector.load(path)
                # a detector of one threshold for every S/N (format 1) is calibrated again
                current = member.detector_is_current(det) and det.snr_conditional
                if det.wavelength.shape == member.wavelength.shape and current:
                    return det
            except ModelFileError:
                pass
        log.info(
            "calibrating the OOD score of %s on synthetic %s spectra (once; cached)",
            member.model_id,
            grid.name,
        )
        det = member.calibrate_ood(grid)
        det.save(path)
        return det

    def export_files(self) -> tuple[dict[str, bytes], dict[str, dict[str, Any]]]:
        """The files that rebuild this predictor elsewhere, and its OOD detectors as records.

        A single model gives its model folder's files; ``"default"`` gives a folder with one
        sub-folder per member and :data:`BUNDLE_FILE` (``Predictor(folder)`` rebuilds the
        same selection, from the same shipped calibration).
        """
        dets = {mid: det.to_dict() for mid, det in self.detectors.items() if det is not None}
        if self.policy is None:
            return self._only.files(), dets
        import json

        files: dict[str, bytes] = {}
        record: dict[str, Any] = {
            "format": "atmospec-predictor",
            "primary": "primary",
            "fallback": "fallback",
            "names": {"primary": self.policy.primary, "fallback": self.policy.fallback},
        }
        for role, member in self._chain_members.items():
            if member is None:
                continue
            for name, blob in member.files().items():
                files[f"{role}/{name}"] = blob
        files[BUNDLE_FILE] = json.dumps(record).encode()
        return files, dets

    # -- preparing ---------------------------------------------------------------------
    def _prepare_for(self, member: Member, spectrum: Spectrum) -> ModelInput:
        return member.prepare(spectrum, self.coverage, self.max_masked_fraction, self.assume_snr)

    def prepare(self, spectrum: Spectrum) -> ModelInput:
        """The spectrum on the axis of the model that will serve it, under the coverage
        policy (with ``"default"``, the routing decision is made here and noted)."""
        from atmospec.errors import InvalidSpectrumError
        from atmospec.sanity import check_spectrum

        check_spectrum(spectrum)  # refused before routing: no member could answer it
        if self.policy is None:
            member = self._only
            inp = self._prepare_for(member, spectrum)
            problem = member.domain_problem(inp)
            if problem:
                raise InvalidSpectrumError(
                    f"{inp.source}: {problem}; it would be extrapolation. Use --model default "
                    "(falls back to the CNN for such spectra) or a learned estimator "
                    "(--model dback24-spex)"
                )
            routed = RoutedInput.of(inp, member.model_id)
            if inp.low_resolution and self._coarse_variant:
                routed.notes.append(
                    f"--model {self._coarse_variant} is this model trained on spectra as coarse "
                    "as this one (the default prediction, without --model, switches to it)"
                )
            return routed
        reason = self.policy.gate_problem()
        if not reason and self._primary is not None:
            try:
                inp = self._prepare_for(self._primary, spectrum)
                reason = self._primary.domain_problem(inp)
            except AtmospecError as err:
                reason = str(err)
            if not reason:
                routed = RoutedInput.of(inp, self._primary.model_id)
                routed.notes.append(self.policy.primary_note())
                return routed
        routed = RoutedInput.of(
            self._prepare_for(self._fallback, spectrum), self._fallback.model_id
        )
        routed.notes.append(self.policy.fallback_note(reason))
        return routed

    def _object_model(
        self, member: Member, inp: ModelInput, median: FloatArray
    ) -> ObjectModel | None:
        grid = self.grids[member.model_id]
        if grid is None:
            return None
        return object_model(grid, member.param_names, member.wavelength, inp, median)

    # -- predicting --------------------------------------------------------------------
    def predict(self, spectra: Any) -> PredictionResult:
        """Predict one spectrum or a list (Spectrum objects or file paths)."""
        from atmospec.prediction.ood import grid_model_on_axis

        t0 = time.perf_counter()
        items = spectra if isinstance(spectra, (list, tuple)) else [spectra]
        inputs = [self.prepare(read_spectrum(s)) for s in items]
        res = self.predict_inputs(
            inputs,
            t0=t0,
            provenance_record=self._provenance(),
            grid_model_fn=grid_model_on_axis,
        )
        res.intervals = f"{res.intervals}; {self.scope}"
        return res

    def _provenance(self) -> dict[str, Any]:
        from atmospec._fileio import provenance

        return provenance(
            seed=self.seed,
            grid=self.grid.name if self.grid else None,
            job="atmospec predict",
            model_id=self.model_id,
            draws=self.draws,
            coverage=self.coverage,
            selection=None if self.policy is None else self.policy.to_dict(),
        )

    def _member_of(self, inp: ModelInput) -> str:
        mid = getattr(inp, "member", "")
        if mid in self.members:
            return str(mid)
        for m_id, m in self.members.items():  # a plain ModelInput: the member of its axis
            if m.wavelength.shape == inp.flux.shape:
                return m_id
        raise ValueError(f"{inp.source}: prepared for none of the models of this predictor")

    def predict_inputs(
        self,
        inputs: list[ModelInput],
        *,
        t0: float | None = None,
        provenance_record: dict[str, Any] | None = None,
        grid_model_fn: Any = None,
    ) -> PredictionResult:
        """Predict spectra already put on the model axis by :meth:`prepare`.

        With ``"default"``, spectra the NPE served but its OOD score flags (outside its grid
        or unlike its training spectra) are predicted again by the fallback, noted.
        """
        t0 = time.perf_counter() if t0 is None else t0
        groups: dict[str, list[int]] = {mid: [] for mid in self.members}
        for i, inp in enumerate(inputs):
            groups[self._member_of(inp)].append(i)
        parts: list[tuple[list[int], PredictionResult]] = []
        todo = list(inputs)
        if self.policy is not None and self._primary is not None:
            pid = self._primary.model_id
            idx = groups.pop(pid)
            if idx:
                res = self._run(self._primary, [todo[i] for i in idx], grid_model_fn)
                keep = [k for k in range(len(idx)) if not res.ood_flag[k]]
                if len(keep) < len(idx):
                    keep = self._reroute(res, idx, keep, todo, groups)
                if keep:
                    parts.append(([idx[k] for k in keep], subset_rows(res, keep)))
        for mid, idx in groups.items():
            if idx:
                parts.append(
                    (idx, self._run(self.members[mid], [todo[i] for i in idx], grid_model_fn))
                )
        if not parts:
            parts.append(([], self._run(self._only, [], grid_model_fn)))
        result = parts[0][1] if len(parts) == 1 else concat_rows(parts, len(inputs))
        result.model_id = self.model_id
        result.wall_time_s = time.perf_counter() - t0
        result.provenance = provenance_record or {}
        return result

    def _reroute(
        self,
        res: PredictionResult,
        idx: list[int],
        keep: list[int],
        todo: list[ModelInput],
        groups: dict[str, list[int]],
    ) -> list[int]:
        """Send NPE rows its OOD score flags to the fallback; returns the NPE rows kept."""
        assert self.policy is not None
        kept = list(keep)
        for k in range(len(idx)):
            if k in keep:
                continue
            i = idx[k]
            spec = todo[i].spectrum
            reason = (
                f"out-of-distribution for {self.policy.primary} (ood_score "
                f"{res.ood_score[k]:.2f} > 1: {res.ood_reason[k]}; outside its grid or unlike "
                "its training spectra)"
            )
            try:
                assert spec is not None
                new = RoutedInput.of(
                    self._prepare_for(self._fallback, spec), self._fallback.model_id
                )
            except AtmospecError as err:
                res.notes[k].append(f"{reason}; the fallback cannot take it either ({err})")
                kept.append(k)
                continue
            new.notes.append(self.policy.fallback_note(reason))
            todo[i] = new
            groups[self._fallback.model_id].append(i)
        groups[self._fallback.model_id].sort()
        return sorted(kept)

    def _run(
        self, member: Member, inputs: list[ModelInput], grid_model_fn: Any
    ) -> PredictionResult:
        """Predict ``inputs`` (all on ``member``'s axis) with one member."""
        from atmospec.prediction.members import NPEMember
        from atmospec.prediction.ood import grid_model_on_axis

        mid = member.model_id
        names = member.param_names
        n = len(inputs)
        flux = np.array([m.flux for m in inputs]).reshape(n, -1)
        sigma = np.array([m.sigma for m in inputs]).reshape(n, -1)
        seeds = [spectrum_seed(self.seed, m.source) for m in inputs]
        if n:
            samples, point, point_std, at_bound = member.draw(flux, sigma, seeds, self.draws)
        else:
            p = len(names)
            samples = np.zeros((0, self.draws, p), dtype=np.float32)
            point, point_std = np.zeros((0, p)), None
            at_bound = np.zeros((0, p), dtype=bool)
        median = np.median(samples, axis=1).astype(np.float64)
        fits = [self._object_model(member, m, median[i]) for i, m in enumerate(inputs)]
        chi2_red = np.array([f.chi2_red if f else np.nan for f in fits])
        dof = np.array([f.dof if f else 0 for f in fits], dtype=np.int64)
        notes = [list(m.notes) for m in inputs]
        detector = self.detectors.get(mid)
        grid = self.grids[mid]
        if detector is not None and grid is not None and n:
            fn = grid_model_fn or grid_model_on_axis
            gm = fn(grid, point, names, member.wavelength)
            raw = detector.raw_scores(flux, sigma, point, point_std, gm)
            score, flag, reasons = detector.score(raw)
        else:
            score = np.full(n, np.nan)
            flag = np.zeros(n, dtype=bool)
            reasons = [""] * n
            if self.ood_notes.get(mid):
                for nt in notes:
                    nt.append(self.ood_notes[mid])
        for i in range(n):
            hit = [p for j, p in enumerate(names) if at_bound[i, j]]
            if hit:
                notes[i].append(
                    "estimate presses the grid bound of "
                    + ", ".join(hit)
                    + " (the truth may lie beyond the grid: read it as a limit)"
                )
        return PredictionResult(
            param_names=tuple(names),
            sources=[m.source for m in inputs],
            names=[m.name for m in inputs],
            samples=samples,
            point=point,
            point_std=point_std,
            at_bound=at_bound,
            bounds=dict(member.bounds),
            ood_score=score,
            ood_flag=flag,
            ood_reason=reasons,
            chi2_red=chi2_red,
            dof=dof,
            fits=fits,
            inputs=inputs,
            model_id=mid,
            grid=grid.name if grid is not None else "",
            draws=self.draws,
            notes=notes,
            row_model_ids=[mid] * n,
            intervals=NPE_INTERVALS_NOTE if isinstance(member, NPEMember) else INTERVALS_NOTE,
        )


def predict(
    spectra: Any,
    model: Any = "default",
    *,
    grid: ModelGrid | str | None = None,
    draws: int = 1000,
    coverage: CoveragePolicy = "gaps",
    max_masked_fraction: float = 0.5,
    assume_snr: float | None = None,
    ood: bool | OODDetector = True,
    seed: int = 0,
) -> PredictionResult:
    """Predict atmospheric parameters of observed spectra, with predictive intervals.

    Each spectrum is checked (units, errors, wavelength coverage under the ``coverage``
    policy: gaps, refuse, or mask; NaN never reaches the network), resampled onto the model's axis
    and normalised. ``draws`` noisy copies drawn from its flux errors go through the
    estimator in one batched call; each contributes one sample of the estimator's calibrated
    predictive (sigma heads, ensembles; Student-t where the model's held-out errors are
    heavy-tailed), so the percentiles combine measurement noise and model uncertainty. The
    grid model at the medians gives ``chi2_red`` and the plot; a calibrated score flags
    spectra unlike anything the model learned.

    Args:
        spectra: a Spectrum, a file path, or a list of them.
        model: an Estimator, a saved model folder, or a registry name.
        grid: the model grid; default the grid the model was trained on.
        draws: Monte Carlo draws per spectrum.
        coverage: ``"gaps"`` (default: mask holes between valid pixels, refuse bins beyond
            them), ``"refuse"`` or ``"mask"``.
        max_masked_fraction: with ``"gaps"`` or ``"mask"``, the largest fraction of the axis
            to mask.
        assume_snr: constant S/N to assume for spectra without errors.
        ood: compute the OOD score (calibrated once per model, cached), or a detector.
        seed: random seed (per spectrum: ``(seed, crc32(source))``).

    Returns:
        A :class:`PredictionResult`: ``.table()``, ``.samples``, ``.plot()``, ``.corner()``,
        ``.write(folder)``.

    Example:
        >>> import atmospec
        >>> result = atmospec.predict("HD3651B.fits")  # doctest: +SKIP
        >>> result.table()["teff_median", "teff_p16", "teff_p84", "ood_flag"]  # doctest: +SKIP
    """
    predictor = Predictor(
        model,
        grid=grid,
        ood=ood,
        draws=draws,
        coverage=coverage,
        max_masked_fraction=max_masked_fraction,
        assume_snr=assume_snr,
        seed=seed,
    )
    return predictor.predict(spectra)
