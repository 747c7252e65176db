"""A multi-grid predictor as data, rebuilt once per process by the batch runner's workers."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from atmospec.errors import AtmospecError
from atmospec.prediction.batch import PredictorSpec

from .routes import GridRoute

if TYPE_CHECKING:
    from atmospec.prediction.options import BatchOptions

__all__ = ["MultiGridSpec"]


@dataclass(frozen=True)
class MultiGridSpec:
    """What a Dask worker needs to rebuild a
    :class:`~atmospec.multigrid.predictor.MultiGridPredictor`.

    Every learned model travels as a :class:`~atmospec.prediction.batch.PredictorSpec` (its
    files, grid reference and calibrated OOD detectors: the exact weights, checked by model
    id), the model-discrepancy models and the shared-error calibration as the objects loaded
    here, and the routes, draws,
    seed and options as values. :meth:`build` gives the worker a predictor that answers as
    the local one does, so the local and Dask runs write the same table.

    Example:
        >>> spec = MultiGridSpec("m", (("btsettl08", None),), None, {}, {}, {}, 1000, 0, None)
        >>> spec.key  # the worker's cache key of the rebuilt predictor
        '9a8dd1b0f920f463'
        >>> dataclasses.replace(spec, seed=1).key == spec.key  # another seed: another predictor
        False
    """

    model_id: str
    routes: tuple[tuple[str, str | None, str | None], ...]  # grid, model, model of mismatch
    primary: PredictorSpec
    learned: dict[str, PredictorSpec]
    discrepancy: dict[str, Any]
    discrepancy_notes: dict[str, str]
    draws: int
    seed: int
    factory: Any  # the predictor class (MultiGridPredictor), rebuilt by reference
    options: dict[str, Any] = field(default_factory=dict)
    calibration: Any = None  # the Calibration applied (None: none), as the object
    calibration_note: str = ""  # why none applies, as the local predictor says it

    @property
    def key(self) -> str:
        """Cache key of the rebuilt predictor in a process: model id, routes and options."""
        blob = json.dumps(
            [self.model_id, self.routes, self.draws, self.seed, self.options],
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @classmethod
    def of(cls, predictor: Any, options: BatchOptions) -> MultiGridSpec:
        """The spec of a built multi-grid predictor (its primary OOD detectors calibrated)."""
        plain = dataclasses.replace(options, ood=False)  # the other grids run without OOD
        return cls(
            model_id=predictor.model_id,
            routes=tuple((r.grid, r.model, r.discrepancy) for r in predictor.routes),
            primary=PredictorSpec.of(predictor.primary, options),
            learned={g: PredictorSpec.of(p, plain) for g, p in predictor.learned.items()},
            discrepancy=dict(predictor.discrepancy),
            discrepancy_notes=dict(predictor.discrepancy_notes),
            draws=predictor.draws,
            seed=predictor.seed,
            factory=type(predictor),
            options=dict(predictor._kw),
            calibration=predictor.calibration,
            calibration_note=predictor.calibration_note,
        )

    def build(self) -> Any:
        """The multi-grid predictor, rebuilt here (once per process and spec)."""
        if self.key in _BUILT:
            return _BUILT[self.key]
        routes = [GridRoute(*r) for r in self.routes]
        built = {routes[0].grid: self.primary.build()}
        built.update({g: s.build() for g, s in self.learned.items()})
        kw = {k: v for k, v in self.options.items() if k not in ("draws", "seed")}
        pred = self.factory(
            routes,
            draws=self.draws,
            seed=self.seed,
            ood=False,  # the primary comes built, with the shipped OOD detectors
            discrepancy=dict(self.discrepancy),
            predictors=built,
            calibration=self.calibration,
            **kw,
        )
        pred.discrepancy_notes.update(self.discrepancy_notes)  # why a grid has no covariance
        pred.calibration_note = self.calibration_note  # why no shared-error correction applies
        if pred.model_id != self.model_id:
            raise AtmospecError(
                f"multi-grid predictor rebuilt on the worker differs: {pred.model_id} != "
                f"{self.model_id}"
            )
        _BUILT[self.key] = pred
        return pred


_BUILT: dict[str, Any] = {}
"""Multi-grid predictors already rebuilt in this process."""
