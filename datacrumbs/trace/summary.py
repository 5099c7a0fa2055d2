"""``datacrumbs_summary``: what a trace holds, per function and per file, in one screen.

A newcomer's first question about a trace is "what did my job do?": how many calls of each
function, how many bytes, how long they took, which files, and whether anything was lost. This
module answers it from the trace alone, so it works on any trace the daemon wrote — also on one
whose daemon was killed (no closing ``]``, no gzip trailer: the lines up to the last flush are
read, the loss comes from the last in-band counter, and the output says the trace is cut).

Why it streams: traces hold millions of events. The file is decompressed in chunks and each
line is parsed once (``json.loads`` is ~1 µs a line, the same order as the rest of the
bookkeeping); nothing but the per-function and per-file totals is kept.

What "bytes" means: the bytes a call moved, i.e. its positive return value, for the data calls
(read, pread, readv, preadv, write, pwrite, writev, pwritev, sendfile, copy_file_range, splice,
by the libc-level name the trace gives them, io_uring's read and write requests among them;
fread and fwrite, whose ``ret`` the trace gives in bytes: ``common.dftracer_names.BYTE_RETURNS``)
and for other calls that ask for a size (``args.size``, e.g. readdir) when ``ret`` is within
it. A return value that is not a byte
count (``mmap``'s address, ``ftruncate``'s 0) adds nothing. Each layer counts its own calls:
an fwrite and the write(2) that flushes it are both counted, in their own rows (and both in
their file's row). A two-file call (copy_file_range, sendfile, splice, tee) counts in the row
of each file: the one written (``fhash``) and the one read (``args.in_fhash``).

Profile traces (``DATACRUMBS_MODE=profile``) are read the same way: each aggregated record
(``"ph": "C"`` with ``dft_cnt``; DFTracer 2.2's own, ``"ph": 3``, too) adds its ``dft_cnt``
calls, its ``dur_sum`` and, for the data calls, its
``ret_sum`` (the bytes of the calls that did not fail; calls that ask for a size are not told
apart in an aggregate, so only the data calls' bytes count there).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datacrumbs.common.dftracer_names import BYTE_RETURNS
from datacrumbs.common.errors import DatacrumbsError, run_cli
from datacrumbs.trace.reading import iter_trace_lines

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "FileTotals",
    "FunctionTotals",
    "TraceSummary",
    "how_to_open",
    "main",
    "render_tables",
    "summarize",
    "summary_lines",
]

PROG = "datacrumbs_summary"
_CHUNK = 1 << 20
_LOSS_KEYS = ("lost_events", "lost_names", "lost_tasks")
_DATA_CALLS = frozenset(name.encode() for name in BYTE_RETURNS)


@dataclass
class FunctionTotals:
    """One traced function (a name within a category)."""

    name: str
    cat: str
    count: int = 0
    bytes: int = 0
    total_us: int = 0

    @property
    def mean_us(self) -> float:
        return self.total_us / self.count if self.count else 0.0


@dataclass
class FileTotals:
    """The calls that named one file (by path, or by an fd the trace saw opened)."""

    path: str
    count: int = 0
    bytes: int = 0


@dataclass
class TraceSummary:
    """The totals of one trace (or of the processes ``pids`` in it)."""

    path: Path
    complete: bool = False  # the closing "]" line was read
    mode: str = "trace"  # or "profile": the trace holds aggregates (datacrumbs_mode)
    events: int = 0  # calls counted: complete ("X") events, or the aggregates' dft_cnt
    aggregated: int = 0  # of them, the calls inside aggregated records (profile mode, the valve)
    other_events: int = 0  # "X" events of processes left out by the pid filter
    lost: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_LOSS_KEYS, 0))
    functions: dict[tuple[str, str], FunctionTotals] = field(default_factory=dict)
    files: list[FileTotals] = field(default_factory=list)
    processes: dict[int, str] = field(default_factory=dict)  # pid -> command name
    host: str | None = None
    pids: frozenset[int] | None = None

    def sorted_functions(self) -> list[FunctionTotals]:
        return sorted(self.functions.values(), key=lambda f: (-f.count, f.cat, f.name))

    def to_json(self) -> dict[str, Any]:
        """The summary as plain JSON types (``--json``)."""
        return {
            "trace": str(self.path),
            "complete": self.complete,
            "mode": self.mode,
            "host": self.host,
            "pids": sorted(self.pids) if self.pids is not None else None,
            "events": self.events,
            "aggregated_calls": self.aggregated,
            "other_events": self.other_events,
            **self.lost,
            "functions": [
                {
                    "name": f.name,
                    "cat": f.cat,
                    "count": f.count,
                    "bytes": f.bytes,
                    "total_us": f.total_us,
                    "mean_us": round(f.mean_us, 3),
                }
                for f in self.sorted_functions()
            ],
            "files": [{"path": f.path, "count": f.count, "bytes": f.bytes} for f in self.files],
            "processes": [
                {"pid": pid, "comm": comm} for pid, comm in sorted(self.processes.items())
            ],
        }


# The daemon's complete-event line (datacrumbs.trace.format), matched without json.loads: about
# half its cost. A line it does not match (escapes in a name, another writer) is parsed as JSON.
_X_LINE = re.compile(
    rb'\{"id":\d+,"name":"([^"\\]*)","cat":"([^"\\]*)","pid":(\d+),"tid":\d+,"ts":\d+,'
    rb'"dur":(\d+),"ph":"X","args":\{"hhash":"[0-9a-f]*","ret":(-?\d+)(.*)\}\}'
)
#: (name, category, pid, calls, total duration, bytes, fhash, in_fhash) of an event or an
#: aggregate; in_fhash is a two-file call's source (copy_file_range, sendfile, splice, tee).
_Call = tuple[bytes, bytes, int, int, int, int, "bytes | None", "bytes | None"]


def _done(name: bytes, ret: int, size: int | None) -> int:
    """The bytes one call moved (see the module's docstring)."""
    return ret if ret > 0 and (name in _DATA_CALLS or (size is not None and ret <= size)) else 0


def _fast_call(line: bytes) -> _Call | None:
    """The :data:`_Call` of a daemon-written "X" line, else None; the category is the probe
    file's (``args.category``), else the layer (``cat``)."""
    m = _X_LINE.fullmatch(line)
    if m is None:
        return None
    name, cat, pid, dur, ret, rest = m.groups()
    size = fhash = source = None
    try:
        if (i := rest.find(b',"size":')) >= 0:
            end = rest.find(b",", i + 8)
            size = int(rest[i + 8 : end] if end >= 0 else rest[i + 8 :])
        if (k := rest.find(b',"category":"')) >= 0:  # the probe file's name for it
            cat = rest[k + 13 : rest.index(b'"', k + 13)]
        if (j := rest.find(b',"fhash":"')) >= 0:
            fhash = rest[j + 10 : rest.index(b'"', j + 10)]
        if (k := rest.find(b',"in_fhash":"')) >= 0:
            source = rest[k + 13 : rest.index(b'"', k + 13)]
    except ValueError:
        return None
    return name, cat, int(pid), 1, int(dur), _done(name, int(ret), size), fhash, source


def _json_call(event: dict[str, Any]) -> _Call:
    """The :data:`_Call` of a complete event or an aggregate (with ``dft_cnt``)."""
    args = event.get("args") or {}
    fhash, source = args.get("fhash"), args.get("in_fhash")
    name = str(event["name"]).encode()
    if "dft_cnt" in args:
        count, dur = args.get("dft_cnt", 0), args.get("dur_sum", 0)
        done = max(args.get("ret_sum", 0), 0) if name in _DATA_CALLS else 0
    else:
        count, dur = 1, event.get("dur", 0)
        done = _done(name, args.get("ret", 0), args.get("size"))
    return (
        name,
        str(args.get("category") or event.get("cat", "")).encode(),
        event.get("pid", 0),
        count,
        dur,
        done,
        fhash.encode() if isinstance(fhash, str) else None,
        source.encode() if isinstance(source, str) else None,
    )


def summarize(path: str | os.PathLike[str], pids: Collection[int] | None = None) -> TraceSummary:
    """Read the trace at ``path`` once and total it; with ``pids``, count only those processes
    (the files, names and loss still come from the whole trace)."""
    summary = TraceSummary(Path(path), pids=frozenset(pids) if pids is not None else None)
    wanted = summary.pids
    by_key: dict[tuple[bytes, bytes], list[int]] = {}  # (name, cat) -> [count, bytes, dur]
    per_hash: dict[bytes, list[int]] = {}  # fhash -> [count, bytes]
    file_names: dict[str, str] = {}
    daemon_summary: dict[str, int] | None = None
    number = 0
    for number, line in enumerate(iter_trace_lines(summary.path), 1):
        call = _fast_call(line) if line.startswith(b'{"id"') else None
        if call is None:
            if line == b"[" or not line:
                continue
            if line == b"]":
                summary.complete = True
                break
            try:
                event = json.loads(line)
                ph = event["ph"]
            except (ValueError, KeyError, TypeError):
                raise DatacrumbsError(
                    f"{summary.path}: line {number} is not a trace event"
                ) from None
            if ph == "M" and event.get("name") == "datacrumbs_loss":
                for key in _LOSS_KEYS:
                    summary.lost[key] = max(summary.lost[key], event["args"].get(key, 0))
                continue
            if ph == "M":
                _metadata(event, summary, file_names)
                if event["args"].get("name") == "datacrumbs_summary":
                    daemon_summary = event["args"].get("value")
                continue
            if ph != "X" and not (ph in ("C", 3) and "dft_cnt" in (event.get("args") or {})):
                continue  # counters of the system, instants
            call = _json_call(event)
            aggregate = ph != "X"
        else:
            aggregate = False
        name, cat, pid, count, dur, done, fhash, source = call
        if wanted is not None and pid not in wanted:
            summary.other_events += count
            continue
        if aggregate:
            summary.aggregated += count
        totals = by_key.get((name, cat))
        if totals is None:
            by_key[(name, cat)] = [count, done, dur]
        else:
            totals[0] += count
            totals[1] += done
            totals[2] += dur
        for file in (fhash, source):  # a copy's bytes on each side's file
            if file is not None:
                seen = per_hash.get(file)
                if seen is None:
                    per_hash[file] = [count, done]
                else:
                    seen[0] += count
                    seen[1] += done
    if number == 0:
        raise DatacrumbsError(f"{summary.path}: empty trace (no complete line)")
    if daemon_summary is not None:
        for key in _LOSS_KEYS:
            summary.lost[key] = max(summary.lost[key], daemon_summary.get(key, 0))
    for (name, cat), (count, done, dur) in by_key.items():
        function = (name.decode(), cat.decode())
        summary.functions[function] = FunctionTotals(
            *function, count=count, bytes=done, total_us=dur
        )
    summary.events = sum(f.count for f in summary.functions.values())
    summary.files = sorted(
        (
            FileTotals(file_names.get(h.decode(), f"<unnamed file {h.decode()}>"), c, b)
            for h, (c, b) in per_hash.items()
        ),
        key=lambda f: (-f.bytes, -f.count, f.path),
    )
    if wanted is not None:
        summary.processes = {p: c for p, c in summary.processes.items() if p in wanted}
    return summary


def _metadata(event: dict[str, Any], summary: TraceSummary, file_names: dict[str, str]) -> None:
    name, args = event["name"], event["args"]
    if name == "FH":
        file_names[args["value"]] = args["name"]
    elif name == "process_name":
        summary.processes[event["pid"]] = args["name"]
    elif name == "HH":
        summary.host = args["name"]
    elif name == "datacrumbs_mode":
        summary.mode = str(args.get("mode", "trace"))


# -- text output ----------------------------------------------------------------------------


def _duration(us: float) -> str:
    if us >= 1_000_000:
        return f"{us / 1_000_000:.2f} s"
    if us >= 1000:
        return f"{us / 1000:.1f} ms"
    return f"{us:.1f} µs" if us < 100 and us != int(us) else f"{us:.0f} µs"


def _bytes(n: int) -> str:
    if n == 0:
        return "-"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def how_to_open(path: Path) -> list[str]:
    """The lines telling a reader where the trace is and how to look at it."""
    return [
        f"trace: {path}",
        "  Perfetto: open https://ui.perfetto.dev and drop the file on it (it reads .pfw.gz)",
        "  Python:   import gzip, json",
        f"            events = [json.loads(line) for line in gzip.open({str(path)!r}, 'rt')",
        "                      if line.startswith('{')]",
        "            (a cut trace: datacrumbs.trace.reading.read_trace_lines(path))",
    ]


def wide_console() -> Console:
    """A console for tables: the terminal's width, or 160 columns into a file or pipe (rich
    would assume 80 and fold every file path)."""
    from rich.console import Console  # imported on use: --json does without rich

    return Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def render_tables(summary: TraceSummary, max_files: int = 15) -> Any:
    """The per-function and per-file tables, as one rich renderable."""
    from rich.console import Group
    from rich.table import Table

    who = (
        ""
        if summary.pids is None
        else " of "
        + ", ".join(f"{summary.processes.get(p, '?')} (pid {p})" for p in sorted(summary.pids))
    )
    profiled = ""
    if summary.mode == "profile":
        profiled = " (profile: aggregated per interval)"
    elif summary.aggregated:
        profiled = f" ({summary.aggregated:,} of them in aggregated records: the valve)"
    functions = Table(title=f"{summary.events:,} calls{who}{profiled}", title_justify="left")
    for column in ("function", "category"):
        functions.add_column(column)
    for column in ("calls", "bytes", "total time", "mean time"):
        functions.add_column(column, justify="right")
    for f in summary.sorted_functions():
        functions.add_row(
            f.name,
            f.cat,
            f"{f.count:,}",
            _bytes(f.bytes),
            _duration(f.total_us),
            _duration(f.mean_us),
        )

    files = Table(title=f"{len(summary.files)} files touched", title_justify="left")
    files.add_column("file", overflow="fold")
    files.add_column("calls", justify="right")
    files.add_column("bytes", justify="right")
    for file in summary.files[:max_files]:
        files.add_row(file.path or '""', f"{file.count:,}", _bytes(file.bytes))
    if len(summary.files) > max_files:
        files.add_row(f"… {len(summary.files) - max_files} more (--json lists all)", "", "")
    return Group(functions, files)


def summary_lines(summary: TraceSummary) -> list[str]:
    """The lines under the tables: loss, what was left out, where the trace is."""
    lost = summary.lost
    lines = [
        f"events lost: {lost['lost_events']:,} (file names lost: {lost['lost_names']:,}, "
        f"process names lost: {lost['lost_tasks']:,})",
    ]
    if summary.other_events:
        lines.append(
            f"the trace also holds {summary.other_events:,} calls of other processes "
            "of the traced user"
        )
    if not summary.complete:
        lines.append(
            "the trace is cut (its daemon did not finish it): this is every line "
            "up to its last flush"
        )
    return lines + how_to_open(summary.path)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Summarise a datacrumbs trace: calls, bytes and time per function, the "
        "files touched, the events lost, and how to open the trace.",
    )
    parser.add_argument("trace", type=Path, help="a trace the daemon wrote (*.pfw.gz)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument(
        "--pid",
        type=int,
        action="append",
        metavar="PID",
        help="count only this process (repeatable)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    def run() -> int:
        summary = summarize(args.trace, args.pid)
        try:
            if args.json:
                json.dump(summary.to_json(), sys.stdout, indent=1)
                print()
            else:
                wide_console().print(render_tables(summary))
                print("\n".join(summary_lines(summary)))
            sys.stdout.flush()
        except BrokenPipeError:  # e.g. piped into head: not an error
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0

    return run_cli(PROG, run)
