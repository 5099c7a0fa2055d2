"""The report's sections as tables of numbers, built once and shown twice: in the HTML page
(:mod:`.page`, with the plots) and in the terminal (:mod:`.terminal`). Each section says what
its numbers mean and names the queries (:data:`~datacrumbs.report.queries.QUERIES`) they
come from."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from datacrumbs.report.insights import Insight
from datacrumbs.report.plots import bucket_label
from datacrumbs.report.queries import JobNumbers

__all__ = ["Table", "View", "job_span", "views"]


@dataclass
class Table:
    header: list[str]
    rows: list[list[Any]]
    caption: str = ""


@dataclass
class View:
    key: str
    title: str
    meaning: str
    queries: list[str]
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def job_span(numbers: JobNumbers) -> tuple[int, float]:
    """The job's first traced call (µs since the epoch) and its span in seconds."""
    firsts = [r["first_us"] for r in numbers["traces"] if r["first_us"] is not None]
    lasts = [r["last_us"] for r in numbers["traces"] if r["last_us"] is not None]
    if not firsts:
        return 0, 0.0
    return min(firsts), (max(lasts) - min(firsts)) / 1e6


def _traced(numbers: JobNumbers) -> View:
    t0, _ = job_span(numbers)
    loss = {r["trace"]: r for r in numbers["loss"]}
    clocks: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c in numbers["clocks"]:
        clocks[c["trace"]].append(c)
    marks: dict[str, int] = defaultdict(int)
    budget: set[str] = set()
    for m in numbers["marks"]:
        if m["name"] == "datacrumbs_budget":
            budget.add(m["trace"])
        elif m["state"] == "aggregates":
            marks[m["trace"]] += 1
    rows = []
    for r in numbers["traces"]:
        lost = loss.get(r["trace"], {})
        ended = (
            "cut"
            if r["trace"] in numbers.cut
            else ("finished" if lost.get("finished") else "unfinished")
        )
        clock = clocks.get(r["trace"], [])
        synced = all(c["synced"] for c in clock) if clock else None
        error = max((c["maxerror_us"] or 0 for c in clock), default=None)
        start = (r["first_us"] - t0) / 1e6 if r["first_us"] is not None else None
        rows.append(
            [
                r["host"],
                PurePosixPath(r["trace"]).name,
                r["mode"],
                r["calls"],
                r["aggregated"],
                lost.get("lost_events") or 0,
                lost.get("lost_names") or 0,
                ended,
                marks.get(r["trace"], 0),
                "spent" if r["trace"] in budget else "-",
                start,
                "synced" if synced else ("not synced" if synced is False else "-"),
                error / 1000 if error is not None else None,
            ]
        )
    return View(
        "traced",
        "What was traced, and what was lost",
        "One row per trace (one per node). Calls are every traced call, those kept as "
        "aggregates (profile mode, or the valve under overload) included; lost calls are "
        "missing from every number below. Each node stamps its calls with its own clock; the "
        "report lays them on one timeline with each trace's clock records (the wall-clock "
        "offset at start and end, its drift spread over the calls), as well as the nodes' wall "
        "clocks agree: the kernel's NTP state and maximum error.",
        ["traces", "loss", "clocks", "marks"],
        [
            Table(
                [
                    "node",
                    "trace",
                    "mode",
                    "calls",
                    "aggregated",
                    "lost calls",
                    "lost names",
                    "end",
                    "valve episodes",
                    "budget",
                    "first call (s)",
                    "clock",
                    "max clock error (ms)",
                ],
                rows,
            )
        ],
    )


def _ranks(numbers: JobNumbers) -> View:
    rows = [
        [
            r["label"],
            r["host"],
            r["processes"],
            r["calls"],
            r["read_bytes"] or 0,
            r["write_bytes"] or 0,
            (r["read_us"] or 0) / 1e6,
            (r["write_us"] or 0) / 1e6,
            (r["meta_us"] or 0) / 1e6,
        ]
        for r in numbers["ranks"]
    ]
    return View(
        "ranks",
        "I/O cost per rank",
        "Time in read, write and metadata calls per rank (summed over its processes and "
        "threads), and the bytes it moved. A process without an MPI or Slurm rank is shown "
        "by node and pid.",
        ["ranks"],
        [
            Table(
                [
                    "rank",
                    "node",
                    "processes",
                    "calls",
                    "read bytes",
                    "written bytes",
                    "read s",
                    "write s",
                    "metadata s",
                ],
                rows,
            )
        ],
    )


def _sizes(numbers: JobNumbers) -> View:
    by: dict[int, dict[str, int]] = defaultdict(dict)
    for r in numbers["sizes"]:
        by[r["bucket"]][r["dir"]] = r["calls"]
    rows = [
        [
            bucket_label(b) + (f" - {bucket_label(b + 1)}" if b else ""),
            by[b].get("read", 0),
            by[b].get("write", 0),
        ]
        for b in sorted(by)
    ]
    common = [[r["dir"], r["size"], r["calls"]] for r in numbers["common_sizes"]]
    return View(
        "sizes",
        "Access sizes",
        "Reads and writes by the bytes each moved, in power-of-two bins (aggregates keep the "
        "same bins); the most common sizes come from the calls traced one by one.",
        ["sizes", "common_sizes"],
        [
            Table(["bytes per call", "reads", "writes"], rows),
            Table(["direction", "bytes", "calls"], common, "the 4 most common sizes"),
        ],
    )


def _operations(numbers: JobNumbers) -> View:
    rows = [
        [
            f"{r['layer']} {r['name']}",
            r["calls"],
            r["bytes"],
            r["us"] / 1e6,
            r["aggregated"] or 0,
            r["uring"] or 0,
        ]
        for r in numbers["operations"]
    ]
    return View(
        "operations",
        "Operations",
        "Every traced function by layer (POSIX syscalls, STDIO, MPI, HDF5, ...), with its "
        "calls, bytes and time; how many of them were aggregates, and how many were io_uring "
        "requests.",
        ["operations"],
        [Table(["operation", "calls", "bytes", "seconds", "aggregated", "io_uring"], rows)],
    )


#: Kernel file systems: their files are grouped by the mount point alone.
_KERNEL_FS = ("/proc", "/sys", "/dev", "/run")


def _mount_of(path: str) -> str:
    """The top directory a file is counted in: two components (``/scratch/alice``), one for
    the kernel's file systems; a pseudo file's kind (``socket:``, ``pipe:``)."""
    if not path.startswith("/"):
        return path.split(":", 1)[0] + ":" if ":" in path else path
    parts = PurePosixPath(path).parent.parts
    if parts[:2] and "/" + "/".join(parts[1:2]) in _KERNEL_FS:
        return str(PurePosixPath(*parts[:2]))
    return str(PurePosixPath(*parts[:3]))


def _files(numbers: JobNumbers) -> View:
    rows, kinds = [], {"read-only": 0, "write-only": 0, "read-write": 0, "no data": 0}
    tops: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for r in numbers["files"]:
        reads, writes = r["reads"] or 0, r["writes"] or 0
        kind = (
            "read-write"
            if reads and writes
            else "read-only"
            if reads
            else "write-only"
            if writes
            else "no data"
        )
        kinds[kind] += 1
        rows.append(
            [
                r["path"],
                r["calls"],
                reads,
                writes,
                r["read_bytes"] or 0,
                r["write_bytes"] or 0,
                r["ranks"],
                r["layers"],
            ]
        )
        top = tops[_mount_of(r["path"])]
        for i, v in enumerate((1, r["calls"], r["read_bytes"] or 0, r["write_bytes"] or 0)):
            top[i] += v
    by_top: list[list[Any]] = sorted(
        ([k, *v] for k, v in tops.items()), key=lambda t: (-t[3] - t[4], t[0])
    )
    return View(
        "files",
        "Files and directories",
        "Each file the job named, with its calls and bytes and how many ranks used it; then "
        "the files' counts by kind, and totals per top-level directory (two path components: "
        "where a site's file systems are mounted).",
        ["files"],
        [
            Table(
                [
                    "file",
                    "calls",
                    "reads",
                    "writes",
                    "read bytes",
                    "written bytes",
                    "ranks",
                    "layers",
                ],
                rows,
            ),
            Table(["kind", "files"], [[k, v] for k, v in kinds.items()]),
            Table(["directory", "files", "calls", "read bytes", "written bytes"], by_top),
        ],
    )


def _layers(numbers: JobNumbers) -> View:
    rows = [
        [r["layer"], r["dir"], r["calls"], r["bytes"], r["us"] / 1e6] for r in numbers["layers"]
    ]
    uring = [[r["name"], r["uring"], r["bytes"]] for r in numbers["operations"] if r["uring"]]
    return View(
        "layers",
        "Layers, io_uring and the kernel",
        "What each layer did: a library's calls (STDIO, MPI, HDF5) and the syscalls the kernel "
        "saw under them are both traced, so a buffered fwrite and the write(2) that flushes it "
        "each count in their own layer. io_uring requests, which no library-level tracer sees, "
        "are listed apart.",
        ["layers", "operations"],
        [
            Table(["layer", "direction", "calls", "bytes", "seconds"], rows),
            Table(["io_uring request", "requests", "bytes"], uring),
        ],
    )


def _insights(found: list[Insight]) -> View:
    return View(
        "insights",
        "Insights",
        "Measured against Drishti's thresholds; the most severe first.",
        ["access"],
        [
            Table(
                ["insight", "level", "measured", "threshold", "what to do"],
                [[i.title, i.level.upper(), i.detail, i.threshold, i.advice] for i in found],
            )
        ],
    )


def views(numbers: JobNumbers, found: list[Insight]) -> list[View]:
    """The report's sections, in the order they are shown."""
    timeline = View(
        "timeline",
        "Job timeline",
        "Bytes moved over time by each rank, on the nodes' common wall-clock timeline.",
        ["heat"],
    )
    return [
        _traced(numbers),
        _insights(found),
        timeline,
        _ranks(numbers),
        _sizes(numbers),
        _operations(numbers),
        _files(numbers),
        _layers(numbers),
    ]
