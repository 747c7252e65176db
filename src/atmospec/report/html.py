"""HTML building blocks: escaped text, tables from DataFrames, PNGs embedded as base64."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["esc", "table_html", "image_html", "png_html", "page", "STYLE"]

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1200px;color:#222;padding:0 1em}
h1{font-size:1.6em}h2{font-size:1.25em;border-bottom:1px solid #ccc;padding-bottom:.2em;
margin-top:2em}h3{font-size:1.05em}
table{border-collapse:collapse;font-size:.82em;margin:.5em 0}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
tr.flag td{background:#fff1f0}.note{color:#555;font-size:.9em}
.figs{display:flex;flex-wrap:wrap;gap:1em}.figs figure{margin:0}
figcaption{font-size:.8em;color:#444}img{max-width:100%;border:1px solid #eee}
.badge{display:inline-block;padding:0 .4em;border-radius:.3em;background:#c0392b;color:#fff;
font-size:.8em}
"""


def esc(text: object) -> str:
    """HTML-escaped text.

    Example:
        >>> esc("<b>&")
        '&lt;b&gt;&amp;'
    """
    return html.escape(str(text), quote=True)


def table_html(frame: pd.DataFrame, *, max_rows: int = 500, flag_column: str | None = None) -> str:
    """A DataFrame as an HTML table (numbers to 4 significant digits, text escaped).

    Rows where ``flag_column`` is true are highlighted. Longer tables are cut at ``max_rows``
    with a note.

    Example:
        >>> import pandas as pd
        >>> "<td>1.235</td>" in table_html(pd.DataFrame({"a": [1.23456]}))
        True
    """
    import numpy as np

    shown = frame.head(max_rows)
    head = "".join(f"<th>{esc(c)}</th>" for c in shown.columns)
    body = []
    for _, row in shown.iterrows():
        cells = []
        for v in row.tolist():
            if isinstance(v, (float, np.floating)):
                cells.append("" if not np.isfinite(v) else f"{v:.4g}")
            elif isinstance(v, (bool, np.bool_)):
                cells.append("yes" if v else "")
            else:
                cells.append(esc(v))
        flagged = False
        if flag_column is not None and flag_column in row.index:
            val = row[flag_column]
            flagged = bool(val) and str(val).lower() not in ("false", "0", "nan", "")
        cls = ' class="flag"' if flagged else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    note = ""
    if len(frame) > max_rows:
        note = (
            f'<p class="note">showing {max_rows} of {len(frame)} rows (full table in the run)</p>'
        )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{note}"


def image_html(path: Path, caption: str = "", *, width: int | None = None) -> str:
    """A PNG file embedded as a base64 data URI inside a captioned figure.

    Example:
        >>> import tempfile
        >>> png = Path(tempfile.mkdtemp()) / "fig.png"
        >>> _ = png.write_bytes(b"PNG")
        >>> image_html(png, "a<b", width=300)[:79]
        '<figure><img style="width:300px" src="data:image/png;base64,UE5H" alt="a&lt;b">'
    """
    return png_html(Path(path).read_bytes(), caption, width=width)


def png_html(png: bytes, caption: str = "", *, width: int | None = None) -> str:
    """PNG bytes embedded as a base64 data URI inside a captioned figure.

    Example:
        >>> png_html(b"PNG", "HD 3651B")[:61]
        '<figure><img src="data:image/png;base64,UE5H" alt="HD 3651B">'
    """
    data = base64.b64encode(png).decode("ascii")
    style = f' style="width:{width}px"' if width else ""
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f'<figure><img{style} src="data:image/png;base64,{data}" alt="{esc(caption)}">{cap}</figure>'


def page(title: str, sections: list[tuple[str, str]], footer: str = "") -> str:
    """A complete HTML document (inline CSS, no external resources).

    Example:
        >>> doc = page("HD 3651B", [("Run", "<p>ok</p>")], footer="made by atmospec")
        >>> doc.startswith("<!DOCTYPE html>"), "<title>HD 3651B</title>" in doc
        (True, True)
        >>> doc.splitlines()[-2:]
        ['<h2>Run</h2>', '<p>ok</p><hr><p class="note">made by atmospec</p></body></html>']
    """
    parts = [f"<h2>{esc(t)}</h2>\n{body}" for t, body in sections]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{esc(title)}</h1>\n"
        + "\n".join(parts)
        + (f'<hr><p class="note">{footer}</p>' if footer else "")
        + "</body></html>\n"
    )
