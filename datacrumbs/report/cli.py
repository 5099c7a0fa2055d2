"""``datacrumbs_report``: one job's traces from all its nodes, answered in one page.

Reads every trace given (or every ``*.pfw.gz`` in a directory given), in trace or profile mode,
whole or cut, loads them into DuckDB (:mod:`.load`), computes the sections (:mod:`.queries`,
:mod:`.insights`), prints them and writes a self-contained HTML page with the plots."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import duckdb
from rich.console import Console

from datacrumbs.common.atomic_file import write_atomically
from datacrumbs.common.errors import DatacrumbsError, run_cli
from datacrumbs.report.drishti import export
from datacrumbs.report.insights import insights
from datacrumbs.report.load import find_traces, load
from datacrumbs.report.page import page
from datacrumbs.report.plots import plots
from datacrumbs.report.queries import compute
from datacrumbs.report.terminal import show
from datacrumbs.report.views import job_span, views

__all__ = ["main"]

PROG = "datacrumbs_report"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="The I/O report of one job: every node's trace read together, shown in "
        "the terminal and written as one HTML page that opens offline.",
    )
    p.add_argument("traces", nargs="+", help="the job's traces, or a directory holding them")
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("datacrumbs-report.html"),
        help="the HTML page to write (default: %(default)s)",
    )
    p.add_argument(
        "--json",
        type=Path,
        metavar="FILE",
        help="also write every section's numbers as JSON ('-': standard output)",
    )
    p.add_argument("--drishti", type=Path, metavar="OUT",
                   help="also write the tables Drishti reads (OUT.*.csv and an empty directory "
                   "OUT: run 'drishti OUT')")  # fmt: skip
    p.add_argument("--no-html", action="store_true", help="write no page")
    p.add_argument("--quiet", action="store_true", help="print only where the page went")
    p.add_argument(
        "--memory-mb",
        type=int,
        default=1024,
        help="memory the load and queries may use before spilling to a temporary "
        "directory (default: %(default)s)",
    )
    p.add_argument("--threads", type=int, default=0, help="threads (default: every CPU)")
    return p


def _write(path: Path, text: str) -> None:
    try:
        write_atomically(path, text, mode=0o644)
    except OSError as exc:
        raise DatacrumbsError(f"{path}: cannot write: {exc.strerror}") from None


def _main(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    if args.memory_mb < 64:
        raise DatacrumbsError("--memory-mb must be at least 64")
    traces = find_traces(args.traces)
    started = time.monotonic()
    try:
        tables = load(traces, memory_mb=args.memory_mb, threads=args.threads or None)
        try:
            numbers = compute(tables)
            drishti = export(tables, args.drishti) if args.drishti else None
        finally:
            tables.close()
    except duckdb.OutOfMemoryException:
        raise DatacrumbsError(
            f"the report needs more than --memory-mb {args.memory_mb} for these traces"
        ) from None
    except duckdb.Error as exc:
        raise DatacrumbsError(f"cannot read the traces: {str(exc).splitlines()[0]}") from None
    found = insights(numbers)
    sections = views(numbers, found)
    to_stderr = args.json == Path("-")
    # not a terminal (a pipe, a file, a job's output): as wide as the widest table needs
    tty = (sys.stderr if to_stderr else sys.stdout).isatty()
    console = Console(stderr=to_stderr, width=None if tty else 200)
    if not args.quiet:
        show(console, sections)
    if args.json:
        data = json.dumps(
            {
                "sections": numbers.sections,
                "cut": numbers.cut,
                "insights": [vars(i) for i in found],
            },
            default=str,
        )
        if args.json == Path("-"):
            sys.stdout.write(data + "\n")
        else:
            _write(args.json, data + "\n")
    if drishti is not None:
        console.print(
            f"drishti: {drishti.out}.*.csv ({drishti.files} files with data, all named; "
            f"{drishti.unnamed_calls} calls on unnamed files left out); run: drishti {drishti.out}"
        )
    if not args.no_html:
        _, span = job_span(numbers)
        names = ", ".join(sorted({str(r["host"]) for r in numbers["traces"]}))
        text = page(
            f"datacrumbs report: {len(traces)} trace(s) from {names}",
            sections,
            plots(numbers, span),
            found,
            numbers,
        )
        _write(args.output, text)
        console.print(
            f"report: {os.path.abspath(args.output)} "
            f"({len(traces)} traces in {time.monotonic() - started:.1f} s)"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(PROG, lambda: _main(argv))
