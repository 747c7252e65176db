"""Retrieve abundances from one spectrum: NPE and/or nested sampling, evidence table, files.

:func:`retrieve` runs the amortised posterior (:mod:`atmospec.molecules.abundances`), nested
sampling (:mod:`atmospec.molecules.nested`) or both on the same
:class:`~atmospec.molecules.retrieval.Retrieval`, optionally the evidence of each molecule
(nested sampling with the molecule removed) beside the any-binning classifier's probability,
and writes a parameter table, an evidence table, a JSON record and a corner figure
(each file atomically).
"""

from __future__ import annotations

import csv
import io
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from atmospec.errors import AtmospecError, ModelInputError
from atmospec.molecules.retrieval import Retrieval
from atmospec.molecules.spectrum import TransmissionSpectrum

__all__ = ["RetrievalResult", "retrieve", "corner", "intervals", "bound_notes"]

log = logging.getLogger(__name__)
METHODS = ("npe", "nested", "both")


def intervals(samples: NDArray[np.float64], names: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Median and central 68 % / 95 % intervals of each column.

    Example:
        >>> x = np.random.default_rng(0).normal(size=(100000, 1))
        >>> round(intervals(x, ("a",))["a"]["p84"], 1)
        1.0
    """
    q = np.percentile(samples, [2.5, 16, 50, 84, 97.5], axis=0)
    keys = ("p2.5", "p16", "median", "p84", "p97.5")
    return {p: {k: float(q[i, j]) for i, k in enumerate(keys)} for j, p in enumerate(names)}


RADIUS_AT_BOUND = (
    "radius_rjup presses on its prior bound: every instrument has a free offset, so the "
    "absolute depth does not fix the radius at 10 bar; only the size of the features does "
    "(about 2 R H / R_s^2 per scale height H), and a smaller planet with a heavier or cloudier "
    "atmosphere mutes them alike. Read the radius as prior-limited here; the abundances and "
    "temperature are conditional on that degeneracy"
)


def bound_notes(
    samples: NDArray[np.float64], retrieval: Retrieval, *, margin: float = 0.02
) -> dict[str, str]:
    """Parameters whose 68 % interval reaches within ``margin`` of the prior box's width of a
    bound, with what that means: ``{parameter: note}``.

    A log mixing ratio at the lower bound is an upper limit (the molecule is not needed); any
    parameter at a bound is limited by the prior there, not by the data.

    Example:
        >>> from types import SimpleNamespace
        >>> r = SimpleNamespace(param_names=("log_CO",), low=np.array([-8.0]), high=np.array([-1.0]))
        >>> list(bound_notes(np.full((100, 1), -7.99), r).values())[0][:30]
        'log_CO at its lower bound -8: '
    """
    q16, q84 = np.percentile(samples, [16, 84], axis=0)
    out: dict[str, str] = {}
    for j, p in enumerate(retrieval.param_names):
        lo, hi = float(retrieval.low[j]), float(retrieval.high[j])
        tol = margin * (hi - lo)
        if p == "radius_rjup" and (q16[j] - lo < tol or hi - q84[j] < tol):
            out[p] = RADIUS_AT_BOUND
        elif q16[j] - lo < tol:
            what = "an upper limit only" if p.startswith("log_") else "limited by the prior"
            out[p] = f"{p} at its lower bound {lo:.3g}: {what}"
        elif hi - q84[j] < tol:
            out[p] = f"{p} at its upper bound {hi:.3g}: limited by the prior, not the data"
    return out


def corner(samples: dict[str, NDArray[np.float64]], names: tuple[str, ...], title: str) -> Any:
    """Corner figure of one or two posteriors (``{label: samples}``) over the same parameters.

    Example:
        >>> s = np.column_stack([np.linspace(-4.0, -2.0, 200), np.linspace(800.0, 1200.0, 200)])
        >>> fig = corner({"npe": s}, ("log_H2O", "temperature"), "toy")
        >>> len(fig.axes), fig.axes[0].get_title()   # a 2 x 2 grid; the diagonal names the median
        (4, 'log_H2O = -3 (+0.68 / -0.68)')
    """
    labels = list(samples)
    if len(labels) == 2:
        from atmospec.posteriors.compare import corner_overlay

        return corner_overlay(
            samples[labels[0]],
            samples[labels[1]],
            names,
            labels=(labels[0], labels[1]),
            title=title,
        )
    from matplotlib.figure import Figure

    s = samples[labels[0]]
    d = s.shape[1]
    fig = Figure(figsize=(1.9 * d + 1, 1.9 * d + 1), layout="constrained")
    axes = fig.subplots(d, d, squeeze=False)
    lims = np.percentile(s, [0.5, 99.5], axis=0)
    for i in range(d):
        for j in range(d):
            ax = axes[i, j]
            if j > i:
                ax.set_axis_off()
                continue
            if i == j:
                ax.hist(s[:, j], bins=30, range=tuple(lims[:, j]), color="C0", histtype="step")
                lo, med, hi = np.percentile(s[:, j], [16, 50, 84])
                for v in (lo, med, hi):
                    ax.axvline(v, color="C0", lw=0.6, ls="--")
                ax.set_title(
                    f"{names[j]} = {med:.3g} (+{hi - med:.2g} / -{med - lo:.2g})", fontsize=7
                )
                ax.set_yticks([])
            else:
                ax.hist2d(s[:, j], s[:, i], bins=30, range=[lims[:, j], lims[:, i]], cmap="Blues")
            if i == d - 1:
                ax.set_xlabel(names[j], fontsize=7)
            if j == 0 and i > 0:
                ax.set_ylabel(names[i], fontsize=7)
            ax.tick_params(labelsize=6)
    fig.suptitle(f"{title} ({labels[0]})")
    return fig


@dataclass
class RetrievalResult:
    """Posterior samples per method, their intervals, the evidence table and how they were made.

    Example:
        >>> draws = {"npe": np.linspace(-4.0, -2.0, 101)[:, None],
        ...          "nested": np.linspace(-3.5, -1.5, 101)[:, None]}
        >>> res = RetrievalResult("toy", ("log_H2O",), draws, {"H2O": {"ln_B": 5.0, "sigma": 3.61}})
        >>> res.overlap68(), res.intervals["nested"]["log_H2O"]["median"]
        ({'log_H2O': True}, -2.5)
        >>> print(res.parameter_csv() + res.evidence_csv())
        method,parameter,median,p16,p84,p2.5,p97.5
        npe,log_H2O,-3,-3.68,-2.32,-3.95,-2.05
        nested,log_H2O,-2.5,-3.18,-1.82,-3.45,-1.55
        molecule,ln_B,ln_B_err,sigma,classifier_probability
        H2O,5,,3.61,
        <BLANKLINE>
    """

    name: str
    param_names: tuple[str, ...]
    samples: dict[str, NDArray[np.float64]]
    evidence: dict[str, dict[str, Any]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    @property
    def intervals(self) -> dict[str, dict[str, dict[str, float]]]:
        """``{method: {parameter: {"median", "p16", "p84", "p2.5", "p97.5"}}}``."""
        return {m: intervals(s, self.param_names) for m, s in self.samples.items()}

    def overlap68(self) -> dict[str, bool]:
        """Whether the NPE and nested 68 % intervals overlap, per parameter (both methods run)."""
        iv = self.intervals
        if not {"npe", "nested"} <= set(iv):
            return {}
        a, b = iv["npe"], iv["nested"]
        return {
            p: bool(min(a[p]["p84"], b[p]["p84"]) > max(a[p]["p16"], b[p]["p16"]))
            for p in self.param_names
        }

    def parameter_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["method", "parameter", "median", "p16", "p84", "p2.5", "p97.5"])
        for method, table in self.intervals.items():
            for p, v in table.items():
                w.writerow(
                    [method, p, *(f"{v[k]:.6g}" for k in ("median", "p16", "p84", "p2.5", "p97.5"))]
                )
        return buf.getvalue()

    def evidence_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["molecule", "ln_B", "ln_B_err", "sigma", "classifier_probability"])
        for m, v in self.evidence.items():
            w.writerow(
                [
                    m,
                    _fmt(v.get("ln_B")),
                    _fmt(v.get("ln_B_err")),
                    _fmt(v.get("sigma")),
                    _fmt(v.get("classifier_probability")),
                ]
            )
        return buf.getvalue()

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "param_names": list(self.param_names),
            "intervals": self.intervals,
            "overlap68": self.overlap68(),
            "evidence": self.evidence,
            "info": self.info,
        }

    def write(self, out: str | os.PathLike[str]) -> dict[str, str]:
        """Write ``parameters.csv``, ``evidence.csv``, ``retrieval.json`` (sealed), ``samples.npz``
        and ``corner.png`` into ``out``, each atomically; return their paths."""
        from atmospec._fileio import atomic_open, atomic_path, write_json
        from atmospec.serialization import seal

        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        files = {
            "parameters": folder / "parameters.csv",
            "evidence": folder / "evidence.csv",
            "json": folder / "retrieval.json",
            "samples": folder / "samples.npz",
            "corner": folder / "corner.png",
        }
        with atomic_open(files["parameters"]) as fh:
            fh.write(self.parameter_csv())
        with atomic_open(files["evidence"]) as fh:
            fh.write(self.evidence_csv())
        with atomic_path(files["samples"]) as tmp, open(tmp, "wb") as fh:
            arrays: dict[str, Any] = {"names": np.array(self.param_names), **self.samples}
            np.savez_compressed(fh, **arrays)
        fig = corner(self.samples, self.param_names, self.name)
        with atomic_path(files["corner"]) as tmp:
            fig.savefig(tmp, dpi=90, format="png")
        write_json(files["json"], seal(self.as_json()))
        self.files = {k: str(v) for k, v in files.items()}
        return self.files


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def classifier_probabilities(
    spec: TransmissionSpectrum, molecules: tuple[str, ...]
) -> dict[str, Any]:
    """The shipped any-binning classifier's probability per molecule, or why there is none.

    The classifier reads the bins inside its wavelength axis (0.46-12.4 um, a little narrower
    than the opacities a retrieval accepts); how many bins it left out is returned under
    ``"bins_left_out"`` and logged.
    """
    try:
        from atmospec.molecules.anybin import load_pretrained_anybin

        clf = load_pretrained_anybin()
        used = spec.within(*clf.coverage)
        probs = clf.predict_spectrum(used, n_mc=20)
    except (AtmospecError, ImportError) as err:
        return {m: f"n/a ({err})" for m in molecules}
    out: dict[str, Any] = {m: probs[m]["probability"] if m in probs else "n/a" for m in molecules}
    out["bins_left_out"] = len(spec) - len(used)
    if out["bins_left_out"]:
        log.info(
            "%s: the classifier read %d of %d bins (%s)",
            spec.name,
            len(used),
            len(spec),
            used.assumptions[-1],
        )
    return out


def retrieve(
    spec: TransmissionSpectrum,
    *,
    method: str = "npe",
    out: str | os.PathLike[str] | None = None,
    gravity: float = 10.0,
    star_radius_rsun: float = 1.0,
    molecules: tuple[str, ...] | None = None,
    evidence: bool = False,
    evidence_molecules: tuple[str, ...] | None = None,
    nlive: int = 150,
    dlogz: float = 0.5,
    n_train: int = 20_000,
    train_minutes: float = 8.0,
    n_samples: int = 5000,
    seed: int = 0,
    trim: bool = False,
    simulator: Any = None,
    cache: str | os.PathLike[str] | None = None,
    classifier: bool = True,
) -> RetrievalResult:
    """Posterior of temperature, log mixing ratios, radius and clouds for ``spec``.

    ``method``: ``"npe"`` (amortised, trained for these bins on first use and cached),
    ``"nested"`` (dynesty) or ``"both"``. ``evidence``: also the Bayes factor of each molecule
    in ``evidence_molecules`` (default all) from nested sampling with it removed.

    Example:
        >>> res = retrieve(read_transmission(path), gravity=4.3, star_radius_rsun=0.94,
        ...                out="w39")                                   # doctest: +SKIP
    """
    from atmospec._fileio import provenance

    if method not in METHODS:
        raise ModelInputError(f"method must be one of {METHODS}, got {method!r}")
    from atmospec.molecules.retrieval import DEFAULT_LOG_VMR

    ret = Retrieval.build(
        spec,
        simulator,
        molecules=molecules or tuple(DEFAULT_LOG_VMR),
        gravity=gravity,
        star_radius_rsun=star_radius_rsun,
        trim=trim,
    )
    info: dict[str, Any] = {
        "assumptions": ret.assumptions,
        "n_bins": len(ret.spec),
        "digest": ret.digest(),
        "bounds": {k: list(v) for k, v in ret.bounds.items()},
    }
    samples: dict[str, NDArray[np.float64]] = {}
    if method in ("npe", "both"):
        from atmospec.molecules.abundances import check_input, load_or_train

        t0 = time.perf_counter()
        est = load_or_train(ret, folder=cache, seed=seed, n=n_train, max_minutes=train_minutes)
        info["npe_ready_seconds"] = time.perf_counter() - t0
        info["npe_input_power"] = check_input(est, ret)
        t1 = time.perf_counter()
        samples["npe"] = est.sample(ret.data_residual, ret.spec.error, n=n_samples, seed=seed)
        info["npe_sample_seconds"] = time.perf_counter() - t1
        info["npe_meta"] = {k: v for k, v in est.meta_.items() if k != "assumptions"}
        info["npe_calibration"] = est.meta_.get("calibration", {"temperature": est.temperature_})
    full = None
    if method in ("nested", "both") or evidence:
        from atmospec.molecules.nested import run_nested

        full = run_nested(ret, nlive=nlive, dlogz=dlogz, seed=seed)
        info["nested"] = {
            "logz": full.logz,
            "logz_err": full.logz_err,
            "ncall": full.ncall,
            "wall_s": full.wall_s,
            **full.settings,
        }
        if method in ("nested", "both"):
            samples["nested"] = full.samples
    table: dict[str, dict[str, Any]] = {}
    if evidence:
        from atmospec.molecules.nested import detection_significance

        _, table = detection_significance(
            ret, evidence_molecules, full=full, nlive=nlive, dlogz=dlogz, seed=seed
        )
    if classifier:
        probs = classifier_probabilities(ret.spec, ret.molecules)
        for m in ret.molecules:
            table.setdefault(m, {})["classifier_probability"] = probs[m]
        info["classifier_bins_left_out"] = probs.get("bins_left_out")
    best = samples.get("nested", samples.get("npe"))
    if best is not None:
        med = np.median(best, axis=0)
        try:
            info["chi2_at_median"] = ret.chi2(med)
        except ModelInputError:
            info["chi2_at_median"] = None
        info["dof"] = len(ret.spec) - ret.n_params - ret.n_inst
    info["at_bound"] = {name: bound_notes(draws, ret) for name, draws in samples.items()}
    for name, notes in info["at_bound"].items():
        for note in notes.values():
            log.info("%s (%s): %s", ret.spec.name, name, note)
    info["offsets_ppm"] = {}
    for name, draws in samples.items():
        try:
            offs = ret.offsets(draws, seed=seed)
        except ModelInputError:
            continue
        # relative to the first instrument: the absolute level trades off against the radius
        first = next(iter(offs.values()))
        info["offsets_ppm"][name] = {
            inst: dict(
                zip(
                    ("p16", "median", "p84"),
                    np.percentile(1e6 * (v - first), [16, 50, 84]),
                    strict=True,
                )
            )
            for inst, v in list(offs.items())[1:]
        }
    info["provenance"] = provenance(seed=seed, versions_extra=_versions())
    result = RetrievalResult(ret.spec.name, ret.param_names, samples, table, info)
    if out is not None:
        result.write(out)
    return result


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("dynesty", "zuko"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            continue
    return out
