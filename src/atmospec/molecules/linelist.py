"""HITRAN-format line lists: readers, line intensities with the partition function, Voigt cross-sections."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

from atmospec.errors import DataNotFoundError, FileFormatError
from atmospec.molecules.opacity import OpacityTable, cell_edges
from atmospec.molecules.profiles import C2, C_CGS, doppler_sigma, voigt, voigt_cell_average

__all__ = ["LineList", "read_line_list", "read_hitran_par", "read_slab_par", "HITRAN_MOLECULES"]

HITRAN_MOLECULES: dict[int, tuple[str, float]] = {
    1: ("H2O", 18.010565),
    2: ("CO2", 43.989830),
    3: ("O3", 47.984745),
    4: ("N2O", 44.001062),
    5: ("CO", 27.994915),
    6: ("CH4", 16.031300),
    7: ("O2", 31.989830),
    9: ("SO2", 63.961901),
    11: ("NH3", 17.026549),
    13: ("OH", 17.002740),
    23: ("HCN", 27.010899),
    45: ("H2", 2.015650),
}
"""HITRAN molecule id -> (name, mass of the main isotopologue in amu)."""

T_REF = 296.0


@dataclass(frozen=True)
class LineList:
    """Transitions of one molecule, with what is needed for line-by-line cross-sections.

    Args:
        name: molecule name (``"CO"``).
        mass: molecular mass in amu (Doppler widths).
        wavenumber: line centres, cm^-1.
        e_lower: lower-state energies, cm^-1.
        intensity_ref: intensities at ``T_REF`` = 296 K, cm / molecule (HITRAN convention).
        gamma_ref: Lorentz half widths at 296 K and 1 atm, cm^-1 / atm.
        n_temp: temperature exponents of the half widths.
        partition: Q(T), or None when the file carried none (then only T = 296 K works).
        source: the file read.

    Example:
        >>> co = LineList("CO", 27.995, np.array([2143.0]), np.array([0.0]), np.array([1e-19]),
        ...               np.array([0.07]), np.array([0.5]), partition=lambda t: t / 2.77)
        >>> f"{co.intensity(1000.0)[0]:.3g}"   # Q(296 K)/Q(1000 K) = 0.296, stimulated emission
        '2.82e-20'
        >>> [round(float(w[0]), 4) for w in co.widths(1000.0, 101325.0)]   # sigma, HWHM (cm^-1)
        [0.0039, 0.0381]
        >>> nu = np.linspace(2118.0, 2168.0, 10001)   # the line +- its 25 cm^-1 cutoff
        >>> xs = co.cross_section(nu, 1000.0, 1e5)   # m^2
        >>> round(float(xs.sum() * 0.005 / (co.intensity(1000.0)[0] * 1e-4)), 3)   # of S(T)
        0.999
    """

    name: str
    mass: float
    wavenumber: NDArray[np.float64]
    e_lower: NDArray[np.float64]
    intensity_ref: NDArray[np.float64]
    gamma_ref: NDArray[np.float64]
    n_temp: NDArray[np.float64]
    partition: Callable[[float], float] | None = None
    source: str = ""
    meta: dict[str, object] = field(default_factory=dict, compare=False)

    def __len__(self) -> int:
        return int(self.wavenumber.size)

    def intensity(self, temperature: float) -> NDArray[np.float64]:
        """Line intensities S(T) in cm / molecule: Boltzmann factor, stimulated emission and Q(T)."""
        t = float(temperature)
        if t == T_REF:
            return self.intensity_ref.copy()
        if self.partition is None:
            raise DataNotFoundError(
                f"{self.source or self.name}: no partition function; pass partition= (a file of "
                f"T, Q(T) columns or a callable) to compute intensities at {t:g} K"
            )
        q = self.partition(T_REF) / self.partition(t)
        boltz = np.exp(-C2 * self.e_lower / t) / np.exp(-C2 * self.e_lower / T_REF)
        stim = (1.0 - np.exp(-C2 * self.wavenumber / t)) / (
            1.0 - np.exp(-C2 * self.wavenumber / T_REF)
        )
        return self.intensity_ref * q * boltz * stim

    def widths(
        self, temperature: float, pressure: float
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Gaussian sigma and Lorentz HWHM (cm^-1) at temperature (K) and pressure (Pa)."""
        sigma = doppler_sigma(self.wavenumber, temperature, self.mass)
        gamma = self.gamma_ref * (pressure / 101325.0) * (T_REF / temperature) ** self.n_temp
        return sigma, gamma

    def cross_section(
        self, wavenumber: ArrayLike, temperature: float, pressure: float, *, cutoff: float = 25.0
    ) -> NDArray[np.float64]:
        """Line-by-line cross-section (m^2) sampled at ``wavenumber`` (cm^-1) with Voigt profiles.

        Lines are truncated ``cutoff`` cm^-1 from their centre. Sample finer than the Doppler
        width to resolve the lines (or use :meth:`opacity_table`, which averages over cells).
        """
        nu = np.asarray(wavenumber, dtype=float)
        s = self.intensity(temperature)
        sg, gm = self.widths(temperature, pressure)
        out = np.zeros(nu.size)
        near = (self.wavenumber > nu.min() - cutoff) & (self.wavenumber < nu.max() + cutoff)
        for i in np.nonzero(near)[0]:
            lo, hi = np.searchsorted(nu, [self.wavenumber[i] - cutoff, self.wavenumber[i] + cutoff])
            out[lo:hi] += s[i] * voigt(nu[lo:hi] - self.wavenumber[i], sg[i], gm[i])
        return out * 1e-4  # cm^2 -> m^2

    def opacity_table(
        self,
        wavelength: ArrayLike,
        temperature: ArrayLike,
        pressure: ArrayLike,
        *,
        cutoff: float = 25.0,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> OpacityTable:
        """Cell-averaged cross-sections on the wavelength cells (micron) at each (T, P) node.

        Each line's Voigt profile (pseudo-Voigt CDF, ~1 % accurate) is integrated over every
        cell, so unresolved lines keep their strength. With ``cache_dir`` the table is saved
        as ``.npz`` keyed by a hash of the inputs and reused.
        """
        lam = np.asarray(wavelength, dtype=float)
        temps = np.asarray(temperature, dtype=float)
        press = np.asarray(pressure, dtype=float)
        key = hashlib.sha256(
            b"".join(
                a.tobytes()
                for a in (lam, temps, press, self.wavenumber, self.intensity_ref, self.gamma_ref)
            )
            + repr(cutoff).encode()
        ).hexdigest()[:16]
        cache = Path(cache_dir) / f"{self.name}_{key}.npz" if cache_dir is not None else None
        if cache is not None and cache.is_file():
            sigma = np.load(cache)["sigma"]
        else:
            edges_nu = 1e4 / cell_edges(lam)[::-1]  # increasing wavenumber edges
            sigma = np.zeros((temps.size, press.size, lam.size))
            for it, t in enumerate(temps):
                s = self.intensity(t)
                for ip, p in enumerate(press):
                    sg, gm = self.widths(t, p)
                    avg = voigt_cell_average(edges_nu, self.wavenumber, s, sg, gm, cutoff=cutoff)
                    sigma[it, ip] = avg[::-1] * 1e-4
            if cache is not None:
                from atmospec._fileio import atomic_path

                with atomic_path(cache) as tmp:
                    with open(tmp, "wb") as fh:
                        np.savez_compressed(fh, sigma=sigma)
        return OpacityTable(
            self.name, lam, temps, press, sigma, source=self.source, meta={"lines": len(self)}
        )


def _table_partition(t: NDArray[np.float64], q: NDArray[np.float64]) -> Callable[[float], float]:
    def partition(temperature: float) -> float:
        if not t[0] <= temperature <= t[-1]:
            raise ValueError(f"Q(T) is tabulated for {t[0]:g}-{t[-1]:g} K, not {temperature:g} K")
        return float(np.interp(temperature, t, q))

    return partition


def _load_partition(
    partition: str | os.PathLike[str] | Callable[[float], float] | None,
) -> Callable[[float], float] | None:
    if partition is None or callable(partition):
        return partition
    try:
        arr = np.loadtxt(partition, comments="#", usecols=(0, 1))
    except (OSError, ValueError) as err:
        raise FileFormatError(f"{partition}: not a two-column T, Q(T) table ({err})") from None
    return _table_partition(arr[:, 0], arr[:, 1])


def read_hitran_par(
    path: str | os.PathLike[str],
    *,
    partition: str | os.PathLike[str] | Callable[[float], float] | None = None,
    name: str | None = None,
    mass: float | None = None,
    isotopologue: int | None = 1,
) -> LineList:
    """Read a HITRAN 160-character ``.par`` file (HITRAN2004+ format).

    The intensities are HITRAN's (scaled by isotopic abundance) at 296 K; the air-broadened
    half widths and their temperature exponents are used as the Lorentz widths. HITRAN files
    carry no partition function: pass ``partition`` (callable or a file of T, Q columns) for
    temperatures other than 296 K.

    Example:
        >>> import tempfile
        >>> rec = f"{5:2d}{1:1d}{2147.081139:12.6f}{1.9e-20:10.3E}{11.71:10.3E}.0700.0800"
        >>> rec += f"{0.0:10.4f}0.75"   # E'' (cm^-1), temperature exponent of the width
        >>> path = Path(tempfile.mkdtemp()) / "co.par"
        >>> _ = path.write_text(rec.ljust(160) + "\\n")
        >>> co = read_hitran_par(path)
        >>> co.name, co.mass, co.wavenumber.tolist(), co.gamma_ref.tolist(), co.n_temp.tolist()
        ('CO', 27.994915, [2147.081139], [0.07], [0.75])
        >>> co.intensity(1000.0)
        Traceback (most recent call last):
        ...
        atmospec.errors.DataNotFoundError: ...co.par: no partition function; pass partition= ...
    """
    path = Path(path)
    rows = []
    with open(path, encoding="ascii", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            if len(line.rstrip("\n")) < 100:
                raise FileFormatError(
                    f"{path}:{lineno}: a HITRAN .par record has 160 characters, found "
                    f"{len(line.rstrip())}"
                )
            try:
                rows.append(
                    (
                        int(line[0:2]),
                        int(line[2:3], 36),
                        float(line[3:15]),
                        float(line[15:25]),
                        float(line[35:40]),
                        float(line[45:55]),
                        float(line[55:59]),
                    )
                )
            except ValueError as err:
                raise FileFormatError(f"{path}:{lineno}: bad HITRAN field ({err})") from None
    if not rows:
        raise FileFormatError(f"{path}: no line records")
    arr = np.array(rows)
    if isotopologue is not None:
        arr = arr[arr[:, 1] == isotopologue]
    mol = int(arr[0, 0])
    default_name, default_mass = HITRAN_MOLECULES.get(mol, (f"mol{mol}", np.nan))
    mass = mass if mass is not None else default_mass
    if not np.isfinite(mass):
        raise FileFormatError(f"{path}: unknown HITRAN molecule id {mol}; pass mass=")
    order = np.argsort(arr[:, 2])
    arr = arr[order]
    return LineList(
        name=name or default_name,
        mass=float(mass),
        wavenumber=arr[:, 2],
        e_lower=arr[:, 5],
        intensity_ref=arr[:, 3],
        gamma_ref=arr[:, 4],
        n_temp=arr[:, 6],
        partition=_load_partition(partition),
        source=str(path),
        meta={"format": "hitran160"},
    )


def read_slab_par(
    path: str | os.PathLike[str],
    *,
    gamma_ref: float = 0.07,
    n_temp: float = 0.5,
    name: str | None = None,
    mass: float | None = None,
) -> LineList:
    """Read the HITRAN-derived slab-model text format (iSLAT ``data_Hitran_*.par``).

    The file holds a Q(T) table and per line: wavelength, frequency (GHz), Einstein A, upper
    and lower energies (K) and degeneracies. Intensities follow from

        S(T) = g_u A / (8 pi c nu^2) exp(-c2 E_l / T) (1 - exp(-c2 nu / T)) / Q(T)

    per molecule of the isotopologue (no abundance scaling). The format has no broadening
    parameters: ``gamma_ref`` (cm^-1/atm at 296 K; 0.07 is typical of CO broadened by H2) and
    ``n_temp`` are used for every line.

    Example:
        >>> import tempfile
        >>> rows = ["# HITRAN 2020 CO; id:5; iso:1", "#", "#", "# Q(T) entries", "3",
        ...         "# T  Q(T)", "# [K]", "100 36.4954", "296 107.41982", "1000 380.29697",
        ...         "Number of lines", "1", "# Nr  up|  low|  A  E_up  E_low  g_up  g_low",
        ...         "472  1|  0|R_0  4.65749 64367.87109 1.171e+01 3089.17041 0.0 3.0 1.0"]
        >>> path = Path(tempfile.mkdtemp()) / "data_Hitran_CO.par"
        >>> _ = path.write_text("\\n".join(rows) + "\\n")
        >>> co = read_slab_par(path)   # the 1-0 R(0) line of 12C16O
        >>> co.name, round(float(co.wavenumber[0]), 2), f"{co.intensity_ref[0]:.3g}"
        ('CO', 2147.08, '9.42e-20')
        >>> co.gamma_ref.tolist(), f"{co.intensity(1000.0)[0]:.3g}"   # width assumed
        ([0.07], '2.54e-20')
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="ascii", errors="replace").splitlines()
    except OSError as err:
        raise FileFormatError(f"{path}: cannot read ({err})") from None
    head = text[0] if text else ""
    m = re.search(r"id:\s*(\d+)", head)
    mol = int(m.group(1)) if m else None
    try:
        n_q = int(text[4].split()[0])
        q = np.array([row.split()[:2] for row in text[7 : 7 + n_q]], dtype=float)
        i = 7 + n_q
        while not text[i].strip().lower().startswith("number of lines"):
            i += 1
        n_lines = int(text[i + 1].split()[0])
        body = [r for r in text[i + 2 :] if r.strip() and not r.lstrip().startswith("#")]
    except (IndexError, ValueError) as err:
        raise FileFormatError(
            f"{path}: not the slab line-list layout (header, Q(T) table, 'Number of lines') ({err})"
        ) from None
    if len(body) != n_lines:
        raise FileFormatError(f"{path}: header announces {n_lines} lines, found {len(body)}")
    # columns after the two level labels (ending in '|...'): fixed-width fields from the end
    recs = []
    for row in body:
        try:
            tail = row.rsplit("|", 1)[1]
            label_and = tail.split(None, 1)
            fields = label_and[1]
            # Frequency may run into Lambda; parse the last 6 fields from the right
            parts = fields.split()
            g_low, g_up = float(parts[-1]), float(parts[-2])
            e_low, e_up, a = float(parts[-3]), float(parts[-4]), float(parts[-5])
        except (IndexError, ValueError) as err:
            raise FileFormatError(f"{path}: bad line record {row!r} ({err})") from None
        recs.append((a, e_up, e_low, g_up, g_low))
    arr = np.array(recs)
    # wavenumber from the energy difference (K -> cm^-1): robust where columns touch
    nu = (arr[:, 1] - arr[:, 2]) / C2
    default_name, default_mass = HITRAN_MOLECULES.get(mol or -1, (path.stem, np.nan))
    mass = mass if mass is not None else default_mass
    if not np.isfinite(mass):
        raise FileFormatError(f"{path}: unknown molecule (no 'id:' in header); pass mass=")
    partition = _table_partition(q[:, 0], q[:, 1])
    e_lower = arr[:, 2] / C2
    a_ein, g_upper = arr[:, 0], arr[:, 3]
    s_ref = (
        g_upper
        * a_ein
        / (8 * np.pi * C_CGS * nu**2)
        * np.exp(-C2 * e_lower / T_REF)
        * (1 - np.exp(-C2 * nu / T_REF))
        / partition(T_REF)
    )
    bad = ~(np.isfinite(arr).all(axis=1) & (nu > 0) & np.isfinite(s_ref) & (s_ref >= 0))
    if bad.any() or not (np.isfinite(q).all() and (q[:, 1] > 0).all()):
        first = int(np.argmax(bad)) if bad.any() else -1
        where = f"line record {body[first]!r}" if first >= 0 else "the Q(T) table"
        raise FileFormatError(
            f"{path}: {where} gives a non-finite or non-positive wavenumber, energy, intensity "
            "or partition function"
        )
    order = np.argsort(nu)
    return LineList(
        name=name or default_name,
        mass=float(mass),
        wavenumber=nu[order],
        e_lower=e_lower[order],
        intensity_ref=s_ref[order],
        gamma_ref=np.full(nu.size, gamma_ref),
        n_temp=np.full(nu.size, n_temp),
        partition=partition,
        source=str(path),
        meta={"format": "slab", "gamma_ref_assumed": gamma_ref, "n_temp_assumed": n_temp},
    )


def read_line_list(path: str | os.PathLike[str], **kwargs: object) -> LineList:
    """Read a line list, detecting the layout (HITRAN 160-character ``.par`` or slab format).

    Example:
        >>> read_line_list("missing.par")
        Traceback (most recent call last):
        ...
        atmospec.errors.FileFormatError: missing.par: no such line-list file
    """
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"{path}: no such line-list file")
    with open(path, encoding="ascii", errors="replace") as fh:
        first = fh.readline()
    if first.startswith("#") and "hitran" in first.lower():
        return read_slab_par(path, **kwargs)  # type: ignore[arg-type]
    return read_hitran_par(path, **kwargs)  # type: ignore[arg-type]
