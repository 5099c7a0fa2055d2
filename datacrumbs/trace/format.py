"""The hot path: ring-buffer records → DFTracer JSON lines.

Everything the trace says is decided here, once per function, when the formatter is built: each
function id gets a ``%``-template with its ``name``, ``cat``, host hash and argument keys already
in place, so that formatting an event is two ``struct`` unpacks, a dict lookup and one string
``%``. No logging and no validation per event (the kernel's records are trusted; their layout
is fixed by ``datacrumbs/ebpf/records.py``). The exact format is documented in
``docs/trace-format.md``.

Times: the kernel stamps events with CLOCK_MONOTONIC; ``clock_offset_ns`` (wall clock minus
monotonic, sampled once at start) turns them into wall-clock microseconds.
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Callable, Mapping
from operator import itemgetter

from datacrumbs.ebpf.functions import ArgField, ArgKind, FunctionSpec
from datacrumbs.ebpf.records import CALL, NAME_HEADER, TASK, RecordType, fnv1a64
from datacrumbs.ebpf.ringbuf import DISCARD_BIT, HEADER_SIZE
from datacrumbs.ebpf.sink import LossCounts

__all__ = ["EventFormatter", "clock_offset_ns"]

_HEADER_AND_TYPE = struct.Struct("<III")  # ring-buffer header (len, pg_off) + record type
#: A whole call record with its ring-buffer header, decoded by one unpack: len, pg_off, type,
#: fid, pid, tid, ts, dur, ret, fhash, args[6].
_FRAMED_CALL = struct.Struct("<II" + CALL.format.lstrip("<"))
_FRAMED_CALL_SIZE = _FRAMED_CALL.size
_LEN_MASK = 0x3FFFFFFF
_MAX_CACHED_HASHES = 1 << 16
_CALL = int(RecordType.CALL)
_NAME = int(RecordType.NAME)
_TASK = int(RecordType.TASK)
_RET_AT = 8  # indexes in a _FRAMED_CALL tuple
_ARGS_AT = 10


def clock_offset_ns(samples: int = 5) -> int:
    """Wall clock minus CLOCK_MONOTONIC, from the tightest of a few paired readings."""
    best: tuple[int, int] | None = None
    for _ in range(samples):
        m0 = time.monotonic_ns()
        wall = time.time_ns()
        m1 = time.monotonic_ns()
        if best is None or m1 - m0 < best[0]:
            best = (m1 - m0, wall - (m0 + m1) // 2)
    assert best is not None
    return best[1]


def _json(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _narrow(f: ArgField) -> Callable[[int], int] | None:
    """The conversion a raw (signed 64-bit) value needs, None when it is printed as is."""
    if f.kind is ArgKind.HASH:
        return lambda v: v & 0xFFFFFFFFFFFFFFFF
    if f.num_bytes >= 8:
        return None
    bits = 8 * f.num_bytes
    mask = (1 << bits) - 1
    if f.signed:
        sign = 1 << (bits - 1)
        return lambda v: ((v & mask) ^ sign) - sign
    return lambda v: v & mask


class _Template:
    """The pre-built line of one function, with and without an fhash."""

    __slots__ = ("pick", "with_file", "without_file")

    pick: Callable[[tuple[int, ...]], tuple[int, ...]]

    def __init__(self, spec: FunctionSpec, hhash: str) -> None:
        head = (
            '{"id":%d,"name":'
            + _json(spec.name).replace("%", "%%")
            + ',"cat":'
            + _json(spec.category).replace("%", "%%")
            + ',"pid":%d,"tid":%d,"ts":%d,"dur":%d,"ph":"X","args":{"hhash":"'
            + hhash
            + ('","ret":%d' if spec.has_return else '"')
        )
        body = "".join(
            ',"' + f.key.replace('"', "") + ('":"%016x"' if f.kind is ArgKind.HASH else '":%d')
            for f in spec.fields
        ) + "".join(
            # constant: written once into the template ("%" doubled for the % formatting)
            f",{_json(key)}:{_json(value)}".replace("%", "%%")
            for key, value in spec.labels
        )
        self.without_file = (head + body + "}}\n").encode()
        # the fhash goes in as cached hex bytes (%s): cheaper than %016x per event
        self.with_file = (head + body + ',"fhash":"%s"}}\n').encode() if spec.has_file else None
        ret: list[int] = [_RET_AT] if spec.has_return else []
        indexes = ret + [_ARGS_AT + f.index for f in spec.fields]
        converters = [None] * len(ret) + [_narrow(f) for f in spec.fields]
        if any(converters):
            pairs = tuple(zip(indexes, converters, strict=True))
            self.pick = lambda t: tuple(c(t[i]) if c else t[i] for i, c in pairs)
        elif not indexes:
            self.pick = lambda t: ()
        elif len(indexes) == 1:
            self.pick = lambda t: (t[indexes[0]],)
        else:
            self.pick = itemgetter(*indexes)


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
        process_info: Callable[[int], Mapping[str, str]] | None = None,
    ) -> None:
        self.hostname = hostname
        self.hhash = f"{fnv1a64(hostname.encode()):016x}"
        self._templates = {fid: _Template(spec, self.hhash) for fid, spec in functions.items()}
        self._offset = clock_offset
        self._pid = pid
        self._tid = tid
        self.next_id = 1
        self.events = 0  # call events written
        self.records = 0  # ring-buffer records decoded
        self._names: set[int] = set()
        self._hexes: dict[int, bytes] = {}
        self._process_names: dict[int, str] = {}
        #: cmd, exe, cwd, ppid, rank of a process, written as PR metadata with its name
        self._process_info = process_info
        self._thread_names: dict[int, str] = {}

    # -- metadata ------------------------------------------------------------------------
    def _meta(self, name: str, pid: int, tid: int, args: str, cat: str = "dftracer") -> str:
        line = (
            f'{{"id":{self.next_id},"name":"{name}","cat":"{cat}","pid":{pid},"tid":{tid},'
            f'"ph":"M","args":{args}}}\n'
        )
        self.next_id += 1
        return line

    def header(self) -> str:
        """The host-hash metadata that opens a trace (after the writer's ``[`` line)."""
        args = f'{{"hhash":"{self.hhash}","name":{_json(self.hostname)},"value":"{self.hhash}"}}'
        return self._meta("HH", self._pid, self._tid, args)

    def _tracer_event(self, name: str, args: Mapping[str, int | str]) -> str:
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

    def loss_line(self, loss: LossCounts) -> str:
        """The loss so far, in band: cumulative counts, written when they change."""
        counts = {"lost_events": loss.total_events, "lost_names": loss.names}
        return self._tracer_event("datacrumbs_loss", counts | {"lost_tasks": loss.tasks})

    def notice_line(self, name: str, args: Mapping[str, int | str]) -> str:
        """Something that changed what the trace holds from here on (a probe detached)."""
        return self._tracer_event(name, args)

    def summary_line(self, summary: Mapping[str, int | float | str]) -> str:
        """The end-of-run summary, as a metadata record of the tracer's own (``events`` is this
        formatter's count of call events); not DFTracer's process metadata (``PR``), which the
        tools read as a process name."""
        fields: dict[str, int | float | str] = {"events": self.events}
        fields.update((k, v) for k, v in summary.items() if k != "events")
        value = json.dumps(fields, separators=(",", ":"))
        args = f'{{"hhash":"{self.hhash}","name":"datacrumbs_summary","value":{value}}}'
        return self._meta("datacrumbs_summary", self._pid, self._tid, args, cat="datacrumbs")

    def _name_line(self, chunk: bytes, rec: int) -> str:
        _, length, fhash, pid, tid = NAME_HEADER.unpack_from(chunk, rec)
        if fhash in self._names:
            return ""
        self._names.add(fhash)
        start = rec + NAME_HEADER.size
        name = chunk[start : start + length].decode(errors="backslashreplace")
        args = f'{{"hhash":"{self.hhash}","name":{_json(name)},"value":"{fhash:016x}"}}'
        return self._meta("FH", pid, tid, args)

    def _task_lines(self, chunk: bytes, rec: int) -> str:
        _, _, pid, tid, comm, process_comm = TASK.unpack_from(chunk, rec)
        out = ""
        process = process_comm.split(b"\0", 1)[0].decode(errors="backslashreplace")
        thread = comm.split(b"\0", 1)[0].decode(errors="backslashreplace")
        if self._process_names.get(pid) != process:
            self._process_names[pid] = process
            name = _json(process)
            out += self._meta("process_name", pid, pid, f'{{"name":{name}}}', cat="datacrumbs")
            out += self._meta(
                "PR", pid, tid, f'{{"hhash":"{self.hhash}","name":"comm","value":{name}}}'
            )
            if self._process_info is not None:
                for key, value in self._process_info(pid).items():
                    args = f'{{"hhash":"{self.hhash}","name":{_json(key)},"value":{_json(value)}}}'
                    out += self._meta("PR", pid, tid, args)
        if self._thread_names.get(tid) != thread:
            self._thread_names[tid] = thread
            args = f'{{"name":{_json(thread)}}}'
            out += self._meta("thread_name", pid, tid, args, cat="datacrumbs")
        return out

    # -- events --------------------------------------------------------------------------
    def format(self, chunk: bytes) -> bytes:
        """All lines for one chunk of ring-buffer records (headers included), UTF-8."""
        out: list[bytes] = []
        append = out.append
        templates = self._templates
        offset = self._offset
        unpack_head = _HEADER_AND_TYPE.unpack_from
        unpack_call = _FRAMED_CALL.unpack_from
        hexes = self._hexes
        if len(hexes) > _MAX_CACHED_HASHES:
            hexes.clear()
        eid = self.next_id
        events = records = 0
        pos, end = 0, len(chunk)
        last_call = end - _FRAMED_CALL_SIZE
        while pos < end:
            if pos <= last_call:
                t = unpack_call(chunk, pos)
                if t[2] == _CALL and not t[0] & DISCARD_BIT:
                    pos += _FRAMED_CALL_SIZE
                    records += 1
                    tpl = templates.get(t[3])
                    if tpl is None:
                        continue
                    head = (eid, t[4], t[5], (t[6] + offset) // 1000, t[7] // 1000)
                    fhash = t[9]
                    if fhash and tpl.with_file is not None:
                        hexed = hexes.get(fhash)
                        if hexed is None:
                            hexed = hexes[fhash] = b"%016x" % fhash
                        append(tpl.with_file % (head + tpl.pick(t) + (hexed,)))
                    else:
                        append(tpl.without_file % (head + tpl.pick(t)))
                    eid += 1
                    events += 1
                    continue
            length, _, rtype = unpack_head(chunk, pos)
            rec = pos + HEADER_SIZE
            pos = rec + (((length & _LEN_MASK) + 7) & ~7)
            if length & DISCARD_BIT:
                continue
            records += 1
            self.next_id = eid
            if rtype == _NAME:
                append(self._name_line(chunk, rec).encode())
            elif rtype == _TASK:
                append(self._task_lines(chunk, rec).encode())
            eid = self.next_id
        self.next_id = eid
        self.events += events
        self.records += records
        return b"".join(out)
