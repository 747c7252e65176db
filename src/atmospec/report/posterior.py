"""The report of an ``atmospec posterior sample`` folder: each object's posterior summary,
its warnings and its corner plot."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from atmospec.errors import FileFormatError
from atmospec.report.html import esc, png_html, table_html

__all__ = ["POSTERIOR_RECORD", "posterior_sections", "summary_frame"]

POSTERIOR_RECORD = "posterior.json"
"""The record ``atmospec posterior sample`` writes beside its samples: model, seed, versions,
and each file's warnings."""


def summary_frame(samples: dict[str, Any], warnings: dict[str, list[str]]) -> Any:
    """One row per object: ``<param> [unit]`` as ``median [p16, p84]`` and the number of
    warnings.

    Example:
        >>> import numpy as np, pandas as pd
        >>> s = pd.DataFrame({"teff": np.arange(1000.0, 1101.0)})
        >>> row = summary_frame({"obj": s}, {"obj": ["at the edge"]}).iloc[0]
        >>> row["object"], int(row["samples"]), row["teff [K]"], int(row["warnings"])
        ('obj', 101, '1050 [1016, 1084]', 1)
    """
    import numpy as np
    import pandas as pd

    from atmospec.grids.parameters import with_unit

    rows = []
    for name, frame in samples.items():
        row: dict[str, Any] = {"object": name, "samples": len(frame)}
        for col in frame.columns:
            lo, mid, hi = np.percentile(frame[col].to_numpy(dtype=float), [16, 50, 84])
            row[with_unit(col)] = f"{mid:.4g} [{lo:.4g}, {hi:.4g}]"
        row["warnings"] = len(warnings.get(name, []))
        rows.append(row)
    return pd.DataFrame(rows)


def _corner_html(frame: Any, caption: str) -> str:
    from matplotlib import pyplot as plt

    from atmospec.plots import corner

    fig = corner(frame, label=caption)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return png_html(buf.getvalue(), caption)


def _summary_text(summary: Any) -> str:
    """One line of a run's counts (older records have none).

    Example:
        >>> _summary_text({"files": 3, "sampled": 2, "with_warnings": 1, "refused": 0,
        ...                "unusable": 1})
        '3: 2 sampled, 1 with warnings, 0 refused, 1 unusable'
    """
    if not isinstance(summary, dict):
        return ""
    return (
        f"{summary.get('files', '')}: {summary.get('sampled', '')} sampled, "
        f"{summary.get('with_warnings', '')} with warnings, {summary.get('refused', '')} "
        f"refused, {summary.get('unusable', '')} unusable"
    )


def posterior_sections(d: Path, max_objects: int) -> tuple[str, list[tuple[str, str]]]:
    """Title and sections of the page: the run (model, seed, what the intervals are), the
    summary table (flagged rows for objects with warnings), each warning, the corner plots of
    at most ``max_objects`` objects.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> _ = (d / "c.csv").write_text("teff,logg\\n1000,5.0\\n1100,5.5\\n")
        >>> objects = {"a": {"warnings": ["at the grid edge"]}, "b": {"error": "no flux"},
        ...            "c": {"samples": "c.csv"}}
        >>> rec = {"model": "npe_dback24", "seed": 1, "objects": objects}
        >>> _ = (d / POSTERIOR_RECORD).write_text(json.dumps(rec))
        >>> title, sections = posterior_sections(d, max_objects=0)
        >>> title
        'atmospec posterior: npe_dback24'
        >>> [name for name, _ in sections]
        ['Run', 'Posteriors', 'Refused', 'Could not be used', 'Warnings']
        >>> "<td>1050 [1016, 1084]</td>" in dict(sections)["Posteriors"]
        True
    """
    import pandas as pd

    try:
        rec = dict(json.loads((d / POSTERIOR_RECORD).read_text(encoding="utf-8")))
    except (OSError, ValueError) as err:
        raise FileFormatError(f"{d / POSTERIOR_RECORD}: unreadable run record ({err})") from None
    objects: dict[str, dict[str, Any]] = dict(rec.get("objects", {}))
    warnings = {k: list(v.get("warnings", [])) for k, v in objects.items()}
    samples = {
        k: pd.read_csv(d / v["samples"])
        for k, v in objects.items()
        if v.get("samples") and (d / v["samples"]).is_file()
    }
    info = [
        ("model", rec.get("model", "")),
        ("grid", rec.get("grid", "")),
        ("samples per object", rec.get("n", "")),
        ("files", _summary_text(rec.get("summary"))),
        ("seed", rec.get("seed", "")),
        ("atmospec", dict(rec.get("versions", {})).get("atmospec", "")),
        ("created", rec.get("created", "")),
    ]
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in info if v != "")
    scope = esc(rec.get("intervals", "posterior"))
    intro = f'<table>{rows}</table><p class="note">Intervals: 16-84 % of the {scope}.</p>'
    sections = [("Run", intro)]
    errors = {k: str(v["error"]) for k, v in objects.items() if v.get("error")}
    refused = sorted(set(objects) - set(samples) - set(errors))
    table = summary_frame(samples, warnings)
    if not table.empty:
        table["flag"] = table["warnings"] > 0
        sections.append(("Posteriors", table_html(table, flag_column="flag")))
    if refused:
        sections.append(
            ("Refused", "<p>No samples written for " + esc(", ".join(refused)) + ".</p>")
        )
    if errors:
        items = "".join(f"<li><b>{esc(k)}</b>: {esc(e)}</li>" for k, e in errors.items())
        sections.append(("Could not be used", f"<ul>{items}</ul>"))
    for title, key in (("Warnings", "warnings"), ("Notes", "notes")):
        said = [(k, w) for k, v in objects.items() for w in v.get(key, [])]
        if said:
            items = "".join(f"<li><b>{esc(k)}</b>: {esc(w)}</li>" for k, w in said)
            sections.append((title, f"<ul>{items}</ul>"))
    figs = [_corner_html(f, k) for k, f in list(samples.items())[:max_objects]]
    if figs:
        sections.append(("Corner plots", '<div class="figs">' + "".join(figs) + "</div>"))
    return f"atmospec posterior: {rec.get('model', d.name)}", sections
