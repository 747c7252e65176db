"""Calibration of posteriors: SBC ranks, expected coverage, TARP, per region; plots and JSON."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from atmospec.errors import ModelFileError
from atmospec.serialization import is_sealed, read_record, seal

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "LEVELS",
    "sbc_ranks",
    "rank_coverage",
    "hpd_coverage",
    "tarp_coverage",
    "CalibrationReport",
    "calibration_report",
    "calibrate_estimator",
    "CALIBRATION_FILE",
    "CalibrationStatus",
    "read_calibration",
]

#: Credibility levels at which coverage is reported (10 levels, 0.1 ... 0.95).
LEVELS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)

FloatArray = NDArray[np.float64]


def sbc_ranks(samples: ArrayLike, truth: ArrayLike) -> NDArray[np.int64]:
    """Simulation-based-calibration ranks (Talts et al. 2018) of each true parameter.

    Args:
        samples: posterior draws, ``(n_tests, n_samples, n_params)``.
        truth: the true parameters, ``(n_tests, n_params)``.

    Returns:
        ``(n_tests, n_params)`` ranks in ``0..n_samples``: how many draws lie below the truth.
        For a calibrated posterior every rank is equally likely.

    Example:
        >>> import numpy as np
        >>> sbc_ranks(np.arange(5.0).reshape(1, 5, 1), np.array([[2.5]])).tolist()
        [[3]]
    """
    s = np.asarray(samples, dtype=np.float64)
    t = np.asarray(truth, dtype=np.float64)
    if s.ndim != 3 or t.shape != (s.shape[0], s.shape[2]):
        raise ValueError(f"samples (n, m, d) and truth (n, d) expected, got {s.shape}, {t.shape}")
    return np.sum(s < t[:, None, :], axis=1).astype(np.int64)


def rank_coverage(ranks: ArrayLike, n_samples: int, levels: Sequence[float] = LEVELS) -> FloatArray:
    """Coverage of central credible intervals from SBC ranks, per level and parameter.

    The central interval at level ``c`` holds the truth when the normalised rank
    ``r / n_samples`` lies in ``[(1 - c) / 2, (1 + c) / 2]``.

    Returns:
        ``(len(levels), n_params)`` empirical coverage.

    Example:
        >>> import numpy as np
        >>> r = np.arange(1000)[:, None]          # perfectly uniform ranks, 1000 samples
        >>> rank_coverage(r, 1000, [0.5]).round(2).tolist()
        [[0.5]]
    """
    u = (np.asarray(ranks, dtype=np.float64) + 0.5) / (n_samples + 1)
    lev = np.asarray(levels, dtype=np.float64)[:, None, None]
    inside = (u[None] >= (1 - lev) / 2) & (u[None] <= (1 + lev) / 2)
    return inside.mean(axis=1)


def _alpha_to_coverage(alpha: FloatArray, levels: Sequence[float]) -> FloatArray:
    lev = np.asarray(levels, dtype=np.float64)
    return (alpha[None, :] < lev[:, None]).mean(axis=1)


def hpd_coverage(
    logq_samples: ArrayLike, logq_truth: ArrayLike, levels: Sequence[float] = LEVELS
) -> tuple[FloatArray, FloatArray]:
    """Expected coverage of the highest-posterior-density regions (Hermans et al. 2022).

    For each test, ``alpha`` is the fraction of posterior draws whose density exceeds the
    density at the truth: the truth lies in the HPD region of level ``c`` iff ``alpha < c``.

    Args:
        logq_samples: ``log q`` of the draws, ``(n_tests, n_samples)``.
        logq_truth: ``log q`` at the true parameters, ``(n_tests,)``.

    Returns:
        ``(coverage per level, alpha per test)``.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> s = rng.standard_normal((2000, 500)); t = rng.standard_normal(2000)
        >>> cov, _ = hpd_coverage(-s**2 / 2, -t**2 / 2, [0.5])
        >>> bool(abs(cov[0] - 0.5) < 0.04)
        True
    """
    lq = np.asarray(logq_samples, dtype=np.float64)
    lt = np.asarray(logq_truth, dtype=np.float64)
    alpha = np.mean(lq > lt[:, None], axis=1)
    return _alpha_to_coverage(alpha, levels), alpha


def tarp_coverage(
    samples: ArrayLike,
    truth: ArrayLike,
    levels: Sequence[float] = LEVELS,
    *,
    low: ArrayLike | None = None,
    high: ArrayLike | None = None,
    seed: int = 0,
) -> tuple[FloatArray, FloatArray]:
    """TARP expected coverage (Lemos et al. 2023, "Tests of Accuracy with Random Points").

    Parameters are rescaled to the unit box (``low``/``high``: prior bounds; default the
    range of the truths). For each test a random reference point ``r`` is drawn uniformly in
    the box; ``f`` is the fraction of draws closer to ``r`` than the truth is. A
    calibrated posterior gives ``f`` uniform, so coverage at level ``c`` is ``mean(f < c)``;
    unlike marginal ranks, TARP is sensitive to the joint distribution.

    Returns:
        ``(coverage per level, f per test)``.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(1)
        >>> mu = rng.normal(size=(1500, 2))                    # posterior means
        >>> truth = mu + rng.normal(size=(1500, 2))            # truth ~ posterior
        >>> draws = mu[:, None] + rng.normal(size=(1500, 300, 2))
        >>> cov, _ = tarp_coverage(draws, truth, [0.5], low=[-5, -5], high=[5, 5])
        >>> bool(abs(cov[0] - 0.5) < 0.05)
        True
    """
    s = np.asarray(samples, dtype=np.float64)
    t = np.asarray(truth, dtype=np.float64)
    lo = np.min(t, axis=0) if low is None else np.asarray(low, dtype=np.float64)
    hi = np.max(t, axis=0) if high is None else np.asarray(high, dtype=np.float64)
    span = np.where(hi > lo, hi - lo, 1.0)
    su = (s - lo) / span
    tu = (t - lo) / span
    rng = np.random.default_rng(seed)
    ref = rng.uniform(0.0, 1.0, tu.shape)
    d_s = np.linalg.norm(su - ref[:, None, :], axis=-1)
    d_t = np.linalg.norm(tu - ref, axis=-1)
    f = np.mean(d_s < d_t[:, None], axis=1)
    return _alpha_to_coverage(f, levels), f


@dataclass
class CalibrationReport:
    """Coverage of a posterior estimator on a test set, overall and per region.

    ``hpd`` (expected coverage of joint HPD regions), ``tarp`` and ``marginal`` (central
    intervals per parameter, from SBC ranks) map each level to the observed coverage; the
    estimator is calibrated when every curve stays within ``tolerance`` of the diagonal.
    ``regions`` holds the HPD coverage per region of parameter (or S/N) space, with the
    number of tests in each; ``binomial_sd`` is the largest sampling error expected from
    the finite number of tests (so departures smaller than ~2 of it are noise).

    Example:
        >>> rep = CalibrationReport((0.5, 0.9), 100, 200, ("teff",), {"0.5": 0.52, "0.9": 0.86},
        ...                         {"0.5": 0.5, "0.9": 0.9}, {"teff": {"0.5": 0.49, "0.9": 0.9}})
        >>> round(rep.max_error, 3), rep.passed, rep.binomial_sd  # 0.04 > tolerance 0.03
        (0.04, False, 0.05)
    """

    levels: tuple[float, ...]
    n_tests: int
    n_samples: int
    param_names: tuple[str, ...]
    hpd: dict[str, float]
    tarp: dict[str, float]
    marginal: dict[str, dict[str, float]]
    regions: dict[str, dict[str, Any]] = field(default_factory=dict)
    tolerance: float = 0.03
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def max_error(self) -> float:
        """Largest |coverage - level| of the HPD expected-coverage curve."""
        return float(max(abs(v - float(k)) for k, v in self.hpd.items()))

    @property
    def max_error_all(self) -> float:
        """Largest |coverage - level| over the HPD, TARP and all marginal curves."""
        errs = [abs(v - float(k)) for k, v in self.hpd.items()]
        errs += [abs(v - float(k)) for k, v in self.tarp.items()]
        for cur in self.marginal.values():
            errs += [abs(v - float(k)) for k, v in cur.items()]
        return float(max(errs))

    @property
    def binomial_sd(self) -> float:
        return float(np.sqrt(0.25 / max(self.n_tests, 1)))

    @property
    def passed(self) -> bool:
        """True when the HPD expected coverage is within ``tolerance`` at every level."""
        return self.max_error <= self.tolerance

    def to_dict(self) -> dict[str, Any]:
        return {
            "levels": list(self.levels),
            "n_tests": self.n_tests,
            "n_samples": self.n_samples,
            "param_names": list(self.param_names),
            "coverage_hpd": self.hpd,
            "coverage_tarp": self.tarp,
            "coverage_marginal": self.marginal,
            "regions": self.regions,
            "max_coverage_error": self.max_error,
            "max_coverage_error_all_curves": self.max_error_all,
            "binomial_sd": self.binomial_sd,
            "tolerance": self.tolerance,
            "passed": self.passed,
            "meta": self.meta,
        }

    def write(self, out_dir: str | os.PathLike[str], *, plot: bool = True) -> Path:
        """Write ``calibration.json`` (checksummed, see :func:`atmospec.serialization.seal`)
        and ``calibration.png`` into ``out_dir``; return the JSON's path."""
        from atmospec._fileio import atomic_path, write_json

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        path = write_json(out / "calibration.json", seal(self.to_dict()))
        if plot:
            fig = self.plot()
            with atomic_path(out / "calibration.png") as tmp:
                fig.savefig(tmp, dpi=110, format="png")
        return path

    def plot(self) -> Figure:
        """Expected-coverage curves (HPD, TARP, each marginal) and coverage per region."""
        from matplotlib.figure import Figure

        lev = np.array(self.levels)
        fig = Figure(figsize=(10, 4.4), layout="constrained")
        axes = fig.subplots(1, 2)
        ax = axes[0]
        band = 2 * np.sqrt(lev * (1 - lev) / max(self.n_tests, 1))
        ax.fill_between(lev, lev - band, lev + band, color="0.85", label="±2σ (finite tests)")
        ax.plot([0, 1], [0, 1], "k--", lw=1)
        ax.plot(lev, [self.hpd[str(v)] for v in self.levels], "o-", lw=2, label="HPD (joint)")
        ax.plot(lev, [self.tarp[str(v)] for v in self.levels], "s-", label="TARP")
        for name, cur in self.marginal.items():
            ax.plot(lev, [cur[str(v)] for v in self.levels], lw=1, alpha=0.8, label=f"{name} (1-D)")
        ax.set_xlabel("credibility level")
        ax.set_ylabel("empirical coverage")
        ax.set_title(f"expected coverage, {self.n_tests} test spectra")
        ax.legend(fontsize=8)
        ax = axes[1]
        ax.plot([0, 1], [0, 1], "k--", lw=1)
        for name, reg in self.regions.items():
            cur = reg["coverage_hpd"]
            ax.plot(lev, [cur[str(v)] for v in self.levels], lw=1, label=f"{name} (n={reg['n']})")
        ax.set_xlabel("credibility level")
        ax.set_ylabel("empirical coverage (HPD)")
        ax.set_title("per region")
        if self.regions:
            ax.legend(fontsize=7)
        return fig


def _as_dict(levels: Sequence[float], values: ArrayLike) -> dict[str, float]:
    return {str(float(k)): float(v) for k, v in zip(levels, np.asarray(values), strict=True)}


def calibration_report(
    samples: ArrayLike,
    truth: ArrayLike,
    logq_samples: ArrayLike,
    logq_truth: ArrayLike,
    param_names: Sequence[str],
    *,
    low: ArrayLike | None = None,
    high: ArrayLike | None = None,
    regions: Mapping[str, ArrayLike] | None = None,
    levels: Sequence[float] = LEVELS,
    tolerance: float = 0.03,
    seed: int = 0,
    meta: Mapping[str, Any] | None = None,
) -> CalibrationReport:
    """All calibration diagnostics of a posterior on a test set, in one report.

    Args:
        samples: posterior draws ``(n_tests, n_samples, n_params)``.
        truth: true parameters ``(n_tests, n_params)``.
        logq_samples: posterior log density of each draw ``(n_tests, n_samples)``.
        logq_truth: posterior log density at each truth ``(n_tests,)``.
        param_names: parameter names.
        low: lower corner of the prior box (used by TARP).
        high: upper corner of the prior box.
        regions: ``{name: boolean mask over tests}``: coverage is also given per region.
        tolerance: allowed |coverage - level| for :attr:`CalibrationReport.passed`.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> mu = rng.normal(size=(800, 1)); truth = mu + rng.normal(size=(800, 1))
        >>> draws = mu[:, None] + rng.normal(size=(800, 400, 1))
        >>> lq = -0.5 * ((draws - mu[:, None]) ** 2).sum(-1)
        >>> lt = -0.5 * ((truth - mu) ** 2).sum(-1)
        >>> rep = calibration_report(draws, truth, lq, lt, ["x"], low=[-6], high=[6], tolerance=0.06)
        >>> rep.passed
        True
    """
    s = np.asarray(samples, dtype=np.float64)
    t = np.asarray(truth, dtype=np.float64)
    names = tuple(param_names)
    ranks = sbc_ranks(s, t)
    marg = rank_coverage(ranks, s.shape[1], levels)
    hpd, alpha = hpd_coverage(logq_samples, logq_truth, levels)
    tarp, _ = tarp_coverage(s, t, levels, low=low, high=high, seed=seed)
    reg_out: dict[str, dict[str, Any]] = {}
    for name, mask in (regions or {}).items():
        m = np.asarray(mask, dtype=bool)
        if m.sum() == 0:
            continue
        cov = (alpha[m][None, :] < np.asarray(levels)[:, None]).mean(axis=1)
        reg_out[name] = {
            "n": int(m.sum()),
            "coverage_hpd": _as_dict(levels, cov),
            "max_error": float(np.max(np.abs(cov - np.asarray(levels)))),
        }
    return CalibrationReport(
        levels=tuple(float(v) for v in levels),
        n_tests=int(s.shape[0]),
        n_samples=int(s.shape[1]),
        param_names=names,
        hpd=_as_dict(levels, hpd),
        tarp=_as_dict(levels, tarp),
        marginal={p: _as_dict(levels, marg[:, j]) for j, p in enumerate(names)},
        regions=reg_out,
        tolerance=tolerance,
        meta=dict(meta or {}),
    )


def calibrate_estimator(
    estimator: Any,
    flux: ArrayLike,
    sigma: ArrayLike,
    theta: ArrayLike,
    *,
    n_samples: int = 1000,
    seed: int = 0,
    regions: Mapping[str, ArrayLike] | None = None,
    tolerance: float = 0.03,
    chunk: int = 50,
    meta: Mapping[str, Any] | None = None,
) -> CalibrationReport:
    """Calibrate a posterior estimator on noisy test spectra with known parameters.

    ``estimator`` needs ``sample(flux, sigma, n, seed)`` returning ``(batch, n, d)`` and
    ``log_prob(theta, flux, sigma)`` accepting ``(batch, m, d)`` (e.g.
    :class:`~atmospec.posteriors.npe.NPEstimator`), plus ``param_names_`` and ``bounds_``.

    Example:
        >>> class Gauss:  # the posterior of x is N(mean flux, 1)
        ...     param_names_, bounds_ = ("x",), {"x": (-6.0, 6.0)}
        ...     def sample(self, flux, sigma, n, seed):
        ...         rng = np.random.default_rng(seed)
        ...         return flux.mean(1)[:, None, None] + rng.normal(size=(len(flux), n, 1))
        ...     def log_prob(self, theta, flux, sigma):
        ...         return -0.5 * (theta[..., 0] - flux.mean(1)[:, None]) ** 2
        >>> rng = np.random.default_rng(0); mu = rng.normal(size=400)
        >>> flux = np.repeat(mu[:, None], 3, axis=1); theta = (mu + rng.normal(size=400))[:, None]
        >>> rep = calibrate_estimator(Gauss(), flux, np.ones_like(flux), theta, n_samples=200)
        >>> rep.n_tests, round(rep.max_error, 4), rep.passed
        (400, 0.0175, True)
        >>> wide = (mu + 2 * rng.normal(size=400))[:, None]  # truths spread twice as far
        >>> calibrate_estimator(Gauss(), flux, np.ones_like(flux), wide, n_samples=200).hpd["0.5"]
        0.295
    """
    f = np.asarray(flux, dtype=np.float64)
    s = np.asarray(sigma, dtype=np.float64)
    t = np.asarray(theta, dtype=np.float64)
    draws, lq_s, lq_t = [], [], []
    for i in range(0, len(f), chunk):
        d = estimator.sample(f[i : i + chunk], s[i : i + chunk], n=n_samples, seed=seed + i)
        draws.append(d)
        lq_s.append(estimator.log_prob(d, f[i : i + chunk], s[i : i + chunk]))
        lq_t.append(
            estimator.log_prob(t[i : i + chunk, None, :], f[i : i + chunk], s[i : i + chunk])[:, 0]
        )
    names = list(estimator.param_names_)
    low = [estimator.bounds_[p][0] for p in names]
    high = [estimator.bounds_[p][1] for p in names]
    return calibration_report(
        np.concatenate(draws),
        t,
        np.concatenate(lq_s),
        np.concatenate(lq_t),
        names,
        low=low,
        high=high,
        regions=regions,
        tolerance=tolerance,
        seed=seed,
        meta=meta,
    )


# ---------------------------------------------------------- the shipped record, read back
CALIBRATION_FILE = "calibration.json"
"""The file ``atmospec calibrate`` writes into an NPE model folder."""


@dataclass(frozen=True)
class CalibrationStatus:
    """The shipped calibration of an NPE, read from its ``calibration.json`` (not re-measured).

    ``max_error`` is ``max |coverage - level|`` over the expected-coverage levels of the HPD
    curve, recomputed from the stored curve; the estimator passes when it is at most
    ``tolerance`` (also read from the file).

    Example:
        >>> CalibrationStatus(True, 0.01, 0.03, "").summary()
        'calibration passed: max |coverage - level| = 0.010 <= tolerance 0.030'
    """

    passed: bool
    max_error: float
    tolerance: float
    problem: str = ""

    def summary(self) -> str:
        """One line for notes and logs."""
        if self.problem:
            return f"calibration not usable: {self.problem}"
        verb, op = ("passed", "<=") if self.passed else ("failed", ">")
        return (
            f"calibration {verb}: max |coverage - level| = {self.max_error:.3f} {op} "
            f"tolerance {self.tolerance:.3f}"
        )


def read_calibration(folder: str | os.PathLike[str] | None) -> CalibrationStatus:
    """Read and check the ``calibration.json`` of an NPE model folder.

    A missing, unreadable, incomplete or modified file (its checksum, written with it, does
    not match) counts as *not passed*, with the problem named, as does a record measured on
    other weights than the folder's (``meta.weights_sha256``).

    Example:
        >>> read_calibration("/no/such/folder").passed
        False
    """
    nan, redo = float("nan"), "re-run `atmospec calibrate MODEL --out FOLDER`"
    if folder is None:
        return CalibrationStatus(False, nan, nan, "the model has no folder")
    path = Path(folder) / CALIBRATION_FILE
    try:
        record: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        return CalibrationStatus(False, nan, nan, f"{path}: unreadable ({err})")
    if not isinstance(record, dict) or not is_sealed(record):
        why = "checksum missing or not matching its content (modified after writing)"
        return CalibrationStatus(False, nan, nan, f"{path}: {why}; {redo}")
    try:
        curve = {float(k): float(v) for k, v in record["coverage_hpd"].items()}
        tolerance = float(record["tolerance"])
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        return CalibrationStatus(False, nan, nan, f"{path}: no coverage_hpd / tolerance ({err})")
    if not curve or not np.isfinite(tolerance):
        return CalibrationStatus(False, nan, tolerance, f"{path}: empty coverage curve")
    measured = dict(record.get("meta") or {}).get("weights_sha256")
    if measured and measured != _weights_sha256(Path(folder)):  # records without one: as found
        why = f"measured on other weights ({measured}) than the model in its folder"
        return CalibrationStatus(False, nan, tolerance, f"{path}: {why}; {redo}")
    max_error = max(abs(cov - level) for level, cov in curve.items())
    return CalibrationStatus(bool(max_error <= tolerance), float(max_error), tolerance)


def _weights_sha256(folder: Path) -> str | None:
    """The weights checksum of a model folder's record (None: no readable record)."""
    try:
        return str(read_record(folder).get("weights_sha256"))
    except ModelFileError:
        return None
