"""Profile mode's kernel maps, read from user space: the aggregates of intervals that are over.

In profile mode the BPF programs aggregate each call per (process, thread, function, file,
interval) and nothing per call crosses to user space (``dc_profile_add`` in
``ebpf/bpf/dc_profile.h``).
A thread adds to an aggregate it holds in its own storage while its calls keep one function,
file and interval; what it leaves goes to ``dc_profile`` (the interval still open) or is handed
over to ``dc_profile_done`` (the interval over, or the thread gone).

The poller calls :meth:`ProfileMap.harvest` on a timer. It first runs the task iterator
``dc_profile_flush``, which hands over what threads still hold of intervals that ended at
least :data:`GRACE_NS` ago (a thread that stopped calling keeps its last aggregate otherwise);
then it takes from ``dc_profile`` the aggregates of those intervals, never the open one (a
program that read the clock just before an interval ended may still be adding to it), and
everything in ``dc_profile_done`` (whose entries are only ever inserted), and deletes what it
took. One aggregate may come from both maps (a thread left a file and came back within the
interval): the rows are merged by key. Once every probe is detached, the last harvest takes
everything.

One ``BPF_MAP_LOOKUP_BATCH`` call reads up to :data:`CHUNK` entries, and one
``BPF_MAP_DELETE_BATCH`` deletes what was taken: a few system calls per harvest, not three per
aggregate.
"""

from __future__ import annotations

import struct

from datacrumbs.ebpf.bpf_maps import map_delete_batch, map_lookup_batch, map_update
from datacrumbs.ebpf.libbpf import BpfLink
from datacrumbs.ebpf.records import AGG, AGG_KEY

__all__ = ["CHUNK", "GRACE_NS", "ROW_SIZE", "ProfileMap", "merge_rows"]

#: How long after an interval ends its aggregates are taken: far longer than a program runs.
GRACE_NS = 100_000_000
#: Aggregates read per batch call.
CHUNK = 4096
#: One harvested row: a ``dc_agg_key`` then its ``dc_agg``.
ROW_SIZE = AGG_KEY.size + AGG.size
_INTERVAL = struct.Struct("<Q")
_INTERVAL_AT = 16  # dc_agg_key.interval
_ALL = (1 << 64) - 1


def merge_rows(rows: list[bytes]) -> bytes:
    """``key | value`` rows with the same key merged into one (sums added, the smaller min and
    the larger max kept). ``AGG.pack`` checks the field count."""
    merged: dict[bytes, bytes] = {}
    for row in rows:
        key = row[: AGG_KEY.size]
        old = merged.get(key)
        if old is None:
            merged[key] = row
            continue
        a = AGG.unpack_from(old, AGG_KEY.size)
        b = AGG.unpack_from(row, AGG_KEY.size)
        both = (
            a[0] + b[0],  # count
            a[1] + b[1],  # dur_sum
            min(a[2], b[2]),
            max(a[3], b[3]),
            a[4] + b[4],  # ret_sum
            a[5] + b[5],  # errors
            min(a[6], b[6]),
            max(a[7], b[7]),
            min(a[8], b[8]),  # offset_min
            max(a[9], b[9]),
            *(x + y for x, y in zip(a[10:], b[10:], strict=True)),  # ret_log2
        )
        merged[key] = key + AGG.pack(*both)
    return b"".join(merged.values())


def _take(fd: int, first_open: int) -> list[bytes]:
    """The rows of map ``fd`` whose interval is before ``first_open``, deleted from it."""
    raw, count = map_lookup_batch(fd, AGG_KEY.size, AGG.size, CHUNK)
    taken = [
        raw[at : at + ROW_SIZE]
        for at in range(0, count * ROW_SIZE, ROW_SIZE)
        if _INTERVAL.unpack_from(raw, at + _INTERVAL_AT)[0] < first_open
    ]
    if taken:
        map_delete_batch(fd, b"".join(row[: AGG_KEY.size] for row in taken), len(taken))
    return taken


class ProfileMap:
    """The profile maps of one session (``dc_profile``, ``dc_profile_done``, the iterator's
    ``dc_flush_before`` and its link) whose intervals last ``interval_ns``, shifted by
    ``interval_shift`` (the kernel's ``dc_config.interval_shift``)."""

    def __init__(
        self,
        fd: int,
        done_fd: int,
        flush_before_fd: int,
        flush: BpfLink,
        interval_ns: int,
        interval_shift: int = 0,
    ) -> None:
        self._fd = fd
        self._done_fd = done_fd
        self._flush_before_fd = flush_before_fd
        self._flush = flush
        self.interval_ns = interval_ns
        self._shift = interval_shift  # dc_config.interval_shift

    def harvest(self, now_ns: int | None) -> bytes:
        """Take the aggregates of the intervals over by ``now_ns`` (CLOCK_MONOTONIC) less the
        grace, or all of them (None: nothing adds to the maps any more); ``key | value`` rows,
        one per aggregate."""
        if now_ns is None:
            first_open = _ALL
        else:
            first_open = (now_ns + self._shift - GRACE_NS) // self.interval_ns
        # the interval holding now - grace is not over at that time; those before it are
        map_update(self._flush_before_fd, bytes(4), first_open.to_bytes(8, "little"))
        self._flush.run_iter()
        rows = _take(self._fd, first_open) + _take(self._done_fd, _ALL)
        if not rows:
            return b""
        return merge_rows(rows)

    def close(self) -> None:
        """Detach the iterator (after the last harvest)."""
        self._flush.destroy()
