"""Simulated planets on a fine wavelength axis, binned on demand to any instrument's bins."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from atmospec.errors import FileFormatError, ModelInputError
from atmospec.molecules.atmosphere import R_JUP, R_SUN, Planet
from atmospec.molecules.binning import Binning
from atmospec.molecules.dataset import DETECTION_THRESHOLD, MoleculeTrainingSet, nuisance_band
from atmospec.molecules.forward import Clouds, Simulator
from atmospec.molecules.population import Population, heavy_filler, spot_contamination

__all__ = [
    "NativeSet",
    "load_simulator",
    "save_simulator",
    "simulate_depths",
    "simulate_native",
    "simulate_planet",
]


def simulate_planet(
    sim: Simulator,
    p: Mapping[str, float],
    molecules: tuple[str, ...],
    *,
    contributions: bool = True,
) -> tuple[NDArray[np.float64], list[NDArray[np.float64] | None]]:
    """Depth of one population planet (everything on) and with each present molecule removed.

    The mean molecular weight stays at ``p["mu"]`` when a molecule is removed (the filler gas
    takes its place), and unocculted spots multiply every spectrum by the same factor. With
    ``contributions=False`` only the full depth is computed (the list holds None), but the
    atmosphere without each molecule is still built, so that a planet is refused as unbound
    (:class:`~atmospec.errors.ModelInputError`) exactly when it would be with them.

    Example:
        >>> from atmospec.molecules.forward import TransmissionModel
        >>> from atmospec.molecules.opacity import OpacityTable
        >>> lam = np.linspace(1.0, 2.0, 5)
        >>> grey = OpacityTable("H2O", lam, np.array([1000.0]), np.array([1.0, 1e7]),
        ...                     np.full((1, 2, 5), 1e-27))
        >>> sim = TransmissionModel(lam, [grey], n_levels=40)
        >>> p = {"radius_rjup": 1.0, "gravity": 10.0, "star_radius_rsun": 1.0,
        ...      "temperature": 1000.0, "log_H2O": -3.0, "log_CO2": -np.inf, "haze_slope": -4.0,
        ...      "log_p_cloud_bar": np.inf, "log_haze": -np.inf, "log_nuisance_peak": -np.inf}
        >>> full, without = simulate_planet(sim, p, ("H2O", "CO2"))
        >>> (1e6 * (full - without[0])).round().tolist(), without[1]   # ppm from H2O; CO2 is off
        ([567.0, 666.0, 745.0, 812.0, 869.0], None)
    """
    planet = Planet(p["radius_rjup"] * R_JUP, p["gravity"], p["star_radius_rsun"] * R_SUN)
    trace = {m: 10 ** p[f"log_{m}"] for m in molecules if np.isfinite(p[f"log_{m}"])}
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
    factor: float | NDArray[np.float64] = 1.0
    if p.get("spot_fraction", 0.0) > 0:
        factor = spot_contamination(
            sim.wavelength, p["spot_fraction"], p["t_star"] + p["spot_delta_t"], p["t_star"]
        )

    def depth(vmr: Mapping[str, float]) -> NDArray[np.float64]:
        full_vmr = heavy_filler(vmr, p.get("mu", 0.0))
        return factor * sim.transit_depth(
            planet, p["temperature"], full_vmr, clouds, extra_sigma=extra
        )

    def bound(vmr: Mapping[str, float]) -> None:
        build = getattr(sim, "atmosphere", None)  # the cheap part of transit_depth, if any
        if build is None:
            depth(vmr)
        else:
            build(planet, p["temperature"], heavy_filler(vmr, p.get("mu", 0.0)))

    full = depth(trace)
    without: list[NDArray[np.float64] | None] = []
    for m in molecules:
        if m not in trace:
            without.append(None)
        elif contributions:
            without.append(depth({k: v for k, v in trace.items() if k != m}))
        else:
            bound({k: v for k, v in trace.items() if k != m})
            without.append(None)
    return full, without


def save_simulator(sim: Any, path: str | os.PathLike[str]) -> Path:
    """Write a :class:`~atmospec.molecules.forward.TransmissionModel`'s tables (as resampled on
    its wavelengths) to one ``.npz``, so that a machine without the data cache can simulate.

    Example:
        >>> import tempfile
        >>> from atmospec.molecules.forward import TransmissionModel
        >>> from atmospec.molecules.opacity import OpacityTable
        >>> lam = np.linspace(1.0, 2.0, 5)
        >>> grey = OpacityTable("H2O", lam, np.array([1000.0]), np.array([1.0, 1e7]),
        ...                     np.full((1, 2, 5), 1e-27))
        >>> sim = TransmissionModel(lam, [grey], n_levels=40)
        >>> path = save_simulator(sim, Path(tempfile.mkdtemp()) / "sim.npz")
        >>> sorted(np.load(path).files)
        ['n_levels', 'table/H2O/pressure', 'table/H2O/sigma', 'table/H2O/temperature', 'wavelength']
    """
    from atmospec._fileio import atomic_path

    arrays: dict[str, Any] = {"wavelength": sim.wavelength, "n_levels": np.array(sim.n_levels)}
    for name, tab in sim.tables.items():
        for key in ("temperature", "pressure"):
            arrays[f"table/{name}/{key}"] = getattr(tab, key)
        arrays[f"table/{name}/sigma"] = tab.sigma.astype(np.float32)
    for k, c in enumerate(sim.cia):
        arrays[f"cia/{k}/pair"] = np.array(c.pair)
        for key in ("wavenumber", "temperature", "k"):
            arrays[f"cia/{k}/{key}"] = getattr(c, key)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    return Path(path)


def load_simulator(path: str | os.PathLike[str]) -> Any:
    """The :class:`~atmospec.molecules.forward.TransmissionModel` saved by :func:`save_simulator`.

    Example:
        >>> import tempfile
        >>> from atmospec.molecules.forward import TransmissionModel
        >>> from atmospec.molecules.opacity import OpacityTable
        >>> lam = np.linspace(1.0, 2.0, 5)
        >>> grey = OpacityTable("H2O", lam, np.array([1000.0]), np.array([1.0, 1e7]),
        ...                     np.full((1, 2, 5), 1e-27))
        >>> sim = TransmissionModel(lam, [grey], n_levels=40)
        >>> again = load_simulator(save_simulator(sim, Path(tempfile.mkdtemp()) / "sim.npz"))
        >>> again.species, again.n_levels, again.wavelength.tolist()
        (('H2O',), 40, [1.0, 1.25, 1.5, 1.75, 2.0])
        >>> planet = Planet.from_units(1.0, 10.0, 1.0)
        >>> a, b = (m.transit_depth(planet, 1000.0, {"H2O": 1e-3}) for m in (sim, again))
        >>> bool(np.allclose(a, b, rtol=1e-6))   # cross-sections are stored as float32
        True
    """
    from atmospec.molecules.cia import CIATable
    from atmospec.molecules.forward import TransmissionModel
    from atmospec.molecules.opacity import OpacityTable

    with np.load(path, allow_pickle=False) as z:
        lam = z["wavelength"]
        names = sorted({k.split("/")[1] for k in z.files if k.startswith("table/")})
        tables = [
            OpacityTable(
                n,
                lam,
                z[f"table/{n}/temperature"],
                z[f"table/{n}/pressure"],
                z[f"table/{n}/sigma"].astype(np.float64),
                source=f"{path}",
            )
            for n in names
        ]
        ks = sorted({int(k.split("/")[1]) for k in z.files if k.startswith("cia/")})
        cia = [
            CIATable(
                tuple(str(x) for x in z[f"cia/{k}/pair"]),  # type: ignore[arg-type]
                z[f"cia/{k}/wavenumber"],
                z[f"cia/{k}/temperature"],
                z[f"cia/{k}/k"],
                source=f"{path}",
            )
            for k in ks
        ]
        return TransmissionModel(lam, tables, cia, n_levels=int(z["n_levels"]))


_SIM: Any = None


def _chunk(args: tuple[int, Any, Population, tuple[str, ...], bool]) -> tuple[list[Any], int]:
    n, seed_seq, pop, mols, contributions = args
    rng = np.random.default_rng(seed_seq)
    out, rejected = [], 0
    for _ in range(n):
        while True:
            p = pop.sample(rng)
            try:
                full, without = simulate_planet(_SIM, p, mols, contributions=contributions)
                break
            except ModelInputError:
                rejected += 1
        out.append((p, full, without))
    return out, rejected


def _pair_average(x: NDArray[np.float64]) -> NDArray[np.float64]:
    n = x.shape[-1] // 2 * 2
    return 0.5 * (x[..., 0:n:2] + x[..., 1:n:2])


@dataclass
class NativeSet:
    """Noiseless depths of simulated planets on a fine axis, and each molecule's contribution.

    Attributes:
        wavelength: the fine axis (micron; pairs of simulator cells averaged, R ~ 500).
        depth: ``(n, n_wave)`` transit depths with everything on.
        contribution: ``(n, n_mol, n_wave)`` depth minus the depth with that molecule removed
            (zero when it is absent), stored as float16 times ``scale``.
        scale: ``(n, n_mol)`` scale of each contribution.
        params: ``(n, n_params)`` parameter table named ``param_names``.
        split: 0 train, 1 validation, 2 test.

    Example:
        >>> contrib = np.zeros((2, 2, 4), np.float16)
        >>> contrib[0, 0, :2] = contrib[1, 1, 2:] = 1.0   # H2O below 1.5 um, CO2 above 2.5 um
        >>> ns = NativeSet(np.array([1.0, 1.5, 2.5, 3.0]), np.full((2, 4), 0.01, np.float32),
        ...     contrib, np.array([[5e-4, 0.0], [0.0, 1e-4]], np.float32),
        ...     np.array([[-3.0, -np.inf], [-np.inf, -4.0]]), ("log_H2O", "log_CO2"),
        ...     np.array([0, 1], np.int8), ("H2O", "CO2"))
        >>> one = Binning(np.array([1.25, 2.75]), np.full(2, 0.25), np.array(["x", "x"]),
        ...               np.full(2, 1e-4))
        >>> ns.bin(one).dchi2.round(2).tolist()   # Delta chi^2 after the offset is refitted
        [[12.5, 0.0], [0.0, 0.5]]
        >>> two = Binning(one.centre, one.half_width, np.array(["x", "y"]), one.error)
        >>> ns.bin(two).dchi2.tolist()   # one bin per instrument: the offsets absorb everything
        [[0.0, 0.0], [0.0, 0.0]]
    """

    wavelength: NDArray[np.float64]
    depth: NDArray[np.float32]
    contribution: NDArray[np.float16]
    scale: NDArray[np.float32]
    params: NDArray[np.float64]
    param_names: tuple[str, ...]
    split: NDArray[np.int8]
    molecules: tuple[str, ...]
    meta: dict[str, object] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.depth.shape[0])

    def column(self, name: str) -> NDArray[np.float64]:
        return self.params[:, self.param_names.index(name)]

    def subset(self, which: int | NDArray[np.bool_]) -> NativeSet:
        sel = self.split == which if isinstance(which, int) else which
        return NativeSet(
            self.wavelength,
            self.depth[sel],
            self.contribution[sel],
            self.scale[sel],
            self.params[sel],
            self.param_names,
            self.split[sel],
            self.molecules,
            dict(self.meta),
        )

    def bin(
        self, binning: Binning, rows: NDArray[np.int64] | slice = slice(None)
    ) -> MoleculeTrainingSet:
        """A :class:`MoleculeTrainingSet` for ``binning`` (labels from the binned contributions).

        Example:
            >>> ts = native.bin(Binning.from_spectrum(obs))   # doctest: +SKIP
        """
        matrix = binning.matrix(self.wavelength)
        depth = binning.apply(self.depth[rows], matrix).astype(np.float32)
        contrib = self.contribution[rows].astype(np.float32) * self.scale[rows][..., None]
        n, k, w = contrib.shape
        binned = binning.apply(contrib.reshape(n * k, w), matrix)
        dchi2 = binning.delta_chi2(binned, 0.0).reshape(n, k)
        return MoleculeTrainingSet(
            depth,
            dchi2,
            self.params[rows],
            self.param_names,
            self.split[rows],
            binning,
            self.molecules,
            DETECTION_THRESHOLD,
            dict(self.meta),
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write HDF5 atomically."""
        import h5py

        from atmospec._fileio import atomic_path

        with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
            h5["wavelength"] = self.wavelength
            h5.create_dataset("depth", data=self.depth)
            h5.create_dataset("contribution", data=self.contribution)
            h5["scale"], h5["params"], h5["split"] = self.scale, self.params, self.split
            h5.attrs["param_names"] = json.dumps(list(self.param_names))
            h5.attrs["molecules"] = json.dumps(list(self.molecules))
            h5.attrs["meta"] = json.dumps(self.meta, default=str)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> NativeSet:
        import h5py

        try:
            with h5py.File(path, "r") as h5:
                return cls(
                    h5["wavelength"][()],
                    h5["depth"][()],
                    h5["contribution"][()],
                    h5["scale"][()],
                    h5["params"][()],
                    tuple(json.loads(h5.attrs["param_names"])),
                    h5["split"][()],
                    tuple(json.loads(h5.attrs["molecules"])),
                    json.loads(h5.attrs["meta"]),
                )
        except (OSError, KeyError) as err:
            raise FileFormatError(f"{path}: not a native molecules set ({err})") from None


def _simulate(
    n: int,
    sim: Simulator,
    pop: Population,
    seed: int,
    workers: int,
    contributions: bool,
    each: Callable[[int, dict[str, float], NDArray[np.float64], list[Any]], None],
) -> int:
    """Draw and simulate ``n`` planets, calling ``each(i, params, full, without)`` in order;
    return how many draws were refused as unbound. Planets are drawn in chunks of 64 with
    seeds spawned from ``seed``, so the planets do not depend on ``workers``."""
    from threadpoolctl import threadpool_limits
    from tqdm.auto import tqdm

    from atmospec._logging import progress_enabled

    missing = [m for m in pop.molecules if m not in sim.species]
    if missing:
        raise ModelInputError(f"the simulator has no opacity for {missing}")
    global _SIM
    _SIM = sim
    sizes = [min(64, n - k) for k in range(0, n, 64)]  # chunks (and their seeds) fixed by n
    jobs = [
        (k, ss, pop, pop.molecules, contributions)
        for k, ss in zip(sizes, np.random.SeedSequence(seed).spawn(len(sizes)), strict=True)
    ]
    rejected = 0
    with (
        threadpool_limits(1),
        tqdm(total=n, desc="simulating", disable=not progress_enabled(), unit="planet") as bar,
    ):
        if workers > 1:
            import multiprocessing as mp

            pool = mp.get_context("fork").Pool(workers)
            results: Iterator[tuple[list[Any], int]] = pool.imap(_chunk, jobs)
        else:
            pool, results = None, map(_chunk, jobs)
        i = 0
        for chunk, rej in results:
            rejected += rej
            for p, full, without in chunk:
                each(i, p, full, without)
                i += 1
            bar.update(len(chunk))
        if pool is not None:
            pool.close()
            pool.join()
    return rejected


def simulate_native(
    n: int,
    *,
    simulator: Simulator | None = None,
    population: Population | None = None,
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.70, 0.15, 0.15),
    workers: int = 1,
) -> NativeSet:
    """Simulate ``n`` population planets on the fine axis (about 4 forward models each).

    Planets are drawn in chunks with independent seeds spawned from ``seed``, so the result
    does not depend on ``workers`` (processes, forked).

    Example:
        >>> ns = simulate_native(2, seed=1)   # doctest: +SKIP
    """
    from atmospec._fileio import provenance
    from atmospec.molecules.dataset import build_simulator

    if n < 1:
        raise ModelInputError(f"n must be >= 1, got {n}")
    pop = population or Population()
    sim = simulator or build_simulator(t_max=2600.0)
    rng = np.random.default_rng(seed)
    lam = _pair_average(sim.wavelength)
    mols = pop.molecules
    depth = np.zeros((n, lam.size), np.float32)
    contrib = np.zeros((n, len(mols), lam.size), np.float16)
    scale = np.zeros((n, len(mols)), np.float32)
    rows: list[dict[str, float]] = []

    def keep(i: int, p: dict[str, float], full: NDArray[np.float64], without: list[Any]) -> None:
        f = _pair_average(full)
        depth[i] = f
        for j, w in enumerate(without):
            if w is not None:
                d = f - _pair_average(w)
                sc = float(np.abs(d).max()) or 1.0
                scale[i, j] = sc
                contrib[i, j] = (d / sc).astype(np.float16)
        rows.append(p)

    rejected = _simulate(n, sim, pop, seed, workers, True, keep)
    names = tuple(rows[0])
    params = np.array([[r[k] for k in names] for r in rows])
    split = np.zeros(n, dtype=np.int8)
    order = rng.permutation(n)
    n_tr, n_va = int(round(fractions[0] * n)), int(round(fractions[1] * n))
    split[order[n_tr : n_tr + n_va]] = 1
    split[order[n_tr + n_va :]] = 2
    meta = provenance(
        seed=seed,
        n=n,
        population=json.loads(json.dumps(asdict(pop), default=str)),
        species=list(sim.species),
        rejected_unbound=rejected,
    )
    return NativeSet(lam, depth, contrib, scale, params, names, split, mols, meta)


def simulate_depths(
    n: int,
    *,
    simulator: Simulator | None = None,
    population: Population | None = None,
    seed: int = 0,
    workers: int = 1,
) -> tuple[NDArray[np.float64], NDArray[np.float32], dict[str, NDArray[np.float64]]]:
    """The fine axis, ``depth`` and parameter columns :func:`simulate_native` gives for the
    same arguments (the same planets, bit for bit), without each molecule's contribution:
    about a quarter of the forward models. It recomputes what a set's depths record.

    Example:
        >>> lam, depth, columns = simulate_depths(2, seed=1)   # doctest: +SKIP
    """
    from atmospec.molecules.dataset import build_simulator

    if n < 1:
        raise ModelInputError(f"n must be >= 1, got {n}")
    pop = population or Population()
    sim = simulator or build_simulator(t_max=2600.0)
    lam = _pair_average(sim.wavelength)
    depth = np.zeros((n, lam.size), np.float32)
    rows: list[dict[str, float]] = []

    def keep(i: int, p: dict[str, float], full: NDArray[np.float64], without: list[Any]) -> None:
        depth[i] = _pair_average(full)
        rows.append(p)

    _simulate(n, sim, pop, seed, workers, False, keep)
    return lam, depth, {k: np.array([r[k] for r in rows]) for k in rows[0]}
