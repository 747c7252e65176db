"""The learned grids' answers in a multi-grid prediction, and their coarse variants.

A spectrum coarser than the SpeX prism spectra the built-in grids' models were trained on
(R < 75, stated or sampled so) reads to them as a lower gravity: its bands are broader than
any training spectrum's. Each such model has a variant trained on spectra smoothed to R 25-75
(:data:`atmospec.models.COARSE_VARIANTS`); :func:`coarse_input` sends such a spectrum to the
primary grid's, and :func:`base_answers` / :func:`learned_estimates` ask every grid's variant.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from atmospec.errors import AtmospecError

from .estimate import GridEstimate

if TYPE_CHECKING:
    from atmospec.prediction.coverage import ModelInput
    from atmospec.prediction.predictor import Predictor
    from atmospec.prediction.result import PredictionResult
    from atmospec.spectrum import Spectrum

__all__ = ["coarse_input", "is_coarse", "base_answers", "learned_estimates", "from_result"]

log = logging.getLogger(__name__)


def coarse_input(pred: Predictor, spectrum: Spectrum, inp: ModelInput) -> ModelInput:
    """``spectrum`` on the axis of the coarse variant ``pred``, its routing said.

    ``inp`` is the spectrum as the primary model read it (flagged ``low_resolution``); its
    notes are kept, less the one that says the primary model's answer would be biased and the
    primary's own routing note.

    Example:
        >>> from atmospec.prediction import Predictor  # doctest: +SKIP
        >>> gd165b = atmospec.library.load("11250_11052").convolve(37.5, r_in=120.0)  # doctest: +SKIP
        >>> inp = Predictor().prepare(gd165b)  # doctest: +SKIP
        >>> coarse_input(Predictor("dback24-spex-coarse"), gd165b, inp).notes[-1][:28]  # doctest: +SKIP
        'its stated R 37.5 is coarser'
    """
    from atmospec.resolution import stated_resolution

    routed = pred.prepare(spectrum)
    stated = stated_resolution(spectrum)
    what = (
        f"its stated R {stated:g} is"
        if stated is not None and stated < inp.sampling_resolution / 2
        else f"its pixels (lambda/dlambda {inp.sampling_resolution:.0f}) are"
    )
    keep = [n for n in inp.notes if "coarser than the R >=" not in n]
    routed.notes[:0] = [n for n in keep if not n.startswith("served by")]
    routed.notes.append(
        f"{what} coarser than the SpeX prism spectra the default models were trained on "
        f"(their answers would be biased, log g most): answered by {pred.model_id} and each "
        "learned grid's coarse variant, CNNs trained on spectra smoothed to R 25-75"
    )
    return routed


def is_coarse(pred: Predictor | None, inp: ModelInput) -> bool:
    """Whether :func:`coarse_input` sent ``inp`` to ``pred`` (the primary's coarse variant).

    Example:
        >>> from types import SimpleNamespace
        >>> is_coarse(None, SimpleNamespace(member="dback24-spex-coarse-172e7c0e06"))
        False
    """
    return pred is not None and getattr(inp, "member", "") in pred.members


def base_answers(
    primary: Predictor, coarse: Predictor | None, inputs: list[ModelInput]
) -> PredictionResult:
    """The primary grid's answers: its default chain's, or its coarse variant's for the
    spectra :func:`coarse_input` sent there, in the order of ``inputs``.

    Example:
        >>> mp = atmospec.multigrid.MultiGridPredictor()  # doctest: +SKIP
        >>> first = mp.coarse["dback24"]  # doctest: +SKIP
        >>> base_answers(mp.primary, first, [mp.prepare(gd165b)]).row_model_id(0)[:19]  # doctest: +SKIP
        'dback24-spex-coarse'
    """
    sent = [i for i, inp in enumerate(inputs) if is_coarse(coarse, inp)]
    if not sent:
        return primary.predict_inputs(inputs)
    assert coarse is not None
    from atmospec.prediction.result import concat_rows

    taken = set(sent)
    rest = [i for i in range(len(inputs)) if i not in taken]
    parts = [(sent, coarse.predict_inputs([inputs[i] for i in sent]))]
    if rest:
        parts.append((rest, primary.predict_inputs([inputs[i] for i in rest])))
    base = parts[0][1] if len(parts) == 1 else concat_rows(parts, len(inputs))
    base.model_id = primary.model_id
    return base


def learned_estimates(
    grid: str,
    predictor: Predictor,
    coarse: Predictor | None,
    inputs: list[ModelInput],
    sent: list[bool],
) -> list[GridEstimate | None]:
    """A learned grid's answer to each input (None where it cannot take one): from its
    ``coarse`` variant for the inputs ``sent`` to the primary's, when it has one.

    Example:
        >>> ests = learned_estimates("burrows06", mp.learned["burrows06"],  # doctest: +SKIP
        ...                          mp.coarse["burrows06"], inputs, [True])
    """
    out: list[GridEstimate | None] = [None] * len(inputs)
    for pred, flag in ((predictor, False), (coarse or predictor, True)):
        prepared, where = [], []
        for i, inp in enumerate(inputs):
            if sent[i] is not flag:
                continue
            try:
                assert inp.spectrum is not None
                prepared.append(pred.prepare(inp.spectrum))
                where.append(i)
            except AtmospecError as err:
                log.info("%s: %s cannot take it (%s)", inp.source, grid, err)
        if prepared:
            res = pred.predict_inputs(prepared)
            for k, i in enumerate(where):
                out[i] = from_result(res, k, grid)
    return out


def from_result(res: PredictionResult, k: int, grid: str) -> GridEstimate:
    """Row ``k`` of a single-grid prediction as a :class:`GridEstimate`.

    Example:
        >>> from_result(Predictor("t-dwarf").predict(hd3651b), 0, "burrows06").grid  # doctest: +SKIP
        'burrows06'
    """
    from .estimate import _at_bound

    samples = np.asarray(res.samples[k], dtype=np.float32)
    names = tuple(res.param_names)
    pressed = _at_bound(samples, names, dict(res.bounds), set())
    return GridEstimate(
        grid=grid,
        route=res.row_model_id(k).split("-")[0],
        param_names=tuple(res.param_names),
        samples=np.asarray(res.samples[k], dtype=np.float32),
        bounds=dict(res.bounds),
        at_bound=np.asarray(res.at_bound[k], dtype=bool) | pressed,
        notes=[],
        model=res.row_model_id(k),
    )
