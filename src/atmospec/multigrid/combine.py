"""Several grids' answers for one object: which grids cover it, and one combined estimate."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from .disagreement import Disagreement, disagreement_score, intervals_apart
from .estimate import COMMON_PARAMS, GridEstimate

__all__ = ["Combined", "combine", "covering", "majority_misfit", "reference_teff", "shares"]

FloatArray = NDArray[np.float64]

TEFF_TOLERANCE = 50.0
"""K: a grid covers an object whose reference Teff lies at most this far outside its range
(half the 100 K node spacing of the shipped grids: the last node stands for that cell)."""


@dataclass
class Combined:
    """The combined answer of several grids for one object.

    Attributes:
        samples: (draws, 3) mixture samples of ``teff, logg, mh`` with equal weight for every
            grid that covers the object (its interval therefore includes the spread between
            grids: the systematic uncertainty of the atmosphere models).
        weights: grid -> weight in the mixture (0 for grids that do not cover the object, and
            for covering grids left out as misfits while another covering grid fits).
        covers: grid -> whether the grid's parameter range contains the object.
        reference_teff: the Teff the coverage was decided at (median of the grids' answers
            that do not press a bound).
        misfit: the lower median of the covering grids' misfits (each in units of its
            threshold; :func:`majority_misfit`): above 1 when most of them misfit.
        spread: per common parameter, max - min of the covering grids' medians.
        disagree: True when the covering grids disagree more than they do on ordinary field
            dwarfs (``disagreement`` above the learned threshold of a
            :class:`~atmospec.multigrid.disagreement.Disagreement`); without one, when their
            68 % intervals of Teff or log g do not overlap.
        notes: the sentences a user reads (coverage, disagreement).
        calibration: parameter -> (shift, sd) of the correction for the grids' shared
            systematic error applied to ``samples`` (empty when none was applied; see
            :mod:`atmospec.multigrid.calibration`).
        statistical: parameter -> the scatter expected between independent spectra of the
            object at its S/N (the statistical part of the uncertainty, learned from objects
            with two spectra; empty without a calibration).
        disagreement: the grids' distance in units of their own intervals
            (:func:`~atmospec.multigrid.disagreement.disagreement_score`; NaN with one grid).

    Example:
        >>> mk = lambda t, hi: GridEstimate("g", "chi2", COMMON_PARAMS,
        ...     np.tile(np.float32([t, 5.0, 0.0]), (100, 1)), {"teff": (500.0, hi)},
        ...     np.zeros(3, bool))
        >>> c = combine({"a": mk(1500.0, 3000.0), "b": mk(1700.0, 3000.0), "c": mk(1600.0, 1200.0)},
        ...             draws=100, rng=np.random.default_rng(0))
        >>> c.reference_teff, c.covers, c.weights
        (1600.0, {'a': True, 'b': True, 'c': False}, {'a': 0.5, 'b': 0.5, 'c': 0.0})
        >>> c.spread["teff"], c.disagree, c.notes[-1]
        (200.0, True, 'Teff ~ 1600 K is outside the parameters of c: answered by a, b')
    """

    samples: NDArray[np.float32]
    weights: dict[str, float]
    covers: dict[str, bool]
    reference_teff: float
    misfit: float
    spread: dict[str, float]
    disagree: bool
    notes: list[str] = field(default_factory=list)
    calibration: dict[str, tuple[float, float]] = field(default_factory=dict)
    statistical: dict[str, float] = field(default_factory=dict)
    disagreement: float = float("nan")


def reference_teff(estimates: Mapping[str, GridEstimate]) -> float:
    """The Teff the grids agree on: the median of the Teff medians of the answers whose Teff
    does not press a bound of their range (of all answers when every one does).

    Example:
        >>> import numpy as np
        >>> a = GridEstimate("a", "chi2", ("teff",), np.full((4, 1), 900.0, np.float32),
        ...                  {"teff": (900.0, 2400.0)}, np.array([True]))
        >>> b = GridEstimate("b", "chi2", ("teff",), np.full((4, 1), 800.0, np.float32),
        ...                  {"teff": (500.0, 3500.0)}, np.array([False]))
        >>> reference_teff({"a": a, "b": b})
        800.0
    """
    free: list[float] = []
    pressed: list[float] = []
    for est in estimates.values():
        if "teff" not in est.param_names:
            continue
        j = est.param_names.index("teff")
        (pressed if est.at_bound[j] else free).append(est.median("teff"))
    values = free or pressed
    return float(np.median(values)) if values else float("nan")


def majority_misfit(misfits: Sequence[float]) -> float:
    """The misfit score of several grids' answers: the lower median of their misfits (NaN
    ones, grids without a model of mismatch, left out). It is above 1 exactly when more than
    half of the grids misfit (both of two, two of three).

    Why not the smallest misfit: each grid's threshold is calibrated to flag few ordinary
    field dwarfs, so one grid in three fitting an arbitrary spectrum within its model of
    mismatch is far likelier than one grid alone doing so; with the minimum, every grid added
    would make the flag blinder. Asking a majority keeps ordinary dwarfs unflagged (two
    grids must misfit at once) without letting one lenient grid speak for all.

    Example:
        >>> majority_misfit([0.6, 2.0, 3.0]), majority_misfit([0.6, 2.0]), majority_misfit([2.0])
        (2.0, 0.6, 2.0)
        >>> majority_misfit([float("nan"), 0.4, 5.0, 0.9])
        0.9
    """
    m = np.sort(np.asarray([v for v in misfits if np.isfinite(v)], dtype=np.float64))
    if m.size == 0:
        return float("nan")
    return float(m[m.size - (m.size // 2 + 1)])


def shares(draws: int, weights: Sequence[float]) -> NDArray[np.int64]:
    """How many of ``draws`` mixture samples each component gets: its weight's share, rounded
    by largest remainder (ties to the first), so the counts sum to ``draws`` and never move by
    chance.

    Drawing the component of every sample at random instead makes the counts binomial
    (+-16 of 500 for two equal components at 1000 draws): where the answers of two grids do
    not overlap the median then jumps between them from one spectrum to the next, a Monte-Carlo
    scatter that two spectra of the same object would show as a disagreement.

    Example:
        >>> shares(1000, [1 / 3, 1 / 3, 1 / 3]).tolist()
        [334, 333, 333]
        >>> shares(10, [0.75, 0.25, 0.0]).tolist()
        [8, 2, 0]
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.size == 0 or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"mixture weights must be finite, >= 0 and not all 0: {w.tolist()}")
    exact = draws * w / w.sum()
    counts = np.floor(exact).astype(np.int64)
    left = int(draws - counts.sum())
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[:left]] += 1
    return counts


def _covers(est: GridEstimate, teff: float) -> bool:
    lo, hi = est.bounds.get("teff", (-np.inf, np.inf))
    if not np.isfinite(teff):
        return True
    return bool(lo - TEFF_TOLERANCE <= teff <= hi + TEFF_TOLERANCE)


def _beyond(
    grid: str,
    answers: Mapping[str, GridEstimate],
    others: Mapping[str, GridEstimate] | None = None,
) -> bool:
    """Whether ``grid``'s Teff answer presses an edge of its range while another grid's
    answer (in ``others``, default ``answers``) lies beyond that edge: the object is outside
    this grid whatever the median says."""
    est = answers.get(grid)
    if est is None or "teff" not in est.param_names:
        return False
    if not est.at_bound[est.param_names.index("teff")]:
        return False
    lo, hi = est.bounds["teff"]
    t = est.median("teff")
    upper = abs(t - hi) < abs(t - lo)
    for g, other in (answers if others is None else others).items():
        v = other.median("teff")
        if g == grid or not np.isfinite(v):
            continue
        if (upper and v > hi + TEFF_TOLERANCE) or (not upper and v < lo - TEFF_TOLERANCE):
            return True
    return False


def covering(scans: Mapping[str, GridEstimate]) -> dict[str, bool]:
    """Which grids cover the object, from each grid's answer over its whole range (``scans``,
    e.g. classic chi-square): the reference Teff (:func:`reference_teff`) lies inside a grid's
    Teff range (within :data:`TEFF_TOLERANCE`), and the grid's answer does not press an edge
    of its range while another grid answers beyond that edge.

    Example:
        >>> import numpy as np
        >>> mk = lambda t, lo, hi: GridEstimate("g", "chi2", ("teff",),
        ...     np.full((10, 1), t, np.float32), {"teff": (lo, hi)}, np.array([t in (lo, hi)]))
        >>> covering({"a": mk(2400.0, 900.0, 2400.0), "b": mk(3300.0, 500.0, 3500.0)})
        {'a': False, 'b': True}
    """
    t_ref = reference_teff(scans)
    return {g: _covers(est, t_ref) and not _beyond(g, scans) for g, est in scans.items()}


def combine(
    estimates: Mapping[str, GridEstimate],
    *,
    draws: int,
    rng: np.random.Generator,
    params: Sequence[str] = COMMON_PARAMS,
    reference: Mapping[str, GridEstimate] | None = None,
    disagreement: Disagreement | None = None,
) -> Combined:
    """Combine several grids' answers for one object.

    A grid covers the object when the reference Teff (:func:`reference_teff` of
    ``reference``, by default of ``estimates``; e.g. chi-square scans over each grid's whole
    range, which press a bound only when the object lies beyond it) lies inside the Teff
    range of its answer (within :data:`TEFF_TOLERANCE`), and its answer does not press the
    edge of its range while another grid answers beyond that edge. Covering grids whose
    misfit exceeds the threshold of their model of mismatch are left out when at least one
    covering grid fits within it. The rest enter an equal-weight mixture (``draws`` samples,
    each grid exactly its share, :func:`shares`, drawn from its samples, without preferring
    any grid: the spread between grids is a systematic uncertainty, not something the data
    decide). When no grid covers the object, every grid enters and the notes say the answer
    is an extrapolation. The grids disagree (a warning) when their
    :func:`~atmospec.multigrid.disagreement.disagreement_score` exceeds the threshold
    ``disagreement`` learned on field dwarfs; without one, when their 68 % intervals of Teff
    or log g do not overlap, which is true of most real objects.

    Why not weight the grids by their evidence: under each grid's model of mismatch the
    best-node likelihood (tempered by the largest calibrated likelihood temperature) favours
    a grid clearly for most objects, but the log-weights change by ~47 nats (rms, untempered)
    between two spectra of the same object, so the combined answer of repeat spectra
    disagrees more (on the discrepancy models' fit half: 56-60 K -> 85-100 K per spectrum),
    and it moved neither the benchmark companions' Teff nor the gravity gap for the better.

    Example:
        >>> import numpy as np
        >>> mk = lambda t: GridEstimate("g", "chi2", ("teff", "logg", "mh"),
        ...     np.tile(np.float32([t, 5.0, 0.0]), (100, 1)), {"teff": (500.0, 3000.0)},
        ...     np.zeros(3, bool))
        >>> c = combine({"a": mk(1500.0), "b": mk(1700.0)}, draws=1000,
        ...             rng=np.random.default_rng(0))
        >>> float(np.percentile(c.samples[:, 0], 2.5)), float(np.percentile(c.samples[:, 0], 97.5))
        (1500.0, 1700.0)
    """
    names = list(estimates)
    t_ref = reference_teff(estimates if reference is None else reference)
    ref = estimates if reference is None else reference
    covers = {
        g: _covers(estimates[g], t_ref) and not (_beyond(g, ref) or _beyond(g, estimates, ref))
        for g in names
    }
    notes: list[str] = []
    use = [g for g in names if covers[g]]
    if not use:
        use = list(names)
        notes.append(
            f"no grid covers Teff ~ {t_ref:.0f} K: every grid's answer is an extrapolation"
        )
    misfit = majority_misfit([estimates[g].misfit for g in use])
    fitting = [g for g in use if not (estimates[g].misfit > 1.0)]
    if fitting and len(fitting) < len(use):
        dropped = sorted(set(use) - set(fitting))
        notes.append(
            f"left out of the combination: {', '.join(dropped)} (residuals beyond its model of "
            "mismatch while another grid fits)"
        )
        if misfit > 1.0:
            notes.append(
                f"misfit: {len(dropped)} of the {len(use)} grids that cover the object do not "
                "reproduce it within their model of mismatch, so the answer comes from "
                f"{', '.join(fitting)} alone and is flagged (a spectrum most physical models "
                "cannot match is not an ordinary brown dwarf: a young embedded or reddened "
                "star, a binary, a reduction artefact?)"
            )
        use = fitting
    weights = {g: (1.0 / len(use) if g in use else 0.0) for g in names}
    counts = shares(draws, [weights[g] for g in use])
    out = np.full((draws, len(params)), np.nan, dtype=np.float32)
    start = 0
    for g, n in zip(use, counts, strict=True):
        rows = np.arange(start, start + n)
        start += n
        est = estimates[g]
        pick = rng.integers(0, est.samples.shape[0], rows.size)
        for j, p in enumerate(params):
            col = est.column(p)
            if col is not None:
                out[rows, j] = col[pick]
    # A parameter a grid lacks (none of the shipped ones) is filled from the others.
    for j in range(len(params)):
        bad = ~np.isfinite(out[:, j])
        if bad.any() and (~bad).any():
            out[bad, j] = rng.choice(out[~bad, j], bad.sum())
    out = out[rng.permutation(draws)]  # grids interleaved: any subset is a fair mixture
    spread: dict[str, float] = {}
    for p in params:
        meds = [estimates[g].median(p) for g in use]
        meds = [m for m in meds if np.isfinite(m)]
        spread[p] = float(max(meds) - min(meds)) if len(meds) > 1 else 0.0
    score = disagreement_score(estimates, use) if len(use) > 1 else float("nan")
    if disagreement is not None:
        disagree = disagreement.flags(score)
        beyond = (
            f"beyond their usual spread (distance {score:.1f} of their own intervals, against "
            f"{disagreement.threshold:.1f} for {1 - disagreement.false_alarm_rate:.0%} of field "
            "dwarfs)"
        )
    else:
        disagree = len(use) > 1 and intervals_apart(estimates, use)
        beyond = "beyond their own intervals"
    if disagree:
        parts = []
        for g in use:
            parts.append(
                f"{g} {estimates[g].median('teff'):.0f} K / log g {estimates[g].median('logg'):.2f}"
            )
        notes.append(
            f"the grids disagree {beyond} ("
            + ", ".join(parts)
            + f", Teff spread {spread['teff']:.0f} K): the combined interval includes that spread"
        )
    notes.extend(_limits_in_mixture(estimates, use, params))
    outside = [g for g in names if not covers[g]]
    if outside and len(outside) < len(names):
        notes.append(
            f"Teff ~ {t_ref:.0f} K is outside the parameters of {', '.join(outside)}: answered by "
            f"{', '.join(g for g in names if covers[g])}"
        )
    return Combined(
        out, weights, covers, t_ref, misfit, spread, disagree, notes, disagreement=score
    )


def _limits_in_mixture(
    estimates: Mapping[str, GridEstimate], use: Sequence[str], params: Sequence[str]
) -> list[str]:
    """Notes for the grids in the mixture whose own answer presses a bound of their range for
    a parameter (read as a limit there: Burrows 2006 stops at log g 4.5), while other grids
    answer it freely: that part of the combined interval piles at the bound.

    Example:
        >>> import numpy as np
        >>> a = GridEstimate("a", "chi2", ("logg",), np.full((4, 1), 4.5, np.float32),
        ...                  {"logg": (4.5, 5.5)}, np.array([True]))
        >>> b = GridEstimate("b", "chi2", ("logg",), np.full((4, 1), 4.0, np.float32),
        ...                  {"logg": (3.0, 5.5)}, np.array([False]))
        >>> _limits_in_mixture({"a": a, "b": b}, ["a", "b"], ["logg"])[0][:63]
        'a: logg presses its grid bound (4.5; a limit, not a value): its'
    """
    out = []
    for p in params:
        pressed = [
            g
            for g in use
            if p in estimates[g].param_names
            and estimates[g].at_bound[estimates[g].param_names.index(p)]
        ]
        if not pressed or len(pressed) == len(use):
            continue  # none, or all of them (then the combined answer is flagged at its bound)
        for g in pressed:
            lo, hi = estimates[g].bounds[p]
            edge = (
                lo if abs(estimates[g].median(p) - lo) <= abs(estimates[g].median(p) - hi) else hi
            )
            out.append(
                f"{g}: {p} presses its grid bound ({edge:g}; a limit, not a value): its share of "
                f"the combined {p} piles there"
            )
    return out
