"""The user-space hot path alone: decode → format → compress, on synthetic records.

Builds ring-buffer chunks exactly as the kernel lays them out (8-byte header + struct dc_call)
for a write()-like function, then times EventFormatter.format (the compiled formatter) and ISA-L
deflate (level 1, as the writer uses) separately and together, ``--rounds`` times: the median
of the rounds of this one run and their range. No kernel, no threads: the ceiling of one core.
Run: ``.venv/bin/python benchmarks/hot_path.py [--events N] [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import statistics
import struct
import time

from bench_support import machine
from isal import isal_zlib as zlib

from datacrumbs.ebpf.functions import FunctionTable
from datacrumbs.ebpf.records import CALL, RecordType
from datacrumbs.ebpf.syscalls import SYSCALLS
from datacrumbs.trace.format import EventFormatter

_HEADER = struct.Struct("<II")


def chunk_of(events: int) -> bytes:
    parts = []
    ts = 1_000_000_000
    for i in range(events):
        ts += 700
        record = CALL.pack(
            RecordType.CALL, 1, 4242, 4242, ts, 350, 1, 0xDEADBEEF12345678, 3, 0, 1, 0, 0, 0
        )
        parts.append(_HEADER.pack(len(record), 0) + record)
        del i
    return b"".join(parts)


def _spread(values: list[float]) -> str:
    """ns per event: the median of the rounds and their range."""
    return f"{statistics.median(values):.0f} ns/event ({min(values):.0f} to {max(values):.0f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    table = FunctionTable()
    layout = SYSCALLS["write"]
    table.add("write", "POSIX", layout.fields, layout.has_file)
    chunks = [chunk_of(10_000) for _ in range(args.events // 10_000)]
    n = 10_000 * len(chunks)
    fmt = EventFormatter(table.specs, clock_offset=0, hostname="bench", pid=1, tid=1)
    formats: list[float] = []
    compressions: list[float] = []
    raw = out = 0
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        texts = [fmt.format(c) for c in chunks]
        t1 = time.perf_counter()
        z = zlib.compressobj(1, zlib.DEFLATED, 31)
        out = sum(len(z.compress(t)) for t in texts) + len(z.flush())
        t2 = time.perf_counter()
        raw = sum(len(t) for t in texts)
        formats.append((t1 - t0) / n * 1e9)
        compressions.append((t2 - t1) / n * 1e9)
    both = [f + c for f, c in zip(formats, compressions, strict=True)]
    print(machine())
    print(f"{n} events, {raw / n:.0f} bytes/line, {out / n:.1f} gzip bytes/event, "
          f"{args.rounds} rounds: median (range)")  # fmt: skip
    print(f"  format   {_spread(formats)}")
    print(f"  gzip -1  {_spread(compressions)}")
    print(f"  both     {_spread(both)}: {1e3 / statistics.median(both):.2f} M events/s on one core")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
