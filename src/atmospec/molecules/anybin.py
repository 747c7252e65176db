"""One molecule classifier for any binning: observed bins projected onto a fixed wavelength axis.

Design. Planets are simulated once on a fine axis (:class:`~atmospec.molecules.native.NativeSet`,
R ~ 500) and binned on the fly. Each training batch gets a new random *instrument set*
(1-4 modes drawn from JWST/HST/Spitzer-like ranges, resolutions R 10-300, error levels
20-800 ppm with their own shape), the labels are recomputed for those bins and errors
(Delta chi^2 > 25 with one free offset per instrument), and the noisy bins are projected onto a
canonical log-wavelength axis of ``n_cells`` cells: per cell the inverse-variance mean of the
offset-free, normalised depths of the bins overlapping it (weighted by the fraction of each
bin in the cell), the cell's log S/N, and a coverage mask. A 1-D CNN reads these three
channels. Any bins (any number, gaps, overlapping instruments) inside the axis give an input
of the same shape, so one shipped network answers for all of them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from atmospec.errors import CoverageError, ModelFileError
from atmospec.molecules.binning import Binning
from atmospec.molecules.io import TransmissionSpectrum
from atmospec.molecules.population_range import PopulationRange

__all__ = [
    "ALKALI_LINES",
    "AXIS_RANGE",
    "IRAC_CHANNELS",
    "KIND",
    "SHIPPED_NAME",
    "MODES",
    "HST_COMPILATION",
    "P_HST_COMPILATION",
    "P_JOINT",
    "P_JOINT_HST",
    "AnyBinningClassifier",
    "load_pretrained_anybin",
    "shipped_population_range",
    "canonical_edges",
    "project",
    "random_binning",
]

AXIS_RANGE = (0.46, 12.4)
"""Wavelengths (micron) the canonical axis spans: inside the opacities' 0.45-12.5 um."""

KIND = "molecule_anybin_classifier"  # the record kind (atmospec.models, atmospec.serialization)

SHIPPED_NAME = "molecules-any-binning"
"""Registry name of the shipped any-binning classifier (:func:`atmospec.models.load_model`)."""

MODES: dict[str, tuple[float, float, float, float, float, float]] = {
    # name: (lower um, upper um, R min, R max, error min ppm, error max ppm)
    "prism": (0.6, 5.3, 20.0, 200.0, 40.0, 400.0),
    "soss": (0.85, 2.8, 30.0, 200.0, 30.0, 300.0),
    "soss2": (0.63, 0.85, 30.0, 100.0, 50.0, 400.0),
    "g395h": (2.7, 5.2, 30.0, 200.0, 30.0, 300.0),
    "f322w2": (2.4, 4.0, 30.0, 200.0, 30.0, 300.0),
    "f444w": (3.9, 5.0, 30.0, 200.0, 30.0, 300.0),
    "miri_lrs": (5.0, 12.0, 10.0, 60.0, 80.0, 800.0),
    "g141": (1.1, 1.7, 20.0, 130.0, 20.0, 200.0),
    "g102": (0.8, 1.15, 20.0, 100.0, 30.0, 300.0),
    "stis": (0.46, 1.0, 8.0, 100.0, 40.0, 400.0),
    "stis_g430l": (0.46, 0.57, 8.0, 130.0, 40.0, 400.0),
    "stis_g750l": (0.53, 1.02, 8.0, 100.0, 40.0, 400.0),
    "nicmos": (1.1, 2.5, 4.0, 40.0, 50.0, 400.0),
    "spitzer": (3.16, 5.02, 0.0, 0.0, 60.0, 400.0),
}
"""Instrument modes random binnings are drawn from (ranges jittered by up to 5 %). Spitzer is
photometry: its IRAC 3.6 and 4.5 um channels (:data:`IRAC_CHANNELS`), one or both. The two
STIS gratings (G430L, cut to the axis at 0.46 um, and G750L, overlapping it at 0.53-0.57 um)
are drawn separately only in :data:`HST_COMPILATION` sets."""

HST_COMPILATION: tuple[tuple[str, float], ...] = (
    ("stis_g430l", 0.9),
    ("stis_g750l", 0.9),
    ("g102", 0.2),
    ("g141", 0.9),
    ("nicmos", 0.2),
    ("spitzer", 0.8),
)
"""The archival HST + Spitzer transmission spectra (e.g. the ten hot Jupiters of Sing et al.
2016, Nature 529, 59): each mode with the probability it is part of a set. A fraction
:data:`P_HST_COMPILATION` of the random sets is drawn this way, most with one shared offset
(:data:`P_JOINT_HST`), as these compilations are published; among the other sets all of these
modes together are rare (about 1 in 500)."""

P_HST_COMPILATION = 0.15
_RANDOM_MODES = [m for m in MODES if m not in ("stis_g430l", "stis_g750l")]
P_JOINT = 0.3
P_JOINT_HST = 0.7

IRAC_CHANNELS = ((3.16, 3.92), (3.96, 5.02))
"""Spitzer IRAC channel 1 and 2 bandpasses (micron, half-power points)."""

ALKALI_LINES = (0.5893, 0.7682)
"""Na D and K D doublet centres (micron); STIS sets may carry a narrow bin on each, as the
published HST and ground-based alkali analyses do."""


def canonical_edges(n_cells: int, lo: float = AXIS_RANGE[0], hi: float = AXIS_RANGE[1]) -> NDArray:
    """Cell edges of the canonical axis, uniform in log wavelength.

    Example:
        >>> e = canonical_edges(4, 1.0, 16.0)
        >>> e.round(3).tolist()
        [1.0, 2.0, 4.0, 8.0, 16.0]
    """
    return np.geomspace(lo, hi, n_cells + 1)


def _fractions(lower: NDArray, upper: NDArray, edges: NDArray) -> NDArray[np.float64]:
    """``(n_bins, n_cells)`` fraction of each bin lying in each cell."""
    lo = np.maximum(edges[None, :-1], lower[:, None])
    hi = np.minimum(edges[None, 1:], upper[:, None])
    return np.clip(hi - lo, 0.0, None) / (upper - lower)[:, None]


def project(
    depth: NDArray[np.floating],
    error: NDArray[np.floating],
    lower: NDArray[np.float64],
    upper: NDArray[np.float64],
    instrument_ids: NDArray[np.int64],
    edges: NDArray[np.float64],
) -> NDArray[np.float32]:
    """Network inputs ``(n, 3, n_cells)`` from binned depths ``(n, n_bins)`` and errors.

    Each instrument's error-weighted mean is removed (offsets are free) and the residuals
    are divided by their RMS ``s``. Per cell: channel 0 the inverse-variance mean residual of
    the bins overlapping it (each weighted by the fraction of the bin inside the cell),
    channel 1 ``log10(s * sqrt(information))`` (the cell's S/N for a feature of size s, -4
    where empty), channel 2 the fraction of the cell the bins cover (capped at 1).

    Example:
        >>> x = project(np.array([[1.0, 3.0]]), np.array([[1.0, 1.0]]), np.array([1.0, 2.0]),
        ...             np.array([2.0, 3.0]), np.array([0, 0]), np.array([1.0, 2.0, 3.0, 4.0]))
        >>> x[0, 0].tolist(), x[0, 2].tolist()
        ([-1.0, 1.0, 0.0], [1.0, 1.0, 0.0])
    """
    d = np.atleast_2d(np.asarray(depth, dtype=float))
    e = np.broadcast_to(np.asarray(error, dtype=float), d.shape)
    w = 1.0 / e**2
    resid = np.empty_like(d)
    for k in np.unique(instrument_ids):
        sel = instrument_ids == k
        mean = (d[:, sel] * w[:, sel]).sum(1, keepdims=True) / w[:, sel].sum(1, keepdims=True)
        resid[:, sel] = d[:, sel] - mean
    s = np.sqrt((resid**2).mean(axis=1, keepdims=True)) + 1e-30
    frac = _fractions(lower, upper, edges)
    info = w @ frac
    value = np.divide((resid / s) * w @ frac, info, out=np.zeros_like(info), where=info > 0)
    snr = np.full_like(info, -4.0)
    np.log10(s * np.sqrt(info), out=snr, where=info > 0)
    width = np.diff(edges)
    cover = np.minimum(((upper - lower)[:, None] * frac).sum(0) / width, 1.0)
    out = np.stack([value, np.clip(snr, -4.0, 4.0), np.broadcast_to(cover, value.shape)], axis=1)
    return out.astype(np.float32)


def random_binning(rng: np.random.Generator, max_modes: int = 4) -> Binning:
    """A random instrument set: 1-``max_modes`` modes of :data:`MODES` with random R and errors,
    or (a fraction :data:`P_HST_COMPILATION`) an HST + Spitzer compilation
    (:data:`HST_COMPILATION`).

    Each mode has its own free offset, except in a fraction :data:`P_JOINT` of the sets
    (:data:`P_JOINT_HST` of the HST compilations), where all modes share one (compilations
    published with the offsets already fitted).

    Bins have constant resolution within a mode; errors follow a smooth random shape
    (higher at the mode's edges) around a log-uniform level.

    Example:
        >>> b = random_binning(np.random.default_rng(0))
        >>> bool(len(b) > 0 and b.lower.min() >= AXIS_RANGE[0])
        True
    """
    while True:  # at least 5 bins: a lone photometric point carries no spectrum
        hst = rng.random() < P_HST_COMPILATION
        if hst:
            chosen = [m for m, p in HST_COMPILATION if rng.random() < p]
            if len(chosen) < 2:
                continue
        else:
            k = int(rng.integers(1, max_modes + 1))
            chosen = [str(m) for m in rng.choice(_RANDOM_MODES, size=k, replace=False)]
        b = _draw_binning(rng, chosen)
        if len(b) < 5:
            continue
        if rng.random() < (P_JOINT_HST if hst else P_JOINT):  # offsets already fitted: one
            b = Binning(b.centre, b.half_width, np.full(len(b), "joint"), b.error)
        return b


def _draw_binning(rng: np.random.Generator, chosen: list[str]) -> Binning:
    cen, half, inst, err = [], [], [], []
    for name in chosen:
        lo, hi, r_lo, r_hi, e_lo, e_hi = MODES[name]
        level = float(np.exp(rng.uniform(np.log(e_lo), np.log(e_hi)))) * 1e-6
        if name == "spitzer":  # photometry: one or both IRAC channels
            bands = np.array(IRAC_CHANNELS)
            if rng.random() < 0.3:
                bands = bands[[int(rng.integers(2))]]
            c, h = bands.mean(1), 0.5 * (bands[:, 1] - bands[:, 0])
            e = level * np.exp(0.2 * rng.standard_normal(c.size))
        else:
            lo = max(AXIS_RANGE[0], lo * rng.uniform(0.95, 1.05))
            hi = min(AXIS_RANGE[1], hi * rng.uniform(0.95, 1.05))
            r = float(np.exp(rng.uniform(np.log(r_lo), np.log(r_hi))))
            n = max(1, int(np.floor(np.log(hi / lo) * r)))
            edges = np.geomspace(lo, hi, n + 1)
            c = 0.5 * (edges[1:] + edges[:-1])
            h = 0.5 * np.diff(edges)
            x = (c - lo) / (hi - lo)
            shape = 1.0 + rng.uniform(0, 2) * (2 * x - 1) ** 4 + rng.uniform(-0.3, 0.3) * x
            e = level * np.clip(shape, 0.3, None) * np.exp(0.1 * rng.standard_normal(c.size))
            if name.startswith("stis") and rng.random() < 0.5:  # narrow bins on the alkali doublets
                lines = np.array([w for w in ALKALI_LINES if lo < w < hi and rng.random() < 0.7])
                nh = np.exp(rng.uniform(np.log(1e-3), np.log(4e-3), lines.size))
                ne = level * np.exp(rng.uniform(-0.5, 1.0, lines.size))
                c, h, e = np.r_[c, lines], np.r_[h, nh], np.r_[e, ne]
        cen.append(c)
        half.append(h)
        inst.append(np.full(c.size, str(name)))
        err.append(e)
    return Binning(
        np.concatenate(cen), np.concatenate(half), np.concatenate(inst), np.concatenate(err)
    )


def _network(n_cells: int, n_out: int, width: int, dropout: float) -> Any:
    from atmospec.molecules.classifiers import _network as cnn

    return cnn(n_cells, n_out, width, dropout, in_channels=3)


def _sigmoid(z: NDArray[np.float64]) -> NDArray[np.float64]:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


@dataclass
class AnyBinningClassifier:
    """The CNN over the canonical axis, its calibration, and the population's range.

    ``predict_spectrum`` accepts any :class:`TransmissionSpectrum` whose bins lie within
    :attr:`coverage` and whose depths the simulated population covers, as its record says
    (:attr:`population_range`). ``source`` names the folder it was loaded from in messages.

    Example:
        >>> clf = load_pretrained_anybin()
        >>> clf.coverage, clf.edges.size - 1   # the canonical axis and its cells
        ((0.46, 12.4), 384)
        >>> lam = np.geomspace(1.0, 5.0, 40)
        >>> b = Binning(lam, lam / 200, np.full(40, "prism"), np.full(40, 1e-4))
        >>> noise = 0.02 + 1e-4 * np.random.default_rng(0).standard_normal((1, 40))
        >>> p = clf.predict_proba(b, noise, np.full((1, 40), 1e-4))   # noise alone
        >>> p.shape, bool(p.max() < 0.05)
        ((1, 6), True)
        >>> clf.check_spectrum(TransmissionSpectrum(lam, lam / 200, np.full(40, 0.3),
        ...                                         np.full(40, 1e-4), np.full(40, "x"), "deep"))
        Traceback (most recent call last):
        ...
        atmospec.errors.OutOfGridError: deep: median transit depth 0.3 is outside the simulated ...
    """

    network: Any
    molecules: tuple[str, ...]
    edges: NDArray[np.float64]
    temperatures: NDArray[np.float64]
    config: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)
    source: str = "this any-binning classifier"

    @property
    def coverage(self) -> tuple[float, float]:
        return float(self.edges[0]), float(self.edges[-1])

    @property
    def population_range(self) -> PopulationRange:
        """The median depths and depth spread of the simulated population, from the record.

        Raises:
            ModelFileError: the record has none of the current form (naming :attr:`source`).
        """
        return PopulationRange.from_record(self.info.get("population_range"), self.source)

    def _logits(self, x: NDArray[np.float32], *, dropout: bool = False, seed: int = 0) -> NDArray:
        import torch

        net = self.network
        net.train(dropout)
        with torch.no_grad(), torch.random.fork_rng():
            torch.manual_seed(seed)
            out = torch.cat(
                [
                    net(torch.from_numpy(np.ascontiguousarray(x[k : k + 1024])))
                    for k in range(0, len(x), 1024)
                ]
            ).numpy()
        net.eval()
        return out.astype(np.float64)

    def inputs(self, binning: Binning, depth: NDArray, error: NDArray) -> NDArray[np.float32]:
        """The network's inputs for depths ``(n, n_bins)`` on ``binning``."""
        return project(
            depth, error, binning.lower, binning.upper, binning.instrument_ids(), self.edges
        )

    def predict_proba(
        self, binning: Binning, depth: NDArray, error: NDArray
    ) -> NDArray[np.float64]:
        """Calibrated probabilities ``(n, n_molecules)``."""
        return _sigmoid(self._logits(self.inputs(binning, depth, error)) / self.temperatures)

    def check_spectrum(self, spec: TransmissionSpectrum) -> None:
        """Refuse a spectrum the simulated population does not cover, saying which assumption
        it breaks: wavelengths (the axis), median depth or depth spread (the ranges recorded
        with the model, :attr:`population_range`)."""
        lo, hi = self.coverage
        outside = (spec.wavelength - spec.half_width < lo) | (
            spec.wavelength + spec.half_width > hi
        )
        if outside.any():
            i = int(np.argmax(outside))
            raise CoverageError(
                f"{spec.name}: {int(outside.sum())} bins lie outside {lo:g}-{hi:g} um (e.g. "
                f"{spec.wavelength[i]:g} um), where the classifier has no opacities; leave them "
                "out with --trim (they are then listed in the report)"
            )
        self.population_range.check(spec)

    def predict_spectrum(
        self, spec: TransmissionSpectrum, *, n_mc: int = 100, level: float = 0.9
    ) -> dict[str, dict[str, float]]:
        """Probability per molecule with a ``level`` interval from ``n_mc`` dropout passes."""
        self.check_spectrum(spec)
        b = Binning.from_spectrum(spec)
        x = self.inputs(b, spec.depth[None], spec.error[None])
        p = _sigmoid(self._logits(x)[0] / self.temperatures)
        mc = np.stack(
            [
                _sigmoid(self._logits(x, dropout=True, seed=i)[0] / self.temperatures)
                for i in range(n_mc)
            ]
        )
        lo, hi = np.quantile(mc, [(1 - level) / 2, (1 + level) / 2], axis=0)
        return {
            m: {"probability": float(p[j]), "low": float(lo[j]), "high": float(hi[j])}
            for j, m in enumerate(self.molecules)
        }

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write the model folder (:mod:`atmospec.serialization`: ``weights.safetensors`` and a
        checksummed ``model.json`` with config, canonical axis, calibration and provenance)."""
        from atmospec._fileio import provenance
        from atmospec.serialization import save_arrays

        arrays = {
            f"net.{k}": v.detach().cpu().contiguous().numpy()
            for k, v in self.network.state_dict().items()
        }
        record = {
            "kind": KIND,
            "molecules": list(self.molecules),
            "config": self.config,
            "temperatures": self.temperatures.tolist(),
            "edges": self.edges.tolist(),
            "info": self.info,
            "provenance": self.info.get("provenance") or provenance(seed=self.config.get("seed")),
        }
        return save_arrays(folder, record, arrays)

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> AnyBinningClassifier:
        """Read a folder written by :meth:`save`; both files are verified by sha256.

        Raises:
            ModelFileError: a missing, modified or truncated file (named), or another model.
        """
        import torch

        from atmospec.serialization import load_arrays

        record, arrays = load_arrays(folder)
        if record.get("kind") != KIND:
            raise ModelFileError(
                f"{folder}: not an any-binning molecule classifier (kind={record.get('kind')!r})"
            )
        try:
            cfg = record["config"]
            edges = np.array(record["edges"])
            net = _network(edges.size - 1, len(record["molecules"]), cfg["width"], cfg["dropout"])
            net.load_state_dict(
                {k[4:]: torch.from_numpy(v.copy()) for k, v in arrays.items() if k[:4] == "net."}
            )
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise ModelFileError(f"{folder}: inconsistent any-binning classifier ({err})") from None
        net.eval()
        return cls(
            net,
            tuple(record["molecules"]),
            edges,
            np.array(record["temperatures"]),
            cfg,
            record.get("info", {}),
            str(folder),
        )


def load_pretrained_anybin() -> AnyBinningClassifier:
    """The shipped any-binning classifier, from the model registry
    (:func:`atmospec.models.load_model` name :data:`SHIPPED_NAME`).

    Example:
        >>> clf = load_pretrained_anybin()
        >>> clf.molecules, clf.config["n_cells"], clf.info["detection_threshold"]
        (('H2O', 'CO2', 'CH4', 'CO', 'Na', 'K'), 384, 25.0)
    """
    from atmospec.models import load_model

    clf: AnyBinningClassifier = load_model(SHIPPED_NAME, kind=KIND)
    return clf


def shipped_population_range() -> PopulationRange:
    """The population range recorded with the shipped any-binning classifier (its verified
    ``model.json`` alone: no weights are read). The retrieval's prior checks read it too.

    Example:
        >>> r = shipped_population_range()
        >>> bool(0 < r.median_depth[0] < r.median_depth[1] < 1), r.n_planets
        (True, 40000)
    """
    from atmospec.models import model_path
    from atmospec.serialization import read_record

    folder = model_path(SHIPPED_NAME)
    record = read_record(folder)
    return PopulationRange.from_record(record.get("info", {}).get("population_range"), str(folder))
