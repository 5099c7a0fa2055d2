"""The report's pictures: matplotlib figures rendered to SVG text, embedded in the HTML page
as they are (glyphs drawn as paths: no font, script or network needed to show them).

matplotlib, not a JavaScript plotting library: the page must open offline on any machine, and
a static SVG is the smallest thing that does; it also draws the same on every run, which keeps
the report reproducible. Its cache and configuration go to a temporary directory (the report
may run where ``$HOME`` is read-only or absent: a compute node, a squashed home).
"""

from __future__ import annotations

import atexit
import io
import os
import shutil
import tempfile
from collections.abc import Sequence

if "MPLCONFIGDIR" not in os.environ:  # its font cache: this run's own, removed at exit
    os.environ["MPLCONFIGDIR"] = tempfile.mkdtemp(prefix="datacrumbs-mpl-")
    atexit.register(shutil.rmtree, os.environ["MPLCONFIGDIR"], ignore_errors=True)

import matplotlib

matplotlib.use("Agg")
from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from datacrumbs.report.queries import HEAT_BINS, JobNumbers

__all__ = ["bucket_label", "plots"]

plt.rcParams.update(
    {
        "svg.fonttype": "path",
        "svg.hashsalt": "datacrumbs",
        "font.size": 9,
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
)
_READ, _WRITE, _META = "#3b7dd8", "#e0823d", "#8c8c8c"


def _svg(fig: Figure) -> str:
    out = io.StringIO()
    fig.savefig(out, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = out.getvalue()
    return text[text.index("<svg") :]


def bucket_label(bucket: int) -> str:
    """The byte range of log2 bucket ``bucket`` (0: nothing moved)."""
    if bucket == 0:
        return "0"
    low = 1 << (bucket - 1)
    for unit, size in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if low >= size:
            return f"{low // size}{unit}"
    return str(low)


def _height(rows: int) -> float:
    return min(12.0, 1.2 + 0.28 * max(rows, 1))


def heat_map(numbers: JobNumbers, span_s: float) -> str:
    labels = [r["label"] for r in numbers["ranks"]]
    index = {label: i for i, label in enumerate(labels)}
    grid = [[0.0] * HEAT_BINS for _ in labels]
    for r in numbers["heat"]:
        grid[index[r["label"]]][r["bin"]] += r["bytes"]
    fig, ax = plt.subplots(figsize=(8, _height(len(labels))))
    image = ax.imshow(
        grid,
        aspect="auto",
        cmap="viridis",
        interpolation="nearest",
        extent=(0, span_s, len(labels) - 0.5, -0.5),
    )
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("seconds since the job's first traced call")
    fig.colorbar(image, ax=ax, label="bytes moved")
    return _svg(fig)


def rank_cost(numbers: JobNumbers) -> str:
    rows = numbers["ranks"]
    labels = [r["label"] for r in rows]
    fig, ax = plt.subplots(figsize=(8, _height(len(rows))))
    left = [0.0] * len(rows)
    for key, color, what in (
        ("read_us", _READ, "read"),
        ("write_us", _WRITE, "write"),
        ("meta_us", _META, "metadata"),
    ):
        values = [(r[key] or 0) / 1e6 for r in rows]
        ax.barh(labels, values, left=left, color=color, label=what)
        left = [a + b for a, b in zip(left, values, strict=True)]
    ax.invert_yaxis()
    ax.set_xlabel("seconds in calls (summed over the rank's threads)")
    ax.legend(loc="lower right")
    return _svg(fig)


def sizes(numbers: JobNumbers) -> str:
    buckets = sorted({r["bucket"] for r in numbers["sizes"]}) or [0]
    counts = {(r["dir"], r["bucket"]): r["calls"] for r in numbers["sizes"]}
    fig, ax = plt.subplots(figsize=(8, 3.2))
    x = range(len(buckets))
    for offset, direction, color in ((-0.2, "read", _READ), (0.2, "write", _WRITE)):
        ax.bar(
            [i + offset for i in x],
            [counts.get((direction, b), 0) for b in buckets],
            width=0.4,
            color=color,
            label=direction,
        )
    ax.set_xticks(list(x), [bucket_label(b) for b in buckets])
    ax.set_xlabel("bytes moved per call (from)")
    ax.set_ylabel("calls")
    ax.legend()
    return _svg(fig)


def _top_bars(
    labels: Sequence[str],
    series: Sequence[tuple[str, str, Sequence[float]]],
    xlabel: str,
    log: bool = False,
) -> str:
    fig, ax = plt.subplots(figsize=(8, _height(len(labels))))
    left = [0.0] * len(labels)
    for what, color, values in series:
        ax.barh(list(labels), list(values), left=left, color=color, label=what)
        left = [a + b for a, b in zip(left, values, strict=True)]
    ax.invert_yaxis()
    if log:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    if len(series) > 1:
        ax.legend(loc="lower right")
    return _svg(fig)


def operations(numbers: JobNumbers, top: int = 15) -> str:
    rows = numbers["operations"][:top]
    return _top_bars(
        [f"{r['layer']} {r['name']}" for r in rows],
        [("calls", _READ, [r["calls"] for r in rows])],
        "calls",
        log=True,
    )


def files(numbers: JobNumbers, top: int = 15) -> str:
    rows = numbers["files"][:top]
    labels = [r["path"] if len(r["path"]) <= 48 else "…" + r["path"][-47:] for r in rows]
    return _top_bars(
        labels,
        [
            ("read", _READ, [(r["read_bytes"] or 0) for r in rows]),
            ("write", _WRITE, [(r["write_bytes"] or 0) for r in rows]),
        ],
        "bytes moved",
    )


def plots(numbers: JobNumbers, span_s: float) -> dict[str, str]:
    """Each plot's SVG, by the section it belongs to (none for a job without calls)."""
    if not numbers["ranks"]:
        return {}
    return {
        "timeline": heat_map(numbers, span_s),
        "ranks": rank_cost(numbers),
        "sizes": sizes(numbers),
        "operations": operations(numbers),
        "files": files(numbers),
    }
