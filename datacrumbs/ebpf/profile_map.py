"""Profile mode's kernel map, read from user space: the aggregates of intervals that are over.

In profile mode the BPF programs add each call to the aggregate of its (process, thread,
function, file, interval) in ``dc_profile`` (``datacrumbs.bpf.c``: ``dc_profile_add``), and
nothing per call crosses to user space. The poller calls :meth:`ProfileMap.harvest` on a timer:
it takes the aggregates of the intervals that ended at least :data:`GRACE_NS` ago, never the
open one (a program that read the clock just before an interval ended may still be adding to
it), and deletes them, so that the map only ever holds the last few intervals. Once every probe
is detached, the last harvest takes everything.

One ``BPF_MAP_LOOKUP_BATCH`` call reads up to :data:`CHUNK` entries, and one
``BPF_MAP_DELETE_BATCH`` deletes what was taken: a few system calls per harvest, not three per
aggregate.
"""

from __future__ import annotations

import struct

from datacrumbs.ebpf.libbpf import map_delete_batch, map_lookup_batch
from datacrumbs.ebpf.records import AGG, AGG_KEY

__all__ = ["CHUNK", "GRACE_NS", "ROW_SIZE", "ProfileMap"]

#: How long after an interval ends its aggregates are taken: far longer than a program runs.
GRACE_NS = 100_000_000
#: Aggregates read per batch call.
CHUNK = 4096
#: One harvested row: a ``dc_agg_key`` then its ``dc_agg``.
ROW_SIZE = AGG_KEY.size + AGG.size
_INTERVAL = struct.Struct("<Q")
_INTERVAL_AT = 16  # dc_agg_key.interval


class ProfileMap:
    """The ``dc_profile`` map (fd ``fd``) of a session whose intervals last ``interval_ns``."""

    def __init__(self, fd: int, interval_ns: int) -> None:
        self._fd = fd
        self.interval_ns = interval_ns
        self.harvested = 0  # aggregates taken so far

    def harvest(self, now_ns: int | None) -> bytes:
        """Take the aggregates of the intervals over by ``now_ns`` (CLOCK_MONOTONIC) less the
        grace, or all of them (None: nothing adds to the map any more); ``key | value`` rows."""
        raw, count = map_lookup_batch(self._fd, AGG_KEY.size, AGG.size, CHUNK)
        if not count:
            return b""
        if now_ns is None:
            taken = [raw[i * ROW_SIZE : (i + 1) * ROW_SIZE] for i in range(count)]
        else:
            # the interval holding now - grace is not over at that time; those before it are
            first_open = (now_ns - GRACE_NS) // self.interval_ns
            taken = [
                raw[at : at + ROW_SIZE]
                for at in range(0, count * ROW_SIZE, ROW_SIZE)
                if _INTERVAL.unpack_from(raw, at + _INTERVAL_AT)[0] < first_open
            ]
        if taken:
            map_delete_batch(self._fd, b"".join(row[: AGG_KEY.size] for row in taken), len(taken))
            self.harvested += len(taken)
        return b"".join(taken)
