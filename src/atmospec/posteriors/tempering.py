"""Latent temperature of a flow posterior, chosen on held-out simulations for joint coverage.

A neural posterior trained by maximum likelihood is often right in its marginals and still
too narrow jointly: its highest-density regions (HPD) and TARP balls hold the truth less often
than their level says, because thin directions of the posterior (ridges such as radius against
temperature) come out thinner than they are. Drawing the flow's base variable from
``N(0, tau^2 I)`` instead of ``N(0, I)`` widens the posterior along every latent direction
at once, correlations and shapes kept, and gives an exact density (the flow's Jacobian is
unchanged; only the base term is), so HPD coverage of the tempered posterior is still
measurable. :func:`fit_temperature` picks ``tau`` on a calibration set of simulations
(disjoint from training and from any test set): among the grid values whose mean marginal
coverage stays within ``tolerance`` of every level (the marginals are usually right already,
and widening must not spoil them), the one that minimises the worst departure of the HPD and
TARP coverage from the diagonal; if no value keeps the marginals within tolerance, the one
that minimises the worst departure of all three.
The same latent draws are reused at every ``tau`` (common random numbers), so the curve over
``tau`` is smooth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from atmospec.posteriors.calibration import hpd_coverage, rank_coverage, sbc_ranks, tarp_coverage

__all__ = ["TemperatureFit", "fit_temperature", "tempered_coverage", "TEMPERATURES", "FIT_LEVELS"]

TEMPERATURES: tuple[float, ...] = (
    *np.round(np.arange(1.0, 1.501, 0.05), 2).tolist(),
    *np.round(np.arange(1.6, 2.01, 0.1), 2).tolist(),
    2.25,
    2.5,
)
"""The temperatures tried by default: 1 (the trained flow) to 1.5 in steps of 0.05, then
coarser to 2.5 (18 values; coverage moves by about a point per 0.05 near 1)."""

FIT_LEVELS: tuple[float, ...] = (0.5, 0.68, 0.9, 0.95)
"""Credibility levels whose coverage the temperature is fitted to."""


@dataclass(frozen=True)
class TemperatureFit:
    """The chosen latent temperature and the coverage it was chosen from.

    ``curves[kind]`` holds, for each temperature of ``temperatures``, the coverage at each
    of ``levels`` (``kind``: ``"hpd"``, ``"tarp"``, ``"marginal"``: mean over parameters of
    the central-interval coverage); ``loss`` the worst ``|coverage - level|`` over all three.
    ``constrained``: whether the chosen value keeps the marginals within ``tolerance``.

    Example:
        >>> fit = TemperatureFit(1.5, 100, 300, 0, (0.5, 0.9), (1.0, 1.5),
        ...                      curves={"hpd": [[0.4, 0.8], [0.5, 0.89]]}, loss=(0.1, 0.01))
        >>> fit.coverage(), fit.coverage(1.0)
        ({'hpd': {'0.5': 0.5, '0.9': 0.89}}, {'hpd': {'0.5': 0.4, '0.9': 0.8}})
        >>> rec = fit.to_dict(); rec["worst_error_untempered"], rec["worst_error_tempered"]
        (0.1, 0.01)
    """

    temperature: float
    n_calibration: int
    n_samples: int
    seed: int
    levels: tuple[float, ...]
    temperatures: tuple[float, ...]
    curves: dict[str, list[list[float]]] = field(default_factory=dict)
    loss: tuple[float, ...] = ()
    tolerance: float = 0.03
    constrained: bool = True

    def coverage(self, temperature: float | None = None) -> dict[str, dict[str, float]]:
        """Calibration-set coverage at ``temperature`` (default: the chosen one)."""
        i = self._index(temperature)
        return {
            kind: {str(lv): round(float(c), 4) for lv, c in zip(self.levels, cur[i], strict=True)}
            for kind, cur in self.curves.items()
        }

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record: the temperature, the calibration set and coverage at 1 and tau."""
        return {
            "method": "latent temperature (flow base N(0, tau^2 I)), fitted on held-out "
            "simulations",
            "temperature": self.temperature,
            "n_calibration": self.n_calibration,
            "n_samples": self.n_samples,
            "seed": self.seed,
            "levels": list(self.levels),
            "coverage_untempered": self.coverage(1.0),
            "coverage_tempered": self.coverage(),
            "worst_error_untempered": round(float(self.loss[0]), 4),
            "worst_error_tempered": round(float(self.loss[self._index()]), 4),
            "objective": (
                f"smallest worst HPD/TARP error with mean marginal coverage within "
                f"{self.tolerance:g}"
                if self.constrained
                else "smallest worst HPD/TARP/marginal error (no temperature kept the "
                f"marginals within {self.tolerance:g})"
            ),
        }

    def _index(self, temperature: float | None = None) -> int:
        """Index of the grid value nearest ``temperature`` (default: the chosen one)."""
        t = self.temperature if temperature is None else temperature
        return int(np.argmin(np.abs(np.asarray(self.temperatures) - t)))


def tempered_coverage(
    estimator: Any,
    flux: ArrayLike,
    sigma: ArrayLike,
    theta: ArrayLike,
    temperature: float,
    *,
    levels: Sequence[float] = FIT_LEVELS,
    n_samples: int = 300,
    seed: int = 0,
) -> dict[str, NDArray[np.float64]]:
    """HPD, TARP and mean marginal coverage of ``estimator`` at one latent temperature.

    ``estimator`` needs ``sample(flux, sigma, n=, seed=, temperature=)`` returning
    ``(batch, n, d)``, ``log_prob(theta, flux, sigma, temperature=)`` and ``bounds_``
    (e.g. :class:`~atmospec.posteriors.npe.NPEstimator`). Returns ``{"hpd", "tarp",
    "marginal"}``, each one coverage per level.

    Example:
        >>> class Narrow:  # posterior N(x, 0.5^2) for truth ~ N(x, 1): tau = 2 is exact
        ...     bounds_ = {"a": (-50.0, 50.0)}
        ...     def sample(self, f, s, n, seed, temperature):
        ...         z = np.random.default_rng(seed).standard_normal((len(f), n, 1))
        ...         return f[:, None, :1] + 0.5 * temperature * z
        ...     def log_prob(self, th, f, s, temperature):
        ...         return -0.5 * (((th - f[:, None, :1]) / (0.5 * temperature)) ** 2).sum(-1)
        >>> rng = np.random.default_rng(0)
        >>> x = rng.normal(size=(500, 1)); truth = x + rng.normal(size=(500, 1))
        >>> cov = [tempered_coverage(Narrow(), x, np.ones_like(x), truth, tau, n_samples=200)
        ...        for tau in (1.0, 2.0)]
        >>> [c["hpd"].round(2).tolist() for c in cov]  # at the levels 0.5, 0.68, 0.9, 0.95
        [[0.29, 0.4, 0.63, 0.69], [0.55, 0.7, 0.91, 0.96]]
    """
    f = np.asarray(flux, dtype=np.float64)
    s = np.asarray(sigma, dtype=np.float64)
    t = np.asarray(theta, dtype=np.float64)
    draw_seed, tarp_seed = np.random.SeedSequence(seed).generate_state(2)
    draws = estimator.sample(f, s, n=n_samples, seed=int(draw_seed), temperature=temperature)
    lq = estimator.log_prob(draws, f, s, temperature=temperature)
    lt = estimator.log_prob(t[:, None, :], f, s, temperature=temperature)[:, 0]
    box = estimator.bounds_
    low = [b[0] for b in box.values()]
    high = [b[1] for b in box.values()]
    hpd, _ = hpd_coverage(lq, lt, levels)
    tarp, _ = tarp_coverage(draws, t, levels, low=low, high=high, seed=int(tarp_seed))
    marg = rank_coverage(sbc_ranks(draws, t), n_samples, levels).mean(axis=1)
    return {"hpd": hpd, "tarp": tarp, "marginal": marg}


def fit_temperature(
    estimator: Any,
    flux: ArrayLike,
    sigma: ArrayLike,
    theta: ArrayLike,
    *,
    temperatures: Sequence[float] = TEMPERATURES,
    levels: Sequence[float] = FIT_LEVELS,
    n_samples: int = 300,
    seed: int = 0,
    tolerance: float = 0.03,
) -> TemperatureFit:
    """Choose the latent temperature of ``estimator`` on calibration simulations.

    Args:
        estimator: a flow posterior (see :func:`tempered_coverage`).
        flux: calibration spectra ``(n, n_pix)``, simulated from the prior and never used in
            training nor in the coverage test.
        sigma: their errors, same shape.
        theta: their true parameters ``(n, d)``.
        temperatures: the values tried (must include 1: the untempered flow).
        levels: credibility levels fitted.
        n_samples: posterior draws per calibration spectrum.
        seed: seed of the draws and of TARP's reference points (the same at every
            temperature).
        tolerance: how far the mean marginal coverage may depart from each level.

    Returns:
        A :class:`TemperatureFit`; its ``temperature`` minimises the worst ``|coverage -
        level|`` of HPD and TARP among the values whose mean marginal coverage stays within
        ``tolerance``, or, if none does, of all three (the smallest value on ties). Nothing
        is changed on ``estimator``: set ``estimator.temperature_`` yourself.

    Example:
        >>> import numpy as np
        >>> class Narrow:  # posterior N(x, 0.5^2) for truth ~ N(x, 1): tau = 2 is exact
        ...     bounds_ = {"a": (-50.0, 50.0)}
        ...     def sample(self, f, s, n, seed, temperature):
        ...         z = np.random.default_rng(seed).standard_normal((len(f), n, 1))
        ...         return f[:, None, :1] + 0.5 * temperature * z
        ...     def log_prob(self, th, f, s, temperature):
        ...         return -0.5 * (((th - f[:, None, :1]) / (0.5 * temperature)) ** 2).sum(-1)
        >>> rng = np.random.default_rng(0)
        >>> x = rng.normal(size=(2000, 1)); truth = x + rng.normal(size=(2000, 1))
        >>> fit = fit_temperature(Narrow(), x, np.ones_like(x), truth, n_samples=200)
        >>> bool(1.85 <= fit.temperature <= 2.15)
        True
    """
    temps = tuple(float(v) for v in temperatures)
    if 1.0 not in temps or any(v <= 0 for v in temps):
        raise ValueError(f"temperatures must be positive and include 1, got {temps}")
    lev = tuple(float(v) for v in levels)
    curves: dict[str, list[list[float]]] = {"hpd": [], "tarp": [], "marginal": []}
    loss, joint, marginal = [], [], []
    for tau in temps:
        cov = tempered_coverage(
            estimator, flux, sigma, theta, tau, levels=lev, n_samples=n_samples, seed=seed
        )
        err = {k: float(np.max(np.abs(c - np.asarray(lev)))) for k, c in cov.items()}
        for kind, c in cov.items():
            curves[kind].append([float(v) for v in c])
        loss.append(max(err.values()))
        joint.append(max(err["hpd"], err["tarp"]))
        marginal.append(err["marginal"])
    feasible = [i for i in range(len(temps)) if marginal[i] <= tolerance]
    crit = joint if feasible else loss
    order = sorted(feasible or range(len(temps)), key=lambda i: (round(crit[i], 6), temps[i]))
    # the untempered flow first in the record, so coverage(1.0) and loss[0] refer to it
    first = temps.index(1.0)
    idx = [first, *(i for i in range(len(temps)) if i != first)]
    return TemperatureFit(
        temperature=temps[order[0]],
        n_calibration=int(np.asarray(theta).shape[0]),
        n_samples=n_samples,
        seed=seed,
        levels=lev,
        temperatures=tuple(temps[i] for i in idx),
        curves={k: [v[i] for i in idx] for k, v in curves.items()},
        loss=tuple(loss[i] for i in idx),
        tolerance=tolerance,
        constrained=bool(feasible),
    )
