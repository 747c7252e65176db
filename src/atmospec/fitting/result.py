"""The result of a classic grid fit (chi-square or nested sampling) and its summary table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

if TYPE_CHECKING:
    from astropy.table import Table
    from matplotlib.figure import Figure

__all__ = ["FitResult", "rich_table"]

FloatArray = NDArray[np.float64]


@dataclass
class FitResult:
    """The result of fitting a spectrum with a model grid (chi-square or nested sampling).

    Attributes:
        method: ``"chi2"`` (best grid node) or ``"nested"`` (posterior over the interpolated
            grid).
        grid: grid name; ``param_names`` its parameters; ``fitted`` those the fit chose.
        best: best-fit parameter values (chi2: the best node; nested: the maximum-likelihood
            sample).
        chi2, dof, chi2_red, p_value: the chi-square of the best fit with the *given*
            uncertainties, ``dof = n_pix - n_fitted``, ``n_fitted = len(fitted) + 1`` (the
            flux scale) ``+ 1`` if an error-inflation factor was fitted.
        scale: the flux scale s (data = s * model); ``radius_rjup`` ``R = d sqrt(s)`` when a
            distance was given and the data are flux calibrated.
        samples: posterior samples (equal weight) as a DataFrame (nested; and chi-square with
            a model of mismatch: the node posterior spread over grid cells).
        logz, logz_err: log evidence and its error (nested only).
        nodes: every grid node with its chi2 and scale (chi2 only).
        notes: what was converted, assumed or left out on the way.
        warnings: what makes the answer doubtful: Teff piled in an edge cell of the grid (a
            limit, not a value) and residuals beyond the grid's model of mismatch
            (:func:`atmospec.fitting.edges.fit_warnings`).

    Example:
        >>> r = FitResult("chi2", "toy", "s.csv", ("teff",), ["teff"], {"teff": 1500.0},
        ...               chi2=42.0, dof=28, n_pix=30, n_fitted=2, scale=2.0,
        ...               wavelength=np.linspace(1.0, 2.0, 30), flux=np.ones(30),
        ...               uncertainty=np.full(30, 0.1), model_flux=np.ones(30))
        >>> round(r.chi2_red, 3), round(r.p_value, 3), r.summary()
        (1.5, 0.043, {'teff': {'best': 1500.0}})
    """

    method: str
    grid: str
    source: str
    param_names: tuple[str, ...]
    fitted: list[str]
    best: dict[str, float]
    chi2: float
    dof: int
    n_pix: int
    n_fitted: int
    scale: float
    wavelength: FloatArray
    flux: FloatArray
    uncertainty: FloatArray
    model_flux: FloatArray
    inflation: float = 0.0
    inflation_fitted: bool = False
    distance_pc: float | None = None
    radius_rjup: float | None = None
    samples: pd.DataFrame | None = None
    logz: float | None = None
    logz_err: float | None = None
    nodes: pd.DataFrame | None = None
    wall_time_s: float = 0.0
    flux_unit: str = ""
    grid_flux_unit: str = ""
    credit: str = ""
    notes: list[str] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)
    discrepancy: dict[str, Any] | None = None  # model-discrepancy model used + misfit score
    warnings: list[str] = field(default_factory=list)

    @property
    def chi2_red(self) -> float:
        """chi2 / dof (the reduced chi-square)."""
        return self.chi2 / self.dof

    @property
    def p_value(self) -> float:
        """Probability of a chi2 at least this large if the model and errors were right."""
        from atmospec.stats import chi2_test

        return chi2_test(self.chi2, self.dof).p_value

    def summary(self) -> dict[str, Any]:
        """Parameter summaries: with posterior samples (nested sampling, or chi-square under a
        model of mismatch) the median and 16/84, 2.5/97.5 percentiles; without, the best
        node's values (``{"best": value}``)."""
        out: dict[str, Any] = {}
        if self.samples is None:
            return {p: {"best": v} for p, v in self.best.items()}
        for p in self.samples.columns:
            q = np.percentile(self.samples[p].to_numpy(), [2.5, 16, 50, 84, 97.5])
            out[p] = {
                "median": float(q[2]),
                "p16": float(q[1]),
                "p84": float(q[3]),
                "p2.5": float(q[0]),
                "p97.5": float(q[4]),
            }
        return out

    def table(self) -> Table:
        """One row: source, grid, method, parameters, chi2, dof, chi2_red, p, scale, radius."""
        from astropy.table import Table

        row: dict[str, Any] = {"source": self.source, "grid": self.grid, "method": self.method}
        for p, v in self.best.items():
            row[p] = v
        if self.samples is not None:
            for p, s in self.summary().items():
                if p in self.param_names:
                    for k in ("median", "p16", "p84", "p2.5", "p97.5"):
                        row[f"{p}_{k}"] = s[k]
        row.update(
            chi2=self.chi2,
            dof=self.dof,
            chi2_red=self.chi2_red,
            p_value=self.p_value,
            n_pix=self.n_pix,
            n_fitted=self.n_fitted,
            scale=self.scale,
            inflation=self.inflation,
            radius_rjup=np.nan if self.radius_rjup is None else self.radius_rjup,
            logz=np.nan if self.logz is None else self.logz,
            logz_err=np.nan if self.logz_err is None else self.logz_err,
            wall_time_s=self.wall_time_s,
        )
        if self.discrepancy is not None:
            row["misfit_score"] = self.discrepancy["misfit_score"]
            row["misfit_flag"] = self.discrepancy["misfit_flagged"]
        table = Table(rows=[row])
        table.meta["fitted"] = list(self.fitted)
        table.meta["discrepancy"] = self.discrepancy
        table.meta["dof_rule"] = "dof = n_pix - n_fitted; n_fitted = fitted grid params + scale"
        table.meta["credit"] = self.credit
        return table

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record of the fit (no arrays except the parameter summaries)."""
        return {
            "source": self.source,
            "grid": self.grid,
            "method": self.method,
            "best": self.best,
            "fitted": self.fitted,
            "summary": self.summary() if self.samples is not None else None,
            "chi2": self.chi2,
            "dof": self.dof,
            "chi2_red": self.chi2_red,
            "p_value": self.p_value,
            "n_pix": self.n_pix,
            "n_fitted": self.n_fitted,
            "scale": self.scale,
            "inflation": self.inflation,
            "inflation_fitted": self.inflation_fitted,
            "distance_pc": self.distance_pc,
            "radius_rjup": self.radius_rjup,
            "logz": self.logz,
            "logz_err": self.logz_err,
            "wall_time_s": self.wall_time_s,
            "flux_unit": self.flux_unit,
            "grid_flux_unit": self.grid_flux_unit,
            "credit": self.credit,
            "notes": self.notes,
            "warnings": self.warnings,
            "provenance": self.provenance,
            "discrepancy": self.discrepancy,
        }

    def plot(self, *, title: str | None = None) -> Figure:
        """Data over the best model with normalised residuals (a matplotlib Figure)."""
        from atmospec.plots import plot_fit

        label = ", ".join(f"{p}={v:g}" for p, v in self.best.items())
        return plot_fit(
            self.wavelength,
            self.flux,
            self.uncertainty,
            self.model_flux,
            model_label=f"{self.grid}: {label}",
            title=title or f"{self.source}: chi2_red = {self.chi2_red:.2f} (dof {self.dof})",
            flux_unit=self.flux_unit,
        )


def rich_table(
    results: list[Any], title: str, literature: dict[str, dict[str, float]] | None = None
) -> Any:
    """A rich Table of fit results: best parameters (nested: median +- 16/84 percentiles),
    chi2_red, dof, p-value, and literature values per object when given. The grid and the
    method have columns where the results differ in them; else ``title`` should say them.

    Example:
        >>> from types import SimpleNamespace
        >>> from rich.console import Console
        >>> r = SimpleNamespace(source="HD 3651B", grid="dback24", method="chi2",
        ...                     best={"teff": 800.0, "logg": 5.0}, samples=None,
        ...                     chi2_red=3.2, dof=497, p_value=0.0)
        >>> Console(width=60).print(rich_table([r], "chi2 fit with dback24"))
        ... # doctest: +NORMALIZE_WHITESPACE
                        chi2 fit with dback24
        ┏━━━━━━━━━━┳━━━━━━┳━━━━━━┳━━━━━━━━━━┳━━━━━┳━━━━━━━━━┓
        ┃ object   ┃ teff ┃ logg ┃ chi2_red ┃ dof ┃ p-value ┃
        ┡━━━━━━━━━━╇━━━━━━╇━━━━━━╇━━━━━━━━━━╇━━━━━╇━━━━━━━━━┩
        │ HD 3651B │  800 │    5 │     3.20 │ 497 │       0 │
        └──────────┴──────┴──────┴──────────┴─────┴─────────┘
    """
    from rich.table import Table

    table = Table(title=title)
    params: list[str] = []
    for r in results:
        params += [p for p in r.best if p not in params]
    # Names fold and numbers never wrap or shorten, so an 80-column terminal shows every
    # digit (a median above its upper and lower errors). The grid and the method get a column
    # only where the results differ in them (else the title says them).
    labels = ["object"] + [
        c for c in ("grid", "method") if len({getattr(r, c) for r in results}) > 1
    ]
    for col in labels:
        table.add_column(col, overflow="fold", min_width=8)
    for col in (*params, "chi2_red", "dof", "p-value"):
        table.add_column(col, justify="right", no_wrap=True)
    if literature:
        for col in ("lit. teff", "lit. logg", "lit. mh"):
            table.add_column(col, justify="right", style="cyan")
    for r in results:
        row = [str(getattr(r, c)) for c in ("source", *labels[1:])]
        for p in params:
            if r.samples is not None and p in r.samples:
                q16, q50, q84 = (float(v) for v in r.samples[p].quantile([0.16, 0.5, 0.84]))
                row.append("\n".join(plus_minus(q16, q50, q84).replace("/", " ").split()))
            else:
                row.append(f"{r.best[p]:g}" if p in r.best else "-")
        row += [f"{r.chi2_red:.2f}", str(r.dof), f"{r.p_value:.2g}"]
        if literature:
            lit = literature.get(r.source, {})
            row += [f"{lit[k]:g}" if k in lit else "-" for k in ("teff", "logg", "mh")]
        table.add_row(*row)
    return table


def nodes_table(nodes: Any, params: list[str], top: int) -> Any:
    """A rich Table of the ``top`` best grid nodes of a chi-square fit (``FitResult.nodes``,
    sorted best first): the node's parameters, chi2_red, and with a model of mismatch the
    ``-2 ln L`` the nodes are ranked by and their posterior weight.

    Example:
        >>> import pandas as pd
        >>> from rich.console import Console
        >>> nodes = pd.DataFrame({"teff": [900.0, 800.0], "logg": [5.0, 5.0],
        ...                       "chi2": [12881.7, 11199.4], "chi2_red": [23.17, 20.14],
        ...                       "neg2_loglike": [-3484.13, -3449.87], "weight": [0.421, 0.094]})
        >>> Console(width=60).print(nodes_table(nodes, ["teff", "logg"], 5))
        ... # doctest: +NORMALIZE_WHITESPACE
                   best 2 of 2 grid nodes
        ┏━━━━━━┳━━━━━━┳━━━━━━━━━━┳━━━━━━━━━┳━━━━━━━━┓
        ┃ teff ┃ logg ┃ chi2_red ┃ -2 ln L ┃ weight ┃
        ┡━━━━━━╇━━━━━━╇━━━━━━━━━━╇━━━━━━━━━╇━━━━━━━━┩
        │  900 │    5 │    23.17 │ -3484.1 │  0.421 │
        │  800 │    5 │    20.14 │ -3449.9 │  0.094 │
        └──────┴──────┴──────────┴─────────┴────────┘
    """
    from rich.table import Table

    shown = nodes.head(top)
    table = Table(title=f"best {len(shown)} of {len(nodes)} grid nodes")
    ranked = "neg2_loglike" in nodes  # with a model of mismatch: ranked by -2 ln L
    cols = [*params, "chi2_red", *(["neg2_loglike", "weight"] if ranked else [])]
    for col in cols:
        table.add_column("-2 ln L" if col == "neg2_loglike" else col, justify="right")
    for _, row in shown.iterrows():
        table.add_row(
            *(f"{row[p]:g}" for p in params),
            f"{row['chi2_red']:.2f}",
            *([f"{row['neg2_loglike']:.1f}", f"{row['weight']:.3f}"] if ranked else []),
        )
    return table


def plus_minus(lo: float, mid: float, hi: float) -> str:
    """``mid +up/-down`` with every number to the decimal place of the smaller error's two
    significant digits, at most 6 decimals and at most five significant digits of ``mid``
    (an interval pinned at a grid edge reads ``900.00 +0.00/-0.00``, not ``900.000001
    +0.000004/-0.000001``).

    Example:
        >>> plus_minus(1506.0, 1656.0, 1816.0), plus_minus(4.83, 5.002, 5.17)
        ('1656 +160/-150', '5.00 +0.17/-0.17')
        >>> plus_minus(900.0, 900.000001, 900.000005)
        '900.00 +0.00/-0.00'
    """
    import math

    up, down = hi - mid, mid - lo
    errs = [e for e in (up, down) if math.isfinite(e) and e > 0]
    if not errs or not math.isfinite(mid):
        return f"{mid:.4g}"
    most = 6 if mid == 0 else max(0, 4 - math.floor(math.log10(abs(mid))))
    dec = min(max(0, 1 - math.floor(math.log10(min(errs)))), 6, most)
    return f"{mid:.{dec}f} +{up:.{dec}f}/-{down:.{dec}f}"
