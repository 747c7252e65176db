"""How far the grids' answers for one object lie apart, and when that is more than usual.

The atmosphere grids differ systematically: for an ordinary field L dwarf, each grid's 68 %
interval (photon noise and its own model of mismatch) is a few tens of kelvin wide while
their medians lie a few hundred kelvin apart. "Their intervals do not overlap" is therefore
true of almost every real brown dwarf, and a warning raised on it says nothing. The
disagreement score measures the distance in units of the grids' own intervals; the
threshold that turns it into a warning is learned on real field dwarfs (the usual spread
between these grids), so that the warning marks an object on which the grids disagree more
than they do on ordinary ones: a peculiar or young object, a binary, a reduction problem.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .estimate import GridEstimate

__all__ = ["DISAGREEMENT_PARAMS", "Disagreement", "disagreement_score", "intervals_apart"]

DISAGREEMENT_PARAMS = ("teff", "logg")
"""The parameters whose disagreement is scored (the ones every shipped grid constrains)."""


def _median_and_sd(est: GridEstimate, param: str) -> tuple[float, float] | None:
    col = est.column(param)
    if col is None:
        return None
    lo, med, hi = np.percentile(np.asarray(col, dtype=np.float64), [16, 50, 84])
    if not np.isfinite(med):
        return None
    return float(med), float(0.5 * (hi - lo))


def disagreement_score(
    estimates: Mapping[str, GridEstimate],
    use: Sequence[str],
    params: Sequence[str] = DISAGREEMENT_PARAMS,
) -> float:
    """The largest distance between two grids' medians in units of their 68 % intervals:
    ``max |m_a - m_b| / sqrt(s_a^2 + s_b^2)`` over the pairs of grids in ``use`` and the
    parameters ``params`` (``s``: half the 16-84 % width). NaN with fewer than two grids.

    Two grids agreeing within their own errors give about 1 or less; the shipped grids give
    about 4 on an ordinary field dwarf, because they differ systematically.

    Example:
        >>> import numpy as np
        >>> from atmospec.multigrid.estimate import COMMON_PARAMS
        >>> rng = np.random.default_rng(0)
        >>> mk = lambda t, sd: GridEstimate("g", "chi2", COMMON_PARAMS, np.column_stack(
        ...     [rng.normal(t, sd, 20000), np.full(20000, 5.0), np.zeros(20000)]).astype(np.float32),
        ...     {"teff": (500.0, 3000.0)}, np.zeros(3, bool))
        >>> round(disagreement_score({"a": mk(1500.0, 30.0), "b": mk(1700.0, 40.0)}, ["a", "b"]), 1)
        4.0
    """
    best = float("nan")
    for p in params:
        stats = [s for s in (_median_and_sd(estimates[g], p) for g in use) if s is not None]
        for i, (m_a, s_a) in enumerate(stats):
            for m_b, s_b in stats[i + 1 :]:
                width = float(np.hypot(s_a, s_b))
                d = abs(m_a - m_b)
                score = d / width if width > 0 else (0.0 if d == 0 else float("inf"))
                best = score if not np.isfinite(best) else max(best, score)
    return best


def intervals_apart(
    estimates: Mapping[str, GridEstimate],
    use: Sequence[str],
    params: Sequence[str] = DISAGREEMENT_PARAMS,
) -> bool:
    """Whether two grids in ``use`` have 68 % intervals of a parameter that do not overlap
    (the rule when no threshold has been learned for these grids).

    Example:
        >>> import numpy as np
        >>> from atmospec.multigrid.estimate import COMMON_PARAMS
        >>> mk = lambda t: GridEstimate("g", "chi2", COMMON_PARAMS,
        ...     np.tile(np.float32([t, 5.0, 0.0]), (10, 1)), {"teff": (500.0, 3000.0)},
        ...     np.zeros(3, bool))
        >>> intervals_apart({"a": mk(1500.0), "b": mk(1700.0)}, ["a", "b"])
        True
    """
    for p in params:
        ivs = []
        for g in use:
            col = estimates[g].column(p)
            if col is not None:
                ivs.append(np.percentile(col, [16, 84]))
        if len(ivs) > 1 and max(i[0] for i in ivs) > min(i[1] for i in ivs):
            return True
    return False


@dataclass
class Disagreement:
    """The threshold above which the grids' disagreement (:func:`disagreement_score`) is
    reported as a warning: the ``1 - false_alarm_rate`` quantile of the score over real
    field dwarfs (``scores``: library key -> score of the objects it was learned from).

    Example:
        >>> d = Disagreement.fit({f"k{i}": float(i) for i in range(101)}, false_alarm_rate=0.05)
        >>> d.threshold, d.flags(96.0), d.flags(94.0), d.flags(float("nan"))
        (95.0, True, False, False)
        >>> Disagreement.from_json(d.to_json()) == d
        True
    """

    threshold: float
    false_alarm_rate: float
    scores: dict[str, float]
    learned_from: str = ""

    @classmethod
    def fit(
        cls, scores: Mapping[str, float], *, false_alarm_rate: float = 0.05, learned_from: str = ""
    ) -> Disagreement:
        """The threshold from the scores of objects the warning should leave alone."""
        finite = {k: float(v) for k, v in scores.items() if np.isfinite(v)}
        if len(finite) < 20:
            raise ValueError(
                f"need >= 20 objects answered by two grids or more to learn the disagreement "
                f"threshold, got {len(finite)}"
            )
        threshold = float(np.quantile(list(finite.values()), 1.0 - false_alarm_rate))
        return cls(threshold, float(false_alarm_rate), finite, learned_from)

    def flags(self, score: float) -> bool:
        """Whether a score is beyond the threshold (NaN, fewer than two grids: never)."""
        return bool(np.isfinite(score) and score > self.threshold)

    def to_json(self) -> dict[str, Any]:
        return {
            "statistic": "max over grid pairs and teff/logg of |median difference| / "
            "sqrt(sd_a^2 + sd_b^2), sd = half the 16-84 % width",
            "threshold": self.threshold,
            "false_alarm_rate": self.false_alarm_rate,
            "learned_from": self.learned_from,
            "scores": self.scores,
        }

    @classmethod
    def from_json(cls, rec: Mapping[str, Any]) -> Disagreement:
        return cls(
            float(rec["threshold"]),
            float(rec["false_alarm_rate"]),
            {str(k): float(v) for k, v in dict(rec["scores"]).items()},
            str(rec.get("learned_from", "")),
        )
