"""Monte Carlo predictive samples: noisy copies of a spectrum through the estimator's engine."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from atmospec.estimators.base import Estimator
    from atmospec.prediction.engine import Engine

__all__ = ["monte_carlo", "spectrum_seed"]

FloatArray = NDArray[np.float64]


def spectrum_seed(seed: int, source: str) -> tuple[int, int]:
    """The seed of one spectrum's draws: ``(seed, crc32(source))``.

    Example:
        >>> spectrum_seed(0, "HD3651B.fits")
        (0, 3515408534)
    """
    return (int(seed), zlib.crc32(source.encode("utf-8")))


def monte_carlo(
    estimator: Estimator | Engine,
    flux: FloatArray,
    sigma: FloatArray,
    *,
    draws: int = 1000,
    rngs: Sequence[np.random.Generator] | None = None,
    seeds: Sequence[Sequence[int] | int] | None = None,
    max_rows: int = 65536,
    precision: Literal["float32", "bfloat16"] = "float32",
) -> tuple[NDArray[np.float32], FloatArray, FloatArray | None, NDArray[np.bool_]]:
    """Predictive samples combining measurement noise and model uncertainty.

    For each spectrum, ``draws`` noisy copies ``flux + sigma * N(0, 1)`` (masked bins of
    infinite sigma unchanged) go through the network (one ensemble member per copy, see
    :meth:`~atmospec.prediction.engine.Engine.draws`). How the copies combine with the
    estimator's own sigma depends on what that sigma means
    (:func:`~atmospec.prediction.engine.sigma_kind`), so that measurement noise is counted once:

    * ``"total"`` (sigma heads trained on noisy spectra and told the noise level: the sigma
      at the observed noise is already the whole predictive spread ``S``): by the law of total
      variance ``S^2 = Var_noise(mean) + E[Var(theta | noisy copy)]``, the spread ``V`` of the
      copies' means estimates the noise part, and each copy adds
      ``sqrt(max(S^2 - V, 0)) * N(0, 1)``. The samples then have variance ``S^2`` (or ``V``
      when the network reacts to noise more than its sigma says), with the shape (skew,
      bounds) the noise propagation gives.
    * ``"epistemic"`` (a sigma without measurement noise): each copy adds its member's
      ``sigma * N(0, 1)`` (noise and model uncertainty are independent and add).
    * ``"none"``: the copies' means alone.

    ``precision="bfloat16"`` runs the noisy copies through a bfloat16 network (faster; see
    :meth:`~atmospec.prediction.engine.Engine.draws`). Samples are clipped to the grid bounds.
    At most ``max_rows`` network rows are in memory
    at a time. Each spectrum's draws come from its own seed (``seeds``, or integers drawn
    from ``rngs``), so they do not depend on the batch.

    Returns:
        ``(samples (n, draws, p) float32, point_mean (n, p), point_std (n, p) or None,
        at_bound (n, p))``, the last three for the observed spectra themselves.

    Example:
        >>> from atmospec.estimators.baselines import RandomForestEstimator
        >>> rng = np.random.default_rng(0)
        >>> wave = np.linspace(1.0, 2.0, 12); t = rng.uniform(0, 1, (60, 1))
        >>> rf = RandomForestEstimator(n_estimators=3).fit(1 + t * wave, t, wavelength=wave,
        ...                                                param_names=["t"])
        >>> samples, point, std, at_bound = monte_carlo(
        ...     rf, 1 + 0.5 * wave, np.full(12, 0.05), draws=50, seeds=[(0, 1)])
        >>> samples.shape, point.round(3).tolist(), at_bound.tolist()
        ((1, 50, 1), [[0.459]], [[False]])
    """
    from atmospec.estimators.base import BOUND_TOLERANCE
    from atmospec.prediction.engine import Engine
    from atmospec.predictive_tails import standardized_draws

    engine = estimator if isinstance(estimator, Engine) else Engine(estimator)
    flux = np.atleast_2d(flux)
    sigma = np.atleast_2d(sigma)
    n = flux.shape[0]
    if seeds is None:
        if rngs is None:
            raise ValueError("monte_carlo needs seeds= (or rngs=), one per spectrum")
        seeds = [int(g.integers(2**63)) for g in rngs]
    p = len(engine.names)
    lo, hi = engine.lo, engine.hi
    samples = np.empty((n, draws, p), dtype=np.float32)
    point = np.empty((n, p))
    point_std: FloatArray | None = np.empty((n, p))
    kind = engine.kind
    per_call = max(1, max_rows // (draws + 1))
    for start in range(0, n, per_call):
        sl = slice(start, min(start + per_call, n))
        res = engine.draws(
            flux[sl], sigma[sl], n_draws=draws, seeds=list(seeds[sl]), precision=precision
        )
        point[sl] = res.point
        rngs_blk = [
            np.random.default_rng([*_as_list(seeds[i]), 1]) for i in range(sl.start, sl.stop)
        ]
        # The calibrated predictive: Gaussian, or Student-t where the model has heavy tails.
        zs = np.stack([standardized_draws(g, (draws, p), engine.tail_dof) for g in rngs_blk])
        # The engine returns the draws grouped by ensemble member: shuffle them so that any
        # subset of a spectrum's samples is a fair sample of the mixture.
        order = np.stack([g.permutation(draws) for g in rngs_blk])
        draw = np.take_along_axis(res.mean, order[:, :, None], axis=1)
        member_sigma = (
            None if res.sigma is None else np.take_along_axis(res.sigma, order[:, :, None], axis=1)
        )
        if res.point_std is None:
            point_std = None
        else:
            assert point_std is not None
            point_std[sl] = res.point_std
        if kind == "total" and res.point_std is not None:
            v_noise = draw.var(axis=1, dtype=np.float64)
            extra = np.sqrt(np.maximum(res.point_std**2 - v_noise, 0.0)).astype(np.float32)
            draw = draw + extra[:, None, :] * zs
        elif kind == "epistemic" and member_sigma is not None:
            draw = draw + member_sigma * zs
        samples[sl] = np.clip(draw, lo, hi)
    tol = BOUND_TOLERANCE * (hi - lo)
    at_bound = (point <= lo + tol) | (point >= hi - tol)
    return samples, point, point_std, at_bound


def _as_list(seed: Sequence[int] | int) -> list[int]:
    return [int(x) for x in seed] if isinstance(seed, Sequence) else [int(seed)]
