"""The spectra a simulated planet population covers: measured once, recorded with the model.

A classifier trained on a simulated population can only vouch for spectra like the ones it
saw. Two numbers say which: the range of the planets' median transit depths (a spectrum in
the wrong unit, or of a planet no simulated host could carry, falls outside it) and the
largest spread of a spectrum's depths relative to its median (larger spreads come from
offsets between files, not atmospheres). Both are measured on the simulated depths by
:func:`population_range`, recorded in the model's ``info["population_range"]`` when it is
trained, and read back by the checks (:meth:`PopulationRange.check`).

Only planets that transit count: a simulated spectrum deeper than 1 somewhere (an extended
atmosphere opaque beyond the star's radius) is no transit, and is left out. The spread is
measured, as the check applies it, on planets whose scale height is below
:data:`COMPACT_SCALE_HEIGHT` of their radius: the puffiest fifth of the population (low
gravity, hot, light atmospheres) reach spreads of several times their median and would
leave the check nothing to refuse.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from atmospec.errors import ModelFileError, ModelInputError, OutOfGridError
from atmospec.molecules.atmosphere import R_JUP
from atmospec.molecules.profiles import AMU, K_B
from atmospec.molecules.spectrum import TransmissionSpectrum

__all__ = [
    "COMPACT_SCALE_HEIGHT",
    "PERCENTILES",
    "PopulationRange",
    "population_range",
    "recompute_population_range",
    "refresh_population_range",
]

PERCENTILES = (0.1, 99.9)
"""Percentiles of the planets' median depths that bound the range (and the upper one of the
spread): a handful of extreme draws among tens of thousands do not widen it."""

COMPACT_SCALE_HEIGHT = 0.02
"""Scale height over radius below which a planet's spread counts (see the module text)."""

COLUMNS = ("radius_rjup", "gravity", "temperature", "mu")
"""Population parameters the spread's selection needs (scale height over radius)."""


@dataclass(frozen=True)
class PopulationRange:
    """Median depths and the largest relative spread of a simulated population's spectra.

    Attributes:
        median_depth: lower and upper percentile (:data:`PERCENTILES`) of the transiting
            planets' median depths.
        relative_spread: upper percentile of ``(P95 - P5) / median`` of the depths of the
            transiting planets with compact atmospheres (:data:`COMPACT_SCALE_HEIGHT`).
        n_planets, n_transiting, n_compact: planets simulated, those never deeper than 1,
            and those among them with compact atmospheres.
        source: where the range was read (for messages).

    Example:
        >>> r = PopulationRange((6e-5, 0.18), 0.74, 40000, 39735, 31572, "toy")
        >>> lam = np.linspace(1.0, 2.0, 10)
        >>> def spec(depth):
        ...     return TransmissionSpectrum(lam, np.full(10, 0.05), depth, np.full(10, 1e-4),
        ...                                 np.full(10, "x"), "p")
        >>> r.check(spec(np.full(10, 0.02)))   # inside: nothing said
        >>> r.check(spec(np.full(10, 0.3)))
        Traceback (most recent call last):
        ...
        atmospec.errors.OutOfGridError: p: median transit depth 0.3 is outside the simulated ...
        >>> PopulationRange.from_record(r.as_record(), "again") == r.with_source("again")
        True
    """

    median_depth: tuple[float, float]
    relative_spread: float
    n_planets: int
    n_transiting: int
    n_compact: int
    source: str = ""

    def as_record(self) -> dict[str, Any]:
        """The JSON record written under a model's ``info["population_range"]``."""
        return {
            "median_depth": [float(v) for v in self.median_depth],
            "relative_spread": float(self.relative_spread),
            "percentiles": list(PERCENTILES),
            "n_planets": int(self.n_planets),
            "n_transiting": int(self.n_transiting),
            "n_compact": int(self.n_compact),
            "definition": (
                "median_depth: percentiles of the median depth (on the classifier's axis) of "
                "the simulated planets never deeper than 1; relative_spread: upper percentile "
                "of (P95 - P5) / median of the depths of those with scale height below "
                f"{COMPACT_SCALE_HEIGHT:g} of their radius"
            ),
        }

    @classmethod
    def from_record(cls, record: Any, source: str) -> PopulationRange:
        """Read :meth:`as_record`'s output; ``source`` names the model in errors.

        Raises:
            ModelFileError: no such record, or one of an earlier form (the per-spectrum
                extremes, ``depth`` and ``relative_amplitude``), naming ``source``.
        """
        try:
            lo, hi = (float(v) for v in record["median_depth"])
            return cls(
                (lo, hi),
                float(record["relative_spread"]),
                int(record["n_planets"]),
                int(record["n_transiting"]),
                int(record["n_compact"]),
                source,
            )
        except (KeyError, TypeError, ValueError):
            raise ModelFileError(
                f"{source}: its record has no population range of the current form "
                "(median_depth, relative_spread); recompute it from the recorded population "
                "with atmospec.molecules.population_range.refresh_population_range(FOLDER)"
            ) from None

    def with_source(self, source: str) -> PopulationRange:
        """The same range, read from ``source``."""
        return replace(self, source=source)

    def check(self, spec: TransmissionSpectrum) -> None:
        """Refuse a spectrum outside the range, saying which of the two numbers it breaks.

        Raises:
            OutOfGridError: naming the spectrum, its value and the recorded limit.
        """
        depth = float(np.median(spec.depth))
        lo, hi = self.median_depth
        where = f" recorded in {self.source}" if self.source else ""
        if not lo <= depth <= hi:
            raise OutOfGridError(
                f"{spec.name}: median transit depth {depth:.3g} is outside the simulated "
                f"population ({lo:.2g}-{hi:.2g}, the {PERCENTILES[0]:g}-{PERCENTILES[1]:g} "
                f"percentiles of its planets' median depths{where}); check the depth unit"
            )
        amp = float((np.percentile(spec.depth, 95) - np.percentile(spec.depth, 5)) / depth)
        if amp > self.relative_spread:
            raise OutOfGridError(
                f"{spec.name}: the depth varies by {amp:.2g} of its median across the spectrum; "
                f"the population's atmospheres and spots change it by at most "
                f"{self.relative_spread:.2g}{where}. Offsets between files or instrument "
                "systematics are likely (give known offsets with --offset)"
            )


def population_range(
    wavelength: NDArray[np.floating[Any]],
    depth: NDArray[np.floating[Any]],
    columns: Mapping[str, NDArray[np.floating[Any]]],
    axis: tuple[float, float],
) -> PopulationRange:
    """Measure the :class:`PopulationRange` of simulated depths ``(n, n_wave)`` on
    ``wavelength``, read on ``axis`` (the classifier's wavelengths, micron).

    ``columns`` holds each planet's :data:`COLUMNS` (radius in R_Jup, gravity in m/s^2,
    temperature in K, mean molecular weight in amu).

    Example:
        >>> lam = np.linspace(1.0, 3.0, 50)
        >>> rng = np.random.default_rng(0)
        >>> depth = 0.01 * (1.0 + 0.1 * rng.random((2000, 1)) * np.sin(3 * lam))
        >>> depth[0] = 2.0                        # opaque beyond its star: no transit
        >>> cols = {"radius_rjup": np.ones(2000), "gravity": np.full(2000, 10.0),
        ...         "temperature": np.full(2000, 1000.0), "mu": np.full(2000, 2.3)}
        >>> r = population_range(lam, depth, cols, (1.0, 3.0))
        >>> r.n_planets, r.n_transiting, r.median_depth[1] < 0.011, round(r.relative_spread, 2)
        (2000, 1999, True, 0.2)
    """
    lam = np.asarray(wavelength, dtype=float)
    on_axis = (lam >= axis[0]) & (lam <= axis[1])
    if not on_axis.any():
        raise ModelInputError(f"no simulated wavelength inside the axis {axis[0]}-{axis[1]} um")
    missing = [c for c in COLUMNS if c not in columns]
    if missing:
        raise ModelInputError(
            f"the population set has no {missing} columns: the scale heights that select the "
            "spread's planets cannot be computed"
        )
    d = np.asarray(depth, dtype=np.float64)[:, on_axis]
    median = np.median(d, axis=1)
    transits = d.max(axis=1) < 1.0
    col = {c: np.asarray(columns[c], dtype=float) for c in COLUMNS}
    height = K_B * col["temperature"] / (col["mu"] * AMU * col["gravity"])  # scale height, m
    compact = transits & (height / (col["radius_rjup"] * R_JUP) < COMPACT_SCALE_HEIGHT)
    if not compact.any():
        raise ModelInputError("no simulated planet transits with a compact atmosphere")
    p5, p95 = np.percentile(d[compact], [5, 95], axis=1)
    spread = (p95 - p5) / median[compact]
    lo, hi = np.percentile(median[transits], PERCENTILES)
    return PopulationRange(
        (float(lo), float(hi)),
        float(np.percentile(spread, PERCENTILES[1])),
        int(d.shape[0]),
        int(transits.sum()),
        int(compact.sum()),
    )


def recompute_population_range(
    record: Mapping[str, Any], *, simulator: Any = None, workers: int = 1
) -> PopulationRange:
    """The :class:`PopulationRange` of the population a model record names, simulated again.

    ``record`` is a model's ``model.json``: its ``info["population"]`` recipe (the
    :class:`~atmospec.molecules.population.Population` fields), the set's seed and size
    (``provenance.native_seed``, ``native_n``) and the classifier's axis (``edges``). The
    planets are drawn again exactly as :func:`~atmospec.molecules.native.simulate_native`
    drew them (:func:`~atmospec.molecules.native.simulate_depths`); ``simulator`` defaults to
    the one ``simulate_native`` uses.

    Example:
        >>> from atmospec.serialization import read_record
        >>> recompute_population_range(read_record(FOLDER), workers=8)   # doctest: +SKIP
    """
    from dataclasses import fields

    from atmospec.molecules.native import simulate_depths
    from atmospec.molecules.population import Population

    try:
        recipe = record["info"]["population"]
        prov = record["info"]["provenance"]
        seed, n = int(prov["native_seed"]), int(prov["native_n"])
        edges = record["edges"]
        kwargs = {f.name: _tuples(recipe[f.name]) for f in fields(Population)}
    except (KeyError, TypeError, ValueError) as err:
        raise ModelFileError(
            f"the record does not say which population it was trained on ({err!r} missing): "
            "info.population, info.provenance.native_seed and native_n are needed"
        ) from None
    pop = Population(**kwargs)
    lam, depth, columns = simulate_depths(
        n, simulator=simulator, population=pop, seed=seed, workers=workers
    )
    return population_range(lam, depth, columns, (float(edges[0]), float(edges[-1])))


def refresh_population_range(
    folder: str | os.PathLike[str], *, simulator: Any = None, workers: int = 1
) -> PopulationRange:
    """Recompute a saved classifier's population range (:func:`recompute_population_range`)
    and write it into its ``model.json``, sealed again; the weights file is not touched.

    Example:
        >>> refresh_population_range("pretrained/molecules/any-binning")   # doctest: +SKIP
    """
    from atmospec._fileio import write_json
    from atmospec.serialization import model_paths, read_record, record_checksum

    record = read_record(folder)
    found = recompute_population_range(record, simulator=simulator, workers=workers)
    record["info"]["population_range"] = found.as_record()
    record.pop("checksum")
    record["checksum"] = record_checksum(record)
    write_json(model_paths(folder)[0], record)
    return found.with_source(str(Path(folder)))


def _tuples(value: Any) -> Any:
    """JSON lists back to the tuples of a Population field (mappings of them too)."""
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    if isinstance(value, list):
        return tuple(value)
    return value
