"""Nested sampling (dynesty) of a transmission retrieval, and detection significance by evidence.

The Bayes factor of a molecule compares the evidence of the full model with that of the same
model with the molecule removed, ``ln B = ln Z_full - ln Z_without``; it is turned into the
"equivalent sigma" of Benneke & Seager (2013, ApJ 778, 153; Trotta 2008): the p-value ``p``
solving ``B = -1 / (e p ln p)`` (valid for ``p < 1/e``) expressed as a two-sided Gaussian
significance.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from atmospec.molecules.retrieval import Retrieval

__all__ = ["NestedResult", "run_nested", "bayes_sigma", "detection_significance"]

log = logging.getLogger(__name__)


@dataclass
class NestedResult:
    """Equal-weight posterior samples and the log evidence of one dynesty run.

    Example:
        >>> draws = np.array([[-3.0, 900.0], [-2.0, 1100.0]])
        >>> res = NestedResult(("log_H2O", "temperature"), draws, -12.5, 0.1, 5000, 2.0)
        >>> dict(zip(res.param_names, np.median(res.samples, axis=0).tolist()))
        {'log_H2O': -2.5, 'temperature': 1000.0}
        >>> round(bayes_sigma(res.logz - (-17.5)), 1)   # against ln Z = -17.5 without H2O
        3.6
    """

    param_names: tuple[str, ...]
    samples: NDArray[np.float64]
    logz: float
    logz_err: float
    ncall: int
    wall_s: float
    settings: dict[str, Any] = field(default_factory=dict)


def run_nested(
    retrieval: Retrieval,
    *,
    nlive: int = 150,
    dlogz: float = 0.5,
    seed: int = 0,
    maxcall: int | None = 200_000,
) -> NestedResult:
    """Static nested sampling of ``retrieval`` (uniform priors, offsets marginalised).

    Example:
        >>> res = run_nested(Retrieval.build(spec), nlive=100)   # doctest: +SKIP
        >>> res.samples.shape[1] == len(res.param_names)          # doctest: +SKIP
        True
    """
    import dynesty
    from dynesty.utils import resample_equal

    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    sampler = dynesty.NestedSampler(
        retrieval.log_likelihood,
        retrieval.prior_transform,
        retrieval.n_params,
        nlive=nlive,
        bound="multi",
        sample="rwalk",
        rstate=rng,
    )
    sampler.run_nested(dlogz=dlogz, maxcall=maxcall, print_progress=log.isEnabledFor(logging.DEBUG))
    res = sampler.results
    weights = np.exp(res.logwt - res.logz[-1])
    equal = resample_equal(res.samples, weights / weights.sum(), rstate=rng)
    wall = time.perf_counter() - t0
    out = NestedResult(
        retrieval.param_names,
        np.asarray(equal),
        float(res.logz[-1]),
        float(res.logzerr[-1]),
        int(np.sum(res.ncall)),
        wall,
        {"nlive": nlive, "dlogz": dlogz, "seed": seed, "sampler": "dynesty static, multi/rwalk"},
    )
    log.info(
        "nested sampling of %s (%d params): ln Z = %.2f +- %.2f, %d calls, %.0f s",
        retrieval.spec.name,
        retrieval.n_params,
        out.logz,
        out.logz_err,
        out.ncall,
        wall,
    )
    return out


def bayes_sigma(ln_b: float) -> float:
    """Equivalent Gaussian significance of a Bayes factor (Benneke & Seager 2013, eq. 13).

    Solves ``B = -1 / (e p ln p)`` for the p-value ``p < 1/e`` and returns
    ``sqrt(2) erfc^-1(p)``; Bayes factors at or below 1 (``ln B <= 0``) give 0, as does
    ``B < 1/(e p ln p)`` at p = 1/e (B = 1).

    Example:
        >>> round(bayes_sigma(math.log(21)), 1), round(bayes_sigma(math.log(150)), 1)  # 3.0, 3.6
        (3.0, 3.6)
        >>> bayes_sigma(-2.0)
        0.0
    """
    from scipy.optimize import brentq
    from scipy.special import erfcinv

    if not np.isfinite(ln_b):
        return float("inf") if ln_b > 0 else 0.0
    if ln_b <= 0:
        return 0.0

    # ln B = -1 - ln(-p ln p), monotone in ln p on p < 1/e
    def f(lnp: float) -> float:
        return -1.0 - math.log(-lnp) - lnp - ln_b

    if f(-1.0) >= 0:  # B <= 1 at p = 1/e
        return 0.0
    lnp = brentq(f, -1e6, -1.0)
    p = math.exp(lnp)
    if p == 0.0:  # beyond double precision: the asymptotic form of erfc
        return math.sqrt(-2.0 * lnp)
    return float(math.sqrt(2.0) * erfcinv(p))


def detection_significance(
    retrieval: Retrieval,
    molecules: Sequence[str] | None = None,
    *,
    full: NestedResult | None = None,
    nlive: int = 150,
    dlogz: float = 0.5,
    seed: int = 0,
) -> tuple[NestedResult, dict[str, dict[str, float]]]:
    """``ln B``, its error and the equivalent sigma of each molecule (removed one at a time).

    Returns the full run (``full`` if given) and ``{molecule: {"ln_B", "ln_B_err", "sigma",
    "logz_without", "wall_s"}}``.
    """
    from tqdm.auto import tqdm

    base = full or run_nested(retrieval, nlive=nlive, dlogz=dlogz, seed=seed)
    mols = list(molecules or retrieval.molecules)
    out: dict[str, dict[str, float]] = {}
    show = log.isEnabledFor(logging.INFO)
    for m in tqdm(mols, desc="evidence without each molecule", disable=not show):
        res = run_nested(retrieval.without(m), nlive=nlive, dlogz=dlogz, seed=seed)
        ln_b = base.logz - res.logz
        out[m] = {
            "ln_B": float(ln_b),
            "ln_B_err": float(math.hypot(base.logz_err, res.logz_err)),
            "sigma": bayes_sigma(ln_b),
            "logz_without": res.logz,
            "wall_s": res.wall_s,
        }
    return base, out
