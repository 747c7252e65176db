"""Instrument binning: model depths averaged over the bins of an observed spectrum."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from atmospec.errors import CoverageError
from atmospec.molecules.io import TransmissionSpectrum
from atmospec.molecules.opacity import cell_edges

__all__ = ["Binning"]


@dataclass(frozen=True)
class Binning:
    """The bins of an observation: centre and half width (micron), instrument, reference errors.

    Example:
        >>> b = Binning(np.array([1.5]), np.array([0.5]), np.array(["x"]), np.array([1e-4]))
        >>> m = b.matrix(np.linspace(0.5, 2.5, 21))
        >>> b.apply(np.linspace(0.5, 2.5, 21), m).round(6).tolist()   # mean of x over the bin 1-2 um
        [1.5]
    """

    centre: NDArray[np.float64]
    half_width: NDArray[np.float64]
    instrument: NDArray[np.str_]
    error: NDArray[np.float64]

    @classmethod
    def from_spectrum(cls, spec: TransmissionSpectrum) -> Binning:
        """The bins and error bars of an observed spectrum."""
        return cls(spec.wavelength, spec.half_width, spec.instrument, spec.error)

    def __len__(self) -> int:
        return int(self.centre.size)

    @property
    def lower(self) -> NDArray[np.float64]:
        return self.centre - self.half_width

    @property
    def upper(self) -> NDArray[np.float64]:
        return self.centre + self.half_width

    def instrument_ids(self) -> NDArray[np.int64]:
        """Integer id per bin (0, 1, ... in order of first appearance)."""
        names: dict[str, int] = {}
        return np.array([names.setdefault(s, len(names)) for s in self.instrument.tolist()])

    def matrix(self, wavelength: ArrayLike) -> Any:
        """Sparse averaging matrix ``(n_bins, n_wave)``: overlap of each model cell with each bin.

        Model cells have edges halfway between the model wavelengths; a bin's value is the
        overlap-weighted mean of the model cells it covers (flux conserving, as in SpectRes).

        Raises:
            CoverageError: a bin reaches beyond the model wavelengths.
        """
        lam = np.asarray(wavelength, dtype=float)
        edges = cell_edges(lam)
        bad = (self.lower < edges[0]) | (self.upper > edges[-1])
        if bad.any():
            i = int(np.argmax(bad))
            raise CoverageError(
                f"bin {i} ({self.lower[i]:g}-{self.upper[i]:g} um) is not covered by the model "
                f"wavelengths {edges[0]:g}-{edges[-1]:g} um"
            )
        lo = np.maximum(edges[None, :-1], self.lower[:, None])
        hi = np.minimum(edges[None, 1:], self.upper[:, None])
        overlap = np.clip(hi - lo, 0.0, None)
        from scipy.sparse import csr_matrix

        return csr_matrix(overlap / overlap.sum(axis=1, keepdims=True))

    def apply(self, depth: ArrayLike, matrix: Any) -> NDArray[np.float64]:
        """Bin model depths ``(n_wave,)`` or ``(n, n_wave)`` with :meth:`matrix`."""
        d = np.asarray(depth, dtype=float)
        return np.asarray((matrix @ d.T).T)

    def delta_chi2(
        self, a: ArrayLike, b: ArrayLike, noise_scale: ArrayLike = 1.0
    ) -> NDArray[np.float64]:
        """Chi-square distance between binned spectra with one free offset per instrument.

        ``sum_i ((a_i - b_i - c_k) / s error_i)^2`` minimised over the offsets c_k of the
        instruments (weighted means of the difference): an offset between instruments, which
        observers fit, cannot make a molecule detectable. ``s`` is ``noise_scale``.

        Example:
            >>> b = Binning(np.array([1.0, 2.0]), np.array([0.1, 0.1]), np.array(["x", "x"]),
            ...             np.array([1.0, 1.0]))
            >>> b.delta_chi2([3.0, 5.0], [0.0, 0.0]).tolist()   # offset 4 absorbs the mean
            [2.0]
        """
        diff = np.atleast_2d(np.asarray(a, float) - np.asarray(b, float))
        w = 1.0 / self.error**2
        ids = self.instrument_ids()
        out = np.zeros(diff.shape[0])
        for k in np.unique(ids):
            sel = ids == k
            d = diff[:, sel]
            c = (d * w[sel]).sum(axis=1, keepdims=True) / w[sel].sum()
            out += ((d - c) ** 2 * w[sel]).sum(axis=1)
        scale = np.asarray(noise_scale, dtype=float)
        return out / scale**2
