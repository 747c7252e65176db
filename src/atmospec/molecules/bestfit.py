"""The best forward model of an observed spectrum, and the same model with each molecule removed."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from atmospec.errors import ModelInputError
from atmospec.molecules.binning import Binning
from atmospec.molecules.io import TransmissionSpectrum

__all__ = ["BestFit", "best_fit", "plot_switched_off", "removal_dchi2"]

_LOG_VMR = {
    "H2O": (-9, -1),
    "CO2": (-10, -1.5),
    "CH4": (-10, -1.5),
    "CO": (-8, -1),
    "Na": (-12, -3),
    "K": (-13, -4),
}


@dataclass
class BestFit:
    """A least-squares fit of the forward model (one free offset per instrument).

    Attributes:
        params: best parameters (log10 mixing ratios, temperature K, radius R_Jup at 10 bar,
            log10 cloud-top pressure in bar, log10 haze factor); gravity and stellar radius are
            held fixed (the fit's temperature absorbs the scale-height degeneracy).
        model: the best model on the observed bins, offsets applied.
        without: the same model with each molecule removed (offsets refitted).
        dchi2: chi-square increase when each molecule is removed (no other refit).

    Example:
        >>> fit = BestFit({"log_H2O": -3.0, "temperature": 1000.0}, 12.0, 10, np.full(3, 0.0115),
        ...               dchi2={"H2O": 897.2, "CO2": 0.4})
        >>> round(fit.chi2 / fit.dof, 2), max(fit.dchi2, key=fit.dchi2.get)
        (1.2, 'H2O')
    """

    params: dict[str, float]
    chi2: float
    dof: int
    model: NDArray[np.float64]
    without: dict[str, NDArray[np.float64]] = field(default_factory=dict)
    dchi2: dict[str, float] = field(default_factory=dict)
    assumptions: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict, repr=False)


def _offsets(model: NDArray, spec: TransmissionSpectrum, ids: NDArray) -> NDArray:
    w = 1.0 / spec.error**2
    out = model.copy()
    for k in np.unique(ids):
        sel = ids == k
        out[sel] -= np.sum((model[sel] - spec.depth[sel]) * w[sel]) / np.sum(w[sel])
    return out


def best_fit(
    spec: TransmissionSpectrum,
    simulator: Any = None,
    *,
    molecules: tuple[str, ...] = ("H2O", "CO2", "CH4", "CO", "Na", "K"),
    gravity: float = 10.0,
    star_radius_rsun: float = 1.0,
    max_nfev: int = 200,
    start: dict[str, float] | None = None,
    temperatures: tuple[float, ...] = (600.0, 1600.0),
) -> BestFit:
    """Fit the forward model to ``spec`` by bounded least squares (scipy, 2-point Jacobian).

    Starts from the middle of the bounds at 1000 K and at each of ``temperatures``, keeping the
    best; a local optimum is still possible, so read the result as "a good model", not "the"
    model. ``start`` (parameter values by name) replaces those starts by one.
    Each molecule is then removed from it to show what it contributes.

    Example:
        >>> fit = best_fit(read_transmission("wasp39b_jwst_transit.dat"))   # doctest: +SKIP
        >>> fit.dchi2["CO2"] > 100                                           # doctest: +SKIP
        True
    """
    from scipy.optimize import least_squares

    from atmospec.molecules.atmosphere import R_JUP, R_SUN, Planet
    from atmospec.molecules.dataset import build_simulator
    from atmospec.molecules.forward import Clouds

    sim = simulator or build_simulator(t_max=2600.0)
    mols = tuple(m for m in molecules if m in sim.species)
    b = Binning.from_spectrum(spec)
    matrix = b.matrix(sim.wavelength)
    ids = b.instrument_ids()
    rs = star_radius_rsun * R_SUN
    r0 = float(np.sqrt(np.median(spec.depth)) * rs / R_JUP)
    names = [f"log_{m}" for m in mols] + [
        "temperature",
        "radius_rjup",
        "log_p_cloud_bar",
        "log_haze",
    ]
    lo = [_LOG_VMR[m][0] for m in mols] + [200.0, 0.7 * r0, -6.0, -2.0]
    hi = [_LOG_VMR[m][1] for m in mols] + [2500.0, 1.3 * r0, 2.0, 6.0]
    x0 = [0.5 * (a + c) for a, c in zip(lo, hi, strict=True)]
    x0[len(mols)], x0[len(mols) + 1], x0[-2], x0[-1] = 1000.0, r0, 1.0, -1.0
    for k, name in enumerate(names):
        if start is not None and name in start:
            x0[k] = float(np.clip(start[name], lo[k], hi[k]))

    def model(x: NDArray, drop: str | None = None) -> NDArray:
        p = dict(zip(names, x, strict=True))
        vmr = {m: 10 ** p[f"log_{m}"] for m in mols if m != drop}
        planet = Planet(p["radius_rjup"] * R_JUP, gravity, rs)
        clouds = Clouds(p_cloud=10 ** p["log_p_cloud_bar"] * 1e5, haze_factor=10 ** p["log_haze"])
        depth = sim.transit_depth(planet, p["temperature"], vmr, clouds)
        return _offsets(b.apply(depth, matrix), spec, ids)

    def resid(x: NDArray) -> NDArray:
        try:
            return (model(x) - spec.depth) / spec.error
        except ModelInputError:  # an unbound atmosphere: far from the data
            return np.full(len(spec), 1e3)

    starts = [x0]
    if start is None:  # hotter and cooler starts: the temperature sets the scale height
        for t in temperatures:
            starts.append(list(x0))
            starts[-1][len(mols)] = t
    res = min(
        (
            least_squares(
                resid,
                x,
                bounds=(lo, hi),
                x_scale=np.subtract(hi, lo) / 10,
                diff_step=1e-3,
                max_nfev=max_nfev,
            )
            for x in starts
        ),
        key=lambda r: float(r.cost),
    )
    best = model(res.x)
    chi2 = float(np.sum(((best - spec.depth) / spec.error) ** 2))
    fit = BestFit(
        dict(zip(names, map(float, res.x), strict=True)),
        chi2,
        len(spec) - len(names) - int(ids.max()) - 1,
        best,
        assumptions=[
            f"gravity fixed at {gravity:g} m/s^2 and stellar radius at {star_radius_rsun:g} R_sun "
            "(the temperature absorbs the scale height), isothermal, grey cloud deck, haze slope -4",
            f"best of {len(starts)} starts, {res.nfev} model evaluations; {res.message}",
        ],
        settings={
            "simulator": sim,
            "molecules": mols,
            "gravity": gravity,
            "star_radius_rsun": star_radius_rsun,
            "max_nfev": max_nfev,
        },
    )
    for m in mols:
        fit.without[m] = model(res.x, drop=m)
        fit.dchi2[m] = float(np.sum(((fit.without[m] - spec.depth) / spec.error) ** 2) - chi2)
    return fit


def removal_dchi2(spec: TransmissionSpectrum, fit: BestFit) -> dict[str, float]:
    """Chi-square rise when each molecule is removed from ``fit`` and the rest refitted.

    Each refit starts from ``fit``'s parameters. Where a refit without a molecule beats ``fit``
    (``fit`` stopped in a local optimum) the rise is 0: the data do not ask for the molecule.

    Example:
        >>> fit = best_fit(read_transmission("wasp39b_jwst_transit.dat"))   # doctest: +SKIP
        >>> removal_dchi2(spec, fit)["CO2"] > 100                           # doctest: +SKIP
        True
    """
    cfg = fit.settings
    out = {}
    for m in cfg["molecules"]:
        rest = tuple(x for x in cfg["molecules"] if x != m)
        refit = best_fit(
            spec,
            cfg["simulator"],
            molecules=rest,
            gravity=cfg["gravity"],
            star_radius_rsun=cfg["star_radius_rsun"],
            max_nfev=cfg["max_nfev"],
            start=fit.params,
        )
        out[m] = max(0.0, refit.chi2 - fit.chi2)
    return out


def plot_switched_off(
    spec: TransmissionSpectrum, fit: BestFit, path: str | os.PathLike[str]
) -> Path:
    """One panel per molecule: data, best model, and the model without that molecule.

    Example:
        >>> import tempfile
        >>> lam = np.array([0.5, 2.0, 8.0])
        >>> spec = TransmissionSpectrum(lam, lam / 20, np.array([0.011, 0.0112, 0.011]),
        ...                             np.full(3, 5e-5), np.full(3, "x"), "toy")
        >>> fit = BestFit({}, 0.0, 0, spec.depth, without={"H2O": np.full(3, 0.011)},
        ...               dchi2={"H2O": 16.0})
        >>> png = plot_switched_off(spec, fit, Path(tempfile.mkdtemp()) / "switched_off.png")
        >>> png.name, png.read_bytes()[1:4]
        ('switched_off.png', b'PNG')
    """
    from matplotlib.figure import Figure

    mols = list(fit.without)
    fig = Figure(figsize=(11, 2.2 * len(mols)))
    axes = fig.subplots(len(mols), 1, sharex=True, squeeze=False)[:, 0]
    order = np.argsort(spec.wavelength)
    lam = spec.wavelength[order]
    for ax, m in zip(axes, mols, strict=True):
        ax.errorbar(
            lam,
            1e6 * spec.depth[order],
            1e6 * spec.error[order],
            fmt=".",
            ms=2,
            color="0.4",
            lw=0.5,
            label="data",
        )
        ax.plot(lam, 1e6 * fit.model[order], color="C0", lw=1, label="best model")
        ax.plot(lam, 1e6 * fit.without[m][order], color="C3", lw=1, label=f"without {m}")
        ax.set_ylabel("depth (ppm)")
        ax.set_title(f"{m}: chi2 rises by {fit.dchi2[m]:.1f} when removed", fontsize=9)
        ax.legend(fontsize=7, loc="upper right")
    axes[-1].set_xscale("log")
    axes[-1].set_xlabel("wavelength (micron)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return Path(path)
