"""The hot path: ring-buffer records → DFTracer JSON lines.

Everything the trace says is decided here, once per function, when the formatter is built: each
function id gets a line template with its ``name``, ``cat``, host hash and argument keys already
in place, and the compiled formatter (``_format.c``) fills the templates in from the call
records: ~100 ns per event here, without the GIL (the same in Python took ~1.9 us, holding
it). No logging and no validation per event (the kernel's records are trusted; their layout is
fixed by ``datacrumbs/ebpf/bpf/dc_records.h``, which the C code includes). The exact format is
documented in ``docs/trace-format.md``.

Times: the kernel stamps events with CLOCK_MONOTONIC; ``clock.clock_offset_ns`` (wall clock
minus monotonic, sampled once at start) turns them into wall-clock microseconds, and the trace
records the node's clock facts at its start and end (``datacrumbs_clock``, ``trace/clock.py``).
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Callable, Iterator, Mapping
from typing import NamedTuple

from datacrumbs.common.dftracer_names import BYTE_RETURNS
from datacrumbs.ebpf.functions import ArgField, ArgKind, FunctionSpec
from datacrumbs.ebpf.profile_map import ROW_SIZE
from datacrumbs.ebpf.records import (
    AGG,
    AGG_KEY,
    NAME_HEADER,
    TASK,
    TASK_FIELDS,
    RecordType,
    field_offsets,
    fnv1a64,
)
from datacrumbs.ebpf.ringbuf import DISCARD_BIT, HEADER_SIZE
from datacrumbs.ebpf.sink import LossCounts
from datacrumbs.trace import _format as _fast
from datacrumbs.trace.clock import clock_facts
from datacrumbs.trace.memory_budget import DEFAULT_TOTAL, MemoryBudget
from datacrumbs.trace.name_cache import NameCache, RecentTable

__all__ = ["BATCH_RECORDS", "EventFormatter", "ProcessInfo", "Unwritten"]

DEFAULT_BUDGET = MemoryBudget.of(DEFAULT_TOTAL)

#: Reads a process's metadata: (pid, its command name as the kernel sent it, a CLOCK_MONOTONIC
#: time the kernel saw it running or None) -> its fields, or None when it cannot be read as
#: that very process (:class:`~datacrumbs.trace.process_info.ProcessInfoReader`).
ProcessInfo = Callable[[int, bytes, int | None], Mapping[str, str] | None]

_HEADER_AND_TYPE = struct.Struct("<III")  # ring-buffer header (len, pg_off) + record type
_LEN_MASK = 0x3FFFFFFF
_CALL = int(RecordType.CALL)
_NAME = int(RecordType.NAME)
_TASK = int(RecordType.TASK)
#: call records formatted at a time: the formatter's buffer and a piece of text stay below
#: BATCH_RECORDS lines (~16 MiB at most) however large a chunk is
BATCH_RECORDS = 16384
_TID = struct.Struct("<I")
_TASK_TID = field_offsets(TASK, TASK_FIELDS)["tid"][0]
#: what a process whose metadata could not be read as that very process gets (PR lines)
_UNKNOWN = {"metadata": "unknown"}


def _json(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


_LOST_KEYS = ("lost_events", "lost_names", "lost_tasks")


def _unwritten_fields(unwritten: Unwritten, write_error: str) -> dict[str, int | str]:
    return {
        "unwritten_events": unwritten.events,
        "unwritten_names": unwritten.names,
        "unwritten_tasks": unwritten.tasks,
        "write_error": write_error,
    }


def _conversion(f: ArgField) -> int:
    """How the compiled formatter prints an argument: 16 hex digits (a hash), as the signed
    64-bit value captured, or narrowed to its C type's bytes and signedness first."""
    if f.kind is ArgKind.HASH:
        return _fast.CONV_HEX
    if f.num_bytes >= 8:
        return _fast.CONV_INT
    return _fast.CONV_NARROW + 2 * (f.num_bytes - 1) + int(f.signed)


def _second_file(spec: FunctionSpec) -> str | None:
    """The key of a call's other file (a copy's ``in_fhash``, a rename's ``new_fhash``): the
    kernel keys its aggregates by that file too."""
    return next((f.key for f in spec.fields if f.kind is ArgKind.HASH), None)


class Unwritten(NamedTuple):
    """What the writer formatted but could not write (the disk full, over quota, failing):
    call events, file-name records, process/thread-name records, profile aggregates and the
    calls they hold (also in ``events``)."""

    events: int = 0
    names: int = 0
    tasks: int = 0
    aggregates: int = 0
    aggregated_calls: int = 0


_NOTHING_UNWRITTEN = Unwritten()


class _Parts:
    """A line template for the compiled formatter: literals, each followed by one value."""

    def __init__(self) -> None:
        self.parts: list[tuple[bytes, int, int]] = []
        self.literal = ""

    def text(self, literal: str) -> _Parts:
        self.literal += literal
        return self

    def value(self, source: int, conversion: int = _fast.CONV_INT) -> _Parts:
        self.parts.append((self.literal.encode(), source, conversion))
        self.literal = ""
        return self

    def done(self, tail: str) -> _fast.Template:
        return tuple(self.parts), (self.literal + tail).encode()


def _templates(spec: FunctionSpec, hhash: str) -> tuple[_fast.Template, _fast.Template | None]:
    """One function's line, without and with an fhash (None: its events have no file)."""

    def line(with_file: bool) -> _fast.Template:
        t = _Parts().text('{"id":').value(_fast.SRC_ID)
        t.text(f',"name":{_json(spec.name)},"cat":{_json(spec.category)},"pid":')
        t.value(_fast.SRC_PID).text(',"tid":').value(_fast.SRC_TID)
        t.text(',"ts":').value(_fast.SRC_TS).text(',"dur":').value(_fast.SRC_DUR)
        t.text(f',"ph":"X","args":{{"hhash":"{hhash}"')
        if spec.has_return:
            ret = ArgField("ret", 0, num_bytes=spec.ret_bytes, signed=spec.ret_signed)
            t.text(',"ret":').value(_fast.SRC_RET, _conversion(ret))
        for f in spec.fields:
            key = f.key.replace('"', "")
            conversion = _conversion(f)
            if conversion == _fast.CONV_HEX:
                t.text(f',"{key}":"').value(_fast.SRC_ARG0 + f.index, conversion).text('"')
            else:
                t.text(f',"{key}":').value(_fast.SRC_ARG0 + f.index, conversion)
        for key, value in spec.labels:  # constant: written once into the template
            t.text(f",{_json(key)}:{_json(value)}")
        if with_file:
            t.text(',"fhash":"').value(_fast.SRC_FHASH, _fast.CONV_HEX).text('"')
        return t.done("}}\n")

    return line(False), line(True) if spec.has_file else None


class EventFormatter:
    """Turns chunks of raw ring-buffer bytes into trace lines. Not thread-safe: one formatter
    belongs to one formatting thread."""

    def __init__(
        self,
        functions: Mapping[int, FunctionSpec],
        *,
        clock_offset: int,
        hostname: str,
        pid: int,
        tid: int,
        process_info: ProcessInfo | None = None,
        profile_interval_ns: int = 0,
        profile_interval_shift: int = 0,
        budget: MemoryBudget = DEFAULT_BUDGET,
        profile: bool | None = None,
        aggregate_ph: str = "3",
    ) -> None:
        self.hostname = hostname
        self.hhash = f"{fnv1a64(hostname.encode()):016x}"
        self._calls = _fast.Formatter(
            {fid: _templates(spec, self.hhash) for fid, spec in functions.items()}, clock_offset
        )
        self._offset = clock_offset
        self._specs = dict(functions)
        # the aggregates' intervals (profile mode, or trace mode's valve: ``profile`` False)
        self._interval_ns = profile_interval_ns
        self._interval_shift = profile_interval_shift
        self._profile = bool(profile_interval_ns) if profile is None else profile
        #: "3": aggregated records and the end record as DFTracer's spec writes them; "C":
        #: as the released dftracer-analyzer 0.0.9 (dftracer-utils 0.0.12) reads them
        self._spec = aggregate_ph == "3"
        self.aggregates = 0  # aggregated records written (profile mode, the valve)
        self.aggregated_calls = 0  # the calls they hold (also in ``events``)
        self._pid = pid
        self._tid = tid
        self.next_id = 1
        self.events = 0  # calls written (one per event; in profile mode, each aggregate's)
        self.records = 0  # ring-buffer records decoded
        self.names = 0  # file-name records written (FH lines)
        self.tasks = 0  # process/thread-name records written (their lines)
        #: the names, processes and threads written lately (bounded: ``budget``'s shares)
        self.name_cache = NameCache(budget.name_slots)
        self._process_names: RecentTable[int, str] = RecentTable(budget.task_entries)
        self._thread_names: RecentTable[int, str] = RecentTable(budget.task_entries)
        #: cmd, exe, cwd, ppid, rank of a process, written as PR metadata with its name
        self._process_info = process_info
        self.processes_unknown = 0  # processes whose metadata could not be theirs for sure

    # -- metadata ------------------------------------------------------------------------
    def _meta(self, name: str, pid: int, tid: int, args: str, cat: str = "dftracer") -> str:
        line = (
            f'{{"id":{self.next_id},"name":"{name}","cat":"{cat}","pid":{pid},"tid":{tid},'
            f'"ph":"M","args":{args}}}\n'
        )
        self.next_id += 1
        return line

    def header(self) -> str:
        """The host-hash metadata that opens a trace (after the writer's ``[`` line), and the
        mode the trace was made in (``trace``, with the valve's aggregates' interval when it
        has one, or ``profile`` and its interval)."""
        args = f'{{"hhash":"{self.hhash}","name":{_json(self.hostname)},"value":"{self.hhash}"}}'
        mode = '{"mode":"trace"}'
        if self._interval_ns:
            mode = (
                f'{{"mode":"{"profile" if self._profile else "trace"}",'
                f'"interval_ms":{self._interval_ns / 1e6:g}}}'
            )
        return (
            self._meta("HH", self._pid, self._tid, args)
            + self._meta("datacrumbs_mode", self._pid, self._tid, mode, cat="datacrumbs")
            + self._tracer_event("datacrumbs_clock", clock_facts("start"))
        )

    def _tracer_event(self, name: str, args: Mapping[str, int | str | bool]) -> str:
        """A record of the tracer itself, stamped now: metadata (``ph`` ``M``, ``cat``
        datacrumbs), so that the DFTracer tools neither count it as a call nor take it for a
        system metric (they do both with ``C`` counter events)."""
        ts = (time.monotonic_ns() + self._offset) // 1000
        line = (
            f'{{"id":{self.next_id},"name":{_json(name)},"cat":"datacrumbs","pid":{self._pid},'
            f'"tid":{self._tid},"ts":{ts},"ph":"M",'
            f'"args":{json.dumps(args, separators=(",", ":"))}}}\n'
        )
        self.next_id += 1
        return line

    def loss_line(
        self,
        loss: LossCounts,
        unwritten: Unwritten = _NOTHING_UNWRITTEN,
        write_error: str | None = None,
    ) -> str:
        """The loss so far, in band: cumulative counts, written when they change. What the
        writer could not write is lost too: added in, and with ``write_error`` (the first
        failed write) shown apart as ``unwritten_*``."""
        counts: dict[str, int | str] = {
            "lost_events": loss.total_events + unwritten.events,
            "lost_names": loss.names + unwritten.names,
            "lost_tasks": loss.tasks + unwritten.tasks,
        }
        if write_error is not None:
            counts |= _unwritten_fields(unwritten, write_error)
        return self._tracer_event("datacrumbs_loss", counts)

    def notice_line(self, name: str, args: Mapping[str, int | str]) -> str:
        """Something that changed what the trace holds from here on (a probe detached)."""
        return self._tracer_event(name, args)

    def summary_line(
        self,
        summary: Mapping[str, int | float | str],
        unwritten: Unwritten = _NOTHING_UNWRITTEN,
        write_error: str | None = None,
    ) -> str:
        """The clock's facts at the end, then the end-of-run summary, as a metadata record of
        the tracer's own (``events`` is this formatter's count of call events, less those not
        written, which the ``lost_*`` counts get); not DFTracer's process metadata (``PR``),
        which the tools read as a process name."""
        fields: dict[str, int | float | str] = {"events": self.events - unwritten.events}
        if self._interval_ns:
            fields["aggregates"] = self.aggregates - unwritten.aggregates
            fields["aggregated_calls"] = self.aggregated_calls - unwritten.aggregated_calls
        fields.update((k, v) for k, v in summary.items() if k != "events")
        fields |= self.bounded_counts()
        if write_error is not None:
            for key, count in zip(_LOST_KEYS, unwritten[:3], strict=True):
                value = fields.get(key, 0)
                fields[key] = (value if isinstance(value, int) else 0) + count
            fields |= _unwritten_fields(unwritten, write_error)
        value = json.dumps(fields, separators=(",", ":"))
        args = f'{{"hhash":"{self.hhash}","name":"datacrumbs_summary","value":{value}}}'
        # DFTracer's end record, where its interval tells how to read aggregates; not in a
        # trace of events only, where dftracer-analyzer 0.0.9 would take the daemon for one
        # more process of the job
        aggregated = self._profile or self.aggregates
        end = self._end_line(self.events - unwritten.events) if self._spec and aggregated else ""
        return (
            self._tracer_event("datacrumbs_clock", clock_facts("end"))
            + self._meta("datacrumbs_summary", self._pid, self._tid, args, cat="datacrumbs")
            + end
        )

    def _end_line(self, calls: int) -> str:
        """DFTracer's ``end`` record (its trace-format spec; DFTracer 2.2 writes it as each
        process finishes): the configuration a reader needs, ``cfg.trace_interval_ms`` (the
        aggregates' interval, 0 without), and ``num_events``, the calls the trace holds."""
        ts = (time.monotonic_ns() + self._offset) // 1000
        cfg = {
            "trace_interval_ms": (
                self._interval_ns // 1_000_000
                if self._interval_ns % 1_000_000 == 0
                else self._interval_ns / 1e6
            ),
            "aggregation_enable": int(bool(self._interval_ns)),
            "time_metric": "US",
        }
        args = {"hhash": self.hhash, "cfg": cfg, "num_events": calls}
        line = (
            f'{{"id":{self.next_id},"name":"end","cat":"dftracer","type":1,"pid":{self._pid},'
            f'"tid":{self._tid},"ts":{ts},"dur":0,"ph":1,'
            f'"args":{json.dumps(args, separators=(",", ":"))}}}\n'
        )
        self.next_id += 1
        return line

    def bounded_counts(self) -> dict[str, int]:
        """What the bounded tables forgot (names written again if the kernel sends them
        again; processes and threads described again if they come back), the name cache's
        size, and the processes left without metadata (gone, or their pid another's)."""
        return {
            "name_slots": self.name_cache.slots,
            "names_evicted": self.name_cache.evicted,
            "tasks_evicted": self._process_names.evicted + self._thread_names.evicted,
            "processes_unknown": self.processes_unknown,
        }

    def _name_line(self, chunk: bytes, rec: int) -> str:
        _, length, fhash, pid, tid = NAME_HEADER.unpack_from(chunk, rec)
        if not self.name_cache.add(fhash):
            return ""  # written lately (a name forgotten since is written again)
        self.names += 1
        start = rec + NAME_HEADER.size
        name = chunk[start : start + length].decode(errors="backslashreplace")
        args = f'{{"hhash":"{self.hhash}","name":{_json(name)},"value":"{fhash:016x}"}}'
        return self._meta("FH", pid, tid, args)

    def _task_lines(self, chunk: bytes, rec: int, alive_at: int | None) -> str:
        _, _, pid, tid, comm, process_comm = TASK.unpack_from(chunk, rec)
        out = ""
        process_raw = process_comm.split(b"\0", 1)[0]
        process = process_raw.decode(errors="backslashreplace")
        thread = comm.split(b"\0", 1)[0].decode(errors="backslashreplace")
        if self._process_names.get(pid) != process:
            self._process_names.put(pid, process)
            name = _json(process)
            out += self._meta("process_name", pid, pid, f'{{"name":{name}}}', cat="datacrumbs")
            out += self._meta(
                "PR", pid, tid, f'{{"hhash":"{self.hhash}","name":"comm","value":{name}}}'
            )
            if self._process_info is not None:
                info = self._process_info(pid, process_raw, alive_at)
                self.processes_unknown += info is None
                # None: gone, or no longer the process the kernel described (another may
                # hold its pid now): the trace says so rather than show another's
                for key, value in (info if info is not None else _UNKNOWN).items():
                    args = f'{{"hhash":"{self.hhash}","name":{_json(key)},"value":{_json(value)}}}'
                    out += self._meta("PR", pid, tid, args)
        if self._thread_names.get(tid) != thread:
            self._thread_names.put(tid, thread)
            args = f'{{"name":{_json(thread)}}}'
            out += self._meta("thread_name", pid, tid, args, cat="datacrumbs")
        if out:
            self.tasks += 1
        return out

    # -- events --------------------------------------------------------------------------
    def format(self, chunk: bytes) -> bytes:
        """All lines for one chunk of ring-buffer records (headers included), UTF-8."""
        return b"".join(self.format_pieces(chunk))

    def format_pieces(self, chunk: bytes) -> Iterator[bytes]:
        """The lines for one chunk of ring-buffer records (headers included), UTF-8, in pieces
        of at most :data:`BATCH_RECORDS` lines: a chunk holds up to a ring's worth, and its
        lines, whole, would be several times that. The counts (:attr:`events`, :attr:`names`,
        …) are up to date at each piece. Runs of call records are formatted in C (without the
        GIL); the file-name and thread records between them here."""
        out: list[bytes] = []
        lines = 0  # records behind what is in out
        last_tid, last_ts = 0, 0  # the last call record's thread and entry time
        pos, end = 0, len(chunk)
        while pos < end:
            if lines >= BATCH_RECORDS:
                yield b"".join(out)
                out, lines = [], 0
            batch = self._calls.format_calls(chunk, pos, self.next_id, BATCH_RECORDS - lines)
            text, pos, self.next_id, events, records, tid, ts = batch
            out.append(text)
            self.events += events
            self.records += records
            lines += records
            if records:
                last_tid, last_ts = tid, ts
            if pos >= end:
                break
            length, _, rtype = _HEADER_AND_TYPE.unpack_from(chunk, pos)
            if rtype == _CALL and not length & DISCARD_BIT:  # the batch was full
                continue
            if lines >= BATCH_RECORDS:
                yield b"".join(out)
                out, lines = [], 0
            rec = pos + HEADER_SIZE
            pos = rec + (((length & _LEN_MASK) + 7) & ~7)
            if length & DISCARD_BIT:
                continue
            self.records += 1
            lines += 1
            if rtype == _NAME:
                out.append(self._name_line(chunk, rec).encode())
            elif rtype == _TASK:
                # the kernel reserves a thread's call record before describing the thread:
                # the last call is its own, made while it ran (unless another CPU's record
                # came in between)
                tid = _TID.unpack_from(chunk, rec + _TASK_TID)[0]
                alive_at = last_ts if last_tid == tid else None
                out.append(self._task_lines(chunk, rec, alive_at).encode())
        yield b"".join(out)

    # -- profile mode --------------------------------------------------------------------
    def profile_lines(self, rows: bytes) -> bytes:
        """Aggregated records, one per harvested aggregate (``key | value`` rows,
        :mod:`datacrumbs.ebpf.profile_map`): the calls of one function, thread and file in one
        interval, stamped with the interval's start; times in microseconds, as everywhere in
        the trace.

        ``ret_sum``, ``ret_min``, ``ret_max`` and ``ret_log2`` (calls by the log2 of their
        return value) are written for the calls whose return value is a byte count
        (:data:`~datacrumbs.common.dftracer_names.BYTE_RETURNS`): the tools add every
        aggregate's ``ret_sum`` to the bytes moved, an open's fd too. ``errors`` counts the
        calls that failed (ret < 0), which ``ret_sum`` leaves out.

        ``"ph":3``, as DFTracer's trace-format spec and DFTracer 2.2 write them (no ``dur``: it
        is ``dur_sum``), which dftracer-utils 0.0.14 reads as aggregated records; or, with
        ``aggregate_ph`` "C", ``"ph":"C"`` with ``dur`` repeating ``dur_sum``: the released
        dftracer-analyzer 0.0.9 (with dftracer-utils 0.0.12) takes a record for a profile only
        when its ``ph`` is the string ``"C"``, and counts a ``3`` as one call with no bytes
        (docs/trace-format.md)."""
        out: list[str] = []
        for at in range(0, len(rows), ROW_SIZE):
            pid, tid, fid, _, interval, fhash, fhash2 = AGG_KEY.unpack_from(rows, at)
            spec = self._specs.get(fid)
            if spec is None:  # a function detached and forgotten: not in the trace
                continue
            count, dur_sum, dur_min, dur_max, ret_sum, errors, ret_min, ret_max, *rest = (
                AGG.unpack_from(rows, at + AGG_KEY.size)
            )
            off_min, off_max, *log2 = rest
            # the interval's start on the wall clock: a whole multiple of the interval (the
            # kernel shifted CLOCK_MONOTONIC by the wall clock's offset, read at load)
            start = interval * self._interval_ns - self._interval_shift + self._offset
            ts = (start + self._interval_ns // 2) // self._interval_ns * self._interval_ns // 1000
            args = f'"hhash":"{self.hhash}"'
            if fhash and spec.has_file:
                args += f',"fhash":"{fhash:016x}"'
            if fhash2 and (second := _second_file(spec)):
                args += f',"{second}":"{fhash2:016x}"'
            args += (
                f',"dft_cnt":{count},"dur_sum":{dur_sum // 1000},"dur_min":{dur_min // 1000},'
                f'"dur_max":{dur_max // 1000}'
            )
            if spec.name in BYTE_RETURNS:  # the tools total every aggregate's ret_sum
                args += f',"ret_sum":{ret_sum},"ret_min":{ret_min},"ret_max":{ret_max}'
                args += f',"ret_log2":[{",".join(map(str, log2))}]'
            if spec.has_return:
                args += f',"errors":{errors}'
            if any(f.key == "offset" for f in spec.fields):
                args += f',"offset_min":{off_min},"offset_max":{off_max}'
            for key, value in spec.labels:
                args += f",{_json(key)}:{_json(value)}"
            ph = '"ph":3,"type":3' if self._spec else f'"dur":{dur_sum // 1000},"ph":"C","type":3'
            out.append(
                f'{{"id":{self.next_id},"name":{_json(spec.name)},"cat":{_json(spec.category)},'
                f'"pid":{pid},"tid":{tid},"ts":{ts},{ph},"args":{{{args}}}}}\n'
            )
            self.next_id += 1
            self.events += count
            self.aggregated_calls += count
            self.aggregates += 1
        return "".join(out).encode()
