"""A recording: an engine streaming into a trace file, the formatter and writer wired to it.

The engine only moves ring-buffer bytes to a sink; this is where they become a trace: the
formatter is built from the engine's function table once attaching is done, the writer is the
engine's sink, and on stop the writer is closed with the end-of-run summary (the caller's
fields and the engine's final counts).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from datacrumbs.ebpf.engine import Engine, EngineError
from datacrumbs.ebpf.sink import LossCounts
from datacrumbs.trace.clock import clock_offset_ns
from datacrumbs.trace.format import DEFAULT_BUDGET, EventFormatter
from datacrumbs.trace.memory_budget import MemoryBudget
from datacrumbs.trace.process_info import ProcessInfoReader
from datacrumbs.trace.writer import TraceWriter

__all__ = ["Recording", "RecordingStats"]

_log = logging.getLogger("datacrumbs.engine")


@dataclass(frozen=True)
class RecordingStats:
    """Counts so far. ``events``: call events written to the trace; ``lost``: calls that
    happened but are not in it (ring buffer full, in-flight map full, …: ``loss``, the kernel's
    counts; or the disk full, over quota, failing: ``unwritten``). ``events + lost`` are the
    calls made. ``write_failure``: the first write of the trace that failed, as one line
    (``"No space left on device"``); None while every write went through."""

    events: int
    records: int
    ring_bytes: int
    trace_bytes: int
    loss: LossCounts
    aggregates: int = 0  # aggregated records written (profile mode, the valve)
    aggregated_calls: int = 0  # the calls they hold (counted in ``events`` too)
    unwritten: int = 0  # calls formatted but not written (a failed write)
    write_failure: str | None = None

    @property
    def lost(self) -> int:
        return self.loss.total_events + self.unwritten


class Recording:
    """``engine`` (loaded and attached) streaming into ``writer`` (not started yet), within
    ``budget``'s shares of memory (the daemon's: DATACRUMBS_DAEMON_MEMORY_MB)."""

    def __init__(
        self,
        engine: Engine,
        writer: TraceWriter,
        hostname: str | None = None,
        budget: MemoryBudget = DEFAULT_BUDGET,
        trace_max_bytes: int = 0,
        aggregate_ph: str = "3",
    ) -> None:
        self.engine = engine
        self.aggregate_ph = aggregate_ph  # the aggregated records' form (EventFormatter)
        #: trace mode's valve: once the trace file holds this many bytes, every call that may
        #: fold is aggregated (0: no budget)
        self.trace_max_bytes = trace_max_bytes
        self.writer = writer
        self.hostname = hostname or socket.gethostname()
        self.budget = budget

    @property
    def path(self) -> Path:
        return self.writer.path

    def start(self) -> None:
        """Build the formatter from the attached functions, start the writer, then the engine."""
        formatter = EventFormatter(
            dict(self.engine.functions.specs),
            clock_offset=clock_offset_ns(),
            hostname=self.hostname,
            pid=os.getpid(),
            tid=threading.get_native_id(),
            process_info=ProcessInfoReader(self.engine.config.uid),
            profile_interval_ns=self.engine.config.aggregate_interval_ns,
            profile_interval_shift=self.engine.profile_interval_shift,
            budget=self.budget,
            profile=self.engine.config.profiles,
            aggregate_ph=self.aggregate_ph,
        )
        self.writer.start(formatter, self.budget.pending)
        self.engine.start(self.writer, self.trace_max_bytes)

    def stats(self) -> RecordingStats:
        engine = self.engine.stats()
        unwritten = self.writer.unwritten  # before the formatter's counts: never above them
        fmt = self.writer.formatter
        return RecordingStats(
            events=fmt.events - unwritten.events if fmt is not None else 0,
            records=fmt.records if fmt is not None else 0,
            ring_bytes=engine.ring_bytes,
            trace_bytes=self.writer.bytes_out,
            loss=engine.loss,
            aggregates=fmt.aggregates - unwritten.aggregates if fmt is not None else 0,
            aggregated_calls=(
                fmt.aggregated_calls - unwritten.aggregated_calls if fmt is not None else 0
            ),
            unwritten=unwritten.events,
            write_failure=self.writer.write_failure,
        )

    def stop(self, summary: Mapping[str, int | float | str] | None = None) -> RecordingStats:
        """Detach, drain, and close the trace with its summary: ``summary``'s fields (the
        daemon's ``duration_s``, ``run_id``, ``user``) and the engine's own counts, which win a
        clash, and what the writer could not write (the disk full) is counted as lost. Returns
        the final counts; the trace is closed even when the poller had failed (then
        :class:`EngineError` follows). A full disk does not raise: the counts say what is
        missing and ``writer.complete`` whether the trace has its end."""
        failure: EngineError | None = None
        try:
            self.engine.stop()
        except EngineError as exc:
            failure = exc
        engine = self.engine.stats()
        self.writer.close(
            summary={
                **(summary or {}),
                "lost_events": engine.loss.total_events,
                "lost_names": engine.loss.names,
                "lost_tasks": engine.loss.tasks,
                "ring_bytes": engine.ring_bytes,
                "mode": "profile" if self.engine.config.profiles else "trace",
            }
        )
        if failure is not None:
            raise failure
        final = self.stats()
        _log.info(
            "trace %s: %d events, %d lost, %d bytes",
            self.writer.path,
            final.events,
            final.lost,
            final.trace_bytes,
            extra={"TRACE": str(self.writer.path), "EVENTS": final.events, "LOST": final.lost},
        )
        fmt = self.writer.formatter
        counts = fmt.bounded_counts() if fmt is not None else {}
        if counts.get("names_evicted") or counts.get("tasks_evicted"):
            _log.info(
                "trace %s: within %d MiB, %d file names and %d processes or threads were "
                "forgotten (each written again where it came back)",
                self.writer.path,
                self.budget.total >> 20,
                counts["names_evicted"],
                counts["tasks_evicted"],
                extra={k.upper(): v for k, v in counts.items()},
            )
        return final
