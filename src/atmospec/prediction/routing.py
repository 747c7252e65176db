"""Which estimator serves a spectrum: the calibration gate and the NPE's domain checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from atmospec.posteriors.calibration import CalibrationStatus
from atmospec.prediction.coverage import ModelInput

if TYPE_CHECKING:
    from atmospec.posteriors.npe import NPEstimator

__all__ = [
    "NPEDomain",
    "noise_snr",
    "below_trained_snr",
    "SelectionPolicy",
    "RoutedInput",
]


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
    from atmospec.posteriors.degrade import noise_snr_rows

    return float(noise_snr_rows(flux, sigma)[0])


def below_trained_snr(
    meta: dict[str, Any], model: str, flux: NDArray[np.float64], sigma: NDArray[np.float64]
) -> str:
    """The note for a spectrum below the S/N range a learned estimator was trained on (its
    recipe's ``snr``), or ``""``: its intervals then come from noisier copies of the spectrum
    than any it learned from (wide, but not calibrated there).

    Example:
        >>> flux, sigma = np.full(5, 1.0), np.full(5, 0.5)
        >>> below_trained_snr({"recipe": {"snr": [10, 300]}}, "cnn", flux, sigma)[:45]
        'S/N 2 is below the S/N 10-300 cnn was trained'
        >>> below_trained_snr({}, "cnn", flux, sigma)
        ''
    """
    trained = (meta.get("recipe") or {}).get("snr")
    if not trained:
        return ""
    lo, hi = float(min(trained)), float(max(trained))
    snr = noise_snr(flux, sigma)
    if not (np.isfinite(snr) and snr < lo):
        return ""
    return (
        f"S/N {snr:.3g} is below the S/N {lo:g}-{hi:g} {model} was trained on (median flux / "
        "median error on its axis): its intervals come from noisier copies of the spectrum "
        "than any it learned from, wide but not calibrated there"
    )


@dataclass(frozen=True)
class NPEDomain:
    """Where an NPE was trained: its wavelength axis, its noise S/N range and its grid box.

    Example:
        >>> d = NPEDomain("npe", (3.0, 30.0), "dback24")
        >>> d.snr_problem(100.0)[:56]
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
        return (
            f"S/N {snr:.3g} is outside the S/N range {lo:g}-{hi:g} {self.name} was trained on "
            "(S/N as its noise model means it: median flux / median error on its axis; the "
            "table's snr column is the median of flux / error per bin)"
        )

    def input_problem(self, inp: ModelInput) -> str:
        """Why a spectrum put on the NPE's axis cannot go to the NPE ('' when it can).

        Masked bins (infinite sigma) are outside the training domain (the NPE always saw
        every pixel), and so are an S/N outside :attr:`snr_range` and a spectrum sampled too
        coarsely for the grid's resolution (``inp.low_resolution``).
        """
        if inp.low_resolution:
            from atmospec.resolution import stated_resolution

            stated = None if inp.spectrum is None else stated_resolution(inp.spectrum)
            if stated is not None and stated < inp.sampling_resolution / 2:
                return f"stated to resolve R {stated:g}, coarser than the spectra it was trained on"
            return (
                f"sampled at lambda/dlambda {inp.sampling_resolution:.0f}, coarser than the "
                "spectra it was trained on"
            )
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


@dataclass
class RoutedInput(ModelInput):
    """A :class:`ModelInput` that records which member of a Predictor serves it.

    Example:
        >>> inp = ModelInput("a.fits", "a", np.ones(4), np.full(4, 0.1), np.zeros(4, bool), 1.0)
        >>> routed = RoutedInput.of(inp, "dback24-spex")
        >>> routed.member, routed.source, round(routed.snr, 1)
        ('dback24-spex', 'a.fits', 10.0)
    """

    member: str = ""

    @classmethod
    def of(cls, inp: ModelInput, member: str) -> RoutedInput:
        fields = {k: getattr(inp, k) for k in inp.__dataclass_fields__}
        return cls(**fields, member=member)
