"""The user-space hot path alone: decode → format → compress, on synthetic records.

Builds ring-buffer chunks exactly as the kernel lays them out (8-byte header + struct dc_call)
for a write()-like function, then times EventFormatter.format and ISA-L deflate (level 1, as the
writer uses) separately and together. No kernel, no threads: the ceiling of one core.
Run: ``.venv/bin/python benchmarks/hot_path.py [--events N]``.
"""

from __future__ import annotations

import argparse
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500_000)
    args = parser.parse_args()
    table = FunctionTable()
    layout = SYSCALLS["write"]
    table.add("write", "POSIX", layout.fields, layout.has_file)
    chunks = [chunk_of(10_000) for _ in range(args.events // 10_000)]
    n = 10_000 * len(chunks)
    fmt = EventFormatter(table.specs, clock_offset=0, hostname="bench", pid=1, tid=1)

    t0 = time.perf_counter()
    texts = [fmt.format(c) for c in chunks]
    t1 = time.perf_counter()
    z = zlib.compressobj(1, zlib.DEFLATED, 31)
    out = sum(len(z.compress(t)) for t in texts) + len(z.flush())
    t2 = time.perf_counter()
    raw = sum(len(t) for t in texts)
    print(machine())
    print(f"{n} events, {raw / n:.0f} bytes/line, {out / n:.1f} gzip bytes/event")
    print(f"  format   {n / (t1 - t0) / 1e6:5.2f} M events/s ({(t1 - t0) / n * 1e9:.0f} ns/event)")
    print(f"  gzip -1  {n / (t2 - t1) / 1e6:5.2f} M events/s ({(t2 - t1) / n * 1e9:.0f} ns/event)")
    print(f"  both     {n / (t2 - t0) / 1e6:5.2f} M events/s on one core")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
