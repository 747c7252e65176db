"""Per-wavelength attributions of the molecule CNN (integrated gradients, SHAP) and their plots."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from atmospec.molecules.classifiers import MoleculeClassifier, features

__all__ = [
    "integrated_gradients",
    "shap_attributions",
    "molecule_attributions",
    "smoothed_peak",
    "plot_attributions",
    "reference_cross_sections",
]


def _inputs(clf: Any, depth: NDArray, error: NDArray, binning: Any = None) -> Any:
    import torch

    if binning is not None:  # the any-binning classifier: inputs on its canonical axis
        return torch.from_numpy(clf.inputs(binning, depth, error))
    return torch.from_numpy(features(depth, error, clf.binning.instrument_ids()))


def integrated_gradients(
    clf: Any,
    depth: NDArray,
    error: NDArray,
    molecule: str,
    *,
    n_steps: int = 32,
    binning: Any = None,
) -> NDArray[np.float64]:
    """Integrated gradients (captum) of the molecule's logit per input cell, ``(n, n_cells)``.

    For a :class:`MoleculeClassifier` the cells are its bins; for the any-binning classifier
    (pass the spectrum's ``binning``) they are the cells of its canonical wavelength axis.
    The baseline is a featureless spectrum (channel 0 = 0) with the same error bars, so the
    attributions say which cells' departures from flat raised the molecule's score.

    Example:
        >>> import torch
        >>> from atmospec.molecules.classifiers import load_pretrained
        >>> clf = load_pretrained()
        >>> e = clf.binning.error
        >>> depth = 0.02 + e * np.random.default_rng(0).standard_normal((2, e.size))
        >>> a = integrated_gradients(clf, depth, e[None], "CO2")
        >>> a.shape
        (2, 383)
        >>> ids = clf.binning.instrument_ids()
        >>> x = torch.from_numpy(features(depth, np.broadcast_to(e, depth.shape), ids))
        >>> flat = x.clone()
        >>> flat[:, 0] = 0.0
        >>> with torch.no_grad():   # completeness: they add up to the logit's rise over flat
        ...     rise = (clf.network(x) - clf.network(flat))[:, 1].numpy()
        >>> bool(np.allclose(a.sum(axis=1), rise, atol=0.05))
        True
    """
    import torch
    from captum.attr import IntegratedGradients

    x = _inputs(clf, depth, error, binning)
    base = x.clone()
    base[:, 0] = 0.0
    j = clf.molecules.index(molecule)
    clf.network.eval()
    ig = IntegratedGradients(clf.network)
    with torch.enable_grad():
        attr = ig.attribute(x, baselines=base, target=j, n_steps=n_steps)
    return attr[:, 0].detach().numpy().astype(np.float64)


def shap_attributions(
    clf: MoleculeClassifier,
    depth: NDArray,
    error: NDArray,
    molecule: str,
    background: tuple[NDArray, NDArray],
    *,
    n_samples: int = 50,
    seed: int = 0,
) -> NDArray[np.float64]:
    """SHAP values (``shap.GradientExplainer``, expected gradients) of the molecule's logit,
    channel 0, ``(n, n_bins)``; ``background`` is (depths, errors) of reference spectra."""
    import torch

    from atmospec._optional import require

    shap = require("shap", "explain")

    class _One(torch.nn.Module):
        def __init__(self, net: torch.nn.Module, j: int) -> None:
            super().__init__()
            self.net, self.j = net, j

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)[:, self.j : self.j + 1]

    j = clf.molecules.index(molecule)
    model = _One(clf.network, j).eval()
    bg = _inputs(clf, *background)
    x = _inputs(clf, depth, error)
    explainer = shap.GradientExplainer(model, bg)
    values = explainer.shap_values(x, nsamples=n_samples, rseed=seed)
    arr = np.asarray(values[0] if isinstance(values, list) else values)
    arr = arr.reshape(x.shape[0], 2, -1)
    return arr[:, 0].astype(np.float64)


def molecule_attributions(
    clf: MoleculeClassifier,
    depth: NDArray,
    error: NDArray,
    labels: NDArray[np.bool_],
    *,
    method: str = "ig",
    max_spectra: int = 200,
    background: tuple[NDArray, NDArray] | None = None,
) -> dict[str, NDArray[np.float64]]:
    """Mean attribution per bin for each molecule, over spectra where it is detectable.

    Example:
        >>> from atmospec.molecules.classifiers import load_pretrained
        >>> clf = load_pretrained()
        >>> e = np.broadcast_to(clf.binning.error, (2, 383))
        >>> depth = 0.02 + e * np.random.default_rng(0).standard_normal(e.shape)
        >>> labels = np.zeros((2, 6), bool)
        >>> labels[0, 0] = True   # H2O detectable in the first spectrum, nothing else anywhere
        >>> att = molecule_attributions(clf, depth, e, labels)
        >>> att["H2O"].shape, bool(att["H2O"].any()), bool(att["CO2"].any())
        ((383,), True, False)
        >>> molecule_attributions(clf, depth, e, labels, method="lime")
        Traceback (most recent call last):
        ...
        ValueError: method must be 'ig' or 'shap', not 'lime'
    """
    out: dict[str, NDArray[np.float64]] = {}
    for j, m in enumerate(clf.molecules):
        sel = np.nonzero(labels[:, j])[0][:max_spectra]
        if sel.size == 0:
            out[m] = np.zeros(len(clf.binning))
            continue
        if method == "ig":
            a = integrated_gradients(clf, depth[sel], error[sel], m)
        elif method == "shap":
            if background is None:
                raise ValueError("method='shap' needs background=(depths, errors)")
            a = shap_attributions(clf, depth[sel], error[sel], m, background)
        else:
            raise ValueError(f"method must be 'ig' or 'shap', not {method!r}")
        out[m] = a.mean(axis=0)
    return out


def smoothed_peak(
    attribution: NDArray[np.float64], wavelength: NDArray[np.float64], *, width: float = 0.03
) -> float:
    """Wavelength (micron) where the attribution, pooled over all instruments and smoothed with
    a Gaussian of ``width`` in ln(lambda), is largest.

    Example:
        >>> lam = np.linspace(1.0, 5.0, 200)
        >>> round(smoothed_peak(np.exp(-((lam - 4.3) / 0.05) ** 2), lam), 1)
        4.3
    """
    grid = np.exp(np.linspace(np.log(wavelength.min()), np.log(wavelength.max()), 1000))
    d = (np.log(grid)[:, None] - np.log(wavelength)[None, :]) / width
    k = np.exp(-0.5 * d**2)
    smooth = (k @ attribution) / k.sum(axis=1)
    return float(grid[np.argmax(smooth)])


def reference_cross_sections(
    molecules: tuple[str, ...], *, temperature: float = 1000.0, pressure: float = 100.0
) -> dict[str, tuple[NDArray[np.float64], NDArray[np.float64]]]:
    """Cross-sections (micron, m^2) of the modelled species at one (T, P), for plots."""
    from atmospec.molecules.dataset import build_simulator

    sim = build_simulator()
    return {
        m: (sim.wavelength, sim.tables[m].at(temperature, pressure))
        for m in molecules
        if m in sim.tables
    }


def plot_attributions(
    attributions: Mapping[str, NDArray[np.float64]],
    wavelength: NDArray[np.float64],
    path: str | os.PathLike[str],
    *,
    cross_sections: Mapping[str, tuple[NDArray[np.float64], NDArray[np.float64]]] | None = None,
    probabilities: Mapping[str, float] | None = None,
    title: str = "",
) -> Path:
    """One panel per molecule: attribution per bin over the molecule's cross-section (grey).

    Example:
        >>> import tempfile
        >>> lam = np.array([0.6, 2.0, 4.3])
        >>> png = plot_attributions({"CO2": np.array([0.0, 0.1, 2.0])}, lam,
        ...                         Path(tempfile.mkdtemp()) / "attributions.png",
        ...                         probabilities={"CO2": 0.97}, title="toy")
        >>> png.name, png.read_bytes()[1:4]
        ('attributions.png', b'PNG')
    """
    from matplotlib.figure import Figure  # no pyplot: no global state, no backend switch

    from atmospec._fileio import atomic_path

    mols = list(attributions)
    fig = Figure(figsize=(8, 1.6 * len(mols) + 0.8))
    axes = fig.subplots(len(mols), 1, sharex=True, squeeze=False)[:, 0]
    order = np.argsort(wavelength)
    for ax, m in zip(axes, mols, strict=True):
        a = attributions[m]
        ax.plot(wavelength[order], a[order], ".", ms=3, color="C0")
        ax.axhline(0, color="k", lw=0.5)
        label = m if probabilities is None else f"{m}  p = {probabilities[m]:.2f}"
        ax.set_ylabel(label, rotation=0, ha="right", va="center")
        if cross_sections and m in cross_sections:
            lam, sig = cross_sections[m]
            tw = ax.twinx()
            ok = sig > 0
            tw.semilogy(lam[ok], sig[ok], color="0.6", lw=0.6)
            tw.set_yticks([])
    axes[-1].set_xscale("log")
    axes[-1].set_xlabel("wavelength (micron)")
    ticks = [0.5, 0.7, 1, 1.5, 2, 3, 4, 5, 7, 10]
    axes[-1].set_xticks(ticks, [str(t) for t in ticks])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    target = Path(path)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format=target.suffix.lstrip(".") or "png", dpi=120)
    return target
