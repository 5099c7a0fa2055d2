"""How the daemon's memory bound is shared: every table and queue that grows with the job has
its part, so that the daemon stays within ``DATACRUMBS_DAEMON_MEMORY_MB`` (the unit's
``MemoryMax=``) whatever the job does (issue 25, N4).

Why a bound at all: the daemon is root's, outside the job's cgroup, so nothing the job is
limited by limits it; before, each distinct file name the job opened cost it ~110 bytes for
good (a set of hashes: +590 MB per 3.7 M names), and a consumer behind a burst could queue a
ring's worth of bytes 64 times over.

The parts, of a bound B:

- ring buffers: at most B/4 together and B/16 each (kernel memory, but charged to the
  daemon's cgroup: :func:`datacrumbs.ebpf.ring_sizing.ring_layout` gets these caps); the
  poller copies a ring's backlog out in one chunk, so a ring's size is also the most one
  chunk takes;
- bytes between the threads: B/16 read from the rings and not yet formatted (the chunk being
  formatted included), and B/16 formatted and not yet compressed
  (:class:`~datacrumbs.trace.writer.TraceWriter`: the poller then waits with one chunk more in
  hand, and the kernel counts what the rings cannot hold);
- the file names written lately: B/64 in 8-byte slots (:class:`~datacrumbs.trace.name_cache.
  NameCache`, 4 M names at the default); a name forgotten and sent again by the kernel is
  written again, so every event of the trace still finds its name;
- the processes and threads described lately: B/128 each, ~256 bytes an entry;
- the rest: the interpreter and its libraries (~100 MiB), the formatter's batches (at most
  ``BATCH_RECORDS`` lines at a time, ~16 MiB), the BPF maps (~30 MiB; profile mode's tables
  have their own setting) — at most ~0.55 B + 150 MiB in all, the worst case, so that the
  trace's page cache (which the kernel writes back and reclaims under the limit) has the rest;
  hence a bound of at least 512 MiB.

What no longer fits is counted: names and tasks forgotten (the trace's summary), events the
rings could not hold (``lost_events``), never a crash.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_TOTAL", "MemoryBudget"]

#: DATACRUMBS_DAEMON_MEMORY_MB's default, in bytes (2 GiB: rings up to 512 MiB).
DEFAULT_TOTAL = 2048 << 20
#: a remembered process or thread: its key, its name and the table's slot (measured ~230 B)
_TASK_ENTRY = 256
_NAME_SLOT = 8


@dataclass(frozen=True)
class MemoryBudget:
    """The parts of the daemon's memory bound (bytes, or entries where named so)."""

    total: int
    rings: int  # ring buffers, all together
    ring: int  # one ring buffer, at most
    pending: int  # bytes waiting between two threads, at each of the two hand-overs
    name_slots: int  # file names remembered as written
    task_entries: int  # processes, and threads, remembered as described (each)

    @classmethod
    def of(cls, total: int) -> MemoryBudget:
        """The shares of a bound of ``total`` bytes (module docstring)."""
        return cls(
            total=total,
            rings=total // 4,
            ring=total // 16,
            pending=total // 16,
            name_slots=total // 64 // _NAME_SLOT,
            task_entries=total // 128 // _TASK_ENTRY,
        )
