"""Figure of a discrepancy model: the fractional floor and the leading modes per Teff bin."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from atmospec.discrepancy.model import DiscrepancyModel

__all__ = ["plot_discrepancy"]


def plot_discrepancy(model: DiscrepancyModel, *, n_modes: int = 3) -> Figure:
    """Top: the floor f(lambda) of every Teff bin; below: the first modes of each bin.

    Example:
        >>> from atmospec.discrepancy import load_discrepancy
        >>> fig = plot_discrepancy(load_discrepancy("dback24"))  # doctest: +SKIP
    """
    from matplotlib.figure import Figure

    n_b = model.teff.size
    fig = Figure(figsize=(9, 2.4 * (1 + n_b)), layout="constrained")
    axes = fig.subplots(1 + n_b, 1, sharex=True)
    colours = [f"C{i}" for i in range(n_b)]
    total = np.sqrt(model.floor**2 + np.sum(model.modes**2, axis=1))
    for b in range(n_b):
        axes[0].plot(
            model.wavelength,
            100 * model.floor[b],
            color=colours[b],
            label=f"floor, Teff ~ {model.teff[b]:.0f} K",
        )
        axes[0].plot(model.wavelength, 100 * total[b], color=colours[b], ls=":", lw=0.8)
    axes[0].set_ylabel("model error [%]")
    axes[0].set_yscale("log")
    axes[0].legend(
        fontsize=7, ncol=2, title="solid: floor; dotted: floor + modes (rms)", title_fontsize=7
    )
    axes[0].set_title(f"{model.grid} on {model.instrument}: model discrepancy (v{model.version})")
    for b in range(n_b):
        ax = axes[1 + b]
        for k in range(min(n_modes, model.n_modes)):
            ax.plot(model.wavelength, 100 * model.modes[b, k], lw=0.9, label=f"mode {k + 1}")
        ax.axhline(0, color="0.6", lw=0.5)
        ax.set_ylabel(f"{model.teff[b]:.0f} K [%]")
        ax.legend(fontsize=7, ncol=3, loc="upper right")
    axes[-1].set_xlabel("wavelength [µm]")
    return fig
