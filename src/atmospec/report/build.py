"""Build the report of a run folder: predict runs, fit runs, or any folder of tables and PNGs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from atmospec.errors import DataNotFoundError, FileFormatError
from atmospec.report.html import esc, image_html, page, table_html
from atmospec.report.posterior import POSTERIOR_RECORD, posterior_sections

__all__ = ["write_report", "run_kind"]


def _json(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as err:
        raise FileFormatError(f"{path}: unreadable run record ({err})") from None


def run_kind(run_dir: str | os.PathLike[str]) -> str:
    """``"predict"``, ``"fit"``, ``"posterior"`` (``atmospec posterior sample``) or
    ``"folder"`` (any other folder with tables or figures).

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> run_kind(d)
        'folder'
        >>> _ = (d / "fit.json").write_text("{}")
        >>> run_kind(d)
        'fit'
    """
    d = Path(run_dir)
    if (d / "predictions.csv").exists() or (d / "parts").is_dir():
        return "predict"
    if (d / "fit.json").exists():
        return "fit"
    if (d / POSTERIOR_RECORD).exists():
        return "posterior"
    return "folder"


def _read_csv(path: Path) -> Any:
    import pandas as pd

    return pd.read_csv(path, keep_default_na=True)


def _prediction_summary(df: Any) -> Any:
    """A compact view: name, source, median [p16, p84] per parameter, flags, chi2_red."""
    import pandas as pd

    from atmospec.grids.parameters import with_unit

    params = [c[: -len("_median")] for c in df.columns if c.endswith("_median")]
    view = pd.DataFrame({"name": df.get("name", df["source"]), "source": df["source"]})
    for p in params:
        view[with_unit(p)] = [
            f"{m:.4g} [{lo:.4g}, {hi:.4g}]"
            for m, lo, hi in zip(df[f"{p}_median"], df[f"{p}_p16"], df[f"{p}_p84"], strict=True)
        ]
    for c in (
        "ood_flag",
        "ood_score",
        "ood_reason",
        "outside_grid",
        "misfit_score",
        "misfit_flag",
        "grids_used",
        "grids_disagree",
        "low_resolution",
        "flux_unit_suspect",
        "teff_inflation",
        "chi2_red",
        "dof",
        "snr",
    ):
        if c in df.columns:
            view[c] = df[c]
    lit = [c for c in df.columns if c.startswith("lit_")]
    for c in lit:
        view[c] = df[c]
    return view


def _predict_sections(d: Path, max_objects: int) -> tuple[str, list[tuple[str, str]]]:
    record = _json(d / "run.json") if (d / "run.json").exists() else {}
    if not (d / "predictions.csv").exists():
        from atmospec.prediction.batch import merge_parts

        merge_parts(d)
    df = _read_csv(d / "predictions.csv") if (d / "predictions.csv").exists() else None
    sections: list[tuple[str, str]] = []
    model = record.get("model_id", "")
    info = [
        ("model", model),
        ("grid", record.get("grid", "")),
        ("draws", record.get("draws", "")),
        ("coverage policy", record.get("coverage", "")),
        ("spectra predicted", 0 if df is None else len(df)),
        ("wall time [s]", f"{record.get('wall_time_s', float('nan')):.1f}"),
        ("throughput [spectra/s]", f"{record.get('spectra_per_s', float('nan')):.1f}"),
    ]
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in info if v != "")
    what = str(record.get("intervals") or "") or (
        "predictive percentiles of samples that combine Monte Carlo over the flux errors with "
        "the estimator's own uncertainty"
    )
    intro = (
        f'<table>{rows}</table><p class="note">Intervals (16-84 % and 2.5-97.5 %) are '
        f"{esc(what)}. <b>ood_flag</b> marks spectra unlike the synthetic "
        "spectra the model learned (ood_score &gt; 1; calibrated for &le; 5 % false alarms on "
        "in-grid synthetic spectra); <b>chi2_red</b> compares the grid model at the median "
        "prediction with the data (flux scale solved, dof = pixels - parameters - 1). With "
        "several grids (<code>--model default</code>): the percentiles are the combined "
        "estimate of every grid that covers the object (the spread between grids included), "
        "<b>outside_grid</b> marks objects outside the primary grid's parameters (the grids "
        "that cover them answer, and chi2_red is the best node of the one that fits best), "
        "<b>misfit_flag</b> residuals beyond the learned model of mismatch of most covering grids (both of two, two of three), and <b>ood_flag</b> is "
        "outside_grid, misfit_flag or flux_unit_suspect: ood_score then stays the primary "
        "grid's learned model's own score, which decides which of its models serves the row "
        "and on real spectra often exceeds 1 where the learned mismatch allows the residuals; "
        "<b>teff_inflation</b> "
        "is the combined 68 % width over the primary grid's own (empty for a row outside the "
        "primary grid: it has no width of its own there). <b>low_resolution</b> marks "
        "spectra of lower resolution than the SpeX prism's of the built-in grids (sampled "
        "too coarsely, or so stated with --resolution): their features are broader than the "
        "models' (the object's text says more). <b>flux_unit_suspect</b> marks a flux read as "
        "F_lambda because its file gave no unit, which most grids reproduce far better read as "
        "F_nu (rerun with --flux-unit).</p>"
    )
    sections.append(("Run", intro))
    if df is None or df.empty:
        sections.append(("Predictions", "<p>No spectrum was predicted.</p>"))
    else:
        n_flag = int(df["ood_flag"].astype(str).str.lower().eq("true").sum())
        badge = f' <span class="badge">{n_flag} flagged</span>' if n_flag else ""
        sections.append(
            (
                "Predictions",
                f"<p>{len(df)} spectra{badge}.</p>"
                + table_html(_prediction_summary(df), flag_column="ood_flag"),
            )
        )
        figs = _object_figures(d, df, max_objects)
        if figs:
            sections.append(("Objects", figs))
    fails = d / "failures.csv"
    if fails.exists():
        f = _read_csv(fails)
        if len(f):
            sections.append((f"Spectra not used ({len(f)})", table_html(f)))
    return f"atmospec predict: {model}", sections


def _row_sentences(df: Any, i: int) -> str:
    """What a prediction says in words about row ``i``: a spectrum coarser than the models or
    smoothed to them, a flux unit assumed, and with several grids coverage, disagreement and a flux that reads as
    F_nu."""
    if "notes" not in df.columns:
        return ""
    notes = df["notes"].iloc[i]
    if not isinstance(notes, str):
        return ""
    # "coarser than the R >=": both forms of the low-resolution note (sampled, or stated R)
    keys: tuple[str, ...] = ("coarser than the R >=", "smoothed from R", "no flux unit in the file")
    if "grids_used" in df.columns:
        keys += (
            "disagree",
            "outside the parameters",
            "no grid covers",
            "left out of the combination",
            "flux unit suspect",
            "coarser than the SpeX prism spectra",
        )
    return " ".join(n.strip() + "." for n in notes.split(";") if any(k in n for k in keys))


def _object_figures(d: Path, df: Any, max_objects: int) -> str:
    from atmospec.prediction.result import object_stem

    blocks = []
    names = df.get("name", df["source"])
    for i, (source, name) in enumerate(zip(df["source"], names, strict=True)):
        if i >= max_objects:
            blocks.append(
                f'<p class="note">figures of {len(df) - max_objects} more objects are in '
                f"{esc(d / 'objects')}</p>"
            )
            break
        stem = object_stem(str(source), str(name))
        imgs = []
        for suffix, cap in (
            ("_fit.png", "data over the grid model(s); residual with the model-error band"),
            ("_corner.png", "predictive samples"),
        ):
            path = d / "objects" / f"{stem}{suffix}"
            if path.exists():
                imgs.append(image_html(path, cap))
        if imgs:
            flag = str(df["ood_flag"].iloc[i]).lower() == "true" if "ood_flag" in df else False
            badge = ' <span class="badge">out of distribution</span>' if flag else ""
            reason = df["ood_reason"].iloc[i] if "ood_reason" in df else ""
            why = (
                f' <span class="note">({esc(reason)})</span>'
                if flag and isinstance(reason, str)
                else ""
            )
            said = _row_sentences(df, i)
            blocks.append(
                f'<h3>{esc(name)} <span class="note">{esc(source)}</span>{badge}{why}</h3>'
                + (f'<p class="note">{esc(said)}</p>' if said else "")
                + f'<div class="figs">{"".join(imgs)}</div>'
            )
    return "\n".join(blocks)


def _fit_sections(d: Path) -> tuple[str, list[tuple[str, str]]]:
    import pandas as pd

    rec = _json(d / "fit.json")
    sections: list[tuple[str, str]] = []
    keys = (
        "source",
        "grid",
        "method",
        "chi2",
        "dof",
        "chi2_red",
        "p_value",
        "n_pix",
        "n_fitted",
        "scale",
        "inflation",
        "radius_rjup",
        "logz",
        "logz_err",
        "wall_time_s",
    )
    summary = pd.DataFrame({"quantity": list(keys), "value": [rec.get(k) for k in keys]})
    summary = summary[summary["value"].notna()]
    body = ""
    # what makes the answer doubtful (a Teff in the grid's edge cell: a limit; a misfit
    # beyond the grid's model of mismatch) leads the page, as it leads the CLI's output
    said = rec.get("warnings") or []
    if said:
        badge = f' <span class="badge">{len(said)} warning{"s" if len(said) > 1 else ""}</span>'
        body += f"<h3>Warnings{badge}</h3><ul>" + "".join(f"<li>{esc(w)}</li>" for w in said)
        body += "</ul>"
    body += table_html(summary.astype({"value": str}))
    best = rec.get("best") or {}
    if best:
        body += "<h3>Best fit</h3>" + table_html(pd.DataFrame([best]))
    post = rec.get("summary")
    if post:
        body += "<h3>Posterior percentiles</h3>" + table_html(
            pd.DataFrame(post).T.reset_index(names="parameter")
        )
    notes = rec.get("notes") or []
    if notes:
        body += "<ul>" + "".join(f'<li class="note">{esc(n)}</li>' for n in notes) + "</ul>"
    sections.append(("Fit", body))
    figs = [
        image_html(d / n, c)
        for n, c in (("fit.png", "data over the best model"), ("corner.png", "posterior samples"))
        if (d / n).exists()
    ]
    if figs:
        sections.append(("Figures", f'<div class="figs">{"".join(figs)}</div>'))
    if (d / "nodes.csv").exists():
        sections.append(("Best grid nodes", table_html(_read_csv(d / "nodes.csv").head(15))))
    title = f"atmospec fit: {rec.get('source', '')} with {rec.get('grid', '')} ({rec.get('method', '')})"
    return title, sections


def _folder_sections(d: Path, max_objects: int) -> tuple[str, list[tuple[str, str]]]:
    from astropy.table import Table

    sections: list[tuple[str, str]] = []
    for path in sorted(d.glob("*.ecsv")):
        frame = Table.read(path, format="ascii.ecsv").to_pandas()
        sections.append((path.name, table_html(frame, flag_column="ood_flag")))
    for path in sorted(d.glob("*.csv")):
        if not (d / f"{path.stem}.ecsv").exists():
            sections.append((path.name, table_html(_read_csv(path), flag_column="ood_flag")))
    pngs = sorted(d.glob("*.png"))[: 4 * max_objects]
    if pngs:
        sections.append(
            (
                "Figures",
                '<div class="figs">'
                + "".join(image_html(p, p.stem.replace("_", " ")) for p in pngs)
                + "</div>",
            )
        )
    for sub in sorted(p for p in d.iterdir() if p.is_dir() and p.name not in ("parts", "objects")):
        kind = run_kind(sub)
        if kind == "folder" and not any(sub.glob("*.png")) and not any(sub.glob("*.csv")):
            continue
        title, inner = _sections(sub, max_objects)
        sections.append((title, "\n".join(f"<h3>{esc(t)}</h3>{b}" for t, b in inner)))
    if not sections:
        raise FileFormatError(
            f"{d}: no predict or fit results here (expected predictions.csv, fit.json, or "
            "tables / PNG figures)"
        )
    return f"atmospec report: {d.name}", sections


def _sections(d: Path, max_objects: int) -> tuple[str, list[tuple[str, str]]]:
    kind = run_kind(d)
    if kind == "predict":
        return _predict_sections(d, max_objects)
    if kind == "fit":
        return _fit_sections(d)
    if kind == "posterior":
        return posterior_sections(d, max_objects)
    return _folder_sections(d, max_objects)


def write_report(
    run_dir: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    title: str | None = None,
    max_objects: int = 60,
    extra_sections: list[tuple[str, str]] | None = None,
    intro_sections: list[tuple[str, str]] | None = None,
) -> Path:
    """Write one self-contained HTML page (tables, base64-embedded PNGs) for a run folder.

    Recognises ``atmospec predict`` folders (``predictions.csv``, ``run.json``,
    ``objects/``), ``atmospec fit --out`` folders (``fit.json``, ``fit.png``, ...),
    ``atmospec posterior sample`` folders (``posterior.json``) and, for any other folder,
    shows its ECSV/CSV tables and PNG figures (sub-folders too).

    Args:
        run_dir: the run folder.
        out: the HTML file (default ``run_dir/report.html``), written atomically.
        title: page title (default from the run).
        max_objects: embed figures of at most this many objects (the HTML stays small).
        extra_sections: ``(title, html)`` sections appended.
        intro_sections: ``(title, html)`` sections put first (e.g. by the demo).

    Returns:
        The path of the HTML file.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> _ = (d / "scores.csv").write_text("name,teff\\nHD 3651B,820.5\\n")
        >>> html = write_report(d, title="scores")
        >>> html.name
        'report.html'
        >>> text = html.read_text(encoding="utf-8")
        >>> "<h2>scores.csv</h2>" in text, "<td>HD 3651B</td><td>820.5</td>" in text
        (True, True)
    """
    from atmospec import __version__
    from atmospec._fileio import atomic_open

    d = Path(run_dir)
    if not d.is_dir():
        raise DataNotFoundError(f"{d}: no such run folder")
    auto_title, sections = _sections(d, max_objects)
    sections = list(intro_sections or []) + sections + list(extra_sections or [])
    target = Path(out) if out is not None else d / "report.html"
    footer = esc(f"written by atmospec {__version__} from {d.resolve()}")
    with atomic_open(target, "w", encoding="utf-8") as fh:
        fh.write(page(title or auto_title, sections, footer))
    return target
