"""Model discrepancy: a covariance for how far real spectra stray from a model grid.

``load_discrepancy("dback24")`` gives the shipped model of a grid on the SpeX prism;
:class:`DiscrepancyModel` evaluates its covariance, draws realisations and scores misfits.
"""

from atmospec.discrepancy.model import (
    FORMAT,
    DiscrepancyModel,
    LowRankCovariance,
    Misfit,
    available_discrepancy,
    load_discrepancy,
    model_digest,
)

__all__ = [
    "FORMAT",
    "DiscrepancyModel",
    "LowRankCovariance",
    "Misfit",
    "available_discrepancy",
    "load_discrepancy",
    "model_digest",
]
