"""End-to-end use: molecule probabilities, attributions and a report for an observed spectrum."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from atmospec.errors import IncompatibleModelError, ModelInputError
from atmospec.molecules.anybin import AnyBinningClassifier
from atmospec.molecules.binning import Binning
from atmospec.molecules.classifiers import MoleculeClassifier, load_pretrained
from atmospec.molecules.io import TransmissionSpectrum, read_transmission

__all__ = [
    "MoleculeReport",
    "identify",
    "load_classifier",
    "train_classifier",
    "train_any_binning",
    "bins_difference",
    "describe_bins",
    "LIMITATIONS",
]

LIMITATIONS = (
    "Labels mean 'present and detectable in this simulator' (Delta chi^2 > 25 when removed, one "
    "free offset per instrument). The simulator has H2O, CO2, CH4, CO, Na, K over H2/He (plus an "
    "opacity-free heavy gas for mean molecular weights up to 8) with Rayleigh, CIA, a grey deck "
    "and a power-law haze; it lacks SO2, H2S, NH3, HCN and others. A random Gaussian 'unknown "
    "absorber' band was included in training so that unexplained absorption (e.g. SO2 at "
    "4.05 um) is less likely to be credited to a modelled molecule, but features that mimic a "
    "modelled band can still raise its probability. The default classifier accepts any bins "
    "within 0.46-12.4 um; its population: planets of 1 R_earth-2 R_Jup with masses from a "
    "mass-radius relation (Chen & Kipping 2017, with scatter), 200-2500 K, hosts "
    "0.1-1.5 R_sun, isothermal, unocculted spots or faculae on M-dwarf hosts as blackbodies "
    "(the molecular bands of cool spots are not modelled). Intervals are Monte-Carlo dropout "
    "spreads (model uncertainty), not posterior credible intervals."
)


@dataclass
class MoleculeReport:
    """The answer for one spectrum: probability and interval per molecule, attributions.

    Example:
        >>> so2 = {"reason": "not testable: no opacity for SO2 in the simulator"}
        >>> rep = MoleculeReport("toy", {"CO2": {"probability": 0.98765, "low": 0.9, "high": 0.99}},
        ...                      info={"testability": {"SO2": so2}})
        >>> rep.as_json()
        {'CO2': 0.9877}
        >>> print("\\n".join(rep.markdown().splitlines()[:6]))
        # Molecules in toy
        <BLANKLINE>
        | molecule | probability | 90 % interval | what these bins can say |
        | --- | --- | --- | --- |
        | CO2 | 0.988 | 0.900 - 0.990 |  |
        | SO2 | - | - | not testable: no opacity for SO2 in the simulator |
    """

    name: str
    probabilities: dict[str, dict[str, float]]
    attributions: dict[str, list[float]] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, float]:
        """``{molecule: probability}``, the object ``atmospec molecules --json`` prints."""
        return {m: round(v["probability"], 4) for m, v in self.probabilities.items()}

    def markdown(self) -> str:
        lines = [
            f"# Molecules in {self.name}",
            "",
            "| molecule | probability | 90 % interval | what these bins can say |",
            "| --- | --- | --- | --- |",
        ]
        tests = self.info.get("testability", {})
        for m, v in self.probabilities.items():
            note = tests.get(m, {}).get("reason", "")
            lines.append(
                f"| {m} | {v['probability']:.3f} | {v['low']:.3f} - {v['high']:.3f} | {note} |"
            )
        for m, t in tests.items():
            if m not in self.probabilities:
                lines.append(f"| {m} | - | - | {t['reason']} |")
        fit = self.info.get("best_fit", {})
        if "dchi2_when_removed" in fit:
            lines += [
                "",
                "## Best forward model with each molecule removed",
                "",
                f"chi2 {fit['chi2']:.1f} for {fit['dof']} degrees of freedom. "
                + " ".join(fit["assumptions"]),
                "",
                "| molecule | classifier p | chi2 rise when removed | ... rest refitted |",
                "| --- | --- | --- | --- |",
            ]
            refit = fit.get("dchi2_when_removed_refit", {})
            for m, d in fit["dchi2_when_removed"].items():
                p = self.probabilities.get(m, {}).get("probability", float("nan"))
                r = refit.get(m, float("nan"))
                lines.append(f"| {m} | {p:.3f} | {round(d, 1) + 0.0:.1f} | {r:.1f} |")
            if "switched_off_plot" in self.files:
                lines += ["", f"![best model]({Path(self.files['switched_off_plot']).name})"]
        elif "skipped" in fit:
            lines += ["", f"Best-fit model skipped: {fit['skipped']}"]
        notes = self.info.get("assumptions", [])
        if notes:
            lines += ["", "## Assumed while reading the file", ""]
            lines += [f"- {n}" for n in notes]
        lines += ["", "## Limitations", "", LIMITATIONS, ""]
        if "attribution_plot" in self.files:
            lines += [f"![attributions]({Path(self.files['attribution_plot']).name})", ""]
        return "\n".join(lines)


def identify(
    spectrum: str | os.PathLike[str] | TransmissionSpectrum,
    *,
    model: str | os.PathLike[str] | MoleculeClassifier | None = None,
    out: str | os.PathLike[str] | None = None,
    n_mc: int = 100,
    cross_sections: bool = True,
    trim: bool = False,
    fit: bool = True,
) -> MoleculeReport:
    """Probability per molecule (with an interval) for an observed transmission spectrum.

    With ``out`` the folder receives ``molecules.json`` (probabilities, intervals, attributions,
    provenance), ``report.md`` and ``attributions.png`` (integrated gradients per bin over each
    molecule's cross-section). ``trim`` leaves out (and reports) bins beyond the wavelengths
    the classifier covers instead of refusing the spectrum. With ``out`` and ``fit`` the
    forward model is also fitted to the spectrum (:func:`~atmospec.molecules.bestfit.best_fit`)
    and ``switched_off.png`` shows it with each molecule removed, with the chi-square rise
    (also with the rest refitted). ``info["testability"]`` says per molecule whether these bins
    can test it at all (:func:`~atmospec.molecules.testability.testability`): "not testable
    with these bins" where no bin covers its bands, "not testable" where the simulator has no
    opacity for it (SO2, NH3).

    Example:
        >>> rep = identify("wasp39b_jwst_transit.dat")  # doctest: +SKIP
        >>> rep.as_json()["CO2"] > 0.9                   # doctest: +SKIP
        True
    """
    from atmospec._fileio import provenance, write_json
    from atmospec.molecules.explain import integrated_gradients

    spec = spectrum if isinstance(spectrum, TransmissionSpectrum) else read_transmission(spectrum)
    clf = load_classifier(model)
    if trim:
        lo, hi = clf.coverage
        spec = spec.within(lo, hi)
    probs = clf.predict_spectrum(spec, n_mc=n_mc)
    bad = [m for m, v in probs.items() if not all(np.isfinite(x) for x in v.values())]
    if bad:
        raise ModelInputError(
            f"{spec.name}: the classifier gave no finite probability for {bad}; the spectrum "
            "is far outside what it was trained on"
        )
    tests = _testability(spec, clf.molecules)
    general = isinstance(clf, AnyBinningClassifier)
    binning = Binning.from_spectrum(spec) if general else None
    attributions = {
        m: integrated_gradients(clf, spec.depth[None], spec.error[None], m, binning=binning)[
            0
        ].tolist()
        for m in clf.molecules
    }
    axis = spec.wavelength
    if isinstance(clf, AnyBinningClassifier):
        axis = np.sqrt(clf.edges[1:] * clf.edges[:-1])
    report = MoleculeReport(
        spec.name,
        probs,
        attributions,
        info={
            "source": spec.meta.get("source", spec.name),
            "assumptions": spec.assumptions,
            "classifier": clf.info.get("provenance", {}),
            "classifier_kind": "any binning" if general else "trained for these bins",
            "testability": {m: t.as_dict() for m, t in tests.items()},
            "detection_threshold_delta_chi2": clf.info.get("detection_threshold"),
            "limitations": LIMITATIONS,
            "provenance": provenance(),
        },
    )
    if out is not None:
        from atmospec.molecules.explain import plot_attributions, reference_cross_sections

        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        xs = None
        if cross_sections:
            try:
                xs = reference_cross_sections(clf.molecules)
            except Exception:  # the plot is still useful without the cross-sections
                xs = None
        plot = plot_attributions(
            {m: np.asarray(a) for m, a in attributions.items()},
            axis,
            folder / "attributions.png",
            cross_sections=xs,
            probabilities=report.as_json(),
            title=f"{spec.name}: integrated-gradient attributions",
        )
        report.files = {
            "attribution_plot": str(plot),
            "json": str(folder / "molecules.json"),
            "report": str(folder / "report.md"),
        }
        if fit:
            from atmospec.errors import AtmospecError
            from atmospec.molecules.bestfit import best_fit, plot_switched_off

            try:
                best = best_fit(spec)
            except (AtmospecError, OSError) as err:  # no opacities here: the rest still holds
                report.info["best_fit"] = {"skipped": str(err)}
            else:
                from atmospec.molecules.bestfit import removal_dchi2

                support = removal_dchi2(spec, best)
                tests = _testability(spec, clf.molecules, support)
                report.info["testability"] = {m: t.as_dict() for m, t in tests.items()}
                plot_switched_off(spec, best, folder / "switched_off.png")
                report.files["switched_off_plot"] = str(folder / "switched_off.png")
                report.info["best_fit"] = {
                    "params": best.params,
                    "chi2": best.chi2,
                    "dof": best.dof,
                    "dchi2_when_removed": best.dchi2,
                    "dchi2_when_removed_refit": support,
                    "assumptions": best.assumptions,
                }
        write_json(
            folder / "molecules.json",
            {
                "name": report.name,
                "probabilities": report.probabilities,
                "attributions": {"wavelength": axis.tolist(), **attributions},
                "info": report.info,
            },
        )
        from atmospec._fileio import atomic_open

        with atomic_open(folder / "report.md", "w", encoding="utf-8") as fh:
            fh.write(report.markdown())
    return report


def _testability(
    spec: TransmissionSpectrum,
    molecules: tuple[str, ...],
    support: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Testability of the classifier's molecules and of the known species it lacks."""
    from atmospec.molecules.testability import BANDS, testability

    names = list(molecules) + [m for m in BANDS if m not in molecules]
    return {m: testability(spec, m, modelled=molecules, dchi2_refit=support) for m in names}


def load_classifier(
    model: str | os.PathLike[str] | MoleculeClassifier | AnyBinningClassifier | None = None,
) -> MoleculeClassifier | AnyBinningClassifier:
    """A classifier object, a saved folder or registry name (either kind), or the shipped
    default: the any-binning classifier when it is shipped, else the one trained for
    WASP-39b's bins. Folders are verified by sha256 (:mod:`atmospec.serialization`).

    Example:
        >>> type(load_classifier()).__name__, type(load_classifier("molecules")).__name__
        ('AnyBinningClassifier', 'MoleculeClassifier')
        >>> load_classifier("no-such-model")
        Traceback (most recent call last):
        ...
        atmospec.errors.ModelFileError: no-such-model: no such classifier folder, and no shipped ...
    """
    from atmospec.errors import ModelFileError
    from atmospec.models import ALIASES, load_model, shipped_models
    from atmospec.molecules.anybin import SHIPPED_NAME, load_pretrained_anybin

    if isinstance(model, (MoleculeClassifier, AnyBinningClassifier)):
        return model
    if model is None:
        if SHIPPED_NAME in shipped_models():
            return load_pretrained_anybin()
        return load_pretrained()
    if not Path(model).exists() and str(model) not in {*shipped_models(), *ALIASES}:
        raise ModelFileError(
            f"{model}: no such classifier folder, and no shipped model of that name "
            "(`atmospec models` lists them)"
        )
    clf = load_model(model)
    if not isinstance(clf, (MoleculeClassifier, AnyBinningClassifier)):
        raise ModelFileError(f"{model}: not a molecule classifier (a {type(clf).__name__})")
    return clf


def train_classifier(
    bins: str | os.PathLike[str] | TransmissionSpectrum,
    out: str | os.PathLike[str],
    *,
    n: int = 24000,
    seed: int = 1,
    training_set: str | os.PathLike[str] | None = None,
    max_epochs: int = 40,
    tune_trials: int = 0,
    max_minutes: float | None = 20.0,
) -> MoleculeClassifier:
    """Simulate (or load) a training set on the bins and error bars of ``bins``, train the CNN
    (optionally tune it with optuna first) and save it to ``out``.

    An existing ``training_set`` file is reused only if it was simulated for the same bins
    (centres, widths, instrument grouping and error bars, :func:`bins_difference`); a set for
    other bins is refused (:class:`~atmospec.errors.IncompatibleModelError`, naming the file
    and both binnings), never silently trained on, nor overwritten.

    Example:
        >>> import tempfile
        >>> from atmospec.molecules.dataset import MoleculeTrainingSet
        >>> d = Path(tempfile.mkdtemp())
        >>> b = Binning(np.linspace(1.0, 2.0, 8), np.full(8, 0.06), np.full(8, "x"),
        ...             np.full(8, 1e-4))
        >>> on = np.random.default_rng(0).random((30, 2)) < 0.5   # a toy set: H2O, CO2
        >>> depth = 0.01 + 1e-3 * on @ np.array([np.sin(np.arange(8)), np.cos(np.arange(8))])
        >>> params = np.column_stack([np.where(on, -3.0, -np.inf), np.ones(30)])
        >>> _ = MoleculeTrainingSet(depth, np.where(on, 400.0, 0.0), params,
        ...     ("log_H2O", "log_CO2", "noise_scale"), (np.arange(30) % 3 == 0).astype(np.int8),
        ...     b, ("H2O", "CO2")).save(d / "ts.h5")
        >>> spec = TransmissionSpectrum(b.centre, b.half_width, depth[0], b.error, b.instrument)
        >>> clf = train_classifier(spec, d / "model", training_set=d / "ts.h5", max_epochs=1)
        >>> sorted(f.name for f in (d / "model").iterdir()), len(clf.binning)
        (['model.json', 'weights.safetensors'], 8)
        >>> load_classifier(d / "model").molecules
        ('H2O', 'CO2')
        >>> wider = TransmissionSpectrum(b.centre, 2 * b.half_width, depth[0], b.error,
        ...                              b.instrument, "wider")
        >>> train_classifier(wider, d / "other", training_set=d / "ts.h5")
        Traceback (most recent call last):
        ...
        atmospec.errors.IncompatibleModelError: .../ts.h5: this training set was simulated for ...
    """
    from atmospec.molecules.classifiers import train_cnn, tune_cnn
    from atmospec.molecules.dataset import MoleculeTrainingSet, generate

    spec = bins if isinstance(bins, TransmissionSpectrum) else read_transmission(bins)
    requested = Binning.from_spectrum(spec)
    if training_set is not None and Path(training_set).is_file():
        ts = MoleculeTrainingSet.load(training_set)
        diff = bins_difference(ts.binning, requested)
        if diff:
            raise IncompatibleModelError(
                f"{training_set}: this training set was simulated for "
                f"{describe_bins(ts.binning)}, but {spec.name} asks for "
                f"{describe_bins(requested)} ({diff}); give another --training-set path (a set "
                "for these bins is then simulated and saved there) or remove this file"
            )
    else:
        ts = generate(n, requested, seed=seed)
        if training_set is not None:
            ts.save(training_set)
    params: dict[str, Any] = {}
    if tune_trials > 0:
        params = tune_cnn(ts, n_trials=tune_trials, seed=seed)["best_params"]
    clf = train_cnn(
        ts,
        seed=seed,
        max_epochs=max_epochs,
        max_seconds=None if max_minutes is None else 60 * max_minutes,
        **params,
    )
    clf.save(out)
    return clf


def describe_bins(b: Binning) -> str:
    """A one-line summary of a binning: bins, wavelengths, instruments, error bars.

    Example:
        >>> describe_bins(Binning(np.array([1.0, 2.0]), np.full(2, 0.1), np.array(["a", "b"]),
        ...                       np.array([1e-4, 2e-4])))
        '2 bins at 0.9-2.1 um, 2 instruments (a, b), errors 100-200 ppm'
    """
    names = list(dict.fromkeys(b.instrument.tolist()))
    return (
        f"{len(b)} bins at {b.lower.min():.3g}-{b.upper.max():.3g} um, {len(names)} "
        f"instrument{'s' if len(names) > 1 else ''} ({', '.join(names)}), errors "
        f"{1e6 * b.error.min():.3g}-{1e6 * b.error.max():.3g} ppm"
    )


def bins_difference(a: Binning, b: Binning, rtol: float = 1e-6) -> str:
    """What differs between two binnings, or ``""`` if they are the same for training.

    Centres, half widths and error bars are compared to ``rtol``; instruments by how they
    group the bins (each has its own free offset), not by their names.

    Example:
        >>> a = Binning(np.array([1.0, 2.0]), np.full(2, 0.1), np.array(["x", "x"]),
        ...             np.full(2, 1e-4))
        >>> bins_difference(a, Binning(a.centre, a.half_width, np.array(["y", "y"]), a.error))
        ''
        >>> bins_difference(a, Binning(a.centre, a.half_width, a.instrument, 2 * a.error))
        'other error bars'
    """
    if len(a) != len(b):
        return f"{len(a)} bins against {len(b)}"
    checks = (
        ("other bin centres", np.allclose(a.centre, b.centre, rtol=rtol, atol=0.0)),
        ("other bin widths", np.allclose(a.half_width, b.half_width, rtol=rtol, atol=0.0)),
        (
            "other instruments (free offsets)",
            np.array_equal(a.instrument_ids(), b.instrument_ids()),
        ),
        ("other error bars", np.allclose(a.error, b.error, rtol=rtol, atol=0.0)),
    )
    return "; ".join(what for what, same in checks if not same)


def train_any_binning(
    out: str | os.PathLike[str],
    *,
    n: int = 12000,
    seed: int = 11,
    native: str | os.PathLike[str] | None = None,
    max_epochs: int = 60,
    max_minutes: float | None = 30.0,
) -> Any:
    """Simulate (or load) the fine-axis population set and train the any-binning classifier.

    The set is simulated with seed ``seed`` and the network trained with seed ``seed`` too;
    both seeds and the package versions are recorded in ``model.json``.

    Example:
        >>> import tempfile
        >>> from atmospec.molecules.native import NativeSet
        >>> d = Path(tempfile.mkdtemp())
        >>> lam = np.geomspace(0.45, 12.5, 300)
        >>> on = np.random.default_rng(0).random((20, 2)) < 0.5   # a toy set: H2O, CO2
        >>> band = on[:, :, None] * np.exp(-0.5 * ((lam - np.array([[1.4], [4.3]])) / 0.1) ** 2)
        >>> planet = np.tile([1.0, 10.0, 1000.0, 2.3], (20, 1))   # R_Jup, g, T, mu
        >>> _ = NativeSet(lam, (0.01 + 1e-3 * band.sum(1)).astype(np.float32),
        ...     band.astype(np.float16), np.full((20, 2), 1e-3, np.float32),
        ...     np.column_stack([np.where(on, -3.0, -np.inf), planet]),
        ...     ("log_H2O", "log_CO2", "radius_rjup", "gravity", "temperature", "mu"),
        ...     (np.arange(20) % 4 == 0).astype(np.int8), ("H2O", "CO2")).save(d / "native.h5")
        >>> clf = train_any_binning(d / "model", native=d / "native.h5", max_epochs=1)
        >>> clf.config["n_cells"], clf.info["n_train"], sorted(f.name for f in d.iterdir())
        (384, 15, ['model', 'native.h5'])
        >>> type(load_classifier(d / "model")).__name__
        'AnyBinningClassifier'
    """
    from atmospec.molecules.anybin_training import train_anybin
    from atmospec.molecules.native import NativeSet, simulate_native

    if native is not None and Path(native).is_file():
        ns = NativeSet.load(native)
    else:
        ns = simulate_native(n, seed=seed)
        if native is not None:
            ns.save(native)
    clf = train_anybin(
        ns,
        seed=seed,
        max_epochs=max_epochs,
        max_seconds=None if max_minutes is None else 60 * max_minutes,
    )
    clf.save(out)
    return clf
