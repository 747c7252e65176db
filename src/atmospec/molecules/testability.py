"""Whether a spectrum's bins can test a molecule at all: opacities and band coverage.

A probability near zero means "not detectable in these bins" (the classifier's label is a
chi-square rise above :data:`~atmospec.molecules.dataset.DETECTION_THRESHOLD` when the molecule
is removed). That is an answer only where the bins could have shown the molecule: where the
simulator has no opacity for it, or no bin covers its bands, the honest answer is "not testable
with these bins". How strongly the data ask for a molecule (the forward model's chi-square rise
when it is removed, :func:`~atmospec.molecules.bestfit.removal_dchi2`) is reported beside it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

import numpy as np

from atmospec.molecules.io import TransmissionSpectrum

__all__ = ["BANDS", "Testability", "bins_in_bands", "testability"]

BANDS: dict[str, list[tuple[float, float]]] = {
    "H2O": [(1.1, 1.2), (1.3, 1.5), (1.8, 2.0), (2.6, 3.0), (5.5, 7.5)],
    "CO2": [(1.95, 2.1), (2.65, 2.85), (4.15, 4.45), (14.5, 16.0)],
    "CH4": [(1.6, 1.8), (2.2, 2.45), (3.1, 3.5), (7.3, 8.2)],
    "CO": [(2.28, 2.45), (4.5, 5.0)],
    "Na": [(0.580, 0.598)],
    "K": [(0.757, 0.780)],
    "SO2": [(4.0, 4.1), (7.1, 7.7), (8.4, 9.2)],
    "NH3": [(2.9, 3.1), (10.0, 11.0)],
}
"""The strongest bands (micron) of each species; for the alkali doublets the line cores plus
the 250 cm^-1 wings the simulator keeps (:func:`~atmospec.molecules.alkali.alkali_table`)."""


@dataclass(frozen=True)
class Testability:
    """Whether ``molecule`` can be tested with a spectrum's bins, and why.

    Attributes:
        molecule: the species.
        testable: False where the answer cannot be trusted either way.
        reason: one sentence; starts with "not testable" where not testable ("not testable
            with these bins" where no bin covers the species' bands).
        n_bins: bins overlapping the species' bands.
        dchi2_refit: chi-square rise when the species is removed from the best fit and the rest
            refitted: how strongly these data ask for it (None without a fit).

    Example:
        >>> s = TransmissionSpectrum(np.array([1.4, 4.3]), np.array([0.05, 0.05]),
        ...     np.array([0.01, 0.01]), np.array([1e-4, 1e-4]), np.array(["a", "a"]))
        >>> t = testability(s, "CO2", modelled={"H2O", "CO2"}, dchi2_refit={"CO2": 42.0})
        >>> t.testable, t.n_bins, t.as_dict()["dchi2_refit"]
        (True, 1, 42.0)
        >>> t.reason
        '1 bins in its bands; these data raise chi2 by 42.0 when it is removed (rest refitted)'
        >>> testability(s, "SO2", modelled={"H2O", "CO2"}).reason
        'not testable: no opacity for SO2 in the simulator'
    """

    molecule: str
    testable: bool
    reason: str
    n_bins: int = 0
    dchi2_refit: float | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "testable": self.testable,
            "reason": self.reason,
            "n_bins_in_bands": self.n_bins,
            "dchi2_refit": self.dchi2_refit,
        }


def bins_in_bands(spec: TransmissionSpectrum, molecule: str) -> int:
    """Number of bins overlapping any of ``molecule``'s :data:`BANDS`.

    Example:
        >>> import numpy as np
        >>> s = TransmissionSpectrum(np.array([1.4, 3.3]), np.array([0.05, 0.05]),
        ...     np.array([0.01, 0.01]), np.array([1e-4, 1e-4]), np.array(["a", "a"]))
        >>> bins_in_bands(s, "H2O"), bins_in_bands(s, "CO2")
        (1, 0)
    """
    lam, half = spec.wavelength, spec.half_width
    inside = np.zeros(lam.size, bool)
    for lo, hi in BANDS.get(molecule, []):
        inside |= (lam + half > lo) & (lam - half < hi)
    return int(inside.sum())


def testability(
    spec: TransmissionSpectrum,
    molecule: str,
    *,
    modelled: Collection[str],
    dchi2_refit: Mapping[str, float] | None = None,
) -> Testability:
    """Say whether ``spec``'s bins can test ``molecule``.

    Not testable: no opacity for it in the simulator (``modelled`` lists those present), or no
    bin covering its bands. ``dchi2_refit`` (from
    :func:`~atmospec.molecules.bestfit.removal_dchi2`) is reported, never used to decide:
    "the data do not ask for it" is an answer, not a limit of the bins.

    Example:
        >>> import numpy as np
        >>> s = TransmissionSpectrum(np.array([1.4, 3.3]), np.array([0.05, 0.05]),
        ...     np.array([0.01, 0.01]), np.array([1e-4, 1e-4]), np.array(["a", "a"]))
        >>> testability(s, "CO2", modelled={"H2O", "CO2"}).reason[:28]
        'not testable with these bins'
    """
    refit = None if dchi2_refit is None else dchi2_refit.get(molecule)
    n = bins_in_bands(spec, molecule)
    if molecule not in modelled:
        return Testability(
            molecule,
            False,
            f"not testable: no opacity for {molecule} in the simulator",
            n,
        )
    if n == 0:
        bands = ", ".join(f"{lo:g}-{hi:g}" for lo, hi in BANDS.get(molecule, []))
        return Testability(
            molecule,
            False,
            f"not testable with these bins: none covers the {molecule} bands ({bands} um)",
            0,
            refit,
        )
    text = f"{n} bins in its bands"
    if refit is not None:
        text += f"; these data raise chi2 by {refit:.1f} when it is removed (rest refitted)"
    return Testability(molecule, True, text, n, refit)


# a public name that starts with 'test': not pytest tests when the file is collected
testability.__test__ = False  # type: ignore[attr-defined]
Testability.__test__ = False  # type: ignore[attr-defined]
