"""The model-discrepancy model: how far real spectra stray from a grid, as a covariance.

A grid never reproduces a real spectrum to the photon noise. Following Czekala et al. (2015,
ApJ 812, 128) the mismatch is modelled as extra Gaussian noise *proportional to the model
flux*: for a model ``m`` (already scaled to the data) on pixels ``lambda`` and an object of
effective temperature ``T`` the residual ``d - m`` has covariance

    C = diag(sigma^2) + diag(m') [diag(f(lambda, T)^2) + U(lambda, T) U(lambda, T)^T] diag(m')

where ``m' = max(|m|, k median|m|)`` (k = ``reference_fraction``, 0.05: in the deep
absorption bands of T dwarfs the model is near zero while the data's telluric and
calibration errors are not, so the error there is a fraction of a typical flux), with ``f`` a
fractional floor per wavelength and ``U`` a few correlated fractional residual
modes (eigen-spectra), both learned from real library spectra per Teff bin and interpolated
linearly in Teff between bin centres (the covariance, not the modes, is interpolated, so it
stays positive definite). ``C`` is diagonal plus low rank, so solves and determinants use the
Woodbury identity (:class:`LowRankCovariance`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from atmospec.errors import ChecksumError, DataNotFoundError, ModelFileError

__all__ = [
    "DiscrepancyModel",
    "LowRankCovariance",
    "Misfit",
    "load_discrepancy",
    "available_discrepancy",
    "model_digest",
    "FORMAT",
]

log = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]
FORMAT = "atmospec-discrepancy/1"
_WEIGHTS = "discrepancy.safetensors"
_META = "discrepancy.json"


@dataclass
class LowRankCovariance:
    """``C = diag(diag) + factors @ factors.T`` with Woodbury solves (n pixels, rank r).

    Example:
        >>> import numpy as np
        >>> c = LowRankCovariance(np.array([1.0, 2.0]), np.array([[1.0], [0.0]]))
        >>> c.dense().tolist(), round(c.logdet(), 6) == round(float(np.log(4.0)), 6)
        ([[2.0, 0.0], [0.0, 2.0]], True)
    """

    diag: FloatArray
    factors: FloatArray

    def dense(self) -> FloatArray:
        """The full n x n matrix."""
        return np.diag(self.diag) + self.factors @ self.factors.T

    def _core(self) -> tuple[FloatArray, FloatArray]:
        aw = self.factors / self.diag[:, None]
        k = np.eye(self.factors.shape[1]) + self.factors.T @ aw
        return aw, k

    def solve(self, b: ArrayLike) -> FloatArray:
        """``C^-1 b`` for a vector or an (n, k) matrix."""
        b = np.asarray(b, dtype=np.float64)
        aw, k = self._core()
        ab = b / (self.diag if b.ndim == 1 else self.diag[:, None])
        return ab - aw @ np.linalg.solve(k, self.factors.T @ ab)

    def quad(self, r: ArrayLike) -> float:
        """``r^T C^-1 r`` (the chi-square of a residual)."""
        r = np.asarray(r, dtype=np.float64)
        return float(r @ self.solve(r))

    def logdet(self) -> float:
        """``log det C``."""
        _, k = self._core()
        sign, ld = np.linalg.slogdet(k)
        return float(np.sum(np.log(self.diag)) + ld)

    def whiten(self, r: ArrayLike) -> FloatArray:
        """``L^-1 r`` with ``C = L L^T`` (Cholesky): unit-variance residuals when C is right."""
        from scipy.linalg import solve_triangular

        chol = np.linalg.cholesky(self.dense())
        return solve_triangular(chol, np.asarray(r, dtype=np.float64), lower=True)


@dataclass
class Misfit:
    """Misfit of a spectrum under noise + model discrepancy.

    ``score = r^T C^-1 r / dof``; ``threshold`` is the score exceeded by ``false_alarm_rate``
    of the real spectra the model was calibrated on; ``flagged = score > threshold``.

    Example:
        >>> d = DiscrepancyModel([1.0, 2.0], [1000.0], [[0.1, 0.1]], [[[0.0, 0.0]]], "toy",
        ...                      misfit_threshold=1.5)
        >>> m = d.misfit([1.2, 1.2], [0.1, 0.1], [1.0, 1.0], 1000.0)  # 0.2 off, 0.14 allowed
        >>> round(m.score, 6), m.dof, m.flagged, Misfit(1.2, 2, 1.5, 0.05).flagged
        (2.0, 2, True, False)
    """

    score: float
    dof: int
    threshold: float
    false_alarm_rate: float

    @property
    def flagged(self) -> bool:
        return bool(self.score > self.threshold)


@dataclass
class DiscrepancyModel:
    """A fractional model-error covariance of one grid on one instrument (see module doc).

    Attributes:
        wavelength: axis of the learned vectors (micron).
        teff: Teff bin centres (K), increasing.
        floor: (n_bins, n_wave) fractional standard deviation f.
        modes: (n_bins, n_modes, n_wave) fractional modes U (scaled by sqrt eigenvalue).
        grid, instrument, version: what it describes.
        misfit_threshold, false_alarm_rate: calibration of :meth:`misfit`.
        temperature: fits divide ``-2 log L`` by it (>= 1; calibrated on repeat spectra, see
            :mod:`atmospec.discrepancy.temperature`).
        meta: everything else recorded (seed, split, selection, evaluation numbers).

    Example:
        >>> import numpy as np
        >>> w = np.linspace(1.0, 2.0, 5)
        >>> d = DiscrepancyModel(w, np.array([1500.0]), np.full((1, 5), 0.1),
        ...                      np.zeros((1, 1, 5)), grid="toy")
        >>> c = d.covariance(np.full(5, 2.0), 1500.0, error=np.zeros(5))
        >>> np.allclose(np.diag(c), 0.04)
        True
    """

    wavelength: FloatArray
    teff: FloatArray
    floor: FloatArray
    modes: FloatArray
    grid: str
    instrument: str = "spex-prism"
    version: str = "1"
    misfit_threshold: float = float("inf")
    false_alarm_rate: float = 0.05
    reference_fraction: float = 0.05
    temperature: float = 1.0
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.wavelength = np.asarray(self.wavelength, dtype=np.float64)
        self.teff = np.atleast_1d(np.asarray(self.teff, dtype=np.float64))
        self.floor = np.asarray(self.floor, dtype=np.float64).reshape(self.teff.size, -1)
        self.modes = np.asarray(self.modes, dtype=np.float64)
        n_b, n_w = self.teff.size, self.wavelength.size
        if self.floor.shape != (n_b, n_w) or self.modes.shape[::2] != (n_b, n_w):
            raise ModelFileError(
                f"discrepancy model {self.grid}: shapes disagree (wavelength {n_w}, teff {n_b}, "
                f"floor {self.floor.shape}, modes {self.modes.shape})"
            )
        if np.any(np.diff(self.teff) <= 0) or np.any(np.diff(self.wavelength) <= 0):
            raise ModelFileError(f"discrepancy model {self.grid}: axes must increase")

    @property
    def n_modes(self) -> int:
        return int(self.modes.shape[1])

    def _bin_weights(self, teff: float) -> list[tuple[int, float]]:
        t = float(teff)
        if not np.isfinite(t):
            raise ValueError(f"teff must be finite, got {teff!r}")
        c = self.teff
        if t <= c[0] or c.size == 1:
            return [(0, 1.0)]
        if t >= c[-1]:
            return [(c.size - 1, 1.0)]
        j = int(np.searchsorted(c, t))
        w = (t - c[j - 1]) / (c[j] - c[j - 1])
        return [(j - 1, 1.0 - w), (j, w)]

    def reference(self, model_flux: ArrayLike) -> FloatArray:
        """The flux the fractional terms multiply: ``max(|m|, k median|m|)`` along the last axis.

        Example:
            >>> d = DiscrepancyModel([1.0, 2.0], [1000.0], [[0.1, 0.1]], [[[0.0, 0.0]]], "toy")
            >>> d.reference(np.array([0.0, 1.0, 1.0])).tolist()
            [0.05, 1.0, 1.0]
        """
        m = np.abs(np.asarray(model_flux, dtype=np.float64))
        low = self.reference_fraction * np.median(m, axis=-1, keepdims=True)
        return np.maximum(m, low)

    def fractional(
        self, teff: float, wavelength: ArrayLike | None = None
    ) -> tuple[FloatArray, FloatArray]:
        """Fractional floor variance (n,) and mode factors (n, r) at ``teff`` on ``wavelength``.

        Pixels outside the learned axis take the value at its nearest end (the axis spans the
        grid's SpeX range, so this only happens at the ragged ends of a spectrum).
        """
        wave = self.wavelength if wavelength is None else np.asarray(wavelength, np.float64)
        var = np.zeros(wave.size)
        cols = []
        for b, w in self._bin_weights(teff):
            var += w * np.interp(wave, self.wavelength, self.floor[b] ** 2)
            for k in range(self.n_modes):
                cols.append(np.sqrt(w) * np.interp(wave, self.wavelength, self.modes[b, k]))
        factors = np.stack(cols, axis=1) if cols else np.zeros((wave.size, 0))
        return var, factors

    def low_rank(
        self,
        model_flux: ArrayLike,
        teff: float,
        *,
        wavelength: ArrayLike | None = None,
        error: ArrayLike | None = None,
    ) -> LowRankCovariance:
        """Noise + discrepancy covariance of the residual, as diagonal + low rank."""
        m = self.reference(model_flux)
        var, fac = self.fractional(teff, wavelength)
        if var.size != m.size:
            raise ValueError(
                f"model_flux has {m.size} pixels but the wavelength axis {var.size}; give "
                "wavelength= for fluxes not on the model's own axis"
            )
        noise = np.zeros_like(m) if error is None else np.asarray(error, np.float64) ** 2
        diag = noise + var * m**2
        diag = np.maximum(diag, np.finfo(np.float64).tiny)
        return LowRankCovariance(diag, fac * m[:, None])

    def covariance(
        self,
        model_flux: ArrayLike,
        teff: float,
        *,
        wavelength: ArrayLike | None = None,
        error: ArrayLike | None = None,
    ) -> FloatArray:
        """Dense covariance (n, n) of ``data - model`` for a model at ``teff``.

        ``error`` (1-sigma noise per pixel) adds the noise term; without it only the
        discrepancy is returned.
        """
        return self.low_rank(model_flux, teff, wavelength=wavelength, error=error).dense()

    def sample(
        self,
        model_flux: ArrayLike,
        teff: float,
        rng: np.random.Generator,
        n: int = 1,
        *,
        wavelength: ArrayLike | None = None,
    ) -> FloatArray:
        """``n`` additive discrepancy realisations (n, n_pix) in the units of ``model_flux``.

        Adding one to a synthetic spectrum makes it look as mismatched as real spectra are
        (for training augmentation). Example::

            d = load_discrepancy("dback24")
            fake = flux + d.sample(flux, 1500.0, np.random.default_rng(0), 1)[0]
        """
        m = self.reference(model_flux)
        var, fac = self.fractional(teff, wavelength)
        e1 = rng.standard_normal((n, m.size)) * np.sqrt(var)[None, :]
        e2 = rng.standard_normal((n, fac.shape[1])) @ fac.T
        return (e1 + e2) * m[None, :]

    def misfit(
        self,
        spectrum_flux: ArrayLike,
        error: ArrayLike,
        model_flux: ArrayLike,
        teff: float,
        *,
        wavelength: ArrayLike | None = None,
        n_fitted: int = 0,
    ) -> Misfit:
        """Chi-square per dof of ``spectrum - model`` under noise + discrepancy, with its flag.

        The threshold was set on the real spectra of the objects the model was fitted on (see
        ``meta["calibration"]``) so that ``false_alarm_rate`` of them exceed it.
        """
        d = np.asarray(spectrum_flux, dtype=np.float64)
        cov = self.low_rank(model_flux, teff, wavelength=wavelength, error=error)
        dof = max(d.size - int(n_fitted), 1)
        chi2 = cov.quad(d - np.asarray(model_flux, dtype=np.float64))
        return Misfit(chi2 / dof, dof, self.misfit_threshold, self.false_alarm_rate)

    # -- persistence ---------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write ``discrepancy.safetensors`` + ``discrepancy.json`` (with its sha256) in ``path``."""
        from safetensors.numpy import save_file

        from atmospec._fileio import atomic_path, sha256_file, write_json

        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        tensors: dict[str, np.ndarray] = {
            "wavelength": self.wavelength,
            "teff": self.teff,
            "floor": self.floor.astype(np.float32),
            "modes": self.modes.astype(np.float32),
        }
        with atomic_path(folder / _WEIGHTS) as tmp:
            save_file(tensors, str(tmp))
        record = {
            "format": FORMAT,
            "grid": self.grid,
            "instrument": self.instrument,
            "version": self.version,
            "misfit_threshold": self.misfit_threshold,
            "false_alarm_rate": self.false_alarm_rate,
            "reference_fraction": self.reference_fraction,
            "temperature": self.temperature,
            "n_bins": int(self.teff.size),
            "n_modes": self.n_modes,
            "weights_sha256": sha256_file(folder / _WEIGHTS),
            **{k: v for k, v in self.meta.items() if k not in _RESERVED},
        }
        write_json(folder / _META, record)
        return folder

    @classmethod
    def load(cls, path: str | Path) -> DiscrepancyModel:
        """Read a model written by :meth:`save`; a changed weights file is refused."""
        from safetensors.numpy import load_file

        from atmospec._fileio import sha256_file

        folder = Path(path)
        meta_path, weights = folder / _META, folder / _WEIGHTS
        if not meta_path.is_file() or not weights.is_file():
            raise DataNotFoundError(f"{folder}: no {_META} / {_WEIGHTS} (not a discrepancy model)")
        try:
            record = json.loads(meta_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ModelFileError(f"{meta_path}: invalid JSON ({err})") from None
        if record.get("format") != FORMAT:
            raise ModelFileError(f"{meta_path}: format {record.get('format')!r}, expected {FORMAT}")
        digest = sha256_file(weights)
        if digest != record.get("weights_sha256"):
            raise ChecksumError(
                f"{weights}: sha256 {digest} does not match {record.get('weights_sha256')} "
                f"recorded in {meta_path.name}; the file was changed or damaged"
            )
        try:
            t = load_file(str(weights))
        except Exception as err:  # noqa: BLE001 - safetensors raises several types
            raise ModelFileError(f"{weights}: unreadable safetensors file ({err})") from None
        meta = {k: v for k, v in record.items() if k not in _RESERVED}
        return cls(
            wavelength=t["wavelength"],
            teff=t["teff"],
            floor=t["floor"],
            modes=t["modes"],
            grid=str(record["grid"]),
            instrument=str(record["instrument"]),
            version=str(record["version"]),
            misfit_threshold=float(record["misfit_threshold"]),
            false_alarm_rate=float(record["false_alarm_rate"]),
            reference_fraction=float(record["reference_fraction"]),
            temperature=float(record.get("temperature", 1.0)),
            meta={**meta, "path": str(folder), "weights_sha256": digest},
        )

    def describe(self) -> dict[str, Any]:
        """A short JSON-ready record for results (grid, instrument, version, sha256)."""
        return {
            "grid": self.grid,
            "instrument": self.instrument,
            "version": self.version,
            "weights_sha256": self.meta.get("weights_sha256"),
            "misfit_threshold": self.misfit_threshold,
            "temperature": self.temperature,
        }


_RESERVED = {
    "format",
    "grid",
    "instrument",
    "version",
    "misfit_threshold",
    "false_alarm_rate",
    "reference_fraction",
    "temperature",
    "n_bins",
    "n_modes",
    "weights_sha256",
    "path",
}


def _shipped_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "pretrained" / "discrepancy"


def available_discrepancy() -> list[tuple[str, str]]:
    """``(grid, instrument)`` pairs with a shipped discrepancy model.

    Example:
        >>> ("dback24", "spex-prism") in available_discrepancy()  # doctest: +SKIP
        True
    """
    out = []
    root = _shipped_dir()
    if root.is_dir():
        for sub in sorted(root.iterdir()):
            if (sub / _META).is_file():
                grid, _, inst = sub.name.partition("-")
                out.append((grid, "spex-prism" if inst == "spex" else inst))
    return out


def model_digest(source: object) -> str:
    """The first ten hex digits of a model of mismatch's weights sha256, the short name by
    which model ids and cache keys record which model was used (``""`` for a source without
    a recorded checksum, e.g. a user object that is not a :class:`DiscrepancyModel`).

    Example:
        >>> class Toy:
        ...     meta = {"weights_sha256": "0123456789abcdef"}
        >>> model_digest(Toy()), model_digest(object())
        ('0123456789', '')
    """
    meta = getattr(source, "meta", None) or {}
    return str(meta.get("weights_sha256") or "")[:10]


def load_discrepancy(grid: str, instrument: str = "spex-prism") -> DiscrepancyModel:
    """The shipped discrepancy model of ``grid`` on ``instrument`` (checksum verified).

    Raises:
        DataNotFoundError: none is shipped for that pair (the message lists those that are).

    Example:
        >>> d = load_discrepancy("dback24")  # doctest: +SKIP
        >>> d.grid, d.instrument  # doctest: +SKIP
        ('dback24', 'spex-prism')
    """
    short = "spex" if instrument == "spex-prism" else instrument
    folder = _shipped_dir() / f"{grid}-{short}"
    if not (folder / _META).is_file():
        raise DataNotFoundError(
            f"no discrepancy model for grid {grid!r} on {instrument!r}; shipped: "
            f"{available_discrepancy()} (build one with `atmospec discrepancy fit`)"
        )
    return DiscrepancyModel.load(folder)
