"""Figures: data over model with residuals, histograms, box plots, scatter, corner, parity."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = [
    "plot_fit",
    "histogram",
    "boxplot",
    "scatter",
    "parity",
    "corner",
    "save_figure",
]


def _figure(**kwargs: Any) -> Figure:
    # Figure objects without pyplot: no global state, no GUI backend, safe in batch jobs.
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def save_figure(fig: Figure, path: str | os.PathLike[str], *, dpi: int = 120) -> Path:
    """Write a figure atomically; the format follows the file extension.

    Example:
        >>> import tempfile, pathlib
        >>> fig = histogram([1.0, 2.0, 2.5])
        >>> out = save_figure(fig, pathlib.Path(tempfile.mkdtemp()) / "h.png")
        >>> out.stat().st_size > 0
        True
    """
    from atmospec._fileio import atomic_path

    target = Path(path)
    fmt = target.suffix.lstrip(".") or "png"
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight")
    return target


def plot_fit(
    wavelength: ArrayLike,
    flux: ArrayLike,
    uncertainty: ArrayLike | None,
    model: ArrayLike,
    *,
    model_label: str = "model",
    data_label: str = "data",
    title: str = "",
    flux_unit: str = "",
) -> Figure:
    """Data (with a 1-sigma band) over a model, and the residuals in units of sigma below.

    Example:
        >>> import numpy as np
        >>> w = np.linspace(1, 2, 50)
        >>> fig = plot_fit(w, np.ones(50), np.full(50, 0.1), np.ones(50))
        >>> len(fig.axes)
        2
    """
    w = np.asarray(wavelength, dtype=np.float64)
    f = np.asarray(flux, dtype=np.float64)
    m = np.asarray(model, dtype=np.float64)
    fig = _figure(figsize=(9, 5.5))
    gs = fig.add_gridspec(2, 1, height_ratios=(3, 1), hspace=0.05)
    ax = fig.add_subplot(gs[0])
    axr = fig.add_subplot(gs[1], sharex=ax)
    ax.plot(w, f, color="k", lw=1.0, label=data_label, drawstyle="steps-mid")
    if uncertainty is not None:
        u = np.asarray(uncertainty, dtype=np.float64)
        ax.fill_between(w, f - u, f + u, color="0.6", alpha=0.5, lw=0, step="mid")
        resid = (f - m) / u
        axr.set_ylabel("(data - model) / σ")
    else:
        resid = f - m
        axr.set_ylabel("data - model")
    ax.plot(w, m, color="C3", lw=1.3, label=model_label)
    ax.set_ylabel(f"flux [{flux_unit}]" if flux_unit else "normalised flux")
    ax.legend(loc="best", fontsize=8)
    ax.tick_params(labelbottom=False)
    if title:
        ax.set_title(title, fontsize=10)
    axr.axhline(0, color="C3", lw=1)
    axr.plot(w, resid, color="k", lw=0.8, drawstyle="steps-mid")
    axr.set_xlabel("wavelength [µm]")
    return fig


def histogram(
    values: ArrayLike | Mapping[str, ArrayLike],
    *,
    bins: int | str = "auto",
    xlabel: str = "",
    density: bool = False,
) -> Figure:
    """Histogram of one array, or overlaid step histograms of several named arrays.

    Non-finite values are left out.

    Example:
        >>> ax = histogram({"a": [1.0, 2.0, 2.0, float("nan")], "b": [2.0, 3.0]}).axes[0]
        >>> [t.get_text() for t in ax.get_legend().get_texts()], ax.get_ylabel()
        (['a', 'b'], 'count')
        >>> histogram([1.0, 2.0], density=True, xlabel="Teff").axes[0].get_ylabel()
        'density'
    """
    fig = _figure(figsize=(6, 4))
    ax = fig.add_subplot()
    groups = values if isinstance(values, Mapping) else {"": values}
    for name, v in groups.items():
        arr = np.asarray(v, dtype=np.float64)
        arr = arr[np.isfinite(arr)]
        ax.hist(arr, bins=bins, histtype="step", lw=1.5, density=density, label=name or None)
    if isinstance(values, Mapping):
        ax.legend(fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density" if density else "count")
    return fig


def boxplot(groups: Mapping[str, ArrayLike], *, ylabel: str = "") -> Figure:
    """Box plots (median, quartiles, 1.5 IQR whiskers) of several named groups.

    Example:
        >>> fig = boxplot({"a": [1.0, 2.0, 3.0], "b": [2.0, 4.0]})
        >>> " ".join(t.get_text() for t in fig.axes[0].get_xticklabels())
        'a b'
    """
    fig = _figure(figsize=(1.2 * len(groups) + 3, 4))
    ax = fig.add_subplot()
    data = [
        np.asarray(v, dtype=np.float64)[np.isfinite(np.asarray(v, dtype=float))]
        for v in groups.values()
    ]
    ax.boxplot(data)
    ax.set_xticks(range(1, len(groups) + 1), list(groups))
    ax.set_ylabel(ylabel)
    return fig


def scatter(
    x: ArrayLike,
    y: ArrayLike,
    *,
    c: ArrayLike | None = None,
    xlabel: str = "",
    ylabel: str = "",
    clabel: str = "",
) -> Figure:
    """Scatter plot, optionally coloured by a third quantity.

    Example:
        >>> fig = scatter([1.0, 2.0, 3.0], [3.0, 1.0, 2.0], c=[800, 900, 1000], clabel="Teff [K]")
        >>> len(fig.axes), fig.axes[1].get_ylabel()  # the plot and its colour bar
        (2, 'Teff [K]')
    """
    fig = _figure(figsize=(6, 4.5))
    ax = fig.add_subplot()
    sc = ax.scatter(x, y, c=c, s=12, cmap="viridis" if c is not None else None)
    if c is not None:
        fig.colorbar(sc, ax=ax, label=clabel)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return fig


def parity(
    true: ArrayLike,
    pred: ArrayLike,
    *,
    lower: ArrayLike | None = None,
    upper: ArrayLike | None = None,
    label: str = "",
) -> Figure:
    """Predicted against true values with the 1:1 line, optional intervals, RMSE/bias/R^2.

    Example:
        >>> ax = parity([1.0, 2.0, 3.0], [1.0, 2.0, 4.0], label="Teff").axes[0]
        >>> ax.texts[0].get_text().splitlines(), ax.get_xlabel()
        (['RMSE 0.577', 'bias 0.333', 'R² 0.500'], 'true Teff')
    """
    from atmospec.stats import regression_metrics

    t = np.asarray(true, dtype=np.float64)
    p = np.asarray(pred, dtype=np.float64)
    fig = _figure(figsize=(5, 5))
    ax = fig.add_subplot()
    if lower is not None and upper is not None:
        yerr = np.vstack([p - np.asarray(lower), np.asarray(upper) - p])
        ax.errorbar(t, p, yerr=yerr, fmt="none", ecolor="0.7", lw=0.8)
    ax.scatter(t, p, s=10, color="C0")
    lo, hi = float(np.nanmin([t.min(), p.min()])), float(np.nanmax([t.max(), p.max()]))
    ax.plot([lo, hi], [lo, hi], color="k", lw=1, ls="--")
    m = regression_metrics(t, p)
    ax.text(
        0.04,
        0.96,
        f"RMSE {m['rmse']:.3g}\nbias {m['bias']:.3g}\nR² {m['r2']:.3f}",
        transform=ax.transAxes,
        va="top",
        fontsize=9,
    )
    ax.set_xlabel(f"true {label}".strip())
    ax.set_ylabel(f"predicted {label}".strip())
    return fig


def corner(
    samples: pd.DataFrame | ArrayLike,
    *,
    labels: Sequence[str] | None = None,
    truths: Sequence[float] | Mapping[str, float] | None = None,
    bins: int = 30,
    quantiles: Sequence[float] = (16.0, 50.0, 84.0),
    overlay: pd.DataFrame | None = None,
    overlay_label: str = "",
    label: str = "",
) -> Figure:
    """A corner plot: 1-D histograms on the diagonal, 2-D histograms below it.

    ``overlay`` (a DataFrame with some of the same columns, e.g. nested-sampling posterior
    samples) is drawn on top in colour: step histograms and 68 / 95 % contour-like scatter.

    Example:
        >>> import numpy as np
        >>> x = np.random.default_rng(0).normal(size=(500, 3))
        >>> len(corner(x, labels=["a", "b", "c"]).axes)
        6
    """
    import pandas as pd

    if isinstance(samples, pd.DataFrame):
        names = list(labels) if labels is not None else list(samples.columns)
        x = samples.to_numpy(dtype=np.float64)
    else:
        x = np.asarray(samples, dtype=np.float64)
        if x.ndim == 1:
            x = x[:, None]
        names = list(labels) if labels is not None else [f"x{i}" for i in range(x.shape[1])]
    d = x.shape[1]
    if isinstance(truths, Mapping):
        truth_vals: list[float | None] = [truths.get(n) for n in names]
    elif truths is not None:
        truth_vals = list(truths)
    else:
        truth_vals = [None] * d
    fig = _figure(figsize=(2.2 * d + 0.5, 2.2 * d + 0.5))
    gs = fig.add_gridspec(d, d, hspace=0.05, wspace=0.05)

    def overlay_of(name: str) -> NDArray[np.float64] | None:
        if overlay is None or name not in overlay.columns:
            return None
        return np.asarray(overlay[name].to_numpy(float))

    for i in range(d):
        for j in range(i + 1):
            ax = fig.add_subplot(gs[i, j])
            ov_i, ov_j = overlay_of(names[i]), overlay_of(names[j])
            t_i, t_j = truth_vals[i], truth_vals[j]
            if i == j:
                ax.hist(x[:, i], bins=bins, histtype="step", color="k", density=True)
                if ov_i is not None:
                    ax.hist(ov_i, bins=bins, histtype="step", color="C1", density=True, lw=1.4)
                for q in np.percentile(x[:, i], quantiles):
                    ax.axvline(q, color="C0", ls="--", lw=0.8)
                med, lo, hi = np.percentile(x[:, i], [50, 16, 84])
                ax.set_title(
                    f"{names[i]} = {med:.4g} (+{hi - med:.2g} / -{med - lo:.2g})", fontsize=8
                )
                ax.set_yticks([])
                if t_i is not None:
                    ax.axvline(float(t_i), color="C3")
            else:
                ax.hist2d(x[:, j], x[:, i], bins=bins, cmap="Greys")
                if ov_i is not None and ov_j is not None:
                    k = np.random.default_rng(0).permutation(ov_i.size)[:800]
                    ax.plot(ov_j[k], ov_i[k], ".", color="C1", ms=1.5, alpha=0.5)
                if t_i is not None and t_j is not None:
                    ax.plot(t_j, t_i, "s", color="C3", ms=4)
            if i == d - 1:
                ax.set_xlabel(names[j])
            else:
                ax.tick_params(labelbottom=False)
            if j == 0 and i > 0:
                ax.set_ylabel(names[i])
            elif i != j:
                ax.tick_params(labelleft=False)
    if overlay is not None or label:
        fig.text(
            0.98,
            0.98,
            f"black: {label or 'samples'}"
            + (f"\norange: {overlay_label}" if overlay is not None else ""),
            ha="right",
            va="top",
            fontsize=10,
        )
    return fig
