"""Whether a flux read as F_lambda without a stated unit is in fact F_nu: the grids decide.

A table that gives no flux unit is read as F_lambda (:mod:`atmospec.io.flux_density`). Read
that way, an F_nu spectrum is the object tilted by lambda^2 and the grids answer for a
cooler, redder object, often within their model of mismatch (GD 165B, L4 at ~1860 K, comes
out at ~1270 K with log g 3.9 and no misfit). The two readings are two hypotheses about the
same numbers, so each covering grid compares them by its likelihood under its own model of
mismatch: :func:`flux_reading` gives, per grid, the tempered 2 ln Bayes factor of F_nu over
F_lambda at each reading's best node, and flags the reading as suspect when most of the
grids (both of two, two of three: the rule of the misfit flag) favour F_nu decisively.

A flux that *is* F_lambda can read better as F_nu when the object is reddened by about
lambda^2 (A_V ~ 10): the flag then still says something true (the answer is not to be
trusted), and its note names both causes. The false alarms measured on library spectra
(`benchmarks/flux_units.py`) are all such embedded young stars of Taurus and IC 348.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from atmospec.io.flux_density import ASSUMED_KEY

from .combine import covering

if TYPE_CHECKING:
    from atmospec.grids import ModelGrid
    from atmospec.spectrum import Spectrum

__all__ = ["DECISIVE", "FluxReading", "GridReading", "as_f_nu", "flux_reading", "grid_readings"]

DECISIVE = 2.0 * np.log(100.0)
"""Tempered ``2 ln`` Bayes factor of F_nu over F_lambda above which a grid favours the F_nu
reading: odds of 100 to 1 (Jeffreys' "decisive"). Set a priori, not fitted."""


@dataclass(frozen=True)
class GridReading:
    """One grid's best node for one reading of the flux: its ``-2 ln L`` (noise plus the
    grid's model of mismatch, Jacobian included, untempered) and its Teff.

    Example:
        >>> lam, nu = GridReading(1250.0, 1800.0), GridReading(1210.0, 1300.0)  # F_lambda, F_nu
        >>> b = (lam.neg2_loglike - nu.neg2_loglike) / 2.0  # tempered 2 ln B, temperature 2
        >>> b, bool(b > DECISIVE), nu.teff  # F_nu favoured decisively, and read cooler
        (20.0, True, 1300.0)
    """

    neg2_loglike: float
    teff: float


@dataclass(frozen=True)
class FluxReading:
    """The grids' verdict on a flux read as F_lambda without a stated unit.

    Attributes:
        evidence: grid -> tempered ``2 ln`` Bayes factor of the F_nu reading over the
            F_lambda one (positive: F_nu fits better), for every grid with a model of mismatch
            that covers the object under both readings (:func:`flux_reading`).
        suspect: True when more than half of those grids favour F_nu by more than
            :data:`DECISIVE`.

    Example:
        >>> r = FluxReading({"dback24": 35.2, "btsettl08": 12.0}, suspect=True)
        >>> r.note()[:18], r.note().split("F_lambda: ")[1][:41]
        ('flux unit suspect:', 'dback24 +35, btsettl08 +12, above 9.2 mea')
    """

    evidence: dict[str, float]
    suspect: bool

    def note(self) -> str:
        """The sentence a user reads when the reading is suspect."""
        parts = ", ".join(f"{g} {v:+.0f}" for g, v in self.evidence.items())
        return (
            "flux unit suspect: the file gives no flux unit and its flux was read as F_lambda, "
            "but read as F_nu (per unit frequency) the grids reproduce it far better (tempered "
            f"2 ln Bayes factor of F_nu over F_lambda: {parts}, above {DECISIVE:.1f} meaning "
            "100:1): if it is F_nu this answer is wrong, rerun with --flux-unit Jy (any F_nu "
            "unit), and if it is F_lambda the spectrum is redder than the models by about "
            "lambda^2 (heavy extinction, A_V ~ 10, as for embedded young stars, or a slope "
            "left by the reduction) and its answer is not to be trusted either"
        )


def grid_readings(
    spectrum: Spectrum, grid: ModelGrid, discrepancy: Any
) -> tuple[GridReading, GridReading]:
    """``grid``'s best node for ``spectrum``'s flux read as F_lambda and read as F_nu, under
    its model of mismatch (``discrepancy``).

    Read as F_nu, the F_lambda spectrum is ``f / lambda^2`` (errors alike). Both readings are
    likelihoods of the *same* numbers: the F_nu one carries the Jacobian of that change of
    variables, ``+4 sum ln lambda``, so their difference is a Bayes factor (best node against
    best node), to be divided by the model's likelihood temperature as node posteriors are.

    Example:
        >>> from atmospec import library  # doctest: +SKIP
        >>> from atmospec.grids import load_grid  # doctest: +SKIP
        >>> from atmospec.discrepancy import load_discrepancy  # doctest: +SKIP
        >>> s = library.load("11250_11052")  # GD 165B, F_lambda  # doctest: +SKIP
        >>> lam, nu = grid_readings(s, load_grid("btsettl08"), load_discrepancy("btsettl08"))  # doctest: +SKIP
        >>> lam.neg2_loglike < nu.neg2_loglike, lam.teff  # doctest: +SKIP
        (True, 1800.0)
    """
    from atmospec.discrepancy.learn import AXIS_RANGE
    from atmospec.discrepancy.likelihood import scan_nodes
    from atmospec.fitting.data import prepare

    data = prepare(spectrum, grid, coverage="mask", wave_range=AXIS_RANGE)
    models = data.model(np.asarray(grid.flux(np.arange(len(grid))), dtype=np.float64))
    teff = grid.params["teff"].to_numpy(dtype=np.float64)
    lam = data.wavelength
    out = []
    for power in (0.0, -2.0):  # as it is, and as F_nu (as_f_nu)
        tilt = lam**power
        chi2, logdet, _ = scan_nodes(
            models, data.flux * tilt, data.uncertainty * tilt, teff, discrepancy, lam
        )
        k = int(np.argmin(chi2 + logdet))
        jacobian = -2.0 * power * float(np.sum(np.log(lam)))
        out.append(GridReading(float(chi2[k] + logdet[k]) + jacobian, float(teff[k])))
    return out[0], out[1]


def as_f_nu(spectrum: Spectrum) -> Spectrum:
    """``spectrum``'s relative flux read as F_nu, in relative F_lambda: ``f / lambda^2``
    (errors alike; the unit stays empty, the scale is arbitrary).

    Example:
        >>> from atmospec.spectrum import Spectrum
        >>> as_f_nu(Spectrum([1.0, 2.0], [1.0, 4.0], [0.1, 0.4])).flux.tolist()
        [1.0, 1.0]
    """
    tilt = spectrum.wavelength**-2.0
    unc = None if spectrum.uncertainty is None else spectrum.uncertainty * tilt
    return spectrum.with_arrays(spectrum.wavelength, spectrum.flux * tilt, unc, mask=spectrum.mask)


def _covering(spectrum: Spectrum, grids: Mapping[str, ModelGrid]) -> set[str]:
    """The grids that cover the object ``spectrum`` shows, decided as
    :func:`~atmospec.multigrid.combine.combine` decides it (classic chi-square over each grid's
    whole range, :func:`~atmospec.multigrid.combine.covering`)."""
    from atmospec.errors import AtmospecError

    from .estimate import chi2_estimate

    scans = {}
    for name, grid in grids.items():
        try:
            rng = np.random.default_rng(0)
            scans[name] = chi2_estimate(spectrum, grid, draws=200, rng=rng, discrepancy=None)
        except AtmospecError:
            continue
    return {g for g, ok in covering(scans).items() if ok}


def flux_reading(
    spectrum: Spectrum, grids: Mapping[str, ModelGrid], discrepancy: Mapping[str, Any]
) -> FluxReading | None:
    """The grids' verdict on ``spectrum``'s flux unit, or None when there is nothing to decide
    (its unit was stated, or no grid has a model of mismatch).

    Only a grid that covers the object under *both* readings has a say (all of them, when
    none does; coverage as :func:`~atmospec.multigrid.combine.combine` decides it, per
    reading): a grid that does not reach one reading's object prefers the other whatever the
    unit (Diamondback, which stops at 2400 K, prefers whichever reading of an early M dwarf
    looks cooler, and under its model of mismatch its best node for an M1 dwarf is 2000 K,
    not its edge).

    Measured with the shipped grids (Diamondback, Burrows 2006, BT-Settl 2008) by
    `benchmarks/flux_units.py`: SpeX library spectra of 1548 M0-T9 objects (S/N >= 20) that
    no model of mismatch learned from, each written without a unit as F_lambda and as F_nu:
    95.0 % of the F_nu ones flagged (T dwarfs 80 %), and 38 of the F_lambda ones (2.5 %), all
    young stars of Taurus and IC 348 (reddened by about lambda^2), no field dwarf.

    Example:
        >>> reading = flux_reading(spectrum, grids, discrepancy)  # doctest: +SKIP
        >>> reading.suspect  # doctest: +SKIP
        False
    """
    if spectrum.flux_unit or not spectrum.meta.get(ASSUMED_KEY):
        return None
    from atmospec.errors import AtmospecError

    per: dict[str, tuple[GridReading, GridReading]] = {}
    for name, grid in grids.items():
        disc = discrepancy.get(name)
        if disc is None:
            continue
        try:
            per[name] = grid_readings(spectrum, grid, disc)
        except AtmospecError:  # too few pixels on this grid: it has no say
            continue
    if not per:
        return None
    both = _covering(spectrum, grids) & _covering(as_f_nu(spectrum), grids)
    evidence = {
        g: round((lam.neg2_loglike - nu.neg2_loglike) / _temperature(discrepancy[g]), 1)
        for g, (lam, nu) in per.items()
        if g in both or not both
    }
    votes = sum(v > DECISIVE for v in evidence.values())
    return FluxReading(evidence, suspect=votes > len(evidence) // 2)


def _temperature(discrepancy: Any) -> float:
    return float(getattr(discrepancy, "temperature", 1.0))
