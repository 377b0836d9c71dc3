"""HTML building blocks shared by ``volseg report`` and ``volseg compare``.

Every page is one file: styles, scripts, pictures (``data:`` URIs) and volumes are inlined,
and a Content-Security-Policy forbids the page from loading anything from elsewhere, so it
works from ``file://``, with no network and no server, and can be e-mailed.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import math
from collections.abc import Mapping, Sequence
from importlib.resources import files
from pathlib import Path

import numpy as np

from volseg._atomic import atomic_path
from volseg.report.tables import is_count_column

__all__ = ["cell", "esc", "json_script", "page", "table", "write_page"]

# Nothing may leave the file: inline code and data only ('unsafe-eval': NiiVue compiles
# functions at run time; data:/blob: carry the volumes, pictures and WebGL textures).
CSP = (
    "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; "
    "img-src data: blob:; connect-src data: blob:; worker-src blob:; font-src data:"
)


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _static(name: str) -> str:
    return files("volseg.report").joinpath("static", name).read_text(encoding="utf-8")


def _inline_script(code: str) -> str:
    """A ``<script>`` element; ``</script`` inside the code is split so it cannot end it."""
    return "<script>" + code.replace("</script", "<\\/script") + "</script>"


def json_script(element_id: str, data: object) -> str:
    """Data for the page's scripts, in a ``<script type="application/json">`` element."""
    text = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    return f'<script type="application/json" id="{esc(element_id)}">{text}</script>'


def cell(value: object, count: bool = False) -> str:
    """A table cell: numbers right-aligned with a sortable ``data-value``, text escaped.

    ``count``: the column holds counts, so a whole float is written as an integer (``2``).
    """
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        return f'<td class="text">{esc("" if value is None else value)}</td>'
    v = float(value)
    if isinstance(value, int | np.integer) or (count and v.is_integer()):
        text = str(int(v))
    elif math.isnan(v):
        text = "nan"
    elif math.isinf(v):
        text = "inf" if v > 0 else "-inf"
    else:
        text = f"{v:.4f}" if abs(v) < 1e4 else f"{v:.4g}"
    return f'<td data-value="{v!r}">{text}</td>'


def table(
    rows: Sequence[Mapping[str, object]],
    columns: Sequence[str],
    *,
    table_id: str = "",
    sortable: bool = False,
    headers: Mapping[str, str] | None = None,
    row_classes: Sequence[str] | None = None,
    extra: Sequence[str] | None = None,
) -> str:
    """An HTML table; ``extra`` is raw HTML appended to each row (a button), ``headers``
    renames columns."""
    headers = headers or {}
    attrs = f' id="{esc(table_id)}"' if table_id else ""
    attrs += ' class="sortable"' if sortable else ""
    head = "".join(f"<th>{esc(headers.get(c, c))}</th>" for c in columns)
    head += "<th></th>" if extra else ""
    counts = {c: is_count_column(c, rows) for c in columns}
    body = []
    for i, row in enumerate(rows):
        css = f' class="{esc(row_classes[i])}"' if row_classes and row_classes[i] else ""
        cells = "".join(cell(row.get(c), counts[c]) for c in columns)
        cells += f"<td>{extra[i]}</td>" if extra else ""
        body.append(f"<tr{css}>{cells}</tr>")
    return f"<table{attrs}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def page(title: str, body: str, scripts: Sequence[str] = ()) -> str:
    """The whole document: head with the inlined style, ``body``, then the inlined scripts."""
    from volseg import __version__

    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join(
        [
            "<!doctype html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{esc(title)}</title>",
            f"<style>{_static('report.css')}</style>",
            "</head><body>",
            f"<h1>{esc(title)}</h1>",
            f'<p class="meta">written by volseg {esc(__version__)} on {stamp}</p>',
            body,
            *[_inline_script(code) for code in scripts],
            _inline_script(_static("report.js")),
            "</body></html>",
        ]
    )


def write_page(text: str, path: str | Path) -> Path:
    """Write the page atomically (a temporary file, then a rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, ".html") as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path
