"""The report as one self-contained HTML page: inline CSS, inline SVG plots, tables, and for
each section the SQL that made its numbers. No script, no font, no link to anything outside
the file: it opens offline, from a mail attachment or a cluster's shared directory alike."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from datacrumbs.report.insights import THRESHOLDS, Insight
from datacrumbs.report.load import LOAD_SQL
from datacrumbs.report.queries import QUERIES, WHO, JobNumbers
from datacrumbs.report.views import Table, View

__all__ = ["cell", "page"]

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0;font-size:13px}
th,td{padding:.25em .7em;border-bottom:1px solid #eee;text-align:right}
th{background:#f5f5f5}td.l,th.l{text-align:left}
.high{color:#b00020;font-weight:600}.warn{color:#b36b00;font-weight:600}.ok{color:#2e7d32}
.info{color:#555}figure{margin:.6em 0}figure svg{max-width:100%;height:auto}
details{margin:.4em 0;color:#555}pre{background:#f7f7f7;padding:.6em;overflow-x:auto;font-size:12px}
p.note{color:#555}
"""


def _table(table: Table) -> str:
    """Names left, numbers right."""
    head = "".join(
        f'<th class="{"l" if i == 0 else ""}">{html.escape(h)}</th>'
        for i, h in enumerate(table.header)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{"l" if i == 0 or isinstance(v, str) else ""}">{html.escape(cell(v))}</td>'
            for i, v in enumerate(row)
        )
        + "</tr>"
        for row in table.rows
    )
    if not table.rows:
        return f"<p class='note'>{html.escape(table.caption or table.header[0])}: none</p>"
    caption = f"<caption>{html.escape(table.caption)}</caption>" if table.caption else ""
    return f"<table>{caption}<tr>{head}</tr>{body}</table>"


def cell(value: Any) -> str:
    """A number or name as the report shows it."""
    if value is None:
        return "-"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.3f}"
    return str(value)


def _section(view: View, svg: str | None) -> str:
    figure = f'<figure class="plot" id="plot-{view.key}">{svg}</figure>' if svg else ""
    how = "".join(f"<pre>{html.escape(QUERIES[q].strip())}</pre>" for q in view.queries)
    notes = "".join(f'<p class="note">{html.escape(n)}</p>' for n in view.notes)
    return (
        f'<section id="{view.key}"><h2>{html.escape(view.title)}</h2>'
        f"<p>{html.escape(view.meaning)}</p>{figure}{''.join(map(_table, view.tables))}{notes}"
        f"<details><summary>How: the queries</summary>{how}</details></section>"
    )


def page(
    title: str,
    sections: Sequence[View],
    svgs: Mapping[str, str],
    found: Sequence[Insight],
    numbers: JobNumbers,
) -> str:
    """The whole page."""
    cards = (
        "".join(
            f'<li class="{i.level}">{html.escape(i.level.upper())}: {html.escape(i.title)} — '
            f"{html.escape(i.detail)}</li>"
            for i in found
            if i.level in ("high", "warn")
        )
        or '<li class="ok">no insight crossed its threshold</li>'
    )
    how = (
        "<section id='how'><h2>How these numbers were made</h2><p>Every table is a DuckDB "
        "query over two tables loaded from the traces: <code>rec</code> (one row per traced "
        "call or aggregate) and <code>meta</code> (one per metadata record). Load them, then "
        "run any section's query, to get its numbers again. Thresholds: "
        f"{html.escape(', '.join(f'{k} {v}' for k, v in THRESHOLDS.items()))}.</p>"
        f"<pre>{html.escape(LOAD_SQL.strip())}</pre><pre>{html.escape(WHO.strip())}</pre>"
        "</section>"
    )
    cut = "".join(f"<li class='high'>cut trace: {html.escape(p)}</li>" for p in numbers.cut)
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><ul>{cut}{cards}</ul>"
        + "".join(_section(v, svgs.get(v.key)) for v in sections)
        + how
        + "</body></html>\n"
    )
