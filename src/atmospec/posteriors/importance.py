"""Importance-sampling correction of NPE samples against the interpolated-grid likelihood."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import logsumexp

if TYPE_CHECKING:
    from atmospec.grids import ModelGrid
    from atmospec.posteriors.npe import NPEstimator
    from atmospec.spectrum import Spectrum

__all__ = [
    "LowEfficiencyWarning",
    "ScaledGaussianLikelihood",
    "grid_likelihood",
    "ImportanceResult",
    "importance_weights",
    "importance_correct",
]

FloatArray = NDArray[np.float64]


class LowEfficiencyWarning(UserWarning):
    """The importance weights are dominated by few samples: the NPE proposal is poor here.

    Example:
        >>> class Far:  # an "NPE" proposing x ~ N(3, 0.1), far from the likelihood's x = 0
        ...     param_names_, bounds_ = ("x",), {"x": (-5.0, 5.0)}
        ...     def sample(self, spectrum, sigma, n, seed):
        ...         return np.random.default_rng(seed).normal(3.0, 0.1, (n, 1))
        ...     def log_prob(self, theta, spectrum, sigma):
        ...         return -0.5 * ((theta[:, 0] - 3.0) / 0.1) ** 2
        >>> m = lambda th: 1.0 + th * np.linspace(-1, 1, 5)
        >>> like = ScaledGaussianLikelihood(np.ones(5), np.full(5, 0.1), m, s_max=10.0)
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     res = importance_correct(Far(), None, like, n=1000)
        >>> caught[0].category.__name__, res.low_efficiency, str(caught[0].message)[:34]
        ('LowEfficiencyWarning', True, 'importance sampling efficiency 0.1')
    """


class ScaledGaussianLikelihood:
    """Gaussian ``log L(theta)`` with the flux scale marginalised analytically, vectorised.

    For data ``d``, errors ``sigma`` and unscaled model ``m(theta)``:
    ``A = sum m^2/sigma^2``, ``B = sum d m/sigma^2``, ``chi2_min = sum d^2/sigma^2 - B^2/A``
    and, for a uniform prior on the scale over ``[0, s_max]`` (truncation negligible),
    ``log L = -chi2_min/2 - sum log sigma - N/2 log 2 pi + 1/2 log(2 pi/A) - log s_max``
    (the same expression as :class:`atmospec.fitting.nested.GridLikelihood`). The scale
    given ``theta`` is Gaussian, ``N(B/A, 1/A)``: :meth:`scales` draws it, which turns
    parameter samples into joint samples with the scale (hence the radius).

    Args:
        flux: data ``(n_pix,)``.
        sigma: 1-sigma errors ``(n_pix,)``.
        models: ``models(theta (n, d)) -> (n, n_pix)`` unscaled model spectra; points where
            the model is undefined may return NaN rows (zero likelihood).
        s_max: upper bound of the uniform scale prior.

    Example:
        >>> import numpy as np
        >>> m = lambda th: 1.0 + th[:, :1] * np.linspace(-1, 1, 5)
        >>> like = ScaledGaussianLikelihood(np.ones(5), np.full(5, 0.1), m, s_max=10.0)
        >>> ll = like(np.array([[0.0], [0.3]]))
        >>> bool(ll[0] > ll[1])
        True
    """

    def __init__(
        self,
        flux: ArrayLike,
        sigma: ArrayLike,
        models: Callable[[FloatArray], FloatArray],
        *,
        s_max: float,
    ) -> None:
        self.flux = np.asarray(flux, dtype=np.float64)
        self.sigma = np.asarray(sigma, dtype=np.float64)
        if self.flux.shape != self.sigma.shape or self.flux.ndim != 1:
            raise ValueError("flux and sigma must be 1-D arrays of the same length")
        self.models = models
        self.s_max = float(s_max)
        self._w = 1.0 / self.sigma**2
        n = self.flux.size
        self._const = -np.sum(np.log(self.sigma)) - 0.5 * n * np.log(2 * np.pi) - np.log(self.s_max)
        self._c = float(self.flux**2 @ self._w)

    def _ab(self, theta: FloatArray) -> tuple[FloatArray, FloatArray]:
        m = np.atleast_2d(self.models(np.atleast_2d(np.asarray(theta, dtype=np.float64))))
        return (m * m) @ self._w, m @ (self.flux * self._w)

    def __call__(self, theta: ArrayLike) -> FloatArray:
        """``log L`` for each row of ``theta`` (``-inf`` where the model is undefined)."""
        a, b = self._ab(np.asarray(theta, dtype=np.float64))
        chi2 = self._c - b**2 / a
        ll = -0.5 * chi2 + 0.5 * np.log(2 * np.pi / a) + self._const
        return np.where(np.isfinite(ll), ll, -np.inf)

    def scales(self, theta: ArrayLike, rng: np.random.Generator) -> FloatArray:
        """Draw the flux scale from its conditional Gaussian for each row of ``theta``."""
        a, b = self._ab(np.asarray(theta, dtype=np.float64))
        return b / a + rng.standard_normal(a.shape) / np.sqrt(a)


def grid_likelihood(
    spectrum: Spectrum, grid: ModelGrid, param_names: Sequence[str] | None = None
) -> ScaledGaussianLikelihood:
    """The interpolated-grid likelihood of a spectrum, exactly as nested sampling uses it.

    Reuses the classic fit's preparation (:func:`atmospec.fitting.data.prepare`: usable
    pixels and the grid -> data resampling matrix) and its interpolation
    (:class:`atmospec.fitting.nested.GridLikelihood`), with the same scale prior
    (``s_max`` = twice the largest best-fit scale over the grid nodes), so importance
    weights and evidences are directly comparable with :func:`atmospec.fitting.fit_nested`.

    Example:
        >>> import pathlib, tempfile
        >>> from atmospec.grids import ModelGrid
        >>> from atmospec.spectrum import Spectrum
        >>> path, w = pathlib.Path(tempfile.mkdtemp()) / "toy.h5", np.linspace(1.0, 2.0, 40)
        >>> with ModelGrid.create(path, w, ("teff",), name="toy") as g:
        ...     g.add({"teff": 1000.0}, w**2)
        ...     g.add({"teff": 2000.0}, w**3)
        >>> x = np.linspace(1.1, 1.9, 20)  # the 1000 K model, three times brighter
        >>> like = grid_likelihood(Spectrum(x, 3 * x**2, 0.01 * x**2), ModelGrid(path))
        >>> th = np.array([[1000.0], [1500.0], [2000.0], [2500.0]])  # 2500 K: off the grid
        >>> like(th).round(1).tolist()
        [49.5, -5941.8, -22958.8, -inf]
        >>> like.scales(th[:1], np.random.default_rng(0)).round(3).tolist(), like.data.n_pix
        ([3.0], 20)
    """
    from atmospec.fitting.chi2 import chi2_with_scale
    from atmospec.fitting.data import prepare
    from atmospec.fitting.nested import GridLikelihood

    data = prepare(spectrum, grid)
    names = list(param_names or grid.param_names)
    nodes = data.model(grid.flux(slice(None)))
    _, s_nodes = chi2_with_scale(nodes, data.flux, data.uncertainty)
    s_max = 2.0 * float(np.max(s_nodes))
    gl = GridLikelihood(data, grid, names, {}, s_max, False)

    def models(theta: FloatArray) -> FloatArray:
        ok = grid.contains(_points(grid, names, theta))
        out = np.full((len(theta), data.n_pix), np.nan)
        if ok.any():
            out[ok] = gl.models(theta[ok])
        return out

    like = ScaledGaussianLikelihood(data.flux, data.uncertainty, models, s_max=s_max)
    like.data = data  # type: ignore[attr-defined]
    return like


def _points(grid: ModelGrid, names: Sequence[str], theta: FloatArray) -> FloatArray:
    if list(names) == list(grid.param_names):
        return theta
    full = np.full((len(theta), len(grid.param_names)), np.nan)
    for j, p in enumerate(names):
        full[:, grid.param_names.index(p)] = theta[:, j]
    return full


@dataclass
class ImportanceResult:
    """Importance-weighted posterior samples with diagnostics.

    ``samples`` are the proposal draws (physical units) and ``weights`` their normalised
    importance weights ``p(theta | d) / q(theta | d)``. ``efficiency = ess / n``: near 1
    the NPE already matches the exact posterior; below ``min_efficiency`` the corrected
    posterior rests on few samples (a :class:`LowEfficiencyWarning` is issued).
    ``log_evidence`` estimates ``log p(d)`` (same prior and likelihood as nested sampling).

    Example:
        >>> r = ImportanceResult(("x",), np.array([[0.0], [1.0], [2.0]]), np.log([1.0, 1.0, 2.0]),
        ...                      ess=2.67, efficiency=0.89, log_evidence=0.0,
        ...                      log_evidence_err=0.1, min_efficiency=0.05)
        >>> r.weights.tolist(), r.quantiles((0.5,)), r.low_efficiency
        ([0.25, 0.25, 0.5], {'x': [1.3333333333333333]}, False)
        >>> r.resample(5, seed=0).ravel().tolist()  # equal-weight draws
        [2.0, 1.0, 0.0, 0.0, 2.0]
    """

    param_names: tuple[str, ...]
    samples: FloatArray
    log_weights: FloatArray
    ess: float
    efficiency: float
    log_evidence: float
    log_evidence_err: float
    min_efficiency: float
    scale: FloatArray | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def weights(self) -> FloatArray:
        w = np.exp(self.log_weights - np.max(self.log_weights))
        return w / w.sum()

    @property
    def low_efficiency(self) -> bool:
        return self.efficiency < self.min_efficiency

    def resample(self, n: int | None = None, seed: int = 0) -> FloatArray:
        """Equal-weight samples drawn (with replacement) according to the weights."""
        rng = np.random.default_rng(seed)
        n = int(n or len(self.samples))
        idx = rng.choice(len(self.samples), size=n, replace=True, p=self.weights)
        return self.samples[idx]

    def quantiles(self, q: Sequence[float] = (0.16, 0.5, 0.84)) -> dict[str, list[float]]:
        """Weighted quantiles per parameter."""
        w = self.weights
        out: dict[str, list[float]] = {}
        for j, p in enumerate(self.param_names):
            order = np.argsort(self.samples[:, j])
            cw = np.cumsum(w[order])
            cw = (cw - 0.5 * w[order]) / cw[-1]
            out[p] = [float(np.interp(v, cw, self.samples[order, j])) for v in q]
        return out

    def summary(self) -> dict[str, Any]:
        return {
            "n": int(len(self.samples)),
            "ess": self.ess,
            "efficiency": self.efficiency,
            "log_evidence": self.log_evidence,
            "log_evidence_err": self.log_evidence_err,
            "low_efficiency": self.low_efficiency,
            "quantiles_16_50_84": self.quantiles(),
        }


def importance_weights(
    log_like: ArrayLike, log_prior: ArrayLike, log_q: ArrayLike
) -> tuple[FloatArray, float, float, float]:
    """Log weights, ESS, log evidence and its 1-sigma error from per-sample log densities.

    ``log w = log L + log prior - log q``; ``ESS = (sum w)^2 / sum w^2``;
    ``Z = mean(w)`` with relative error ``sqrt((n/ESS - 1)/n)``.

    Example:
        >>> import numpy as np
        >>> lw, ess, lz, err = importance_weights(np.zeros(4), np.zeros(4), np.zeros(4))
        >>> float(ess), float(lz)
        (4.0, 0.0)
    """
    lw = np.asarray(log_like, dtype=np.float64) + np.asarray(log_prior) - np.asarray(log_q)
    lw = np.where(np.isnan(lw), -np.inf, lw)
    n = lw.size
    if not np.isfinite(lw).any():
        return lw, 0.0, -np.inf, np.inf
    s1 = logsumexp(lw)
    s2 = logsumexp(2 * lw)
    ess = float(np.exp(2 * s1 - s2))
    log_z = float(s1 - np.log(n))
    err = float(np.sqrt(max(n / ess - 1.0, 0.0) / n))
    return lw, ess, log_z, err


def importance_correct(
    estimator: NPEstimator,
    spectrum: Any,
    likelihood: ScaledGaussianLikelihood,
    *,
    sigma: ArrayLike | None = None,
    n: int = 10_000,
    seed: int = 0,
    min_efficiency: float = 0.05,
    bounds: Mapping[str, tuple[float, float]] | None = None,
    with_scale: bool = True,
) -> ImportanceResult:
    """Correct NPE samples towards the exact posterior of the interpolated-grid likelihood.

    Draws ``n`` samples from the NPE, weights them by ``L(theta) prior(theta) / q(theta)``
    (uniform prior over ``bounds``, default the estimator's box, which is the grid's), and
    reports the effective sample size, the sampling efficiency and the evidence. Warns with
    :class:`LowEfficiencyWarning` when ``efficiency < min_efficiency``.

    Args:
        estimator: a fitted :class:`~atmospec.posteriors.npe.NPEstimator`.
        spectrum: what ``estimator.sample`` accepts (a Spectrum, or flux with ``sigma``),
            on the estimator's wavelength axis; ``likelihood`` must describe the same data.
        likelihood: e.g. :func:`grid_likelihood` of the spectrum.
        with_scale: also draw the flux scale from its conditional Gaussian per sample.

    Example:
        >>> class Gauss:  # an "NPE" proposing x ~ N(0.3, 0.2)
        ...     param_names_, bounds_ = ("x",), {"x": (-5.0, 5.0)}
        ...     def sample(self, spectrum, sigma, n, seed):
        ...         return np.random.default_rng(seed).normal(0.3, 0.2, (n, 1))
        ...     def log_prob(self, theta, spectrum, sigma):
        ...         z = (theta[:, 0] - 0.3) / 0.2
        ...         return -0.5 * z**2 - np.log(0.2 * np.sqrt(2 * np.pi))
        >>> m = lambda th: 1.0 + th * np.linspace(-1, 1, 5)
        >>> data = 2 * m(np.array([[0.3]]))[0]  # x = 0.3 at twice the flux
        >>> like = ScaledGaussianLikelihood(data, np.full(5, 0.1), m, s_max=10.0)
        >>> res = importance_correct(Gauss(), None, like, n=4000)
        >>> round(res.efficiency, 2), [round(v, 2) for v in res.quantiles()["x"]]
        (0.22, [0.27, 0.3, 0.33])
        >>> round(float(np.median(res.scale)), 2), round(res.log_evidence, 2)
        (1.98, -2.47)
    """
    names = estimator.param_names_
    box = bounds or estimator.bounds_
    lo = np.array([box[p][0] for p in names])
    hi = np.array([box[p][1] for p in names])
    theta = estimator.sample(spectrum, sigma, n=n, seed=seed)
    log_q = estimator.log_prob(theta, spectrum, sigma)
    inside = np.all((theta >= lo) & (theta <= hi), axis=1)
    log_prior = np.where(inside, -np.sum(np.log(hi - lo)), -np.inf)
    log_like = likelihood(theta)
    lw, ess, log_z, err = importance_weights(log_like, log_prior, log_q)
    eff = ess / n
    scale = None
    if with_scale:
        scale = likelihood.scales(theta, np.random.default_rng(seed + 1))
    res = ImportanceResult(
        param_names=tuple(names),
        samples=theta,
        log_weights=lw,
        ess=ess,
        efficiency=eff,
        log_evidence=log_z,
        log_evidence_err=err,
        min_efficiency=min_efficiency,
        scale=scale,
    )
    if res.low_efficiency:
        warnings.warn(
            LowEfficiencyWarning(
                f"importance sampling efficiency {eff:.3%} (ESS {ess:.0f} of {n}) is below "
                f"{min_efficiency:.0%}: the NPE posterior differs from the grid likelihood's "
                "here; trust the corrected posterior only with care, or run nested sampling"
            ),
            stacklevel=2,
        )
    return res
