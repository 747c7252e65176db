"""Collision-induced absorption tables: Borysow / pyratbay layout and HITRAN ``.cia`` files."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

from atmospec.errors import FileFormatError

__all__ = ["CIATable", "read_cia", "AMAGAT"]

AMAGAT = 2.6867811e25
"""Loschmidt number density (m^-3): one amagat."""


@dataclass(frozen=True)
class CIATable:
    """Binary absorption coefficients of a collision pair, k(T, wavenumber).

    The absorption coefficient is ``alpha = k * n_a * n_b`` (m^-1) with number densities in
    m^-3 and ``k`` in m^5 molecule^-2.

    Args:
        pair: the two species, e.g. ``("H2", "He")``.
        wavenumber: cm^-1, increasing.
        temperature: K, increasing.
        k: shape ``(n_T, n_wavenumber)``, m^5 molecule^-2.
        source: the file read.

    Example:
        >>> t = CIATable(("H2", "He"), np.array([1000.0, 3000.0]), np.array([100.0, 300.0]),
        ...              np.array([[1.0, 3.0], [2.0, 6.0]]))
        >>> t.on_wavelength([5.0, 20.0]).tolist()   # 2000 cm^-1, and 500 cm^-1 off the table
        [[2.0, 0.0], [4.0, 0.0]]
        >>> t.temperature_weights(150.0).tolist()   # a quarter of the way from 100 to 300 K
        [[0.75, 0.25]]
    """

    pair: tuple[str, str]
    wavenumber: NDArray[np.float64]
    temperature: NDArray[np.float64]
    k: NDArray[np.float64]
    source: str = ""

    def on_wavelength(self, wavelength: ArrayLike) -> NDArray[np.float64]:
        """k on wavelengths (micron) at every tabulated temperature, zero outside the table."""
        nu = 1e4 / np.asarray(wavelength, dtype=float)
        return np.stack([np.interp(nu, self.wavenumber, row, left=0, right=0) for row in self.k])

    def temperature_weights(self, temperature: ArrayLike) -> NDArray[np.float64]:
        """Linear weights of each temperature on the tabulated ones (clamped to the table range)."""
        t = np.clip(np.atleast_1d(np.asarray(temperature, float)), *self.temperature[[0, -1]])
        i = np.clip(
            np.searchsorted(self.temperature, t, side="right") - 1, 0, self.temperature.size - 2
        )
        w = (t - self.temperature[i]) / (self.temperature[i + 1] - self.temperature[i])
        out = np.zeros((t.size, self.temperature.size))
        rows = np.arange(t.size)
        out[rows, i] = 1 - w
        out[rows, i + 1] += w
        return out

    def alpha(
        self, wavelength: ArrayLike, temperature: float, n_a: float, n_b: float
    ) -> NDArray[np.float64]:
        """Absorption coefficient (m^-1) at one temperature and pair of number densities (m^-3).

        Example:
            >>> t = CIATable(("H2", "H2"), np.array([1000.0, 5000.0]), np.array([100.0, 200.0]),
            ...              np.full((2, 2), 1e-6 / AMAGAT**2))
            >>> round(float(t.alpha(4.0, 150.0, AMAGAT, AMAGAT)[0]), 6)  # k n_a n_b with n = 1 amagat
            1e-06
        """
        w = self.temperature_weights(temperature)[0]
        return (w @ self.on_wavelength(np.atleast_1d(wavelength))) * n_a * n_b


def _read_pyratbay(path: Path, lines: list[str]) -> CIATable:
    species: list[str] = []
    temps: list[float] = []
    data: list[list[float]] = []
    section = ""
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("@"):
            section = line[1:].upper()
            continue
        try:
            if section == "SPECIES":
                species = line.split()
            elif section == "TEMPERATURES":
                temps += [float(x) for x in line.split()]
            elif section == "DATA":
                data.append([float(x) for x in line.split()])
        except ValueError:
            raise FileFormatError(
                f"{path}: line {raw.strip()[:60]!r} in @{section} is not a row of numbers"
            ) from None
        if section == "DATA" and len(data[-1]) != len(data[0]):
            raise FileFormatError(
                f"{path}: @DATA rows have {len(data[0])} and {len(data[-1])} columns "
                "(truncated or malformed file)"
            )
    if len(species) != 2 or not temps or not data:
        raise FileFormatError(f"{path}: needs @SPECIES (2 names), @TEMPERATURES and @DATA sections")
    arr = np.array(data)
    if arr.shape[1] != len(temps) + 1:
        raise FileFormatError(
            f"{path}: @DATA rows have {arr.shape[1]} columns, expected 1 + {len(temps)} temperatures"
        )
    # cm^-1 amagat^-2 -> m^5 molecule^-2: alpha[m^-1] = 100 k (n_a/n0)(n_b/n0)
    k = arr[:, 1:].T * 100.0 / AMAGAT**2
    return CIATable((species[0], species[1]), arr[:, 0], np.array(temps), k, str(path))


def _read_hitran_cia(path: Path, lines: list[str]) -> CIATable:
    blocks: dict[float, tuple[NDArray[np.float64], NDArray[np.float64]]] = {}
    pair: tuple[str, str] | None = None
    i = 0
    while i < len(lines):
        head = lines[i].split()
        if not head:
            i += 1
            continue
        try:
            name, n_pts, temp = head[0], int(head[3]), float(head[4])
        except (IndexError, ValueError):
            raise FileFormatError(f"{path}:{i + 1}: expected a HITRAN CIA block header") from None
        a, b = name.split("-")
        pair = (a, b)
        rows = np.array([r.split()[:2] for r in lines[i + 1 : i + 1 + n_pts]], dtype=float)
        blocks[temp] = (rows[:, 0], rows[:, 1])
        i += 1 + n_pts
    if not blocks or pair is None:
        raise FileFormatError(f"{path}: no CIA blocks")
    temps = np.array(sorted(blocks))
    grid = np.unique(np.concatenate([blocks[t][0] for t in temps]))
    k = np.stack([np.interp(grid, *blocks[t], left=0, right=0) for t in temps])
    # cm^5 molecule^-2 -> m^5 molecule^-2
    return CIATable(pair, grid, temps, k * 1e-10, str(path))


def read_cia(path: str | os.PathLike[str]) -> CIATable:
    """Read a CIA table: pyratbay/Borysow layout (``@SPECIES``...) or HITRAN ``.cia`` blocks.

    Example:
        >>> read_cia("nothing.dat")
        Traceback (most recent call last):
        ...
        atmospec.errors.FileFormatError: nothing.dat: no such CIA file
    """
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"{path}: no such CIA file")
    lines = path.read_text(encoding="ascii", errors="replace").splitlines()
    if any(line.strip().startswith("@SPECIES") for line in lines):
        return _read_pyratbay(path, lines)
    try:
        return _read_hitran_cia(path, lines)
    except ValueError as err:
        raise FileFormatError(f"{path}: not a CIA table ({err})") from None
