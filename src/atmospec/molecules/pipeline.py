"""End-to-end use: molecule probabilities, attributions and a report for an observed spectrum."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from atmospec.molecules.classifiers import MoleculeClassifier, load_pretrained
from atmospec.molecules.io import TransmissionSpectrum, read_transmission

__all__ = ["MoleculeReport", "identify", "train_classifier", "LIMITATIONS"]

LIMITATIONS = (
    "Labels mean 'present and detectable in this simulator' (Delta chi^2 > 25 when removed). "
    "The simulator has H2O, CO2, CH4, CO, Na, K over H2/He with Rayleigh, CIA, a grey deck and "
    "a power-law haze; it lacks SO2, H2S, NH3, HCN and others. A random Gaussian 'unknown "
    "absorber' band was included in training so that unexplained absorption (e.g. SO2 at "
    "4.05 um in WASP-39b) is less likely to be credited to a modelled molecule, but features "
    "that mimic a modelled band can still raise its probability. Intervals are Monte-Carlo "
    "dropout spreads (model uncertainty), not posterior credible intervals."
)


@dataclass
class MoleculeReport:
    """The answer for one spectrum: probability and interval per molecule, attributions."""

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
            "| molecule | probability | 90 % interval |",
            "| --- | --- | --- |",
        ]
        for m, v in self.probabilities.items():
            lines.append(f"| {m} | {v['probability']:.3f} | {v['low']:.3f} - {v['high']:.3f} |")
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
) -> MoleculeReport:
    """Probability per molecule (with an interval) for an observed transmission spectrum.

    With ``out`` the folder receives ``molecules.json`` (probabilities, intervals, attributions,
    provenance), ``report.md`` and ``attributions.png`` (integrated gradients per bin over each
    molecule's cross-section).

    Example:
        >>> rep = identify("wasp39b_jwst_transit.dat")  # doctest: +SKIP
        >>> rep.as_json()["CO2"] > 0.9                   # doctest: +SKIP
        True
    """
    from atmospec._fileio import provenance, write_json
    from atmospec.molecules.explain import integrated_gradients

    spec = spectrum if isinstance(spectrum, TransmissionSpectrum) else read_transmission(spectrum)
    if isinstance(model, MoleculeClassifier):
        clf = model
    elif model is None:
        clf = load_pretrained()
    else:
        clf = MoleculeClassifier.load(model)
    probs = clf.predict_spectrum(spec, n_mc=n_mc)
    attributions = {
        m: integrated_gradients(clf, spec.depth[None], spec.error[None], m)[0].tolist()
        for m in clf.molecules
    }
    report = MoleculeReport(
        spec.name,
        probs,
        attributions,
        info={
            "source": spec.meta.get("source", spec.name),
            "classifier": clf.info.get("provenance", {}),
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
            spec.wavelength,
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
        write_json(
            folder / "molecules.json",
            {
                "name": report.name,
                "probabilities": report.probabilities,
                "attributions": {"wavelength": spec.wavelength.tolist(), **attributions},
                "info": report.info,
            },
        )
        from atmospec._fileio import atomic_open

        with atomic_open(folder / "report.md", "w", encoding="utf-8") as fh:
            fh.write(report.markdown())
    return report


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
    quiet: bool = False,
) -> MoleculeClassifier:
    """Simulate (or load) a training set on the bins and error bars of ``bins``, train the CNN
    (optionally tune it with optuna first) and save it to ``out``."""
    from atmospec.molecules.binning import Binning
    from atmospec.molecules.classifiers import train_cnn, tune_cnn
    from atmospec.molecules.dataset import MoleculeTrainingSet, generate

    spec = bins if isinstance(bins, TransmissionSpectrum) else read_transmission(bins)
    if training_set is not None and Path(training_set).is_file():
        ts = MoleculeTrainingSet.load(training_set)
    else:
        ts = generate(n, Binning.from_spectrum(spec), seed=seed, quiet=quiet)
        if training_set is not None:
            ts.save(training_set)
    params: dict[str, Any] = {}
    if tune_trials > 0:
        params = tune_cnn(ts, n_trials=tune_trials, seed=seed)["best_params"]
    clf = train_cnn(
        ts,
        seed=seed,
        quiet=quiet,
        max_epochs=max_epochs,
        max_seconds=None if max_minutes is None else 60 * max_minutes,
        **params,
    )
    clf.save(out)
    return clf
