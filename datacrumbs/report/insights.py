"""What the numbers say, as Drishti says it: each insight a measured fraction against a stated
threshold, with what to do about it. The thresholds are Drishti's defaults (drishti-io 0.8,
``includes/config.py``), so that a reader who knows its reports reads these the same way.

Each insight says which calls it could judge: offsets are known only for the calls that take
one (pread, pwrite, preadv, pwritev, io_uring's reads and writes), so misaligned and random
access are judged on those alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from datacrumbs.report.queries import JobNumbers

__all__ = ["SMALL_BUCKET", "THRESHOLDS", "Insight", "insights"]

#: Drishti's thresholds: fractions of calls (or of bytes, or of time), and the absolute count
#: under which a fraction is not worth a warning.
THRESHOLDS = {
    "small_requests": 0.10,
    "small_requests_absolute": 1000,
    "misaligned": 0.10,
    "random_operations": 0.20,
    "random_operations_absolute": 1000,
    "metadata_time_rank_s": 30.0,
    "imbalance": 0.15,
    "interface_stdio": 0.10,
}
#: The last log2 bucket of calls moving under 1 MiB (bucket k holds 2^(k-1) .. 2^k - 1 bytes).
SMALL_BUCKET = 20


@dataclass(frozen=True)
class Insight:
    level: str  # "high", "warn", "ok" or "info"
    title: str
    detail: str
    threshold: str
    advice: str = ""


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _small(numbers: JobNumbers) -> Insight:
    moved = [r for r in numbers["sizes"] if r["bucket"] > 0]
    total = sum(r["calls"] for r in moved)
    small = sum(r["calls"] for r in moved if r["bucket"] <= SMALL_BUCKET)
    share = _share(small, total)
    hit = share > THRESHOLDS["small_requests"] and small > THRESHOLDS["small_requests_absolute"]
    return Insight(
        "high" if hit else "ok",
        "Small requests",
        f"{small:,} of {total:,} reads and writes ({share:.1%}) moved less than 1 MiB",
        f"> {THRESHOLDS['small_requests']:.0%} of requests and > "
        f"{THRESHOLDS['small_requests_absolute']:,} requests",
        "Buffer or aggregate small requests into larger ones (collective I/O, a larger "
        "stdio buffer, or HDF5/MPI-IO chunking)."
        if hit
        else "",
    )


def _access(numbers: JobNumbers) -> list[Insight]:
    rows = numbers["access"]
    calls = sum(r["calls"] for r in rows)
    if not calls:
        return [
            Insight(
                "info",
                "Misaligned and random access",
                "no call with an offset was traced (pread, pwrite, preadv, pwritev, io_uring)",
                "-",
            )
        ]
    misaligned = sum(r["misaligned"] for r in rows)
    random = sum(r["random"] for r in rows)
    m_share, r_share = _share(misaligned, calls), _share(random, calls)
    m_hit = m_share > THRESHOLDS["misaligned"]
    r_hit = (
        r_share > THRESHOLDS["random_operations"]
        and random > THRESHOLDS["random_operations_absolute"]
    )
    return [
        Insight(
            "warn" if m_hit else "ok",
            "Misaligned requests",
            f"{misaligned:,} of {calls:,} calls with an offset ({m_share:.1%}) started off a "
            "4 KiB boundary",
            f"> {THRESHOLDS['misaligned']:.0%}",
            "Align offsets and sizes to the file system's block or stripe size." if m_hit else "",
        ),
        Insight(
            "warn" if r_hit else "ok",
            "Random access",
            f"{random:,} of {calls:,} calls with an offset ({r_share:.1%}) did not start where "
            "the process's previous call on the file ended",
            f"> "
            f"{THRESHOLDS['random_operations']:.0%} and > "
            f"{THRESHOLDS['random_operations_absolute']:,} calls",
            "Reorder accesses to be sequential, or read ahead in larger blocks." if r_hit else "",
        ),
    ]


def _metadata(numbers: JobNumbers) -> Insight:
    limit = THRESHOLDS["metadata_time_rank_s"]
    slow = [r for r in numbers["ranks"] if (r["meta_us"] or 0) / 1e6 > limit]
    worst = max((r["meta_us"] or 0 for r in numbers["ranks"]), default=0) / 1e6
    return Insight(
        "high" if slow else "ok",
        "Metadata time",
        f"{len(slow)} of {len(numbers['ranks'])} ranks or processes spent over {limit:.0f} s "
        f"in metadata calls (open, stat, close, fsync, ...); the most: {worst:.3f} s",
        f"> {limit:.0f} s per rank",
        "Open files once, avoid stat storms, and keep many small files out of shared file systems."
        if slow
        else "",
    )


def _imbalance(numbers: JobNumbers) -> list[Insight]:
    ranks = [r for r in numbers["ranks"] if r["rank"] is not None] or numbers["ranks"]
    out = []
    for what, key in (("bytes", "bytes"), ("I/O time", "us")):
        values = [
            (r[f"read_{key}"] or 0) + (r[f"write_{key}"] or 0) + (r.get(f"meta_{key}") or 0)
            for r in ranks
        ]
        if len(values) < 2 or not max(values):
            out.append(
                Insight(
                    "info", f"Rank imbalance ({what})", f"fewer than two ranks with {what}", "-"
                )
            )
            continue
        high, mean = max(values), sum(values) / len(values)
        share = (high - mean) / high
        hit = share > THRESHOLDS["imbalance"]
        out.append(
            Insight(
                "warn" if hit else "ok",
                f"Rank imbalance ({what})",
                f"the busiest of {len(values)} ranks is {share:.1%} above the mean "
                f"(max {high:,.0f}, mean {mean:,.0f})",
                f"> {THRESHOLDS['imbalance']:.0%}",
                "Spread the I/O over the ranks, or use collective I/O." if hit else "",
            )
        )
    return out


def _stdio(numbers: JobNumbers) -> Insight:
    moved = [r for r in numbers["layers"] if r["dir"] != "meta"]
    total = sum(r["bytes"] or 0 for r in moved if r["layer"] != "STDIO")
    stdio = sum(r["bytes"] or 0 for r in moved if r["layer"] == "STDIO")
    share = _share(stdio, total)
    hit = share > THRESHOLDS["interface_stdio"]
    return Insight(
        "warn" if hit else "ok",
        "STDIO share",
        f"buffered stdio calls moved {stdio:,} bytes, {share:.1%} of the {total:,} bytes of "
        "the other layers",
        f"> {THRESHOLDS['interface_stdio']:.0%} of bytes",
        "Use POSIX or MPI-IO for bulk data; stdio adds a copy per call." if hit else "",
    )


def _loss(numbers: JobNumbers) -> Insight:
    lost = sum(r["lost_events"] or 0 for r in numbers["loss"])
    aggregated = sum(r["aggregated"] for r in numbers["traces"])
    cut = len(numbers.cut)
    if lost or cut:
        return Insight(
            "high",
            "Partial data",
            f"{lost:,} calls lost; {cut} trace(s) cut (their daemon did not finish)",
            "any loss",
            "Numbers below miss those calls: raise the ring size or the valve's "
            "share, or let the daemons stop cleanly.",
        )
    detail = "every traced call is in the report"
    if aggregated:
        detail += f" ({aggregated:,} as aggregates: counts, bytes and times, no single calls)"
    return Insight("ok", "Partial data", detail, "any loss")


def insights(numbers: JobNumbers) -> list[Insight]:
    """The insights, the most severe first (the order is stable within a level)."""
    found = [
        _loss(numbers),
        _small(numbers),
        *_access(numbers),
        _metadata(numbers),
        *_imbalance(numbers),
        _stdio(numbers),
    ]
    order = {"high": 0, "warn": 1, "info": 2, "ok": 3}
    return sorted(found, key=lambda i: order[i.level])
