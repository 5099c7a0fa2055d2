"""The report in the terminal: the same sections and numbers as the page, as rich tables (long
tables cut to their first rows, with the count of the rest)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table as RichTable

from datacrumbs.report.page import cell
from datacrumbs.report.views import View

__all__ = ["show"]

_STYLE = {"HIGH": "bold red", "WARN": "bold yellow", "OK": "green", "INFO": "dim"}


def show(console: Console, sections: Sequence[View], rows: int = 12) -> None:
    for view in sections:
        if not view.tables:
            continue
        console.rule(f"[bold]{view.title}")
        for table in view.tables:
            if not table.rows:
                continue
            out = RichTable(title=table.caption or None, show_edge=False, pad_edge=False)
            for i, name in enumerate(table.header):
                if i == 0:
                    out.add_column(name, overflow="fold", min_width=16)
                else:
                    out.add_column(name, justify="right", no_wrap=True)
            for row in table.rows[:rows]:
                out.add_row(
                    *(
                        f"[{_STYLE[v]}]{v}[/]" if isinstance(v, str) and v in _STYLE else cell(v)
                        for v in row
                    )
                )
            console.print(out)
            if len(table.rows) > rows:
                console.print(f"  … and {len(table.rows) - rows:,} more rows (in the HTML page)")
