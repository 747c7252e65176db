"""The binned transmission spectrum type, and several spectra combined into one.

Readers of published files (:mod:`atmospec.molecules.io`) return a
:class:`TransmissionSpectrum`; :func:`combine` joins spectra of several instruments or files,
each keeping a free offset unless one is given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from atmospec.errors import CoverageError, FileFormatError

__all__ = ["TransmissionSpectrum", "combine"]


@dataclass(frozen=True)
class TransmissionSpectrum:
    """A binned transit-depth spectrum, possibly from several instruments.

    The readers and :func:`combine` return the bins sorted by instrument (in order of first
    appearance) and by wavelength within each instrument (:meth:`sorted`); the constructor
    keeps the order it is given. Instruments may overlap in wavelength.

    Attributes:
        wavelength: bin centres (micron).
        half_width: bin half widths (micron).
        depth: transit depth as a fraction (R_p/R_s)^2.
        error: 1-sigma uncertainty of the depth (fraction).
        instrument: instrument name per bin.
        name: a label (the file stem).

    Example:
        >>> s = TransmissionSpectrum(np.array([3.0, 2.0, 1.0]), np.full(3, 0.1),
        ...     np.full(3, 0.02), np.full(3, 1e-4), np.array(["b", "a", "a"]), "toy")
        >>> s.instruments, s.sorted().wavelength.tolist()
        (['b', 'a'], [3.0, 1.0, 2.0])
        >>> s.within(0.5, 2.5).assumptions
        ['left out 1 bins outside 0.5-2.5 um (3-3 um; no opacities there)']
        >>> TransmissionSpectrum(np.array([1.0]), np.array([0.1]), np.array([-0.02]),
        ...                      np.array([1e-4]), np.array(["a"]), "toy")
        Traceback (most recent call last):
        ...
        atmospec.errors.FileFormatError: toy: depth must be finite and positive; bad value ... (1 um)
    """

    wavelength: NDArray[np.float64]
    half_width: NDArray[np.float64]
    depth: NDArray[np.float64]
    error: NDArray[np.float64]
    instrument: NDArray[np.str_]
    name: str = "spectrum"
    meta: dict[str, object] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        n = self.wavelength.size
        for label in ("half_width", "depth", "error", "instrument"):
            if getattr(self, label).shape != (n,):
                raise FileFormatError(
                    f"{self.name}: {label} has {getattr(self, label).size} values, not {n}"
                )
        checks = (
            ("wavelength", self.wavelength > 0),
            ("half_width", self.half_width > 0),
            ("error", self.error > 0),
            ("depth", self.depth > 0),
        )
        for label, ok in checks:
            if not np.all(ok & np.isfinite(getattr(self, label))):
                i = int(np.argmin(ok & np.isfinite(getattr(self, label))))
                raise FileFormatError(
                    f"{self.name}: {label} must be finite and positive; bad value "
                    f"{getattr(self, label)[i]!r} in bin {i} ({self.wavelength[i]:g} um)"
                )

    def __len__(self) -> int:
        return int(self.wavelength.size)

    @property
    def instruments(self) -> list[str]:
        """Instrument names in order."""
        seen: dict[str, None] = {}
        for name in self.instrument.tolist():
            seen.setdefault(name, None)
        return list(seen)

    @property
    def assumptions(self) -> list[str]:
        """How the file was read: units, widths, columns, dropped bins (for the report)."""
        return list(self.meta.get("assumptions", []))  # type: ignore[call-overload]

    def within(self, lower: float, upper: float) -> TransmissionSpectrum:
        """The bins lying wholly inside ``[lower, upper]`` micron; the rest are named in
        ``assumptions``.

        Raises:
            CoverageError: no bin is left.
        """
        inside = (self.wavelength - self.half_width >= lower) & (
            self.wavelength + self.half_width <= upper
        )
        if inside.all():
            return self
        if not inside.any():
            raise CoverageError(
                f"{self.name}: no bin lies within {lower:g}-{upper:g} um, the wavelengths the "
                "opacities cover"
            )
        gone = self.wavelength[~inside]
        meta = dict(self.meta)
        meta["assumptions"] = [
            *self.assumptions,
            f"left out {int((~inside).sum())} bins outside {lower:g}-{upper:g} um "
            f"({gone.min():g}-{gone.max():g} um; no opacities there)",
        ]
        return TransmissionSpectrum(
            self.wavelength[inside],
            self.half_width[inside],
            self.depth[inside],
            self.error[inside],
            self.instrument[inside],
            self.name,
            meta,
        )

    def sorted(self) -> TransmissionSpectrum:
        """The same bins ordered by instrument (first appearance) then wavelength."""
        rank = {name: i for i, name in enumerate(self.instruments)}
        key = np.array([rank[s] for s in self.instrument.tolist()])
        order = np.lexsort((self.wavelength, key))
        return TransmissionSpectrum(
            self.wavelength[order],
            self.half_width[order],
            self.depth[order],
            self.error[order],
            self.instrument[order],
            self.name,
            dict(self.meta),
        )


def combine(
    spectra: list[TransmissionSpectrum], offsets: dict[str, float] | None = None
) -> TransmissionSpectrum:
    """Several spectra (one per instrument or file) as one, with optional known offsets.

    ``offsets`` maps an instrument name to a depth offset (fraction) added to its bins;
    instruments without a given offset keep a free offset (the classifiers remove each
    instrument's mean). Instrument names that repeat across files are prefixed by the file.

    Example:
        >>> a = TransmissionSpectrum(np.array([1.0]), np.array([0.1]), np.array([0.01]),
        ...                          np.array([1e-4]), np.array(["x"]), "a")
        >>> combine([a, a]).instruments
        ['a:x', 'a:x#2']
    """
    if not spectra:
        raise FileFormatError("no spectra to combine")
    if len(spectra) == 1 and not offsets:
        return spectra[0]
    parts: dict[str, list[NDArray[Any]]] = {k: [] for k in ("w", "h", "d", "e", "i")}
    seen: set[str] = set()
    notes: list[str] = []
    for spec in spectra:
        names = spec.instrument
        if len(spectra) > 1:
            base = np.array([f"{spec.name}:{n}" if n != spec.name else n for n in names.tolist()])
            for n in set(base.tolist()):
                if n in seen:
                    k = 2
                    while f"{n}#{k}" in seen:
                        k += 1
                    base = np.where(base == n, f"{n}#{k}", base)
            names = base
        seen.update(names.tolist())
        parts["w"].append(spec.wavelength)
        parts["h"].append(spec.half_width)
        parts["d"].append(spec.depth)
        parts["e"].append(spec.error)
        parts["i"].append(names)
        notes += [f"{spec.name}: {a}" for a in spec.assumptions]
    inst = np.concatenate(parts["i"])
    depth = np.concatenate(parts["d"])
    for name, value in (offsets or {}).items():
        sel = (inst == name) | np.char.endswith(inst.astype(str), ":" + name)
        if not sel.any():
            raise FileFormatError(f"no instrument {name!r} to offset; have {sorted(set(inst))}")
        depth = np.where(sel, depth + value, depth)
        notes.append(f"offset {value:+g} added to {name}")
    free = sorted(set(inst.tolist()) - set(offsets or {}))
    notes.append(f"free offsets (mean removed) for {len(free)} instrument(s)")
    return TransmissionSpectrum(
        np.concatenate(parts["w"]),
        np.concatenate(parts["h"]),
        depth,
        np.concatenate(parts["e"]),
        inst,
        "+".join(s.name for s in spectra),
        {"source": [s.meta.get("source") for s in spectra], "assumptions": notes},
    ).sorted()
