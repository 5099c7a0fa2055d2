"""The tracing engine: load the BPF object, attach probes, stream events into a trace writer.

The daemon drives it in this order::

    engine = Engine(EngineConfig(uid=job_uid))
    engine.load()
    outcomes = engine.attach(probe_file.categories)   # one TargetOutcome per function
    engine.start(TraceWriter(path))
    ...                                                # engine.stats() at any time
    final = engine.stop()                              # detach, drain, flush, close
    engine.close()

Threads: :meth:`Engine.start` starts one poller thread that only moves bytes: it waits on the
ring buffer (epoll, ``poll_interval`` timeout, or a kernel wakeup once the buffer is
``wakeup_fraction`` full), copies committed records out and hands them to the writer, whose
own threads format and compress. The poller also reads the kernel's loss counters once per
round and, when they change, puts an in-band loss event into the trace.

Kernel requirements: 5.15+ (BPF cookies on tracepoints and uprobes); see datacrumbs.bpf.c.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from datacrumbs.common.probes import Probe, ProbeType
from datacrumbs.ebpf import cgroups, features, syscalls, uprobes
from datacrumbs.ebpf.build import build_bpf_object
from datacrumbs.ebpf.functions import FunctionTable
from datacrumbs.ebpf.libbpf import BpfError, BpfLink, BpfObject, map_lookup, map_update
from datacrumbs.ebpf.records import LOST_SLOTS, Config
from datacrumbs.ebpf.ringbuf import RingBufferReader
from datacrumbs.trace.format import EventFormatter, LossCounts, clock_offset_ns
from datacrumbs.trace.writer import TraceWriter

__all__ = ["Engine", "EngineConfig", "EngineError", "EngineStats", "TargetOutcome"]

_log = logging.getLogger("datacrumbs.engine")

RINGBUF_MAP = "dc_events"
LOST_MAP = "dc_lost"
CGROUP_MAP = "dc_cgroup"
SYS_ENTER, SYS_EXIT = "dc_sys_enter", "dc_sys_exit"
FUNC_ENTER, FUNC_EXIT = "dc_func_enter", "dc_func_exit"
TASK_EXEC = "dc_task_exec"


class EngineError(RuntimeError):
    """The engine cannot do what was asked; the message is one line with the reason."""


@dataclass(frozen=True)
class EngineConfig:
    """What to trace and how much memory to use.

    ``uid``: only processes whose real uid is this one are traced (None: every process).
    ``cgroup``: also require membership of this cgroup v2 (a path or an id) or a descendant.
    ``ringbuf_bytes``: ring-buffer size, a power of two and a multiple of the page size.
    """

    uid: int | None
    cgroup: int | str | os.PathLike[str] | None = None
    ringbuf_bytes: int = 16 << 20
    poll_interval: float = 0.05
    wakeup_fraction: float = 0.25
    bpf_object: Path | None = None  # default: build (or reuse) the cached object
    hostname: str | None = None  # default: socket.gethostname()


@dataclass(frozen=True)
class TargetOutcome:
    """The result of attaching one function of one probe category."""

    category: str
    kind: ProbeType
    function: str
    attached: bool
    reason: str | None = None
    binary: str | None = None


@dataclass(frozen=True)
class EngineStats:
    """Counts so far. ``events``: call events written to the trace; ``lost``: calls that
    happened but are not in it (ring buffer full or in-flight map full)."""

    events: int
    records: int
    ring_bytes: int
    trace_bytes: int
    loss: LossCounts

    @property
    def lost(self) -> int:
        return self.loss.total_events

    def as_dict(self) -> dict[str, int]:
        return {
            "events": self.events,
            "records": self.records,
            "ring_bytes": self.ring_bytes,
            "trace_bytes": self.trace_bytes,
            "lost_events": self.loss.total_events,
            "lost_names": self.loss.names,
            "lost_tasks": self.loss.tasks,
        }


def _check_ringbuf_size(size: int) -> None:
    page = os.sysconf("SC_PAGE_SIZE")
    if size < page or size & (size - 1):
        raise EngineError(
            f"ring buffer size {size} must be a power of two of at least {page} bytes"
        )


class Engine:
    """One tracing session: a loaded BPF object, its attachments and its poller."""

    def __init__(self, config: EngineConfig) -> None:
        _check_ringbuf_size(config.ringbuf_bytes)
        self.config = config
        self.functions = FunctionTable()
        self._obj: BpfObject | None = None
        self._links: list[BpfLink] = []
        self._attached: dict[tuple[str, str], str] = {}  # (kind/binary, target) -> category
        self._reader: RingBufferReader | None = None
        self._writer: TraceWriter | None = None
        self._poller: threading.Thread | None = None
        self._stopping = threading.Event()
        self._ring_bytes = 0
        self._last_loss = LossCounts()
        self._kprobes_reason: str | None = None
        self._poll_error: BaseException | None = None

    # -- load ----------------------------------------------------------------------------
    def load(self) -> None:
        """Build (if needed) and load the BPF object with the configured filters."""
        if self._obj is not None:
            raise EngineError("the BPF object is already loaded")
        cfg = self.config
        try:
            features.ensure_tracefs()
        except OSError as exc:
            raise EngineError(str(exc)) from exc
        self._kprobes_reason = features.kprobe_support()
        path = cfg.bpf_object or build_bpf_object()
        pidns = features.own_pid_namespace()
        cgroup_fd = None
        if cfg.cgroup is not None:
            try:
                cgroup_fd = cgroups.open_cgroup(cgroups.resolve_cgroup(cfg.cgroup))
            except cgroups.CgroupError as exc:
                raise EngineError(str(exc)) from exc
        try:
            obj = BpfObject(path)
            try:
                obj.set_max_entries(RINGBUF_MAP, cfg.ringbuf_bytes)
                config = Config(
                    uid=cfg.uid,
                    filter_cgroup=cgroup_fd is not None,
                    self_tgid=os.getpid(),
                    pidns_dev=pidns.dev,
                    pidns_ino=pidns.ino,
                    wakeup_bytes=max(1, int(cfg.ringbuf_bytes * cfg.wakeup_fraction)),
                )
                obj.set_initial_value(".rodata", config.pack())
                obj.load()
                if cgroup_fd is not None:
                    map_update(
                        obj.map_fd(CGROUP_MAP),
                        (0).to_bytes(4, "little"),
                        cgroup_fd.to_bytes(4, "little"),
                    )
            except BaseException:
                obj.close()
                raise
        except BpfError as exc:
            raise EngineError(str(exc)) from exc
        finally:
            if cgroup_fd is not None:
                os.close(cgroup_fd)
        self._obj = obj
        self._links.append(obj.attach_tracepoint(TASK_EXEC, "sched", "sched_process_exec", 0))

    @property
    def _object(self) -> BpfObject:
        if self._obj is None:
            raise EngineError("the BPF object is not loaded (call load() first)")
        return self._obj

    # -- attach --------------------------------------------------------------------------
    def attach(self, probes: Iterable[Probe]) -> list[TargetOutcome]:
        """Attach every function of every probe; one outcome per function, in order."""
        self._object  # noqa: B018 - fail early when not loaded
        outcomes: list[TargetOutcome] = []
        elf_cache: dict[str, uprobes.ElfSymbols | uprobes.SymbolError] = {}
        for probe in probes:
            for function in probe.functions:
                if probe.type is ProbeType.SYSCALLS:
                    outcome = self._attach_syscall(probe, function)
                elif probe.type is ProbeType.UPROBE:
                    outcome = self._attach_uprobe(probe, function, elf_cache)
                elif probe.type is ProbeType.KPROBE:
                    outcome = self._attach_kprobe(probe, function)
                else:
                    kind = probe.type.name.lower()
                    outcome = self._failed(probe, function, f"{kind} probes are not supported yet")
                if not outcome.attached:
                    _log.warning(
                        "cannot trace %s:%s: %s",
                        probe.name,
                        function,
                        outcome.reason,
                        extra={"CATEGORY": probe.name, "FUNCTION": function},
                    )
                outcomes.append(outcome)
        return outcomes

    @staticmethod
    def _failed(probe: Probe, function: str, reason: str) -> TargetOutcome:
        return TargetOutcome(probe.name, probe.type, function, False, reason, probe.binary_path)

    def _claim(self, scope: str, target: str, probe: Probe, function: str) -> str | None:
        owner = self._attached.get((scope, target))
        if owner is not None:
            return f"{target} is already traced by category {owner}"
        self._attached[(scope, target)] = probe.name
        return None

    def _attach_pair(
        self,
        probe: Probe,
        function: str,
        fid: int,
        enter: Callable[[], BpfLink],
        exit_: Callable[[], BpfLink],
    ) -> TargetOutcome:
        """Attach the exit first so that no entry is ever recorded without its exit."""
        try:
            exit_link = exit_()
        except BpfError as exc:
            self.functions.remove(fid)
            return self._failed(probe, function, str(exc))
        try:
            enter_link = enter()
        except BpfError as exc:
            exit_link.destroy()
            self.functions.remove(fid)
            return self._failed(probe, function, str(exc))
        self._links += [exit_link, enter_link]
        return TargetOutcome(probe.name, probe.type, function, True, None, probe.binary_path)

    def _attach_syscall(self, probe: Probe, function: str) -> TargetOutcome:
        obj = self._object
        try:
            layout = syscalls.resolve_syscall(function)
        except LookupError as exc:
            return self._failed(probe, function, str(exc.args[0]))
        if reason := self._claim("syscall", layout.tracepoint, probe, function):
            return self._failed(probe, function, reason)
        spec = self.functions.add(function, probe.name, layout.fields, layout.has_file)
        cookie = syscalls.syscall_cookie(spec.fid, layout)
        tp = layout.tracepoint
        outcome = self._attach_pair(
            probe,
            function,
            spec.fid,
            lambda: obj.attach_tracepoint(SYS_ENTER, "syscalls", f"sys_enter_{tp}", cookie),
            lambda: obj.attach_tracepoint(SYS_EXIT, "syscalls", f"sys_exit_{tp}", cookie),
        )
        if not outcome.attached:
            del self._attached[("syscall", tp)]
        return outcome

    def _attach_uprobe(
        self,
        probe: Probe,
        function: str,
        cache: dict[str, uprobes.ElfSymbols | uprobes.SymbolError],
    ) -> TargetOutcome:
        obj = self._object
        binary = probe.binary_path
        if not binary:
            return self._failed(probe, function, "uprobe category has no binary_path")
        if binary not in cache:
            try:
                cache[binary] = uprobes.ElfSymbols.read(binary)
            except uprobes.SymbolError as exc:
                cache[binary] = exc
        symbols = cache[binary]
        if isinstance(symbols, uprobes.SymbolError):
            return self._failed(probe, function, str(symbols))
        try:
            name, offset = uprobes.parse_target(function)
            if offset is None:
                offset = symbols.offset(name)
        except uprobes.SymbolError as exc:
            return self._failed(probe, function, str(exc))
        if reason := self._claim(binary, f"{name}@{offset:#x}", probe, function):
            return self._failed(probe, function, reason)
        arguments = probe.function_arguments.get(function, [])
        spec = self.functions.add(name, probe.name, uprobes.argument_fields(arguments))
        cookie = uprobes.function_cookie(spec.fid, arguments)
        outcome = self._attach_pair(
            probe,
            function,
            spec.fid,
            lambda: obj.attach_uprobe(FUNC_ENTER, binary, offset, cookie, retprobe=False),
            lambda: obj.attach_uprobe(FUNC_EXIT, binary, offset, cookie, retprobe=True),
        )
        if not outcome.attached:
            del self._attached[(binary, f"{name}@{offset:#x}")]
        return outcome

    def _attach_kprobe(self, probe: Probe, function: str) -> TargetOutcome:
        obj = self._object
        if self._kprobes_reason is not None:
            return self._failed(probe, function, self._kprobes_reason)
        if reason := self._claim("kprobe", function, probe, function):
            return self._failed(probe, function, reason)
        arguments = probe.function_arguments.get(function, [])
        # Pointer arguments of kernel functions would need bpf_probe_read_kernel: not captured.
        values = [a for a in arguments if not a.is_pointer]
        spec = self.functions.add(function, probe.name, uprobes.argument_fields(values))
        cookie = spec.fid
        outcome = self._attach_pair(
            probe,
            function,
            spec.fid,
            lambda: obj.attach_kprobe(FUNC_ENTER, function, cookie, retprobe=False),
            lambda: obj.attach_kprobe(FUNC_EXIT, function, cookie, retprobe=True),
        )
        if not outcome.attached:
            del self._attached[("kprobe", function)]
        return outcome

    # -- streaming -----------------------------------------------------------------------
    def start(self, writer: TraceWriter) -> None:
        """Stream events into ``writer`` (started here) until :meth:`stop`."""
        obj = self._object
        if self._poller is not None:
            raise EngineError("the engine is already streaming")
        self._reader = RingBufferReader(obj.map_fd(RINGBUF_MAP), self.config.ringbuf_bytes)
        formatter = EventFormatter(
            dict(self.functions.specs),
            clock_offset=clock_offset_ns(),
            hostname=self.config.hostname or socket.gethostname(),
            pid=os.getpid(),
            tid=threading.get_native_id(),
        )
        writer.start(formatter)
        self._writer = writer
        self._poller = threading.Thread(
            target=self._poll_loop, name="datacrumbs-ringbuf", daemon=True
        )
        self._poller.start()

    def _poll_loop(self) -> None:
        reader, writer = self._reader, self._writer
        assert reader is not None and writer is not None
        try:
            while not self._stopping.is_set():
                self._drain_once(reader, writer)
                reader.wait(self.config.poll_interval)
        except BaseException as exc:  # surfaced by stop()
            self._poll_error = exc

    def _drain_once(self, reader: RingBufferReader, writer: TraceWriter) -> None:
        while chunk := reader.read():
            self._ring_bytes += len(chunk)
            writer.submit(chunk)
        loss = self.read_loss()
        if loss != self._last_loss:
            self._last_loss = loss
            writer.write_loss(loss)

    def read_loss(self) -> LossCounts:
        """The kernel's loss counters, summed over CPUs (read with bpf_map_lookup_elem: the
        .bss view of libbpf 1.1 would stay 0)."""
        fd = self._object.map_fd(LOST_MAP)
        ncpu = _possible_cpus()
        counts = []
        for slot in range(LOST_SLOTS):
            raw = map_lookup(fd, slot.to_bytes(4, "little"), 8 * ncpu)
            counts.append(sum(struct.unpack(f"<{ncpu}Q", raw)))
        return LossCounts(*counts)

    def stats(self) -> EngineStats:
        writer = self._writer
        fmt = writer.formatter if writer is not None else None
        return EngineStats(
            events=fmt.events if fmt is not None else 0,
            records=fmt.records if fmt is not None else 0,
            ring_bytes=self._ring_bytes,
            trace_bytes=writer.bytes_out if writer is not None else 0,
            loss=self.read_loss() if self._obj is not None else self._last_loss,
        )

    def stop(self) -> EngineStats:
        """Detach every probe, drain the ring buffer, write the final loss and summary,
        close the trace. Returns the final counts."""
        self.detach()
        writer, reader = self._writer, self._reader
        if self._poller is not None:
            self._stopping.set()
            self._poller.join()
            self._poller = None
        if writer is None or reader is None:
            raise EngineError("the engine is not streaming (call start() first)")
        if self._poll_error is None:
            self._drain_once(reader, writer)
        reader.close()
        self._reader = None
        loss = self._last_loss
        writer.close(
            summary={
                "lost_events": loss.total_events,
                "lost_names": loss.names,
                "lost_tasks": loss.tasks,
                "ring_bytes": self._ring_bytes,
            }
        )
        if self._poll_error is not None:
            raise EngineError(f"the ring-buffer poller failed: {self._poll_error}")
        final = self.stats()
        _log.info(
            "trace %s: %d events, %d lost, %d bytes",
            writer.path,
            final.events,
            final.lost,
            final.trace_bytes,
            extra={"TRACE": str(writer.path), "EVENTS": final.events, "LOST": final.lost},
        )
        return final

    def detach(self) -> None:
        """Destroy every attachment (idempotent)."""
        for link in self._links:
            link.destroy()
        self._links.clear()
        self._attached.clear()

    def close(self) -> None:
        """Detach and unload; the engine cannot be used afterwards."""
        self.detach()
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._obj is not None:
            self._obj.close()
            self._obj = None

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _possible_cpus() -> int:
    """Number of possible CPUs (per-CPU map values are sized by it)."""
    try:
        text = Path("/sys/devices/system/cpu/possible").read_text().strip()
    except OSError:
        return os.cpu_count() or 1
    total = 0
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        total += (int(hi) if hi else int(lo)) - int(lo) + 1
    return total
