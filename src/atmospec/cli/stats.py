"""``atmospec stats``: chi-square tests, predictive intervals, metrics and plots from tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

__all__ = ["register", "read_table"]

stats_app = typer.Typer(
    help="Statistics and plots: chi-square test, intervals, metrics, histograms, corner...",
    no_args_is_help=True,
)

_PLOTS = ("hist", "box", "scatter", "corner", "parity")


def read_table(path: Path) -> Any:
    """A pandas DataFrame from an ECSV, CSV, FITS or any astropy-readable table file."""
    from atmospec.errors import DataNotFoundError, FileFormatError

    if not path.exists():
        raise DataNotFoundError(f"{path}: no such table file")
    import pandas as pd

    try:
        if path.suffix == ".ecsv":
            from astropy.table import Table

            return Table.read(path, format="ascii.ecsv").to_pandas()
        if path.suffix in (".csv", ".txt") or path.name.endswith(".csv.gz"):
            return pd.read_csv(path)
        from astropy.table import Table

        return Table.read(path).to_pandas()
    except Exception as err:  # astropy / pandas raise many types for unreadable tables
        raise FileFormatError(f"{path}: cannot read this table ({err})") from None


def _columns(frame: Any, names: str | None, path: Path, what: str) -> list[str]:
    from atmospec.errors import FileFormatError

    if not names:
        raise typer.BadParameter(f"name the {what} column(s)")
    cols = [c.strip() for c in names.split(",") if c.strip()]
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise FileFormatError(
            f"{path}: no column {', '.join(missing)} (columns: {', '.join(map(str, frame.columns))})"
        )
    return cols


def _point(text: str) -> dict[str, float]:
    out = {}
    for part in text.split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep:
            raise typer.BadParameter(f"--point: expected name=value pairs, got {part!r}")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            raise typer.BadParameter(f"--point: {value!r} is not a number") from None
    return out


@stats_app.command("chi2")
def chi2_cmd(
    target: str = typer.Argument(..., help="Spectrum file, or a SpeX library key."),
    model_file: Optional[Path] = typer.Option(  # noqa: UP045
        None, "--model-file", help="A model spectrum file (resampled onto the data)."
    ),
    grid: Optional[str] = typer.Option(None, "--grid", "-g", help="Grid name or .h5 path."),  # noqa: UP045
    point: Optional[str] = typer.Option(  # noqa: UP045
        None, "--point", help="With --grid: parameters, e.g. teff=850,logg=5,mh=0."
    ),
    n_fitted: Optional[int] = typer.Option(  # noqa: UP045
        None,
        "--n-fitted",
        help="Parameters fitted to these data (default: --point parameters + 1 scale).",
    ),
    no_scale: bool = typer.Option(False, "--no-scale", help="Do not solve a flux scale."),
) -> None:
    """Chi-square test of a spectrum against a model: chi2, dof = N - fitted, chi2_red, p."""
    from atmospec.cli.fit import load_target
    from atmospec.stats import chi2_test, degrees_of_freedom

    if (model_file is None) == (grid is None):
        raise typer.BadParameter("give exactly one of --model-file or --grid (with --point)")
    spectrum = load_target(target)
    result = chi2_of(spectrum, model_file=model_file, grid=grid, point=point, scale=not no_scale)
    fitted = n_fitted if n_fitted is not None else result["n_params"] + (0 if no_scale else 1)
    test = chi2_test(result["chi2"], degrees_of_freedom(result["n_pix"], fitted))
    typer.echo(
        f"{spectrum.name}: chi2 = {test.chi2:.2f}, N = {result['n_pix']}, fitted = {fitted}, "
        f"dof = {test.dof}, chi2_red = {test.chi2_red:.3f}, p = {test.p_value:.3g}"
        + (f", scale = {result['scale']:.4g}" if not no_scale else "")
    )


def chi2_of(
    spectrum: Any,
    *,
    model_file: Path | None = None,
    grid: str | None = None,
    point: str | None = None,
    scale: bool = True,
) -> dict[str, Any]:
    """Chi-square of ``spectrum`` against a model file or a grid point (flux scale solved)."""
    import numpy as np

    from atmospec.fitting.chi2 import chi2_with_scale

    if grid is not None:
        from atmospec.fitting.data import prepare
        from atmospec.grids import load_grid

        if not point:
            raise typer.BadParameter("--grid needs --point name=value,...")
        g = load_grid(grid)
        pt = _point(point)
        data = prepare(spectrum, g, coverage="mask")
        model = data.model(g.interpolate(pt))
        flux, sig, n_params = data.flux, data.uncertainty, len(pt)
    else:
        from atmospec.io import read
        from atmospec.transforms import resample

        assert model_file is not None
        mspec = read(model_file)
        good = spectrum.good() if hasattr(spectrum, "good") else spectrum
        if good.uncertainty is None:
            from atmospec.errors import InvalidSpectrumError

            raise InvalidSpectrumError(f"{spectrum.source}: no uncertainties; chi2 needs them")
        good, mspec = _common_flux_unit(good, mspec)
        inside = (good.wavelength > mspec.wavelength[0]) & (good.wavelength < mspec.wavelength[-1])
        wave = good.wavelength[inside]
        model = resample(wave, mspec.wavelength, mspec.flux, fill=np.nan)
        keep = np.isfinite(model)
        flux, sig, model = good.flux[inside][keep], good.uncertainty[inside][keep], model[keep]
        n_params = 0
    if scale:
        chi2, s = chi2_with_scale(model, flux, sig)
        value, factor = float(chi2[0]), float(s[0])
    else:
        value, factor = float(np.sum(((flux - model) / sig) ** 2)), 1.0
    return {"chi2": value, "n_pix": int(flux.size), "n_params": n_params, "scale": factor}


def _common_flux_unit(data: Any, model: Any) -> tuple[Any, Any]:
    """``data`` and ``model`` with their fluxes in one unit, the data's.

    An F_nu flux has the object's shape tilted by lambda^2 against F_lambda, which no flux
    scale absorbs: a model in Jy against data in W m-2 um-1 is converted pixel by pixel
    (F_lambda = F_nu c / lambda^2). A flux without a unit is read as F_lambda, as everywhere
    in atmospec: an F_nu flux compared with it is converted to F_lambda
    (:func:`atmospec.io.flux_density.as_flux_lambda`).

    Example:
        >>> from atmospec.spectrum import Spectrum
        >>> d = Spectrum([1.0, 2.0], [1.0, 0.25], [0.1, 0.1], flux_unit="W m-2 um-1")
        >>> m = Spectrum([1.0, 2.0], [1.0, 1.0], flux_unit="Jy")  # F_nu flat: F_lambda ~ 1/l^2
        >>> _, same = _common_flux_unit(d, m)
        >>> round(float(same.flux[0] / same.flux[1]), 6)  # the data's shape...
        4.0
        >>> f"{same.flux[0]:.4e}"  # ... and unit: 1 Jy c / (1 um)^2 = 2.998e-12 W m-2 um-1
        '2.9979e-12'
    """
    from atmospec.io.flux_density import as_flux_lambda

    # F_nu to F_lambda; refuses a flux that is not a spectral flux density (magnitudes, counts)
    data_l, model_l = as_flux_lambda(data)[0], as_flux_lambda(model)[0]
    if not data.flux_unit or not model.flux_unit:
        return data_l, model_l
    return data, model.to_flux_unit(data.flux_unit)


@stats_app.command("intervals")
def intervals_cmd(
    table: Path = typer.Argument(..., help="predictions.ecsv/csv, or a table of samples."),
    columns: Optional[str] = typer.Option(  # noqa: UP045
        None, "--columns", "-c", help="Comma-separated columns (default: all parameters)."
    ),
    level: float = typer.Option(0.68, "--level", help="Samples: interval probability."),
) -> None:
    """Predictive intervals from a predictions table or from a table of samples.

    From a predictions table: its percentile columns; from samples: their percentiles (the
    standard error of the mean is shown apart, never as an error bar)."""
    import numpy as np
    import pandas as pd
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from atmospec.stats import predictive_interval, standard_error

    frame = read_table(table)
    out = Table(title=f"{table.name}: predictive intervals")
    # only parameters with all five summaries are listed: a multi-grid run's per-grid
    # columns (teff_<grid>_median, _p16, _p84) have no 95 % bounds
    suffixes = ("_median", "_p16", "_p84", "_p2.5", "_p97.5")
    params = [
        c[: -len("_median")]
        for c in map(str, frame.columns)
        if c.endswith("_median")
        and all(f"{c[: -len('_median')]}{s}" in frame.columns for s in suffixes)
    ]
    if params:
        chosen = [c.strip() for c in columns.split(",") if c.strip()] if columns else params
        unknown = [c for c in chosen if c not in params]
        if unknown:
            from atmospec.errors import FileFormatError

            raise FileFormatError(
                f"{table}: no parameter {', '.join(unknown)} (parameters: {', '.join(params)})"
            )
        label = frame["name"] if "name" in frame.columns else frame["source"]
        out.add_column("object")
        for p in chosen:
            out.add_column(escape(f"{p} median [p16, p84] (p2.5-p97.5)"), justify="right")
        for i in range(len(frame)):
            cells = [str(label.iloc[i])]
            for p in chosen:
                r = frame.iloc[i]
                cells.append(
                    f"{r[f'{p}_median']:.4g} [{r[f'{p}_p16']:.4g}, {r[f'{p}_p84']:.4g}] "
                    f"({r[f'{p}_p2.5']:.4g}-{r[f'{p}_p97.5']:.4g})"
                )
            out.add_row(*map(escape, cells))
    else:
        numeric = [c for c in frame.columns if np.issubdtype(frame[c].dtype, np.number)]
        chosen = _columns(frame, columns, table, "sample") if columns else numeric
        for name in ("column", "median", f"{level:.0%} interval", "std", "std. error of mean"):
            out.add_column(escape(name), justify="right")
        left: list[str] = []
        for c in chosen:
            x = pd.to_numeric(frame[c], errors="coerce").to_numpy(float)
            if np.isfinite(x).sum() < 2:
                from atmospec.errors import FileFormatError

                raise FileFormatError(
                    f"{table}: column {c} has {int(np.isfinite(x).sum())} finite values of "
                    f"{x.size}; an interval needs samples (at least 2)"
                )
            if not np.isfinite(x).all():
                left.append(f"{c}: {int((~np.isfinite(x)).sum())} of {x.size}")
            x = x[np.isfinite(x)]
            lo, hi = predictive_interval(x, level)
            out.add_row(
                str(c),
                f"{np.median(x):.4g}",
                escape(f"[{float(lo):.4g}, {float(hi):.4g}]"),
                f"{x.std(ddof=1):.3g}",
                f"{float(standard_error(x)):.3g}",
            )
        if left:
            out.caption = "non-finite values left out: " + "; ".join(left)
    Console().print(out)


@stats_app.command("metrics")
def metrics_cmd(
    table: Path = typer.Argument(..., help="A table with true and predicted columns."),
    true: str = typer.Option(..., "--true", help="Column of true values."),
    pred: str = typer.Option(..., "--pred", help="Column of predicted values."),
    lower: Optional[str] = typer.Option(None, "--lower", help="Interval lower column."),  # noqa: UP045
    upper: Optional[str] = typer.Option(None, "--upper", help="Interval upper column."),  # noqa: UP045
) -> None:
    """RMSE, bias, MAE, R^2 (true first: not swapped) and, with --lower/--upper, coverage.

    Rows without a finite number in every named column (an object with no literature value,
    a spectrum that failed) are left out, and the output says how many."""
    import numpy as np
    import pandas as pd

    from atmospec.errors import FileFormatError
    from atmospec.stats import coverage, regression_metrics

    frame = read_table(table)
    cols = _columns(frame, ",".join(c for c in (true, pred, lower, upper) if c), table, "")
    values = frame[cols].apply(pd.to_numeric, errors="coerce").astype(float)
    finite = np.isfinite(values.to_numpy()).all(axis=1)
    if not finite.any():
        raise FileFormatError(
            f"{table}: no row has a finite number in every one of {', '.join(cols)}"
        )
    values = values[finite]
    m = regression_metrics(values[cols[0]], values[cols[1]])
    text = ", ".join(f"{k} = {v:.4g}" for k, v in m.items())
    if lower and upper:
        text += f", coverage = {coverage(values[true], values[lower], values[upper]):.3f}"
    left = int((~finite).sum())
    if left:
        text += (
            f" ({left} of {len(frame)} rows left out: no finite number in one of {', '.join(cols)})"
        )
    typer.echo(text)


@stats_app.command("plot")
def plot_cmd(
    kind: str = typer.Argument(..., help="hist, box, scatter, corner or parity."),
    table: Path = typer.Argument(..., help="ECSV / CSV / FITS table."),
    x: Optional[str] = typer.Option(  # noqa: UP045
        None, "--x", help="hist/box/corner: column(s), comma-separated; scatter: x; parity: true."
    ),
    y: Optional[str] = typer.Option(None, "--y", help="scatter: y; parity: predicted."),  # noqa: UP045
    c: Optional[str] = typer.Option(None, "--c", help="scatter: colour column."),  # noqa: UP045
    lower: Optional[str] = typer.Option(None, "--lower", help="parity: lower bound column."),  # noqa: UP045
    upper: Optional[str] = typer.Option(None, "--upper", help="parity: upper bound column."),  # noqa: UP045
    out: Path = typer.Option(..., "--out", "-o", help="PNG file to write."),
) -> None:
    """Write a histogram, box plot, scatter, corner or parity plot of table columns."""
    from atmospec import plots

    if kind not in _PLOTS:
        raise typer.BadParameter(f"plot kind must be one of {', '.join(_PLOTS)}, not {kind!r}")
    frame = read_table(table)
    if kind in ("hist", "box", "corner"):
        cols = _columns(frame, x, table, "--x")
        if kind == "hist":
            data = {col: frame[col] for col in cols} if len(cols) > 1 else frame[cols[0]]
            fig = plots.histogram(data, xlabel=cols[0] if len(cols) == 1 else "")
        elif kind == "box":
            fig = plots.boxplot({col: frame[col] for col in cols})
        else:
            fig = plots.corner(frame[cols].astype(float))
    elif kind == "scatter":
        cols = _columns(frame, ",".join(v for v in (x, y, c) if v), table, "--x/--y")
        if len(cols) < 2:
            raise typer.BadParameter("scatter needs --x and --y")
        fig = plots.scatter(
            frame[cols[0]],
            frame[cols[1]],
            c=frame[cols[2]] if c else None,
            xlabel=cols[0],
            ylabel=cols[1],
            clabel=c or "",
        )
    else:
        cols = _columns(frame, ",".join(v for v in (x, y) if v), table, "--x/--y")
        if len(cols) < 2:
            raise typer.BadParameter("parity needs --x (true) and --y (predicted)")
        bounds = _columns(frame, f"{lower},{upper}", table, "") if lower and upper else None
        fig = plots.parity(
            frame[cols[0]],
            frame[cols[1]],
            lower=frame[bounds[0]] if bounds else None,
            upper=frame[bounds[1]] if bounds else None,
            label=cols[1],
        )
    path = plots.save_figure(fig, out)
    typer.echo(f"wrote {path}")


def register(app: typer.Typer) -> None:
    app.add_typer(stats_app, name="stats")
