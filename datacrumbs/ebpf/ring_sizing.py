"""How much memory the ring buffers get on a node: sized from its memory and CPUs, within the
job's memory limit and the daemon's own.

The kernel side keeps one ring buffer per CPU (up to 64, :data:`~datacrumbs.ebpf.records.
MAX_RINGS`); what they hold together is how long a burst the consumer may fall behind before
the kernel drops events. A busy node makes events faster than one consumer formats and
compresses them for as long as its ranks write, so the buffers are sized to the node: by
default 1/64 of its memory, at least 32 MiB and at most 1 GiB in all (a 2-core, 8 GiB node:
2 x 64 MiB; 16 cores, 128 GiB: 16 x 64 MiB; 128 cores, 512 GiB: 64 x 16 MiB). With trace
mode's valve (the daemon's default) each ring is at most :data:`VALVE_RING`: what a ring cannot
hold folds into aggregates, not into loss.

Ring buffers are kernel memory that no process's limit counts, but the cgroup of the process
that makes them does: the daemon's, not the job's. So that tracing a job costs in proportion
to the job (issue 25, N4), a job with a memory limit (its cgroup's ``memory.max``, or the
tightest of its ancestors' while the scheduler has not made it yet) gets 1/64 of that limit
rather than of the node's memory; and the rings stay within ``limit``, the share of the
daemon's own bound (``DATACRUMBS_DAEMON_MEMORY_MB``, its unit's ``MemoryMax=``) that they may
take, and each within ``max_ring`` (the poller copies a ring's backlog out in one piece: a
ring's size is the most one such copy takes), with fewer rings where 1 MiB each would not fit
— an explicit ``DATACRUMBS_RING_BUFFER_MB`` included: more would make the daemon's cgroup
refuse them at start.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from datacrumbs.ebpf.poller import possible_cpus
from datacrumbs.ebpf.records import MAX_RINGS

__all__ = [
    "MAX_TOTAL",
    "MIN_RING",
    "MIN_TOTAL",
    "PROFILE_TOTAL",
    "VALVE_RING",
    "RingLayout",
    "cgroup_memory_limit",
    "ring_layout",
]

MIN_TOTAL = 32 << 20
MAX_TOTAL = 1 << 30
MEMORY_SHARE = 64  # 1/64 of the node's (or the job's) memory by default
MIN_RING = 1 << 20  # a ring smaller than this wakes the consumer too often
MAX_RING = 256 << 20
#: Profile mode's default: the rings carry only file and thread names, each once.
PROFILE_TOTAL = 16 << 20
#: Trace mode with the valve: each ring at most this by default. A burst the consumer cannot
#: follow folds into aggregates above the ring's high-water mark instead of being lost, so a
#: ring need not hold a whole burst: 8 MiB holds ~80,000 records (~60 ms of one CPU's writes
#: at their fastest), and 2 x 8 MiB delivered 2 x 750,000 unpaced writes with none folded
#: (docs/performance.md).
VALVE_RING = 8 << 20


class RingLayout(NamedTuple):
    rings: int
    ring_bytes: int  # each


def _mem_total() -> int:
    """The node's memory, from sysinfo(2): the daemon's unit hides /proc/meminfo
    (``ProcSubset=pid``)."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def cgroup_memory_limit(cgroup: Path) -> int:
    """The memory limit of cgroup v2 directory ``cgroup``: the smallest ``memory.max`` of it
    and its ancestors that exist (a job's cgroup may not exist yet: its parent's limit holds
    it too), up to the root of the mount; 0 when there is none (``max``, no memory
    controller, not a cgroup)."""
    limit = 0
    for directory in (cgroup, *cgroup.parents):
        try:
            value = (directory / "memory.max").read_text().strip()
        except OSError:
            if (directory / "cgroup.controllers").exists():
                continue  # a cgroup without the memory controller enabled
            if directory.exists():
                break  # above the mount: no cgroup any more
            continue  # not made yet
        if value.isdigit():
            limit = min(limit, int(value)) if limit else int(value)
    return limit


def ring_layout(
    total_bytes: int = 0,
    cpus: int = 0,
    mem_total: int = 0,
    *,
    limit: int = 0,
    max_ring: int = MAX_RING,
    job_memory: int = 0,
) -> RingLayout:
    """One ring per CPU (up to 64), each the largest power of two (at least 1 MiB, at most
    ``max_ring`` and 256 MiB) that keeps them within ``total_bytes`` together (0: the default
    share of the node's memory, or of ``job_memory`` where the job has a limit, within 32 MiB
    and 1 GiB); never above ``limit`` together (0: none), fewer rings where 1 MiB each would
    be."""
    rings = min(cpus or possible_cpus(), MAX_RINGS)
    if not total_bytes:
        memory = mem_total or _mem_total()
        if job_memory:
            memory = min(memory, job_memory)
        total_bytes = min(max(memory // MEMORY_SHARE, MIN_TOTAL), MAX_TOTAL)
    if limit:
        total_bytes = min(total_bytes, limit)
        rings = max(min(rings, limit // MIN_RING), 1)
    per_ring = max(total_bytes // rings, MIN_RING)
    size = 1 << (per_ring.bit_length() - 1)  # the power of two at or below
    page = os.sysconf("SC_PAGE_SIZE")
    return RingLayout(rings, min(max(size, page), MAX_RING, max(max_ring, MIN_RING)))
