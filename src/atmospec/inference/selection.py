"""Which estimator serves a spectrum: the calibration gate and the NPE's domain checks."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from atmospec.inference.coverage import ModelInput
    from atmospec.posteriors.npe import NPEstimator

__all__ = ["CalibrationStatus", "read_calibration", "NPEDomain", "noise_snr", "SelectionPolicy"]

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
    not match) counts as *not passed*, with the problem named.

    Example:
        >>> read_calibration("/no/such/folder").passed
        False
    """
    if folder is None:
        return CalibrationStatus(False, float("nan"), float("nan"), "the model has no folder")
    path = Path(folder) / CALIBRATION_FILE
    try:
        record: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        return CalibrationStatus(False, float("nan"), float("nan"), f"{path}: unreadable ({err})")
    from atmospec.serialization import is_sealed

    if not isinstance(record, dict) or not is_sealed(record):
        return CalibrationStatus(
            False,
            float("nan"),
            float("nan"),
            f"{path}: checksum missing or not matching its content (modified after writing); "
            "re-run `atmospec calibrate MODEL --out FOLDER`",
        )
    try:
        curve = {float(k): float(v) for k, v in record["coverage_hpd"].items()}
        tolerance = float(record["tolerance"])
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        return CalibrationStatus(
            False, float("nan"), float("nan"), f"{path}: no coverage_hpd / tolerance ({err})"
        )
    if not curve or not np.isfinite(tolerance):
        return CalibrationStatus(False, float("nan"), tolerance, f"{path}: empty coverage curve")
    max_error = max(abs(cov - level) for level, cov in curve.items())
    return CalibrationStatus(bool(max_error <= tolerance), float(max_error), tolerance)


def noise_snr(flux: NDArray[np.float64], sigma: NDArray[np.float64]) -> float:
    """S/N in the sense of the NPE's :class:`~atmospec.posteriors.npe.NoiseModel`:
    ``median(flux) / median(sigma)`` over the pixels.

    The noise model draws ``sigma_i = median(f) / snr * exp(q t_i)`` with ``t`` running
    linearly from -1 to 1, whose median over the pixels is ``median(f) / snr``; this ratio
    therefore recovers the S/N the network was trained at.

    Example:
        >>> round(noise_snr(np.full(10, 2.0), np.full(10, 0.1)), 6)
        20.0
    """
    return float(np.median(flux) / np.median(sigma))


@dataclass(frozen=True)
class NPEDomain:
    """Where an NPE was trained: its wavelength axis, its noise S/N range and its grid box.

    Example:
        >>> d = NPEDomain("npe", (3.0, 30.0), "dback24")
        >>> d.snr_problem(100.0)
        'S/N 100 is outside the S/N range 3-30 npe was trained on'
    """

    name: str
    snr_range: tuple[float, float]
    grid: str

    @classmethod
    def of(cls, npe: NPEstimator, name: str) -> NPEDomain:
        lo, hi = (float(x) for x in npe.noise.snr_range)
        grid = str(npe.meta_.get("grid") or npe.meta_.get("config", {}).get("grid") or "")
        return cls(name, (lo, hi), grid)

    def snr_problem(self, snr: float) -> str:
        """Why this S/N is outside the trained range ('' when inside)."""
        lo, hi = self.snr_range
        if np.isfinite(snr) and lo <= snr <= hi:
            return ""
        return f"S/N {snr:.3g} is outside the S/N range {lo:g}-{hi:g} {self.name} was trained on"

    def input_problem(self, inp: ModelInput) -> str:
        """Why a spectrum put on the NPE's axis cannot go to the NPE ('' when it can).

        Masked bins (infinite sigma) are outside the training domain (the NPE always saw
        every pixel), and so is an S/N outside :attr:`snr_range`.
        """
        if inp.masked.any():
            return (
                f"{int(inp.masked.sum())} of {inp.masked.size} bins of the {self.name} axis "
                "are masked (the NPE was trained on complete spectra)"
            )
        return self.snr_problem(noise_snr(inp.flux, inp.sigma))


@dataclass(frozen=True)
class SelectionPolicy:
    """The rule behind ``--model default``: NPE first, CNN as the fallback.

    The NPE (``primary``) serves a spectrum when (a) its shipped calibration passes
    (:func:`read_calibration`) and (b) the spectrum is inside its domain: it covers the
    NPE's whole wavelength axis (no masked bins), its S/N lies in the trained range
    (:class:`NPEDomain`), and the NPE's out-of-distribution score does not flag it (inside
    its grid). Otherwise the ``fallback`` estimator serves it, and the reason goes into the
    row's notes.

    Example:
        >>> pol = SelectionPolicy("npe", "cnn", CalibrationStatus(False, 0.1, 0.03))
        >>> pol.primary_usable
        False
        >>> pol.fallback_note("S/N 100 is outside")
        'served by cnn instead of npe: S/N 100 is outside'
    """

    primary: str
    fallback: str
    calibration: CalibrationStatus

    @property
    def primary_usable(self) -> bool:
        """True when the NPE's shipped calibration passes."""
        return self.calibration.passed

    def gate_problem(self) -> str:
        """Why the NPE serves no spectrum at all ('' when it may serve)."""
        return "" if self.primary_usable else f"{self.primary} {self.calibration.summary()}"

    def fallback_note(self, reason: str) -> str:
        """The note recorded on a row the fallback served."""
        return f"served by {self.fallback} instead of {self.primary}: {reason}"

    def primary_note(self) -> str:
        """The note recorded on a row the NPE served."""
        return f"served by {self.primary} (default estimator; {self.calibration.summary()})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "primary": self.primary,
            "fallback": self.fallback,
            "calibration_passed": self.calibration.passed,
            "max_coverage_error": self.calibration.max_error,
            "tolerance": self.calibration.tolerance,
            "calibration_problem": self.calibration.problem,
        }
