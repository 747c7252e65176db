"""Honest evaluation: R2, RMSE, MAE, bias and interval coverage per S/N; plots, JSON and HTML."""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

if TYPE_CHECKING:
    from atmospec.estimators.base import Estimator, Prediction
    from atmospec.training.builder import TrainingSet

__all__ = ["metrics", "evaluate", "coverage"]


def coverage(
    true: ArrayLike,
    mean: ArrayLike,
    std: ArrayLike,
    level: float,
    tail_dof: ArrayLike | None = None,
) -> NDArray[np.float64]:
    """Fraction of rows whose central ``level`` interval contains the truth, per column.

    The interval is Gaussian (``mean ± k std``), or Student-t per column when ``tail_dof`` is
    given (:func:`atmospec.predictive_tails.tail_factor`).

    Example:
        >>> rng = np.random.default_rng(0); y = rng.normal(size=(20000, 1))
        >>> float(coverage(y, np.zeros_like(y), np.ones_like(y), 0.68)[0].round(2))
        0.68
    """
    from atmospec.predictive_tails import tail_factor

    z = np.abs(np.asarray(true) - np.asarray(mean)) / np.asarray(std)
    z2 = z.reshape(z.shape[0], -1)
    k = tail_factor(level, tail_dof, n=z2.shape[1])
    return np.mean(z2 <= k, axis=0).reshape(z.shape[1:])


def metrics(
    true: ArrayLike, pred: Prediction, param_names: Sequence[str] | None = None
) -> dict[str, dict[str, float]]:
    """Per-parameter R2 (``r2_score(true, pred)``), RMSE, MAE, bias, coverage of 68/95 %.

    Example:
        >>> from atmospec.estimators.base import Prediction
        >>> y = np.array([[1.0], [2.0], [3.0]])
        >>> p = Prediction(("a",), y + 0.1, None, np.zeros((3, 1), bool), {"a": (0.0, 4.0)})
        >>> m = metrics(y, p)["a"]; round(m["rmse"], 3), round(m["bias"], 3), round(m["r2"], 3)
        (0.1, 0.1, 0.985)
    """
    from sklearn.metrics import r2_score

    y = np.asarray(true, dtype=np.float64)
    names = list(param_names or pred.param_names)
    out: dict[str, dict[str, float]] = {}
    cov = {}
    if pred.std is not None:
        for lev in (68, 95):
            cov[lev] = coverage(y, pred.mean, pred.std, lev / 100, pred.tail_dof)
    for i, p in enumerate(names):
        err = pred.mean[:, i] - y[:, i]
        row = {
            "n": int(y.shape[0]),
            "r2": float(r2_score(y[:, i], pred.mean[:, i])),  # (true, pred): not swapped
            "rmse": float(np.sqrt(np.mean(err**2))),
            "mae": float(np.mean(np.abs(err))),
            "bias": float(np.mean(err)),
            "at_bound": float(np.mean(pred.at_bound[:, i])),
        }
        if pred.std is not None:
            row["coverage68"], row["coverage95"] = float(cov[68][i]), float(cov[95][i])
            row["median_sigma"] = float(np.median(pred.std[:, i]))
        out[p] = row
    return out


def evaluate(
    estimator: Estimator,
    test: TrainingSet | tuple[Any, ...],
    *,
    out_dir: str | os.PathLike[str] | None = None,
    snr: ArrayLike | None = None,
    title: str = "",
    split: str = "",
) -> dict[str, Any]:
    """Evaluate an estimator on held-out spectra, overall and per S/N level.

    Args:
        estimator: a fitted estimator.
        test: a :class:`TrainingSet` (grid-aware test part) or ``(X, y[, sigma])``.
        out_dir: if given, write ``evaluation.json``, ``parity.png``, ``residuals.png``,
            ``loss.png`` and ``index.html`` there.
        snr: S/N per test spectrum (taken from the TrainingSet when omitted).
        title: a heading for the report.
        split: a description of the split (recorded).

    Returns:
        ``{"overall": {param: metrics}, "by_snr": {snr: {param: metrics}}, ...}``.

    Example:
        >>> from atmospec.estimators.baselines import RandomForestEstimator
        >>> wave = np.linspace(1.0, 2.0, 8); t = np.linspace(0, 1, 40)[:, None]; X = 1 + t * wave
        >>> rf = RandomForestEstimator(n_estimators=5).fit(X[::2], t[::2], wavelength=wave,
        ...                                                param_names=["t"])
        >>> rep = evaluate(rf, (X[1::2], t[1::2]), snr=np.repeat([20.0, 100.0], 10))
        >>> rep["n_test"], list(rep["by_snr"]), rep["by_snr"]["20"]["t"]["n"]
        (20, ['20', '100'], 10)
        >>> round(rep["overall"]["t"]["rmse"], 2), round(rep["overall"]["t"]["r2"], 2)
        (0.04, 0.98)
    """
    from atmospec._fileio import provenance, write_json

    sigma: NDArray[Any] | None
    snr_arr: NDArray[Any] | None
    if hasattr(test, "arrays"):
        ts = cast("TrainingSet", test)
        X, y, sigma = ts.arrays()
        snr_arr = np.asarray(ts.snr if snr is None else snr)
        source = str(getattr(ts, "path", ""))
    else:
        X, y = np.asarray(test[0]), np.asarray(test[1])
        sigma = test[2] if len(test) > 2 else None
        snr_arr = None if snr is None else np.asarray(snr)
        source = "arrays"
    pred = estimator.predict(X, sigma)  # an estimator that does not use sigma ignores it
    report: dict[str, Any] = {
        "title": title or f"{type(estimator).__name__} evaluation",
        "estimator": type(estimator).__name__,
        "kind": getattr(estimator, "kind", ""),
        "test_set": source,
        "split": split,
        "n_test": int(y.shape[0]),
        "param_names": list(pred.param_names),
        "overall": metrics(y, pred),
        "by_snr": {},
    }
    if snr_arr is not None:
        levels = np.unique(snr_arr)
        if levels.size <= 12:
            for lev in levels:
                m = snr_arr == lev
                sub = _subset(pred, m)
                report["by_snr"][f"{lev:g}"] = metrics(y[m], sub)
    if pred.std is not None:
        report["coverage68"] = float(np.mean([v["coverage68"] for v in report["overall"].values()]))
        report["coverage95"] = float(np.mean([v["coverage95"] for v in report["overall"].values()]))
    report["provenance"] = provenance(grid=estimator.meta_.get("grid"))
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        report["figures"] = _plots(estimator, y, pred, out)
        write_json(out / "evaluation.json", report)
        _html(report, out / "index.html")
    return report


def _subset(pred: Prediction, m: NDArray[np.bool_]) -> Prediction:
    from atmospec.estimators.base import Prediction

    return Prediction(
        pred.param_names,
        pred.mean[m],
        None if pred.std is None else pred.std[m],
        pred.at_bound[m],
        pred.bounds,
        pred.tail_dof,
    )


def _plots(estimator: Estimator, y: NDArray[np.float64], pred: Prediction, out: Path) -> list[str]:
    # Figure objects without pyplot: no backend switching, no global state.
    from matplotlib.figure import Figure

    from atmospec._fileio import atomic_path

    names = list(pred.param_names)
    k = len(names)
    files = []
    fig = Figure(figsize=(3.2 * k, 3.2))
    axes = fig.subplots(1, k, squeeze=False)
    for i, p in enumerate(names):
        ax = axes[0, i]
        lo, hi = pred.bounds[p]
        ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
        ax.scatter(y[:, i], pred.mean[:, i], s=3, alpha=0.3)
        ax.set_xlabel(f"true {p}")
        ax.set_ylabel(f"predicted {p}")
    fig.tight_layout()
    with atomic_path(out / "parity.png") as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    files.append("parity.png")
    fig = Figure(figsize=(2.6 * k, 2.2 * k))
    axes = fig.subplots(k, k, squeeze=False)
    for i, p in enumerate(names):  # row: residual of p; column: against parameter q
        for j, q in enumerate(names):
            ax = axes[i, j]
            ax.scatter(y[:, j], pred.mean[:, i] - y[:, i], s=2, alpha=0.3)
            ax.axhline(0, color="k", lw=0.8)
            if i == k - 1:
                ax.set_xlabel(q)
            if j == 0:
                ax.set_ylabel(f"resid. {p}")
    fig.tight_layout()
    with atomic_path(out / "residuals.png") as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    files.append("residuals.png")
    history = getattr(estimator, "history_", None)
    if history:
        fig = Figure(figsize=(5, 3.2))
        ax = fig.subplots()
        for m, h in enumerate(history):
            ax.plot(h["train_loss"], label=f"train {m}" if len(history) > 1 else "train")
            ax.plot(h["val_loss"], "--", label=f"val {m}" if len(history) > 1 else "validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.legend(fontsize=7)
        fig.tight_layout()
        with atomic_path(out / "loss.png") as tmp:
            fig.savefig(tmp, dpi=90, format="png")
        files.append("loss.png")
    return files


def _html(report: dict[str, Any], path: Path) -> None:
    from atmospec._fileio import atomic_open

    def table(rows: dict[str, dict[str, float]]) -> str:
        cols = ["r2", "rmse", "mae", "bias", "coverage68", "coverage95", "at_bound"]
        head = "".join(f"<th>{c}</th>" for c in ["param", *cols])
        body = ""
        for p, m in rows.items():
            cells = "".join(f"<td>{m[c]:.4g}</td>" if c in m else "<td>-</td>" for c in cols)
            body += f"<tr><td>{html.escape(p)}</td>{cells}</tr>"
        return f"<table><tr>{head}</tr>{body}</table>"

    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(report['title'])}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:auto}"
        "td,th{padding:2px 8px;text-align:right}</style></head><body>",
        f"<h1>{html.escape(report['title'])}</h1>",
        f"<p>{report['n_test']} held-out spectra. Split: {html.escape(report.get('split', ''))}. "
        "R² is r2_score(true, pred); coverage is the fraction of true values inside the "
        "predicted 68 % / 95 % intervals.</p>",
        "<h2>All test spectra</h2>",
        table(report["overall"]),
    ]
    for lev, rows in report["by_snr"].items():
        parts += [f"<h2>S/N = {html.escape(lev)}</h2>", table(rows)]
    for fig in report.get("figures", []):
        parts.append(f"<p><img src='{fig}' style='max-width:100%'></p>")
    parts.append("</body></html>")
    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(parts))
