"""The per-object figure of a multi-grid prediction: data, each grid's model, residual band."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .predictor import MultiGridResult

__all__ = ["plot_grids"]


def plot_grids(result: MultiGridResult, i: int = 0) -> Figure:
    """Object ``i``: the data over each grid's best model (top), and each grid's fractional
    residual ``(data - model) / model`` with its 1-sigma model-error band (shaded) and the
    noise (grey) below. A residual inside its band is as large as the grid's learned model of
    mismatch allows; the title gives the combined Teff and log g and the two warnings.

    Example:
        >>> fig = plot_grids(result, 0)  # doctest: +SKIP
    """
    from atmospec.plots import _figure

    per = result.estimates[i]
    comb = result.combined[i]
    fig = _figure(figsize=(9, 6.5))
    gs = fig.add_gridspec(2, 1, height_ratios=(2.2, 1.6), hspace=0.06)
    ax = fig.add_subplot(gs[0])
    axr = fig.add_subplot(gs[1], sharex=ax)
    first = next((e for e in per.values() if e.wavelength is not None), None)
    if first is not None:
        w, f, u = first.wavelength, first.flux, first.uncertainty
        assert w is not None and f is not None and u is not None
        ax.plot(w, f, color="k", lw=1.0, label=result.names[i], drawstyle="steps-mid")
        axr.fill_between(
            w, -u / np.abs(f), u / np.abs(f), color="0.75", lw=0, step="mid", label="noise"
        )
    for k, (g, est) in enumerate(per.items()):
        if est.wavelength is None or est.model_flux is None or est.flux is None:
            continue
        color = f"C{k}"
        t = est.median("teff")
        lg = est.median("logg")
        used = "" if comb.weights.get(g, 0.0) > 0 else " (not used)"
        mis = f", misfit {est.misfit:.2f}" if np.isfinite(est.misfit) else ""
        ax.plot(
            est.wavelength,
            est.model_flux,
            color=color,
            lw=1.1,
            label=f"{g}: {t:.0f} K, log g {lg:.2f}{mis}{used}",
        )
        m = np.where(np.abs(est.model_flux) > 0, est.model_flux, np.nan)
        resid = (est.flux - est.model_flux) / m
        if est.band is not None:
            b = est.band / np.abs(m)
            axr.fill_between(est.wavelength, -b, b, color=color, alpha=0.18, lw=0, step="mid")
        axr.plot(est.wavelength, resid, color=color, lw=0.8, drawstyle="steps-mid")
    ax.set_ylabel("normalised flux")
    ax.legend(loc="best", fontsize=7)
    ax.tick_params(labelbottom=False)
    axr.axhline(0, color="k", lw=0.6)
    axr.set_ylabel("(data - model) / model")
    axr.set_xlabel("wavelength [µm]")
    lim = 0.6
    axr.set_ylim(-lim, lim)
    j_t, j_g = result.param_names.index("teff"), result.param_names.index("logg")
    q_t = np.percentile(result.samples[i][:, j_t], [16, 50, 84])
    q_g = np.percentile(result.samples[i][:, j_g], [16, 50, 84])
    flags = []
    if result.outside_grid(i):
        flags.append(f"outside {result.primary}")
    if result.misfit_flag(i):
        flags.append("misfit beyond the model of mismatch")
    flag = f"  [{'; '.join(flags)}]" if flags else ""
    ax.set_title(
        f"{result.names[i]}: combined Teff {q_t[1]:.0f} [{q_t[0]:.0f}, {q_t[2]:.0f}] K, "
        f"log g {q_g[1]:.2f} [{q_g[0]:.2f}, {q_g[2]:.2f}]{flag}",
        fontsize=9,
    )
    return fig
