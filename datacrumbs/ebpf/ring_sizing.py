"""How much memory the ring buffers get on a node: sized from its memory and CPUs.

The kernel side keeps one ring buffer per CPU (up to 64, :data:`~datacrumbs.ebpf.records.
MAX_RINGS`); what they hold together is how long a burst the consumer may fall behind before
the kernel drops events. A busy node makes events faster than one consumer formats and
compresses them for as long as its ranks write, so the buffers are sized to the node: by
default 1/64 of its memory, at least 32 MiB and at most 1 GiB in all (a 2-core, 8 GiB node:
2 x 64 MiB; 16 cores, 128 GiB: 16 x 64 MiB; 128 cores, 512 GiB: 64 x 16 MiB). Ring buffers
are kernel memory that no process's limit counts (the daemon's cgroup does): the cap keeps a
job's tracer from taking a node's memory.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from datacrumbs.ebpf.poller import possible_cpus
from datacrumbs.ebpf.records import MAX_RINGS

__all__ = ["MAX_TOTAL", "MIN_RING", "MIN_TOTAL", "PROFILE_TOTAL", "RingLayout", "ring_layout"]

MIN_TOTAL = 32 << 20
MAX_TOTAL = 1 << 30
MEMORY_SHARE = 64  # 1/64 of the node's memory by default
MIN_RING = 1 << 20  # a ring smaller than this wakes the consumer too often
MAX_RING = 256 << 20
#: Profile mode's default: the rings carry only file and thread names, each once.
PROFILE_TOTAL = 16 << 20


class RingLayout(NamedTuple):
    rings: int
    ring_bytes: int  # each


def _mem_total() -> int:
    """The node's memory, from sysinfo(2): the daemon's unit hides /proc/meminfo
    (``ProcSubset=pid``)."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def ring_layout(total_bytes: int = 0, cpus: int = 0, mem_total: int = 0) -> RingLayout:
    """One ring per CPU (up to 64), each the largest power of two (at least 1 MiB, at most
    256 MiB) that keeps them within ``total_bytes`` together (0: the default share of the
    node's memory, within 32 MiB and 1 GiB)."""
    rings = min(cpus or possible_cpus(), MAX_RINGS)
    if not total_bytes:
        total_bytes = min(max((mem_total or _mem_total()) // MEMORY_SHARE, MIN_TOTAL), MAX_TOTAL)
    per_ring = max(total_bytes // rings, MIN_RING)
    size = 1 << (per_ring.bit_length() - 1)  # the power of two at or below
    page = os.sysconf("SC_PAGE_SIZE")
    return RingLayout(rings, min(max(size, page), MAX_RING))
