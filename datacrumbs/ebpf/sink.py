"""What the engine delivers, and to what: raw ring-buffer records in the kernel's order, and the
kernel's loss counts.

The engine moves bytes and nothing else. Decoding and formatting belong to the trace layer
(:mod:`datacrumbs.trace`), whose writer is the :class:`RecordSink`; keeping the engine free of
any trace format is what lets a benchmark's consumer plug in without touching it. A new kind
of record is not a new sink: profile mode's aggregates, harvested by the poller, came to the
same sink through one more method (:meth:`RecordSink.submit_profile`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

__all__ = ["LossCounts", "RecordSink"]


@dataclass(frozen=True)
class LossCounts:
    """Kernel-side loss counters (summed over CPUs)."""

    events: int = 0  # call records that found the ring buffer full
    names: int = 0  # file-name records dropped
    tasks: int = 0  # thread-description records dropped
    inflight: int = 0  # calls whose entry could not be stored
    nested: int = 0  # recursive calls: only the outermost call of a function is recorded
    compat: int = 0  # 32-bit syscalls asked for whose ia32 arguments are not read
    profile: int = 0  # profile mode: calls that found the profile map full

    @property
    def total_events(self) -> int:
        """Calls that happened but are not in the trace."""
        return self.events + self.inflight + self.nested + self.compat + self.profile


class RecordSink(Protocol):
    """Where the engine's poller puts what it reads. Called from the poller thread only."""

    def submit(self, chunk: bytes) -> None:
        """Committed ring-buffer records, each with its 8-byte ring-buffer header, in order."""

    def write_loss(self, loss: LossCounts) -> None:
        """The loss counters changed: ``loss`` holds the new cumulative totals."""

    def submit_profile(self, rows: bytes) -> None:
        """Harvested aggregates (profile mode, trace mode's valve), each a ``dc_agg_key`` then
        its ``dc_agg``, of intervals that are over (all of them at the end)."""

    def write_notice(self, name: str, args: Mapping[str, int | str]) -> None:
        """Something that changed what the trace holds from here on (a function switched to
        aggregates and back, the budget spent), stamped now."""

    @property
    def bytes_out(self) -> int:
        """Bytes the sink wrote so far (trace mode's byte budget is counted in them)."""
