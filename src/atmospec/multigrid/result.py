"""The result of a multi-grid prediction (combined and per-grid answers) and its figure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from atmospec.prediction.result import PredictionResult

from .combine import Combined
from .estimate import COMMON_PARAMS, GridEstimate, photon_chi2
from .flux_reading import FluxReading
from .routes import GridRoute

if TYPE_CHECKING:
    from astropy.table import Table
    from matplotlib.figure import Figure

__all__ = ["MultiGridResult", "plot_grids"]


@dataclass
class MultiGridResult(PredictionResult):
    """A :class:`~atmospec.prediction.result.PredictionResult` whose samples are the combined
    estimate of several grids (``teff``, ``logg``, ``mh``), with every grid's own answer.

    Attributes (beyond the base class):
        routes: the grids asked, primary first.
        estimates: per object, grid -> :class:`~atmospec.multigrid.estimate.GridEstimate`.
        combined: per object, the :class:`~atmospec.multigrid.combine.Combined` record.
        flux_readings: per object, the grids' verdict on a flux read as F_lambda without a
            stated unit (:class:`~atmospec.multigrid.flux_reading.FluxReading`; None when the
            unit was stated).

    Example:
        >>> s = np.tile(np.float32([2800.0, 5.0, 0.0]), (10, 1))  # beyond Diamondback's 2400 K
        >>> bt = GridEstimate("btsettl08", "chi2", COMMON_PARAMS, s, {}, np.zeros(3, bool),
        ...                   model="chi2:btsettl08")
        >>> comb = Combined(s, {"dback24": 0.0, "btsettl08": 1.0},
        ...                 {"dback24": False, "btsettl08": True}, 2800.0, 0.4, {}, False)
        >>> res = MultiGridResult(COMMON_PARAMS, ["x.csv"], ["x"], s[None], np.zeros((1, 3)), None,
        ...     np.zeros((1, 3), bool), {}, np.zeros(1), np.zeros(1, bool), [""], np.zeros(1),
        ...     np.zeros(1, int), [None], [], "default", "dback24", 10,
        ...     routes=[GridRoute("dback24", "default"), GridRoute("btsettl08")],
        ...     estimates=[{"btsettl08": bt}], combined=[comb], flux_readings=[None])
        >>> res.primary, res.outside_grid(0), res.misfit_flag(0), res.row_model_id(0)
        ('dback24', True, False, 'chi2:btsettl08')
    """

    routes: list[GridRoute] = field(default_factory=list)
    estimates: list[dict[str, GridEstimate]] = field(default_factory=list)
    combined: list[Combined] = field(default_factory=list)
    flux_readings: list[FluxReading | None] = field(default_factory=list)

    row_lists: ClassVar[tuple[str, ...]] = ("estimates", "combined", "flux_readings")

    @property
    def primary(self) -> str:
        return self.routes[0].grid if self.routes else ""

    def outside_grid(self, i: int) -> bool:
        """Whether object ``i`` lies outside the primary grid's parameters."""
        return not self.combined[i].covers.get(self.primary, True)

    def misfit_flag(self, i: int) -> bool:
        """Whether the residuals exceed what the model of mismatch allows, for most of the
        grids that cover object ``i`` (both of two, two of three: the lower median of their
        misfits is above 1; :func:`~atmospec.multigrid.combine.majority_misfit`)."""
        return bool(self.combined[i].misfit > 1.0)

    def flux_unit_suspect(self, i: int) -> bool:
        """Whether object ``i``'s flux, read as F_lambda for want of a unit, is reproduced far
        better by most grids read as F_nu
        (:func:`~atmospec.multigrid.flux_reading.flux_reading`)."""
        reading = self.flux_readings[i] if i < len(self.flux_readings) else None
        return bool(reading is not None and reading.suspect)

    def row_model_id(self, i: int) -> str:
        """The ``model_id`` of row ``i``: the primary grid's model where it took part in the
        answer (its default selection, e.g. the NPE or its CNN fallback); otherwise, outside
        the primary grid's parameters, the models of the grids that answered, joined by
        ``+`` (``chi2:<grid>`` for a scan over a grid's nodes).

        Example:
            >>> res = MultiGridPredictor().predict(library.load("10703_10070"))  # doctest: +SKIP
            >>> res.table()["model_id"][0]  # HD 3651B, outside Diamondback  # doctest: +SKIP
            'burrows06-spex-951c446810+chi2:btsettl08'
        """
        primary_model = super().row_model_id(i)
        if i >= len(self.combined) or self.combined[i].weights.get(self.primary, 0.0) > 0:
            return primary_model
        used = [g for g, w in self.combined[i].weights.items() if w > 0]
        ids = [self.estimates[i][g].model or g for g in used if g in self.estimates[i]]
        return "+".join(ids) or primary_model

    def fit_of_answering_grids(self) -> None:
        """Rows outside the primary grid: ``chi2_red`` and ``dof`` of the grid that answered
        and fits best (its best node under the data's own errors, flux scale solved; said in
        the row's notes), not of the primary grid's model at a Teff it does not reach."""
        self.chi2_red = np.array(self.chi2_red, dtype=np.float64, copy=True)
        self.dof = np.array(self.dof, copy=True)
        for i, (per, comb) in enumerate(zip(self.estimates, self.combined, strict=True)):
            if comb.weights.get(self.primary, 0.0) > 0:
                continue
            fits = {g: photon_chi2(per[g]) for g, w in comb.weights.items() if w > 0 and g in per}
            red = {g: f[0] / f[1] for g, f in fits.items() if f is not None}
            if red:
                best = min(red, key=red.__getitem__)
                self.chi2_red[i], self.dof[i] = red[best], fits[best][1]  # type: ignore[index]
                self.notes[i].append(
                    f"chi2_red and dof: {best}'s best node (the grid that fits best of those "
                    f"that answered), not {self.primary}'s"
                )

    def inflation(self, i: int, name: str = "teff") -> float:
        """Combined 68 % width of ``name`` over the primary grid's own 68 % width (NaN when
        the primary grid does not cover the object)."""
        est = self.estimates[i].get(self.primary)
        if est is None or self.outside_grid(i):
            return float("nan")
        col = est.column(name)
        j = self.param_names.index(name)
        if col is None:
            return float("nan")
        own = float(np.subtract(*np.percentile(col, [84, 16])))
        comb = float(np.subtract(*np.percentile(self.samples[i][:, j], [84, 16])))
        return comb / own if own > 0 else float("nan")

    def table(self) -> Table:
        """The base table (its percentiles are the combined estimate) plus, per grid,
        ``<param>_<grid>_median/_p16/_p84``, ``<grid>_misfit``, ``<grid>_weight``; and
        ``outside_grid``, ``misfit_score``, ``misfit_flag``, ``flux_unit_suspect``,
        ``grids_used``, ``grids_disagree`` (and the score it is decided on,
        ``grids_disagreement``), ``teff_grid_spread``, ``teff_inflation``,
        ``logg_inflation``; and
        ``<param>_calibration_shift/_sd`` for every parameter corrected for the grids' shared
        systematic error (:mod:`atmospec.multigrid.calibration`): the percentiles include the
        shift and the widening, the per-grid columns do not; ``<param>_err_stat``: the
        statistical part of the uncertainty (the scatter expected between independent spectra
        of the object at its S/N), the rest of the interval is common to all its spectra."""
        table = super().table()
        n = len(self)
        table["outside_grid"] = [self.outside_grid(i) for i in range(n)]
        table["misfit_score"] = [self.combined[i].misfit for i in range(n)]
        table["misfit_flag"] = [self.misfit_flag(i) for i in range(n)]
        table["flux_unit_suspect"] = [self.flux_unit_suspect(i) for i in range(n)]
        label = {r.grid: r.label for r in self.routes}
        table["grids_used"] = [
            ";".join(label.get(g, g) for g, w in self.combined[i].weights.items() if w > 0)
            for i in range(n)
        ]
        table["grids_disagree"] = [self.combined[i].disagree for i in range(n)]
        table["grids_disagreement"] = [self.combined[i].disagreement for i in range(n)]
        table["teff_grid_spread"] = [self.combined[i].spread.get("teff", 0.0) for i in range(n)]
        table["teff_inflation"] = [self.inflation(i, "teff") for i in range(n)]
        table["logg_inflation"] = [self.inflation(i, "logg") for i in range(n)]
        for p in sorted({q for c in self.combined for q in c.calibration}):
            nan = (float("nan"), float("nan"))
            terms = [self.combined[i].calibration.get(p, nan) for i in range(n)]
            table[f"{p}_calibration_shift"] = [t[0] for t in terms]
            table[f"{p}_calibration_sd"] = [t[1] for t in terms]
        for p in sorted({q for c in self.combined for q in c.statistical}):
            table[f"{p}_err_stat"] = [
                self.combined[i].statistical.get(p, float("nan")) for i in range(n)
            ]
        for route in self.routes:
            g, name = route.grid, route.label
            for p in COMMON_PARAMS:
                for suffix, q in (("median", 50), ("p16", 16), ("p84", 84)):
                    vals = []
                    for i in range(n):
                        est = self.estimates[i].get(g)
                        col = None if est is None else est.column(p)
                        vals.append(float("nan") if col is None else float(np.percentile(col, q)))
                    table[f"{p}_{name}_{suffix}"] = vals
            table[f"{name}_misfit"] = [
                self.estimates[i][g].misfit if g in self.estimates[i] else float("nan")
                for i in range(n)
            ]
            table[f"{name}_weight"] = [self.combined[i].weights.get(g, 0.0) for i in range(n)]
        table.meta["grids"] = [r.describe() for r in self.routes]
        table.meta["chi2_rule"] = (
            f"{table.meta.get('chi2_rule', '')}; outside the primary grid: the best node of the "
            "grid that answered and fits best (named in the notes), under the data's own errors"
        )
        table.meta["combined"] = (
            "percentiles of an equal-weight mixture of the answers of every grid that covers the "
            "object; outside_grid: outside the parameters of " + self.primary + "; misfit_flag: "
            "residuals beyond the learned model of mismatch of most covering grids (both of "
            "two, two of three); ood_flag: outside_grid or misfit_flag or flux_unit_suspect; "
            "ood_score: the primary grid's learned model's own score (unlike its synthetic "
            "spectra: it decides which of its models serves the row), not the flag's"
        )
        if any(c.calibration for c in self.combined):
            table.meta["calibration"] = (
                "<param>_calibration_shift/_sd: the combined estimate was shifted and widened by "
                "the grids' shared systematic error at its Teff, learned from labelled real "
                "objects (companions with Teff from luminosity and evolution; [M/H] zero point "
                "on field dwarfs); per-grid columns are uncorrected; <param>_err_stat: the "
                "scatter expected between independent spectra of the object at its S/N "
                "(learned from library objects with two spectra), the statistical part of the "
                "interval"
            )
        return table

    def corner(self, i: int = 0) -> Figure:
        """Corner plot of the combined samples of object ``i``, less the parameters no grid
        that answered varies (NaN, said in the notes: a solar-metallicity grid's ``mh``).

        Example:
            >>> res.corner(0)  # doctest: +SKIP
        """
        from atmospec.plots import corner

        frame = self.samples_frame(i)
        return corner(frame.loc[:, frame.notna().any()])

    def plot(self, i: int = 0) -> Figure:
        """Data over each grid's best model, and the residual with the model-error band."""

        return plot_grids(self, i)


def plot_grids(result: MultiGridResult, i: int = 0) -> Figure:
    """Object ``i``: the data over each grid's best model (top), and each grid's residual
    ``data - model`` (in the same normalised flux) with its 1-sigma model-error band (shaded)
    and the noise (grey) below. A residual inside its band is as large as the grid's learned
    model of mismatch allows; the title gives the combined Teff and log g, the two
    warnings, and the shift of the correction for the grids' shared systematic error (the
    combined Teff need not lie among the grids' own answers). (A fractional residual would
    blow up in the deep water and methane troughs of L and T dwarfs, where the flux and
    every band are near zero.)

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
        axr.fill_between(w, -u, u, color="0.75", lw=0, step="mid", label="noise")
    scale: list[float] = []
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
        resid = est.flux - est.model_flux
        if est.band is not None:
            b = np.abs(est.band)
            axr.fill_between(est.wavelength, -b, b, color=color, alpha=0.18, lw=0, step="mid")
        axr.plot(est.wavelength, resid, color=color, lw=0.8, drawstyle="steps-mid")
        if comb.weights.get(g, 0.0) > 0:
            scale.append(float(np.nanpercentile(np.abs(resid), 98)))
    ax.set_ylabel("normalised flux")
    ax.legend(loc="best", fontsize=7)
    ax.tick_params(labelbottom=False)
    axr.axhline(0, color="k", lw=0.6)
    axr.set_ylabel("data - model")
    axr.set_xlabel("wavelength [µm]")
    if scale and np.isfinite(max(scale)) and max(scale) > 0:
        # the residuals of the grids that answer set the scale (one that does not cover the
        # object may be far off)
        axr.set_ylim(-1.2 * max(scale), 1.2 * max(scale))
    j_t, j_g = result.param_names.index("teff"), result.param_names.index("logg")
    q_t = np.percentile(result.samples[i][:, j_t], [16, 50, 84])
    q_g = np.percentile(result.samples[i][:, j_g], [16, 50, 84])
    flags = []
    if result.outside_grid(i):
        flags.append(f"outside {result.primary}")
    if result.misfit_flag(i):
        flags.append("misfit beyond the model of mismatch")
    flag = f"  [{'; '.join(flags)}]" if flags else ""
    # The combined Teff need not lie among the grids' own answers drawn above: say by how
    # much the correction for their shared systematic error moved it.
    shift = comb.calibration.get("teff")
    moved = (
        f"\nincluding {shift[0]:+.0f} ± {shift[1]:.0f} K for the grids' shared systematic error"
        if shift is not None and np.isfinite(shift[0]) and abs(shift[0]) >= 1
        else ""
    )
    ax.set_title(
        f"{result.names[i]}: combined Teff {q_t[1]:.0f} [{q_t[0]:.0f}, {q_t[2]:.0f}] K, "
        f"log g {q_g[1]:.2f} [{q_g[0]:.2f}, {q_g[2]:.2f}]{flag}{moved}",
        fontsize=9,
    )
    return fig
