"""NPE beside nested sampling on the same grid and noise: intervals, JSD in bits, wall time."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from atmospec.grids import ModelGrid
    from atmospec.posteriors.npe import NPEstimator
    from atmospec.spectrum import Spectrum

__all__ = [
    "jsd_bits",
    "interval68",
    "model_error_name",
    "nested_reference",
    "compare_one",
    "compare",
    "corner_overlay",
]

FloatArray = NDArray[np.float64]


def jsd_bits(
    a: ArrayLike,
    b: ArrayLike,
    *,
    bins: int = 30,
    weights_a: ArrayLike | None = None,
    weights_b: ArrayLike | None = None,
    value_range: tuple[float, float] | None = None,
) -> float:
    """Jensen-Shannon divergence (base 2, in bits, 0..1) between two 1-D sample sets.

    Both sets are histogrammed on ``bins`` common bins spanning the 0.5-99.5 % range of
    the pooled samples (or ``value_range``); values outside fall in the end bins.
    ``JSD = (KL(p||m) + KL(q||m)) / 2`` with ``m = (p + q) / 2``. Identical distributions
    give ~0 (plus a finite-sample bias of order ``bins / (n ln 2)`` bits... far below 0.01
    for 30 bins and a few thousand samples); disjoint ones give 1.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> x, y = rng.normal(0, 1, 20000), rng.normal(0, 1, 20000)
        >>> bool(jsd_bits(x, y) < 0.005), round(jsd_bits(x, y + 100), 3)
        (True, 1.0)
    """
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if value_range is None:
        pooled = np.concatenate([x, y])
        lo, hi = np.percentile(pooled, [0.5, 99.5])
        if not hi > lo:
            lo, hi = float(pooled.min()), float(pooled.max())
        if not hi > lo:
            return 0.0
    else:
        lo, hi = value_range
    edges = np.linspace(lo, hi, bins + 1)
    xc = np.clip(x, lo, hi)
    yc = np.clip(y, lo, hi)
    p, _ = np.histogram(xc, edges, weights=weights_a)
    q, _ = np.histogram(yc, edges, weights=weights_b)
    p = p / p.sum()
    q = q / q.sum()
    m = 0.5 * (p + q)

    def kl(u: FloatArray, v: FloatArray) -> float:
        nz = u > 0
        return float(np.sum(u[nz] * np.log2(u[nz] / v[nz])))

    return max(0.0, 0.5 * kl(p, m) + 0.5 * kl(q, m))


def interval68(samples: ArrayLike, weights: ArrayLike | None = None) -> FloatArray:
    """The central 68 % interval (16th, 84th percentile) of each column.

    Example:
        >>> import numpy as np
        >>> interval68(np.random.default_rng(0).normal(size=(100000, 1))).round(2).tolist()
        [[-0.99, 0.99]]
    """
    s = np.asarray(samples, dtype=np.float64)
    if weights is None:
        return np.percentile(s, [16, 84], axis=0).T
    w = np.asarray(weights, dtype=np.float64)
    out = np.empty((s.shape[1], 2))
    for j in range(s.shape[1]):
        order = np.argsort(s[:, j])
        cw = np.cumsum(w[order])
        cw = (cw - 0.5 * w[order]) / cw[-1]
        out[j] = np.interp([0.16, 0.84], cw, s[order, j])
    return out


def compare_one(
    estimator: NPEstimator,
    spectrum: Spectrum,
    grid: ModelGrid,
    *,
    truth: ArrayLike | None = None,
    n_samples: int = 10_000,
    nlive: int = 250,
    dlogz: float = 0.5,
    seed: int = 0,
    importance: bool = True,
    bins: int = 30,
    nested: tuple[FloatArray, float, float] | None = None,
) -> dict[str, Any]:
    """One spectrum: NPE posterior (and its importance-corrected version) vs nested sampling.

    Nested sampling is :func:`atmospec.fitting.fit_nested` (dynesty, uniform priors over
    the grid box, flux scale marginalised analytically) on the same spectrum, grid and
    errors. Returns per parameter the 68 % intervals, the JSD (bits) of the 1-D marginals,
    and the wall time of each method (NPE: sampling ``n_samples`` draws). ``nested`` may
    pass a precomputed ``(samples, wall_seconds, logz)`` (see :func:`nested_reference`).
    For an NPE trained with model-error realisations the nested-sampling likelihood carries
    the same model error, and no importance correction is made (its grid likelihood has
    photon noise only).

    Example:
        >>> from atmospec.spectrum import Spectrum
        >>> class Toy:  # an "NPE" whose posterior of teff is N(1000, 50)
        ...     param_names_, meta_ = ("teff",), {}
        ...     def sample(self, spectrum, n, seed):
        ...         return np.random.default_rng(seed).normal(1000.0, 50.0, (n, 1))
        >>> spec = Spectrum([1.0, 1.5, 2.0], [1.0, 1.0, 1.0], [0.1, 0.1, 0.1], name="toy")
        >>> ref = np.random.default_rng(9).normal(1010.0, 50.0, (4000, 1))  # "nested" draws
        >>> row = compare_one(Toy(), spec, None, n_samples=4000, nested=(ref, 12.0, -3.5),
        ...                   importance=False)
        >>> row["teff_overlap68"], round(row["teff_jsd_bits"], 3), row["nested_seconds"]
        (True, 0.011, 12.0)
        >>> [round(float(row[f"teff_{m}_{q}"])) for m in ("npe", "nested") for q in ("p16", "p84")]
        [949, 1050, 960, 1062]
    """
    names = list(estimator.param_names_)
    t0 = time.perf_counter()
    draws = estimator.sample(spectrum, n=n_samples, seed=seed)
    npe_s = time.perf_counter() - t0
    disc = model_error_name(estimator)
    if nested is None:
        nested = nested_reference(
            spectrum, grid, names, nlive=nlive, dlogz=dlogz, seed=seed, discrepancy=disc
        )
    ref, nested_s, logz = nested
    row: dict[str, Any] = {
        "source": spectrum.name,
        "npe_ms": 1e3 * npe_s,
        "nested_seconds": float(nested_s),
        "nested_logz": float(logz),
        "nested_n": int(len(ref)),
    }
    iw = None
    if importance and not disc:  # the grid likelihood of the correction has no model error
        from atmospec.posteriors.importance import grid_likelihood, importance_correct

        t1 = time.perf_counter()
        like = grid_likelihood(spectrum, grid, names)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            isr = importance_correct(estimator, spectrum, like, n=n_samples, seed=seed)
        row["is_seconds"] = time.perf_counter() - t1
        row["is_efficiency"] = isr.efficiency
        row["is_logz"] = isr.log_evidence
        iw = isr
    npe_int = interval68(draws)
    ref_int = interval68(ref)
    for j, p in enumerate(names):
        lo, hi = np.percentile(np.concatenate([draws[:, j], ref[:, j]]), [0.5, 99.5])
        row[f"{p}_npe_p16"], row[f"{p}_npe_p84"] = npe_int[j]
        row[f"{p}_nested_p16"], row[f"{p}_nested_p84"] = ref_int[j]
        row[f"{p}_jsd_bits"] = jsd_bits(draws[:, j], ref[:, j], bins=bins, value_range=(lo, hi))
        overlap = min(npe_int[j, 1], ref_int[j, 1]) - max(npe_int[j, 0], ref_int[j, 0])
        row[f"{p}_overlap68"] = bool(overlap > 0)
        if truth is not None:
            row[f"{p}_true"] = float(np.asarray(truth)[j])
        if iw is not None:
            row[f"{p}_jsd_bits_is"] = jsd_bits(
                iw.samples[:, j], ref[:, j], bins=bins, weights_a=iw.weights, value_range=(lo, hi)
            )
    row["_npe_samples"] = draws
    row["_nested_samples"] = ref
    return row


def model_error_name(estimator: NPEstimator) -> str:
    """The model-error model an NPE was trained with (its recorded name; '' for none).

    Raises:
        ValueError: realisations at an amplitude other than 1 (no likelihood matches them).

    Example:
        >>> from atmospec.models import load_model
        >>> model_error_name(load_model("npe_dback24", kind="npe"))
        'dback24-spex'
        >>> from types import SimpleNamespace
        >>> model_error_name(SimpleNamespace(meta_={"config": {"discrepancy": ""}}))
        ''
    """
    cfg = getattr(estimator, "meta_", {}).get("config") or {}
    name = str(cfg.get("discrepancy") or "")
    if name and float(cfg.get("discrepancy_amplitude", 1.0)) != 1.0:
        raise ValueError(
            f"the NPE was trained with {name} realisations at amplitude "
            f"{cfg['discrepancy_amplitude']}; the nested-sampling reference has none to match"
        )
    return name


def nested_reference(
    spectrum: Spectrum,
    grid: ModelGrid | str,
    names: Sequence[str],
    *,
    nlive: int = 250,
    dlogz: float = 0.5,
    seed: int = 0,
    discrepancy: str = "",
) -> tuple[FloatArray, float, float]:
    """Nested-sampling posterior of one spectrum: ``(samples (n, d), wall seconds, log Z)``.

    Runs :func:`atmospec.fitting.fit_nested` (the classic fit's dynesty code: uniform
    priors over the grid box, flux scale marginalised analytically). ``grid`` may be a
    name, so that this can run in a worker process. The likelihood is the one the NPE's
    simulations follow: photon noise only, or (``discrepancy``: the name of the model-error
    model the NPE was trained with, see :func:`atmospec.posteriors.pipeline.model_error_of`)
    noise plus that model's covariance, untempered (the realisations the NPE saw are drawn
    from it at amplitude 1).
    """
    import dataclasses

    from atmospec.fitting.nested import fit_nested

    if isinstance(grid, str):
        from atmospec.grids import load_grid

        grid = load_grid(grid)
    disc = None
    if discrepancy:
        from atmospec.discrepancy import DiscrepancyModel
        from atmospec.training.discrepancy_augment import resolve_discrepancy

        model = resolve_discrepancy(discrepancy)
        if not isinstance(model, DiscrepancyModel):  # a name or folder always gives one
            raise TypeError(f"{discrepancy!r} is not a discrepancy model")
        disc = dataclasses.replace(model, temperature=1.0)
    res = fit_nested(spectrum, grid, nlive=nlive, dlogz=dlogz, seed=seed, discrepancy=disc)
    logz = float(res.logz) if res.logz is not None else float("nan")
    if res.samples is None:  # fit_nested always returns its posterior samples
        raise RuntimeError("fit_nested returned no posterior samples")
    return res.samples[list(names)].to_numpy(), float(res.wall_time_s), logz


def compare(
    estimator: NPEstimator,
    spectra: Sequence[Spectrum],
    grid: ModelGrid,
    *,
    truths: ArrayLike | None = None,
    n_samples: int = 10_000,
    nlive: int = 250,
    dlogz: float = 0.5,
    seed: int = 0,
    importance: bool = True,
    workers: int = 1,
    references: Sequence[tuple[FloatArray, float, float]] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Run :func:`compare_one` on many spectra; return the table and a summary.

    With ``workers > 1`` the nested-sampling runs go to that many worker processes (each
    run is still timed on its own); the NPE parts run in this process.

    The summary holds the median JSD (bits) over all parameter-spectrum pairs (raw NPE and
    importance-corrected), per-parameter medians, the fraction of 68 % intervals that
    overlap, and median wall times.

    Example:
        >>> from atmospec.spectrum import Spectrum
        >>> class Toy:  # an "NPE" whose posterior of teff is N(1000, 50)
        ...     param_names_, meta_ = ("teff",), {}
        ...     def sample(self, spectrum, n, seed):
        ...         return np.random.default_rng(seed).normal(1000.0, 50.0, (n, 1))
        >>> spec = Spectrum([1.0, 1.5, 2.0], [1.0, 1.0, 1.0], [0.1, 0.1, 0.1], name="toy")
        >>> refs = [(np.random.default_rng(i).normal(m, 50.0, (4000, 1)), 10.0, -3.0)
        ...         for i, m in enumerate((1010.0, 1300.0))]  # precomputed nested runs
        >>> table, summary = compare(Toy(), [spec, spec], None, references=refs,
        ...                          n_samples=4000, importance=False)
        >>> table["teff_overlap68"].tolist(), table["teff_jsd_bits"].round(3).tolist()
        ([True, False], [0.009, 0.993])
        >>> summary["n_spectra"], summary["overlap68_fraction"], summary["nested_seconds_median"]
        (2, 0.5, 10.0)
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from atmospec._logging import progress_enabled

    rows = []
    tr = None if truths is None else np.asarray(truths, dtype=np.float64)
    names = list(estimator.param_names_)
    refs: list[Any] = list(references) if references is not None else [None] * len(spectra)
    if references is None and workers > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=workers) as pool:
            futs = [
                pool.submit(
                    nested_reference,
                    sp,
                    grid.name,
                    names,
                    nlive=nlive,
                    dlogz=dlogz,
                    seed=seed + i,
                    discrepancy=model_error_name(estimator),
                )
                for i, sp in enumerate(spectra)
            ]
            for i, fut in enumerate(
                tqdm(futs, desc="nested sampling", disable=not progress_enabled())
            ):
                refs[i] = fut.result()
    for i, sp in enumerate(tqdm(spectra, desc="npe vs nested", disable=not progress_enabled())):
        row = compare_one(
            estimator,
            sp,
            grid,
            truth=None if tr is None else tr[i],
            n_samples=n_samples,
            nlive=nlive,
            dlogz=dlogz,
            seed=seed + i,
            importance=importance,
            nested=refs[i],
        )
        rows.append({k: v for k, v in row.items() if not k.startswith("_")})
    table = pd.DataFrame(rows)
    jsd = table[[f"{p}_jsd_bits" for p in names]].to_numpy()
    summary: dict[str, Any] = {
        "n_spectra": len(rows),
        "median_jsd_bits": float(np.median(jsd)),
        "median_jsd_bits_per_param": {p: float(table[f"{p}_jsd_bits"].median()) for p in names},
        "overlap68_fraction": float(table[[f"{p}_overlap68" for p in names]].to_numpy().mean()),
        "npe_ms_median": float(table["npe_ms"].median()),
        "nested_seconds_median": float(table["nested_seconds"].median()),
    }
    if importance and "is_efficiency" in table:
        jis = table[[f"{p}_jsd_bits_is" for p in names]].to_numpy()
        summary["median_jsd_bits_is"] = float(np.median(jis))
        summary["is_efficiency_median"] = float(table["is_efficiency"].median())
    return table, summary


def corner_overlay(
    samples: ArrayLike,
    reference: ArrayLike,
    names: Sequence[str],
    *,
    labels: tuple[str, str] = ("NPE", "nested sampling"),
    truth: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    bins: int = 30,
    title: str | None = None,
) -> Figure:
    """Corner plot of two posteriors over the same parameters (e.g. NPE over nested sampling).

    Diagonal: 1-D histograms (with the JSD in bits in each title); below: 68 % and 95 %
    contours of the 2-D histograms of both sample sets.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> fig = corner_overlay(rng.normal(size=(2000, 2)), rng.normal(size=(2000, 2)), ["a", "b"])
        >>> len(fig.axes)
        4
    """
    from matplotlib.figure import Figure

    a = np.asarray(samples, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    d = a.shape[1]
    fig = Figure(figsize=(2.2 * d + 1, 2.2 * d + 1), layout="constrained")
    axes = np.atleast_2d(fig.subplots(d, d, squeeze=False))
    colours = ("C0", "C3")
    lims = []
    for j in range(d):
        lo, hi = np.percentile(np.concatenate([a[:, j], b[:, j]]), [0.5, 99.5])
        pad = 0.05 * (hi - lo) if hi > lo else 0.5
        lims.append((lo - pad, hi + pad))
    for i in range(d):
        for j in range(d):
            ax = axes[i, j]
            if j > i:
                ax.set_visible(False)
                continue
            if i == j:
                edges = np.linspace(*lims[j], bins + 1)
                ax.hist(
                    a[:, j],
                    edges,
                    weights=weights,
                    density=True,
                    histtype="step",
                    color=colours[0],
                    label=labels[0],
                )
                ax.hist(
                    b[:, j], edges, density=True, histtype="step", color=colours[1], label=labels[1]
                )
                jsd = jsd_bits(a[:, j], b[:, j], weights_a=weights, value_range=lims[j])
                ax.set_title(f"{names[j]}  JSD {jsd:.3f} bit", fontsize=8)
                ax.set_yticks([])
                if truth is not None:
                    ax.axvline(np.asarray(truth)[j], color="k", lw=0.8)
            else:
                for k, (s, w) in enumerate(((a, weights), (b, None))):
                    _contours(ax, s[:, j], s[:, i], w, lims[j], lims[i], colours[k])
                if truth is not None:
                    ax.plot(np.asarray(truth)[j], np.asarray(truth)[i], "k+", ms=8)
                ax.set_ylim(*lims[i])
            ax.set_xlim(*lims[j])
            if i == d - 1:
                ax.set_xlabel(names[j])
            else:
                ax.set_xticklabels([])
            if j == 0 and i > 0:
                ax.set_ylabel(names[i])
            elif j > 0:
                ax.set_yticklabels([])
    axes[0, 0].legend(fontsize=7, loc="upper left")
    if title:
        fig.suptitle(title)
    return fig


def _contours(
    ax: Any, x: FloatArray, y: FloatArray, w: Any, xl: tuple, yl: tuple, colour: str
) -> None:
    h, xe, ye = np.histogram2d(x, y, bins=25, range=[xl, yl], weights=w)
    if h.sum() <= 0:
        return
    flat = np.sort(h.ravel())[::-1]
    cum = np.cumsum(flat) / flat.sum()
    levels = sorted(
        {float(flat[min(int(np.searchsorted(cum, q)), flat.size - 1)]) for q in (0.95, 0.68)}
    )
    if len(levels) < 1 or levels[-1] <= 0:
        return
    xc = 0.5 * (xe[1:] + xe[:-1])
    yc = 0.5 * (ye[1:] + ye[:-1])
    ax.contour(
        xc,
        yc,
        h.T,
        levels=[v for v in levels if v > 0] + [flat[0] + 1],
        colors=colour,
        linewidths=1,
    )
