"""The grids' shared systematic error, learned from labelled real objects and corrected.

Every grid answers early-L companions 150-500 K cooler than their Teff from bolometric
luminosity and evolutionary models, and answers field L dwarfs metal-rich: a bias the grids
share, so the spread between them cannot reveal it. Like RoPE (Wehenkel et al. 2024), which
corrects a misspecified simulator's answers with a small labelled calibration set, this module
learns the error of the *combined* estimate in parameter space:

    label - estimate  ~  GP(teff_estimate)

a Gaussian process over the combined Teff median (``ConstantKernel * RBF + WhiteKernel``, the
hyperparameters by maximum marginal likelihood), with each calibration object's own variance
(its estimate's spread and its label's error) on the diagonal. Applied to a new object, the
samples are shifted by the GP mean at its Teff and widened by the GP's predictive standard
deviation (the mean's uncertainty plus the object-to-object scatter of the systematic error).
Far from the calibration objects the mean returns to zero and the widening to its prior.

Two corrections ship, each fitted on one set of objects and evaluated on another:

- ``teff``: labels are Teff from bolometric luminosity and evolutionary models at the host's
  age for brown-dwarf companions of the SpeX library; half the companions (split by object,
  stratified in Teff) are the calibration set, the other half are only ever used to report.
- ``mh``: a zero point, as large spectroscopic surveys set theirs on solar-neighbourhood
  stars: the field dwarfs of the library (normal gravity, L0-T8, S/N >= 50) are taken to have
  a median [M/H] of 0 with a population scatter of 0.2 dex at every Teff. Only objects of the
  discrepancy models' fit half enter; the evaluation half is used to report.

Example:
    >>> import numpy as np
    >>> x = np.array([1000.0, 1400.0, 1800.0, 2200.0])
    >>> c = Correction.fit("teff", x, np.array([0.0, 0.0, 150.0, 300.0]),
    ...                    np.full(4, 30.0**2), ["a", "b", "c", "d"], "toy labels")
    >>> mu, sd = c.predict(2000.0)
    >>> bool(100 < mu < 300), bool(sd > 0)
    (True, True)
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from atmospec.errors import DataNotFoundError, ModelFileError

from .disagreement import Disagreement
from .repeat import RepeatScatter
from .split import stratified_split

if TYPE_CHECKING:
    from .combine import Combined

__all__ = [
    "Correction",
    "RepeatScatter",
    "Calibration",
    "load_calibration",
    "shipped_calibration_dir",
    "stale_reason",
    "stratified_split",
    "FIELD_MH_SCATTER",
]

log = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]

_FILE = "calibration.json"
_SCALE = {"teff": 1000.0, "mh": 1.0, "logg": 1.0}
"""Internal units of each parameter (the GP is fitted on ``value / scale``)."""
_X_SCALE = 1000.0
"""The GP's input, the combined Teff median, in units of 1000 K."""

LENGTH_BOUNDS = (0.25, 5.0)
"""Bounds of the RBF length scale in 1000 K: at least 250 K (2.5 node spacings of the
shipped grids), so that a correction never follows a single object."""

FIELD_MH_SCATTER = 0.2
"""dex: the spread of [M/H] among solar-neighbourhood dwarfs (thin disk), the label error of
the [M/H] zero point's "field median is solar" assumption."""


def _kernel(amplitude: float, length_scale: float, noise: float, *, fixed: bool) -> Any:
    """``ConstantKernel * RBF + WhiteKernel`` in internal units: starting values within the
    fitting bounds, or fixed hyperparameters of a fitted correction."""
    from sklearn.gaussian_process.kernels import RBF, WhiteKernel
    from sklearn.gaussian_process.kernels import ConstantKernel as C

    if fixed:
        return C(amplitude, "fixed") * RBF(length_scale, "fixed") + WhiteKernel(noise, "fixed")
    return C(amplitude, (1e-4, 1.0)) * RBF(length_scale, LENGTH_BOUNDS) + WhiteKernel(
        noise, (1e-5, 0.5)
    )


@dataclass
class Correction:
    """The systematic error of one parameter of the combined estimate, as a function of Teff.

    Attributes:
        param: the parameter corrected (``teff`` or ``mh``).
        x: (n,) the calibration objects' combined Teff medians (K).
        y: (n,) label minus the combined median (in the parameter's units).
        alpha: (n,) each object's own variance (estimate spread and label error), squared units.
        amplitude, length_scale, noise: fitted kernel hyperparameters in internal units
            (``value / scale``, Teff in 1000 K).
        objects: the calibration objects (library keys).
        label: where the labels come from.

    Example:
        >>> c = Correction("teff", np.array([1000.0, 2000.0]), np.array([100.0, 100.0]),
        ...                np.ones(2), 0.01, 0.5, 1e-4, ["a", "b"], "toy: 100 K too cool")
        >>> [tuple(round(v) for v in c.predict(t)) for t in (1500.0, 9000.0)]  # far: prior
        [(106, 61), (0, 100)]
    """

    param: str
    x: FloatArray
    y: FloatArray
    alpha: FloatArray
    amplitude: float
    length_scale: float
    noise: float
    objects: list[str]
    label: str
    _gp: Any = field(default=None, repr=False, compare=False)

    @property
    def scale(self) -> float:
        return _SCALE.get(self.param, 1.0)

    @classmethod
    def fit(
        cls,
        param: str,
        x: Sequence[float] | FloatArray,
        y: Sequence[float] | FloatArray,
        alpha: Sequence[float] | FloatArray,
        objects: Sequence[str],
        label: str,
        *,
        seed: int = 0,
    ) -> Correction:
        """Fit the kernel's hyperparameters by maximum marginal likelihood (sklearn).

        Raises:
            ValueError: fewer than 4 calibration objects, or non-finite values.
        """
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.gaussian_process import GaussianProcessRegressor

        xa, ya, aa = (np.asarray(v, dtype=np.float64) for v in (x, y, alpha))
        if xa.size < 4 or not (xa.size == ya.size == aa.size == len(objects)):
            raise ValueError(f"{param}: need >= 4 calibration objects with x, y, alpha each")
        if not (np.isfinite(xa).all() and np.isfinite(ya).all() and np.isfinite(aa).all()):
            raise ValueError(f"{param}: non-finite calibration values")
        s = _SCALE.get(param, 1.0)
        gp = GaussianProcessRegressor(
            _kernel(0.1, 0.4, 0.01, fixed=False),
            alpha=aa / s**2,
            n_restarts_optimizer=4,
            random_state=seed,
        )
        with warnings.catch_warnings():
            # A hyperparameter at its bound (e.g. no scatter beyond the objects' own errors)
            # is a legitimate answer here, not a failure.
            warnings.simplefilter("ignore", ConvergenceWarning)
            gp.fit(xa[:, None] / _X_SCALE, ya / s)
        k = gp.kernel_
        return cls(
            param=param,
            x=xa,
            y=ya,
            alpha=aa,
            amplitude=float(k.k1.k1.constant_value),
            length_scale=float(k.k1.k2.length_scale),
            noise=float(k.k2.noise_level),
            objects=[str(o) for o in objects],
            label=label,
            _gp=gp,
        )

    def _regressor(self) -> Any:
        if self._gp is None:
            from sklearn.gaussian_process import GaussianProcessRegressor

            kernel = _kernel(self.amplitude, self.length_scale, self.noise, fixed=True)
            gp = GaussianProcessRegressor(kernel, alpha=self.alpha / self.scale**2, optimizer=None)
            gp.fit(self.x[:, None] / _X_SCALE, self.y / self.scale)
            self._gp = gp
        return self._gp

    def predict(self, teff: float | FloatArray) -> tuple[Any, Any]:
        """The correction's mean and standard deviation at combined Teff ``teff`` (K).

        The deviation includes the scatter of the systematic error between objects (the
        white-noise term), not only the uncertainty of the mean.
        """
        t = np.atleast_1d(np.asarray(teff, dtype=np.float64))
        mu, sd = self._regressor().predict(t[:, None] / _X_SCALE, return_std=True)
        mu, sd = mu * self.scale, sd * self.scale
        if np.ndim(teff) == 0:
            return float(mu[0]), float(sd[0])
        return mu, sd

    def slope(self, teff: float) -> float:
        """``d mean / d Teff`` of the correction at combined Teff ``teff`` (a central
        difference over +-1 K; the mean varies on the kernel's length scale, hundreds of K).

        The corrected Teff is ``teff + mean(teff)``, so a change ``d`` in the grids' answer
        moves the reported value by ``(1 + slope) * d``.

        Example:
            >>> import numpy as np
            >>> x = np.array([1000.0, 1400.0, 1800.0, 2200.0])
            >>> c = Correction.fit("teff", x, 0.5 * (x - 1600.0), np.full(4, 10.0**2),
            ...                    list("abcd"), "toy labels: label = 1.5 x - 800")
            >>> round(c.slope(1600.0), 1)
            0.5
        """
        mu = np.asarray(self.predict(np.array([teff - 1.0, teff + 1.0]))[0], dtype=np.float64)
        return float(0.5 * (mu[1] - mu[0]))

    def to_json(self) -> dict[str, Any]:
        return {
            "param": self.param,
            "x": self.x.tolist(),
            "y": self.y.tolist(),
            "alpha": self.alpha.tolist(),
            "amplitude": self.amplitude,
            "length_scale": self.length_scale,
            "noise": self.noise,
            "objects": list(self.objects),
            "label": self.label,
        }

    @classmethod
    def from_json(cls, rec: Mapping[str, Any]) -> Correction:
        return cls(
            param=str(rec["param"]),
            x=np.asarray(rec["x"], dtype=np.float64),
            y=np.asarray(rec["y"], dtype=np.float64),
            alpha=np.asarray(rec["alpha"], dtype=np.float64),
            amplitude=float(rec["amplitude"]),
            length_scale=float(rec["length_scale"]),
            noise=float(rec["noise"]),
            objects=[str(o) for o in rec["objects"]],
            label=str(rec["label"]),
        )


@dataclass
class Calibration:
    """Corrections of the combined estimate of one set of grids (see the module docstring).

    Attributes:
        corrections: parameter -> :class:`Correction`.
        model_id: the multi-grid predictor the corrections were learned for; they apply only
            to its answers.
        meta: how it was made (seed, split, versions, numbers on the held-out objects).

    Example:
        >>> import tempfile
        >>> cal = Calibration({}, "toy", repeat={"teff": RepeatScatter("teff", 40.0, 0.0, [])})
        >>> back = Calibration.load(cal.save(tempfile.mkdtemp()))
        >>> back.model_id, back.statistical(snr=50.0)
        ('toy', {'teff': 40.0})
    """

    corrections: dict[str, Correction]
    model_id: str
    meta: dict[str, Any] = field(default_factory=dict)
    repeat: dict[str, RepeatScatter] = field(default_factory=dict)
    disagreement: Disagreement | None = None

    def statistical(self, snr: float, teff: float | None = None) -> dict[str, float]:
        """Parameter -> the scatter expected between independent spectra at this S/N, of the
        value reported.

        The repeat scatter is learned on the grids' answers before the correction. The Teff
        correction moves with the answer it corrects (``teff + mean(teff)``), so the scatter
        of the *corrected* Teff is the learned one times ``|1 + slope|`` at ``teff``, the
        combined Teff before the correction (the delta method). Where the grids crowd a range
        of true Teff into a narrower one, the correction stretches it and the scatter with
        it. Without ``teff`` the scatter of the uncorrected answer is returned.

        Example:
            >>> import numpy as np
            >>> x = np.array([1000.0, 1400.0, 1800.0, 2200.0])
            >>> c = Correction.fit("teff", x, 0.5 * (x - 1600.0), np.full(4, 10.0**2),
            ...                    list("abcd"), "toy labels: label = 1.5 x - 800")
            >>> cal = Calibration({"teff": c}, "toy",
            ...                   repeat={"teff": RepeatScatter("teff", 40.0, 0.0, [])})
            >>> round(cal.statistical(100.0)["teff"]), round(cal.statistical(100.0, 1600.0)["teff"])
            (40, 60)
        """
        out = {p: r.predict(snr) for p, r in self.repeat.items()}
        corr = self.corrections.get("teff")
        if teff is not None and corr is not None and "teff" in out and np.isfinite(teff):
            out["teff"] *= abs(1.0 + corr.slope(float(teff)))
        return out

    def digest(self) -> str:
        """Twelve hex digits of the sha256 of the corrections and of the threshold of the
        grids' disagreement (for model ids in outputs)."""
        from atmospec.serialization import record_checksum

        rec: dict[str, Any] = {p: c.to_json() for p, c in sorted(self.corrections.items())}
        if self.disagreement is not None:
            rec["disagreement"] = self.disagreement.threshold
        return record_checksum(rec)[:12]

    @property
    def held_out(self) -> list[str]:
        """Objects kept out of every correction, for reporting (library keys)."""
        return list(self.meta.get("split", {}).get("held_out", []))

    @property
    def calibration_objects(self) -> set[str]:
        return {o for c in self.corrections.values() for o in c.objects}

    def apply(
        self,
        samples: NDArray[np.floating[Any]],
        param_names: Sequence[str],
        rng: np.random.Generator,
    ) -> tuple[NDArray[np.float32], dict[str, tuple[float, float]]]:
        """One object's samples, shifted and widened; and param -> (shift, sd) applied.

        Example:
            >>> import numpy as np
            >>> c = Correction.fit("teff", np.array([1000.0, 1400.0, 1800.0, 2200.0]),
            ...                    np.array([0.0, 0.0, 150.0, 300.0]), np.full(4, 900.0),
            ...                    list("abcd"), "toy")
            >>> cal = Calibration({"teff": c}, "toy")
            >>> s = np.tile(np.float32([2000.0, 5.0]), (500, 1))
            >>> out, terms = cal.apply(s, ("teff", "logg"), np.random.default_rng(0))
            >>> bool(abs(np.median(out[:, 0]) - 2000.0 - terms["teff"][0]) < 3 * terms["teff"][1])
            True
        """
        out = np.array(samples, dtype=np.float32, copy=True)
        names = list(param_names)
        if "teff" not in names:
            return out, {}
        x = float(np.median(out[:, names.index("teff")]))
        terms: dict[str, tuple[float, float]] = {}
        for p, corr in self.corrections.items():
            if p not in names:
                continue
            mu, sd = corr.predict(x)
            j = names.index(p)
            out[:, j] += np.float32(mu) + _antithetic(rng, out.shape[0], sd)
            terms[p] = (float(mu), float(sd))
        return out, terms

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write ``calibration.json`` (sealed with its sha256) into ``folder``, atomically."""
        from atmospec._fileio import write_json
        from atmospec.serialization import seal

        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        record = {
            "kind": "multigrid-calibration",
            "model_id": self.model_id,
            "corrections": {p: c.to_json() for p, c in self.corrections.items()},
            "repeat": {p: r.to_json() for p, r in self.repeat.items()},
            "disagreement": None if self.disagreement is None else self.disagreement.to_json(),
            "meta": self.meta,
        }
        write_json(path / _FILE, seal(record))
        return path / _FILE

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> Calibration:
        """Read a folder written by :meth:`save`.

        Raises:
            ModelFileError: the file is missing, not JSON, or was edited (checksum).
        """
        import json

        from atmospec.serialization import is_sealed

        path = Path(folder)
        path = path if path.name == _FILE else path / _FILE
        if not path.is_file():
            raise ModelFileError(f"{path}: no calibration record")
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ModelFileError(f"{path}: not valid JSON ({err})") from None
        if not isinstance(rec, dict) or not is_sealed(rec):
            raise ModelFileError(f"{path}: modified after it was written (checksum mismatch)")
        return cls(
            corrections={p: Correction.from_json(c) for p, c in dict(rec["corrections"]).items()},
            model_id=str(rec["model_id"]),
            meta=dict(rec.get("meta", {})),
            repeat={
                p: RepeatScatter(
                    str(r["param"]), float(r["floor"]), float(r["per_snr"]), list(r["objects"])
                )
                for p, r in dict(rec.get("repeat", {})).items()
            },
            disagreement=(
                Disagreement.from_json(rec["disagreement"]) if rec.get("disagreement") else None
            ),
        )

    def correct(self, comb: Combined, snr: float, rng: np.random.Generator) -> None:
        """Correct a combined estimate in place: its samples shifted and widened
        (:meth:`apply`), a note saying by how much, and its statistical part: that of the
        corrected value, at the Teff before the correction (:meth:`statistical`)."""
        from .estimate import COMMON_PARAMS

        raw_teff = float(np.median(comb.samples[:, COMMON_PARAMS.index("teff")]))
        comb.samples, comb.calibration = self.apply(comb.samples, COMMON_PARAMS, rng)
        comb.notes.append(self.describe(comb.calibration))
        comb.statistical = self.statistical(snr, raw_teff)

    def describe(self, terms: Mapping[str, tuple[float, float]]) -> str:
        """One sentence for a user on what was applied to an object."""
        parts = []
        for p, (mu, sd) in terms.items():
            unit = " K" if p == "teff" else " dex"
            fmt = ".0f" if p == "teff" else ".2f"
            parts.append(f"{p} {mu:+{fmt}}{unit} (+- {sd:{fmt}}{unit})")
        return (
            "corrected for the grids' shared systematic error learned from labelled real "
            "objects: " + ", ".join(parts)
        )


def _antithetic(rng: np.random.Generator, n: int, sd: float) -> NDArray[np.float32]:
    """``n`` Gaussian draws of standard deviation ``sd`` in +- pairs (shuffled): their mean
    is exactly zero, so widening a set of samples does not also move its centre by chance."""
    half = rng.normal(0.0, sd, (n + 1) // 2)
    draws = np.concatenate([half, -half])[:n]
    return rng.permutation(draws).astype(np.float32)


def shipped_calibration_dir() -> Path:
    """Where the shipped calibration of the default grids lives.

    Example:
        >>> d = shipped_calibration_dir()
        >>> d.name, (d / "calibration.json").is_file()
        ('multigrid-spex', True)
    """
    return Path(__file__).resolve().parent.parent / "pretrained" / "calibration" / "multigrid-spex"


def load_calibration(folder: str | os.PathLike[str] | None = None) -> Calibration:
    """The shipped calibration of the default multi-grid predictor (or one in ``folder``).

    Raises:
        DataNotFoundError: none is shipped.

    Example:
        >>> cal = load_calibration()  # doctest: +SKIP
        >>> sorted(cal.corrections)  # doctest: +SKIP
        ['mh', 'teff']
    """
    path = Path(folder) if folder is not None else shipped_calibration_dir()
    if not (path / _FILE).is_file() and not (path.name == _FILE and path.is_file()):
        raise DataNotFoundError(
            f"no calibration record in {path} (learn one with `atmospec discrepancy calibrate`)"
        )
    return Calibration.load(path)


def stale_reason(learned_for: str, now: str) -> str:
    """Why a calibration does not apply, in the parts of the two model ids that differ.

    Example:
        >>> stale_reason("grids:a+b|m1|b=m2", "grids:a+c|m1")
        'the calibration was learned for the grids a+b, these are a+c'
        >>> stale_reason("grids:a+b|m1|b~d1", "grids:a+b|m1|b~d2")
        'the calibration was learned for other models of these grids (here b~d2, there b~d1); relearn it with `atmospec discrepancy calibrate`'
    """
    old, new = learned_for.split("|"), now.split("|")
    if old[0] != new[0]:
        return (
            f"the calibration was learned for the grids {old[0].removeprefix('grids:')}, "
            f"these are {new[0].removeprefix('grids:')}"
        )
    here = [p for p in new if p not in old]
    there = [p for p in old if p not in new]
    return (
        f"the calibration was learned for other models of these grids (here "
        f"{', '.join(here) or '-'}, there {', '.join(there) or '-'}); relearn it with "
        "`atmospec discrepancy calibrate`"
    )
