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

Attachments: syscalls go through two raw tracepoint links in all (``tp_btf/sys_enter`` and
``sys_exit``) and a syscall-number → cookie map; the uprobes of one binary share one
uprobe_multi link per direction (kernel 6.6+; one perf-event uprobe per function otherwise).
Tearing a link down costs an RCU grace period on this kind of kernel, so few links is what
keeps :meth:`Engine.stop` short; the rest are destroyed in parallel. docs/design.md has the
measurements behind both choices.

Kernel requirements: 5.15+ (BPF cookies on tracepoints and uprobes); see datacrumbs.bpf.c.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import struct
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from datacrumbs.common.errors import DatacrumbsError
from datacrumbs.common.probes import Probe, ProbeType
from datacrumbs.ebpf import cgroups, features, kernel_btf, syscalls, uprobes
from datacrumbs.ebpf.build import build_bpf_object
from datacrumbs.ebpf.functions import FunctionTable
from datacrumbs.ebpf.libbpf import (
    BPF_TRACE_UPROBE_MULTI,
    BpfError,
    BpfLink,
    BpfObject,
    FdLink,
    map_lookup,
    map_update,
)
from datacrumbs.ebpf.records import LOST_SLOTS, Config
from datacrumbs.ebpf.ringbuf import RingBufferReader
from datacrumbs.trace.format import EventFormatter, LossCounts, clock_offset_ns
from datacrumbs.trace.writer import TraceWriter

__all__ = ["Engine", "EngineConfig", "EngineError", "EngineStats", "TargetOutcome"]

_log = logging.getLogger("datacrumbs.engine")

RINGBUF_MAP = "dc_events"
LOST_MAP = "dc_lost"
CGROUP_MAP = "dc_cgroup"
SYSCALL_COOKIES_MAP = "dc_syscall_cookies"
HITS_MAP = "dc_func_hits"
SYS_ENTER, SYS_EXIT = "dc_sys_enter", "dc_sys_exit"
RAW_SYS_ENTER, RAW_SYS_EXIT = "dc_raw_sys_enter", "dc_raw_sys_exit"
FUNC_ENTER, FUNC_EXIT = "dc_func_enter", "dc_func_exit"
UMULTI_ENTER, UMULTI_EXIT = "dc_umulti_enter", "dc_umulti_exit"
TASK_EXEC = "dc_task_exec"

SYSCALL_MODES = ("raw_tp", "tracepoint")
UPROBE_MODES = ("auto", "multi", "single")
#: Threads that destroy links at once (each destruction waits for an RCU grace period, and
#: the kernel serialises part of it: 8 threads gave ~2x on this kind of machine).
DETACH_THREADS = 8
#: Errors of a uprobe_multi link that concern the whole binary, not one offset: not bisected.
_WHOLE_BINARY_ERRORS = frozenset(
    {errno.EBADF, errno.ENOENT, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.ELOOP}
)


class EngineError(RuntimeError):
    """The engine cannot do what was asked; the message is one line with the reason."""


@dataclass(frozen=True)
class EngineConfig:
    """What to trace and how much memory to use.

    ``uid``: only processes whose real uid is this one are traced (None: every process).
    ``cgroup``: also require membership of this cgroup v2 (a path or an id) or a descendant.
    ``ringbuf_bytes``: ring-buffer size, a power of two and a multiple of the page size.
    ``syscall_mode``: ``raw_tp`` (two raw tracepoint links and a number → cookie map: the
    default) or ``tracepoint`` (one syscalls:sys_enter_X/sys_exit_X link pair per syscall).
    ``uprobe_mode``: ``auto`` (uprobe_multi links when the kernel has them), ``multi`` (required:
    load fails without them) or ``single`` (one perf-event uprobe per function and direction).
    ``function_slots``: how many function ids have a hit counter (:meth:`Engine.function_hits`);
    the daemon sizes it to its probe file.
    """

    uid: int | None
    cgroup: int | str | os.PathLike[str] | None = None
    ringbuf_bytes: int = 16 << 20
    poll_interval: float = 0.05
    wakeup_fraction: float = 0.25
    bpf_object: Path | None = None  # default: build (or reuse) the cached object
    hostname: str | None = None  # default: socket.gethostname()
    syscall_mode: str = "raw_tp"
    uprobe_mode: str = "auto"
    function_slots: int = 4096  # function ids whose probe hits are counted (1 .. slots-1)


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


def _check_ringbuf_size(size: int) -> None:
    page = os.sysconf("SC_PAGE_SIZE")
    if size < page or size & (size - 1):
        raise EngineError(
            f"ring buffer size {size} must be a power of two of at least {page} bytes"
        )


@dataclass
class _LinkSet:
    """The links of one function probe attachment: one function's entry and exit links, or the
    uprobe_multi pair a binary's ``targets`` share (detaching one of them re-attaches the
    rest)."""

    links: list[BpfLink]
    fids: list[int]
    binary: str = ""
    targets: list[_UprobeTarget] | None = None


@dataclass
class _UprobeTarget:
    """A resolved function waiting for its binary's uprobe_multi links."""

    slot: int  # index of its outcome
    probe: Probe
    function: str
    claim: str
    offset: int
    fid: int
    cookie: int


class Engine:
    """One tracing session: a loaded BPF object, its attachments and its poller."""

    def __init__(self, config: EngineConfig) -> None:
        _check_ringbuf_size(config.ringbuf_bytes)
        self.config = config
        self.functions = FunctionTable()
        self._obj: BpfObject | None = None
        self._links: list[BpfLink | FdLink] = []
        self._attached: dict[tuple[str, str], str] = {}  # (kind/binary, target) -> category
        self._reader: RingBufferReader | None = None
        self._writer: TraceWriter | None = None
        self._poller: threading.Thread | None = None
        self._stopping = threading.Event()
        self._ring_bytes = 0
        self._last_loss = LossCounts()
        self._kprobes_reason: str | None = None
        self._poll_error: BaseException | None = None
        self._uprobe_multi = False
        self._raw_sys_links: list[BpfLink] | None = None  # None: not attached yet
        self._raw_sys_error: str | None = None
        self._syscall_numbers: set[int] = set()  # cookie-map slots written
        self._pinned: dict[str, str] = {}  # binary path -> the path the kernel resolves
        self._function_links: dict[int, _LinkSet] = {}  # fid of a uprobe or kprobe -> links
        self._function_outcomes: dict[int, TargetOutcome] = {}  # fid -> its attached outcome

    # -- load ----------------------------------------------------------------------------
    def load(self) -> None:
        """Build (if needed) and load the BPF object with the configured filters."""
        if self._obj is not None:
            raise EngineError("the BPF object is already loaded")
        cfg = self.config
        if cfg.syscall_mode not in SYSCALL_MODES:
            raise EngineError(f"syscall_mode must be one of {', '.join(SYSCALL_MODES)}")
        if cfg.uprobe_mode not in UPROBE_MODES:
            raise EngineError(f"uprobe_mode must be one of {', '.join(UPROBE_MODES)}")
        try:
            features.ensure_tracefs()
        except OSError as exc:
            raise EngineError(str(exc)) from exc
        self._kprobes_reason = features.kprobe_support()
        multi_reason = features.uprobe_multi_support() if cfg.uprobe_mode != "single" else ""
        if cfg.uprobe_mode == "multi" and multi_reason:
            raise EngineError(multi_reason)
        self._uprobe_multi = multi_reason is None
        raw_syscalls = cfg.syscall_mode == "raw_tp"
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
                obj.set_max_entries(HITS_MAP, max(1, cfg.function_slots))
                config = Config(
                    uid=cfg.uid,
                    filter_cgroup=cgroup_fd is not None,
                    self_tgid=os.getpid(),
                    pidns_dev=pidns.dev,
                    pidns_ino=pidns.ino,
                    wakeup_bytes=max(1, int(cfg.ringbuf_bytes * cfg.wakeup_fraction)),
                )
                obj.set_initial_value(".rodata", config.pack())
                # only the programs of the variants in use are verified and loaded
                obj.set_autoload(RAW_SYS_ENTER, raw_syscalls)
                obj.set_autoload(RAW_SYS_EXIT, raw_syscalls)
                obj.set_autoload(SYS_ENTER, not raw_syscalls)
                obj.set_autoload(SYS_EXIT, not raw_syscalls)
                for program in (UMULTI_ENTER, UMULTI_EXIT):
                    obj.set_autoload(program, self._uprobe_multi)
                    if self._uprobe_multi:
                        obj.set_expected_attach_type(program, BPF_TRACE_UPROBE_MULTI)
                per_function = not self._uprobe_multi or self._kprobes_reason is None
                obj.set_autoload(FUNC_ENTER, per_function)
                obj.set_autoload(FUNC_EXIT, per_function)
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
        try:
            self._links.append(obj.attach_trace(TASK_EXEC))
        except BpfError as exc:
            raise EngineError(str(exc)) from exc

    @property
    def _object(self) -> BpfObject:
        if self._obj is None:
            raise EngineError("the BPF object is not loaded (call load() first)")
        return self._obj

    # -- attach --------------------------------------------------------------------------
    def attach(
        self, probes: Iterable[Probe], pinned: Mapping[str, str] | None = None
    ) -> list[TargetOutcome]:
        """Attach every function of every probe; one outcome per function, in order.

        ``pinned`` maps a binary path to the path the kernel is to resolve instead (the
        daemon's ``/proc/self/fd/N`` of the file it checked against the signed identity); it
        must stay valid while the engine is attached (:meth:`detach_functions` uses it)."""
        self._object  # noqa: B018 - fail early when not loaded
        self._pinned = dict(pinned or {})
        outcomes: list[TargetOutcome | None] = []
        elf_cache: dict[str, uprobes.ElfSymbols | uprobes.SymbolError] = {}
        by_binary: dict[str, list[_UprobeTarget]] = {}
        for probe in probes:
            for function in probe.functions:
                if probe.type is ProbeType.SYSCALLS:
                    outcome = self._attach_syscall(probe, function)
                elif probe.type is ProbeType.UPROBE and self._uprobe_multi:
                    planned = self._plan_uprobe(probe, function, elf_cache, len(outcomes))
                    if isinstance(planned, _UprobeTarget):
                        by_binary.setdefault(probe.binary_path or "", []).append(planned)
                        outcomes.append(None)
                        continue
                    outcome = planned
                elif probe.type is ProbeType.UPROBE:
                    outcome = self._attach_uprobe(probe, function, elf_cache)
                elif probe.type is ProbeType.KPROBE:
                    outcome = self._attach_kprobe(probe, function)
                else:
                    kind = probe.type.name.lower()
                    outcome = self._failed(probe, function, f"{kind} probes are not supported yet")
                outcomes.append(outcome)
        for binary, targets in by_binary.items():
            for target, reason in self._attach_uprobe_group(binary, targets):
                outcomes[target.slot] = self._uprobe_outcome(target, reason)
        final = [o for o in outcomes if o is not None]
        assert len(final) == len(outcomes)
        for outcome in final:
            if not outcome.attached:
                _log.warning(
                    "cannot trace %s:%s: %s",
                    outcome.category,
                    outcome.function,
                    outcome.reason,
                    extra={"CATEGORY": outcome.category, "FUNCTION": outcome.function},
                )
        return final

    def _kernel_binary(self, binary: str) -> str:
        """The path through which the kernel and the symbol reader reach ``binary``."""
        return self._pinned.get(binary, binary)

    @staticmethod
    def _failed(probe: Probe, function: str, reason: str) -> TargetOutcome:
        return TargetOutcome(probe.name, probe.type, function, False, reason, probe.binary_path)

    def _claim(self, scope: str, target: str, probe: Probe, function: str) -> str | None:
        owner = self._attached.get((scope, target))
        if owner is not None:
            return f"{target} is already traced by category {owner}"
        self._attached[(scope, target)] = probe.name
        return None

    def _claim_address(self, binary: str, name: str, address: str, probe: Probe) -> str | None:
        """Uprobes are claimed by address: aliases (glibc's fopen and fopen64 are one function)
        would otherwise put two probes on one instruction and every call twice in the trace."""
        owner = self._attached.get((binary, address))
        if owner is not None:
            return (
                f"{name} is at the same address as a function already traced by category "
                f"{owner} (an alias)"
            )
        self._attached[(binary, address)] = probe.name
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
        outcome = TargetOutcome(probe.name, probe.type, function, True, None, probe.binary_path)
        if probe.type is not ProbeType.SYSCALLS:
            self._function_links[fid] = _LinkSet([exit_link, enter_link], [fid])
            self._function_outcomes[fid] = outcome
        return outcome

    def _attach_syscall(self, probe: Probe, function: str) -> TargetOutcome:
        obj = self._object
        try:
            layout = syscalls.resolve_syscall(function)
            if self.config.syscall_mode == "raw_tp":
                nr = syscalls.syscall_number(layout.tracepoint)
                return self._attach_raw_syscall(probe, function, layout, nr)
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

    def _raw_syscall_links(self) -> str | None:
        """Attach the two raw syscall programs once (exit first); None, or why they cannot be."""
        if self._raw_sys_links is None and self._raw_sys_error is None:
            obj = self._object
            try:
                exit_link = obj.attach_trace(RAW_SYS_EXIT)
            except BpfError as exc:
                self._raw_sys_error = str(exc)
                return self._raw_sys_error
            try:
                enter_link = obj.attach_trace(RAW_SYS_ENTER)
            except BpfError as exc:
                exit_link.destroy()
                self._raw_sys_error = str(exc)
                return self._raw_sys_error
            self._raw_sys_links = [exit_link, enter_link]
            self._links += self._raw_sys_links
        return self._raw_sys_error

    def _attach_raw_syscall(
        self, probe: Probe, function: str, layout: syscalls.SyscallLayout, nr: int
    ) -> TargetOutcome:
        if nr >= syscalls.MAX_SYSCALL_NR:
            return self._failed(probe, function, f"syscall number {nr} is out of range")
        if reason := self._claim("syscall", layout.tracepoint, probe, function):
            return self._failed(probe, function, reason)
        if reason := self._raw_syscall_links():
            del self._attached[("syscall", layout.tracepoint)]
            return self._failed(probe, function, reason)
        spec = self.functions.add(function, probe.name, layout.fields, layout.has_file)
        cookie = syscalls.syscall_cookie(spec.fid, layout)
        try:
            map_update(
                self._object.map_fd(SYSCALL_COOKIES_MAP),
                nr.to_bytes(4, "little"),
                cookie.to_bytes(8, "little"),
            )
        except BpfError as exc:
            self.functions.remove(spec.fid)
            del self._attached[("syscall", layout.tracepoint)]
            return self._failed(probe, function, str(exc))
        self._syscall_numbers.add(nr)
        return TargetOutcome(probe.name, probe.type, function, True, None, probe.binary_path)

    def _attach_uprobe(
        self,
        probe: Probe,
        function: str,
        cache: dict[str, uprobes.ElfSymbols | uprobes.SymbolError],
    ) -> TargetOutcome:
        """One perf-event uprobe and uretprobe (kernels without uprobe_multi)."""
        obj = self._object
        resolved = self._resolve_uprobe(probe, function, cache)
        if isinstance(resolved, TargetOutcome):
            return resolved
        name, offset = resolved
        binary = probe.binary_path
        assert binary
        kernel_binary = self._kernel_binary(binary)
        if reason := self._claim_address(binary, name, f"{offset:#x}", probe):
            return self._failed(probe, function, reason)
        arguments = probe.function_arguments.get(function, [])
        spec = self.functions.add(name, probe.name, uprobes.argument_fields(arguments))
        cookie = uprobes.function_cookie(spec.fid, arguments)
        outcome = self._attach_pair(
            probe,
            function,
            spec.fid,
            lambda: obj.attach_uprobe(FUNC_ENTER, kernel_binary, offset, cookie, retprobe=False),
            lambda: obj.attach_uprobe(FUNC_EXIT, kernel_binary, offset, cookie, retprobe=True),
        )
        if not outcome.attached:
            del self._attached[(binary, f"{offset:#x}")]
        return outcome

    def _resolve_uprobe(
        self,
        probe: Probe,
        function: str,
        cache: dict[str, uprobes.ElfSymbols | uprobes.SymbolError],
    ) -> tuple[str, int] | TargetOutcome:
        """(name, file offset) of a uprobe target, or its failed outcome. The ELF symbols of a
        binary are read once per :meth:`attach`; a ``name:0xOFFSET`` target must start one of
        its functions (a breakpoint elsewhere would corrupt the code others run)."""
        binary = probe.binary_path
        if not binary:
            return self._failed(probe, function, "uprobe category has no binary_path")
        try:
            name, offset = uprobes.parse_target(function)
        except uprobes.SymbolError as exc:
            return self._failed(probe, function, str(exc))
        symbols = cache.get(binary)
        if symbols is None:
            try:  # every target is checked against the symbols: names and offsets alike
                symbols = uprobes.ElfSymbols.read(self._kernel_binary(binary), shown=binary)
            except uprobes.SymbolError as exc:
                symbols = exc
            cache[binary] = symbols
        if isinstance(symbols, uprobes.SymbolError):
            return self._failed(probe, function, str(symbols))
        try:
            if offset is None:
                offset = symbols.offset(name)
            symbols.check_offset(offset)
        except uprobes.SymbolError as exc:
            return self._failed(probe, function, str(exc))
        return name, offset

    def _plan_uprobe(
        self,
        probe: Probe,
        function: str,
        cache: dict[str, uprobes.ElfSymbols | uprobes.SymbolError],
        slot: int,
    ) -> _UprobeTarget | TargetOutcome:
        """Resolve, claim and number a target for its binary's uprobe_multi links."""
        resolved = self._resolve_uprobe(probe, function, cache)
        if isinstance(resolved, TargetOutcome):
            return resolved
        name, offset = resolved
        assert probe.binary_path
        claim = f"{offset:#x}"
        if reason := self._claim_address(probe.binary_path, name, claim, probe):
            return self._failed(probe, function, reason)
        arguments = probe.function_arguments.get(function, [])
        spec = self.functions.add(name, probe.name, uprobes.argument_fields(arguments))
        cookie = uprobes.function_cookie(spec.fid, arguments)
        return _UprobeTarget(slot, probe, function, claim, offset, spec.fid, cookie)

    def _attach_uprobe_group(
        self, binary: str, targets: list[_UprobeTarget]
    ) -> list[tuple[_UprobeTarget, str | None]]:
        """One uprobe_multi link per direction for ``targets`` (exit first, so that no entry is
        recorded without its exit). When the kernel refuses the group for one offset, the group
        is halved until the bad targets stand alone: a bad function never fails its
        neighbours. Returns (target, None or the reason it failed)."""
        obj = self._object
        offsets = [t.offset for t in targets]
        cookies = [t.cookie for t in targets]
        path = self._kernel_binary(binary)
        try:
            exit_link = obj.attach_uprobe_multi(UMULTI_EXIT, path, offsets, cookies, True)
        except BpfError as exc:
            return self._split_uprobe_group(binary, targets, exc)
        try:
            enter_link = obj.attach_uprobe_multi(UMULTI_ENTER, path, offsets, cookies, False)
        except BpfError as exc:
            exit_link.destroy()
            return self._split_uprobe_group(binary, targets, exc)
        self._links += [exit_link, enter_link]
        group = _LinkSet([exit_link, enter_link], [t.fid for t in targets], binary, targets)
        for target in targets:
            self._function_links[target.fid] = group
        return [(t, None) for t in targets]

    def _split_uprobe_group(
        self, binary: str, targets: list[_UprobeTarget], exc: BpfError
    ) -> list[tuple[_UprobeTarget, str | None]]:
        if len(targets) == 1 or exc.errno in _WHOLE_BINARY_ERRORS:
            return [(t, str(exc)) for t in targets]
        half = len(targets) // 2
        return self._attach_uprobe_group(binary, targets[:half]) + self._attach_uprobe_group(
            binary, targets[half:]
        )

    def _uprobe_outcome(self, target: _UprobeTarget, reason: str | None) -> TargetOutcome:
        probe = target.probe
        if reason is not None:
            self.functions.remove(target.fid)
            del self._attached[(probe.binary_path or "", target.claim)]
            return self._failed(probe, target.function, reason)
        outcome = TargetOutcome(
            probe.name, probe.type, target.function, True, None, probe.binary_path
        )
        self._function_outcomes[target.fid] = outcome
        return outcome

    def _attach_kprobe(self, probe: Probe, function: str) -> TargetOutcome:
        obj = self._object
        if self._kprobes_reason is not None:
            return self._failed(probe, function, self._kprobes_reason)
        if reason := self._claim("kprobe", function, probe, function):
            return self._failed(probe, function, reason)
        # Only integers by the kernel's own BTF are recorded: a kernel pointer (an argument, or
        # a return such as d_path's) in a user's trace would give away the kernel's layout.
        try:
            signature = kernel_btf.vmlinux().signature(function)
        except DatacrumbsError:
            signature = None
        values, has_return = kernel_btf.kernel_values(
            signature, probe.function_arguments.get(function, [])
        )
        spec = self.functions.add(
            function, probe.name, uprobes.argument_fields(values), has_return=has_return
        )
        cookie = spec.fid | (0 if has_return else uprobes.NO_RETURN_COOKIE)
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

    # -- function probe hits --------------------------------------------------------------
    def function_hits(self) -> dict[int, int]:
        """Hits so far of each attached uprobe and kprobe, by function id, in every process of
        the node (a breakpoint costs whoever runs the code, traced or not)."""
        fd = self._object.map_fd(HITS_MAP)
        ncpu = _possible_cpus()
        hits = {}
        for fid in self._function_links:
            if fid < self.config.function_slots:
                raw = map_lookup(fd, fid.to_bytes(4, "little"), 8 * ncpu)
                hits[fid] = sum(struct.unpack(f"<{ncpu}Q", raw))
        return hits

    def describe(self, fid: int) -> TargetOutcome | None:
        """The attached outcome of function ``fid`` (its category, function and binary)."""
        return self._function_outcomes.get(fid)

    def detach_functions(self, reasons: Mapping[int, str]) -> list[TargetOutcome]:
        """Detach the functions ``reasons`` names (fid -> why), while the rest keep tracing.

        A function that shares a uprobe_multi link with others of its binary takes the link
        down with it; the others are attached again at once (their calls in those few
        milliseconds are not traced). Returns one failed outcome per detached function, and
        one for any neighbour the kernel would not take back."""
        results: list[TargetOutcome] = []
        sets = {id(s): s for fid in reasons if (s := self._function_links.get(fid))}
        for link_set in sets.values():
            for link in link_set.links:
                link.destroy()
                self._links.remove(link)
            for fid in link_set.fids:
                del self._function_links[fid]
            keep = [t for t in link_set.targets or () if t.fid not in reasons]
            if keep:
                for target, why in self._attach_uprobe_group(link_set.binary, keep):
                    if why is not None:
                        self._function_outcomes.pop(target.fid, None)
                        results.append(
                            self._failed(
                                target.probe,
                                target.function,
                                f"lost while a neighbour was detached: {why}",
                            )
                        )
        for fid, reason in reasons.items():
            attached = self._function_outcomes.pop(fid, None)
            if attached is not None:
                results.append(
                    TargetOutcome(
                        attached.category,
                        attached.kind,
                        attached.function,
                        False,
                        reason,
                        attached.binary,
                    )
                )
        return results

    @property
    def link_count(self) -> int:
        """Kernel attachments held now (each costs ~0.1 s to tear down on this kind of kernel)."""
        return len(self._links)

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

    @property
    def failure(self) -> str | None:
        """Why the poller died, if it did: streaming has stopped and the trace is incomplete."""
        return None if self._poll_error is None else str(self._poll_error)

    def stop(self, summary: Mapping[str, int | float | str] | None = None) -> EngineStats:
        """Detach every probe, drain the ring buffer, write the final loss and summary,
        close the trace. ``summary``: extra fields of the end-of-run summary event (the
        daemon's ``duration_s``, ``run_id``, ``user``); the engine's own counts win a clash.
        Returns the final counts."""
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
                **(summary or {}),
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
        """Destroy every attachment (idempotent). Each destruction waits for an RCU grace
        period in the kernel (~0.1 s here), so they run on a few threads at once."""
        links, self._links = self._links, []
        if len(links) > 1:
            with ThreadPoolExecutor(min(DETACH_THREADS, len(links))) as pool:
                for _ in pool.map(_destroy, links):
                    pass
        elif links:
            links[0].destroy()
        if self._syscall_numbers and self._obj is not None:
            fd = self._obj.map_fd(SYSCALL_COOKIES_MAP)
            for nr in self._syscall_numbers:
                map_update(fd, nr.to_bytes(4, "little"), bytes(8))
        self._syscall_numbers.clear()
        self._raw_sys_links = None
        self._raw_sys_error = None
        self._attached.clear()
        self._function_links.clear()

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


def _destroy(link: BpfLink | FdLink) -> None:
    link.destroy()


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
