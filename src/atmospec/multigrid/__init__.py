"""Several model grids side by side: each grid's answer, the combined one, and two warnings."""

from .combine import Combined, combine
from .estimate import COMMON_PARAMS, GridEstimate, chi2_estimate
from .predictor import DEFAULT_ROUTES, GridRoute, MultiGridPredictor, MultiGridResult

__all__ = [
    "COMMON_PARAMS",
    "Combined",
    "DEFAULT_ROUTES",
    "GridEstimate",
    "GridRoute",
    "MultiGridPredictor",
    "MultiGridResult",
    "chi2_estimate",
    "combine",
]
