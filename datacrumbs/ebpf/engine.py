"""The tracing engine: load the BPF object, attach probes, stream records into a sink.

The daemon drives it in this order::

    engine = Engine(EngineConfig(uid=job_uid))
    engine.load()
    outcomes = engine.attach(probe_file.categories)   # one TargetOutcome per function
    engine.start(sink)                                 # a RecordSink: the trace writer
    ...                                                # engine.stats() at any time
    final = engine.stop()                              # detach, drain; the sink is the caller's
    engine.close()

It is a facade over parts that each own one thing: :mod:`loader` (the object, its maps and
filters), one attacher per probe kind behind one small interface (:mod:`attach`:
:mod:`attach_syscalls`, :mod:`attach_uprobes`, :mod:`attach_kprobes`), :mod:`link_set` (every
link, and teardown) and :mod:`poller` (the thread that moves ring-buffer bytes to the sink).
It knows nothing of the trace format: :mod:`datacrumbs.trace.recording` wires it to the
formatter and writer.

Kernel requirements: 5.15+ (BPF cookies on tracepoints and uprobes); the kernel side is in
ebpf/bpf/, and features.kernel_refusal says what an older kernel lacks.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from datacrumbs.common.probes import Probe, ProbeType
from datacrumbs.ebpf import cgroups, loader, object_names
from datacrumbs.ebpf.attach import AttachContext, Attacher, Target, TargetOutcome
from datacrumbs.ebpf.attach_kprobes import KprobeAttacher
from datacrumbs.ebpf.attach_syscalls import SyscallAttacher
from datacrumbs.ebpf.attach_uprobes import UprobeAttacher
from datacrumbs.ebpf.bpf_maps import map_lookup, map_update
from datacrumbs.ebpf.engine_config import EngineConfig, EngineError
from datacrumbs.ebpf.fold_rules import rules_by_fid
from datacrumbs.ebpf.functions import FunctionTable
from datacrumbs.ebpf.libbpf import BpfError, BpfLink
from datacrumbs.ebpf.poller import Poller, ValvePolling, possible_cpus, read_loss, sum_per_cpu
from datacrumbs.ebpf.process_follower import ProcessFollower, job_processes
from datacrumbs.ebpf.process_uprobes import FollowStats
from datacrumbs.ebpf.profile_map import ProfileMap
from datacrumbs.ebpf.records import SCOPE, VALVE_BUDGET_SPENT, pack_scope
from datacrumbs.ebpf.sink import LossCounts, RecordSink
from datacrumbs.ebpf.trap_cost import measure_trap_cost_ns
from datacrumbs.ebpf.valve import ValveWatch

__all__ = ["Engine", "EngineConfig", "EngineError", "EngineStats", "TargetOutcome"]

_log = logging.getLogger("datacrumbs.engine")


@dataclass(frozen=True)
class EngineStats:
    """What crossed from the kernel so far: ring-buffer bytes read, and the kernel's loss
    counters (``lost``: calls that happened but were not delivered)."""

    ring_bytes: int
    loss: LossCounts

    @property
    def lost(self) -> int:
        return self.loss.total_events


class Engine:
    """One tracing session: a loaded BPF object, its attachments and its poller."""

    def __init__(self, config: EngineConfig) -> None:
        loader.check_config(config)
        self.config = config
        self.functions = FunctionTable()
        self._loaded: loader.Loaded | None = None
        self._ctx: AttachContext | None = None
        self._syscalls: SyscallAttacher | None = None
        self._uprobes: UprobeAttacher | None = None
        self._kprobes: KprobeAttacher | None = None
        self._poller: Poller | None = None
        # the exit program outlives the call probes: a thread that exits while the last
        # harvest runs still hands its profile aggregate over (see stop())
        self._exit_link: BpfLink | None = None
        self._follower: ProcessFollower | None = None
        self._last = EngineStats(0, LossCounts())

    # -- load ----------------------------------------------------------------------------
    def load(self) -> None:
        """Build (if needed) and load the BPF object with the configured filters."""
        if self._loaded is not None:
            raise EngineError("the BPF object is already loaded")
        loaded = loader.load(self.config)
        ctx = AttachContext(loaded.obj, self.functions)
        try:
            ctx.links.add(loaded.obj.attach_trace(object_names.TASK_EXEC))
            if self.config.filters_cgroup:
                ctx.links.add(loaded.obj.attach_trace(object_names.CGROUP_MKDIR))
            if self.config.filters_tasks:
                ctx.links.add(loaded.obj.attach_trace(object_names.TASK_FORK))
            if self.config.filters_tasks or self.config.aggregates:
                self._exit_link = loaded.obj.attach_trace(object_names.TASK_EXIT)
        except BpfError as exc:
            ctx.links.destroy_all()
            self._destroy_exit_link()
            loaded.close()
            raise EngineError(str(exc)) from exc
        self._loaded, self._ctx = loaded, ctx
        if self.config.cgroup is not None:
            try:
                self.set_cgroup(cgroups.resolve_cgroup(self.config.cgroup))
            except (EngineError, cgroups.CgroupError) as exc:
                self.close()
                raise EngineError(str(exc)) from None
        self._syscalls = SyscallAttacher(ctx, self.config.syscall_mode)
        self._uprobes = UprobeAttacher(
            ctx, loaded.uprobe_multi, per_process=self.config.uprobe_scope == "job"
        )
        self._kprobes = KprobeAttacher(
            ctx, loaded.kprobes_unsupported, self.config.kfunc_mode, loaded.path, loaded.config
        )

    @property
    def _context(self) -> AttachContext:
        if self._ctx is None:
            raise EngineError("the BPF object is not loaded (call load() first)")
        return self._ctx

    # -- attach --------------------------------------------------------------------------
    def attach(
        self, probes: Iterable[Probe], pinned: Mapping[str, str] | None = None
    ) -> list[TargetOutcome]:
        """Attach every function of every probe; one outcome per function, in order, then one
        per target they imply (``io_uring_requests``, where ``io_uring_enter`` is asked for).

        ``pinned`` maps a binary path to the path the kernel is to resolve instead (the
        daemon's ``/proc/self/fd/N`` of the file it checked against the signed identity); it
        must stay valid while the engine is attached (:meth:`detach_functions` uses it)."""
        ctx = self._context
        ctx.pinned = dict(pinned or {})
        probes = list(probes)
        attachers: dict[ProbeType, Attacher | None] = {
            ProbeType.SYSCALLS: self._syscalls,
            ProbeType.UPROBE: self._uprobes,
            ProbeType.USDT: self._uprobes,  # libbpf places them; in one call with the uprobes
            ProbeType.KPROBE: self._kprobes,
        }
        by_kind: dict[ProbeType, list[tuple[int, Target]]] = {}
        outcomes: list[TargetOutcome | None] = []
        for probe in probes:
            for function in probe.functions:
                if attachers.get(probe.type) is None:
                    reason = f"{probe.type.name.lower()} probes are not supported yet"
                    outcomes.append(ctx.failed(probe, function, reason))
                else:
                    group = ProbeType.UPROBE if probe.type is ProbeType.USDT else probe.type
                    by_kind.setdefault(group, []).append((len(outcomes), (probe, function)))
                    outcomes.append(None)
        implied: list[TargetOutcome] = []
        for kind, slotted in by_kind.items():
            attacher = attachers[kind]
            assert attacher is not None
            results = attacher.attach([target for _, target in slotted])
            for (slot, _), outcome in zip(slotted, results[: len(slotted)], strict=True):
                outcomes[slot] = outcome
            implied += results[len(slotted) :]
        final = [o for o in outcomes if o is not None]
        assert len(final) == len(outcomes)
        final += implied
        if self.config.aggregates:
            self._set_offset_args()
        if self.config.valve:
            self._set_rules(probes)
        self._follow_job_processes()
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

    def _set_offset_args(self) -> None:
        """Profile mode: tell the kernel which argument of each function is its file offset
        (the one the trace would write as ``offset``), for the aggregates' offset range."""
        fd = self._context.obj.map_fd(object_names.OFFSET_ARGS_MAP)
        for fid, spec in self.functions.specs.items():
            index = next((f.index for f in spec.fields if f.key == "offset"), None)
            if index is not None and fid < self.config.function_slots:
                map_update(fd, fid.to_bytes(4, "little"), (index + 1).to_bytes(4, "little"))

    def _set_rules(self, probes: Iterable[Probe]) -> None:
        """Trace mode's valve: the rule of each function whose probe file's delivery is not
        the default (:mod:`fold_rules`)."""
        fd = self._context.obj.map_fd(object_names.FOLD_RULES_MAP)
        for fid, rule in rules_by_fid(probes, self.functions.specs).items():
            if fid < self.config.function_slots:
                map_update(fd, fid.to_bytes(4, "little"), int(rule).to_bytes(4, "little"))

    def spend_budget(self) -> None:
        """Trace mode's valve: the trace's byte budget is spent: from now on every call that
        may fold is folded into its aggregate."""
        fd = self._context.obj.map_fd(object_names.VALVE_MAP)
        map_update(fd, bytes(4), VALVE_BUDGET_SPENT.to_bytes(8, "little"))

    def _follow_job_processes(self) -> None:
        """Uprobes scoped to the job: have the kernel tell of each job process as it is born
        and dies, and give each its links; first those that exist now (a process told of
        twice is attached once)."""
        per_process = self._uprobes.per_process if self._uprobes is not None else None
        if per_process is None or not per_process.fids or self._follower is not None:
            return
        ctx = self._context
        try:
            for program in (object_names.FOLLOW_EXIT, object_names.FOLLOW_FORK):
                ctx.links.add(ctx.obj.attach_trace(program))
            self._follower = ProcessFollower(
                ctx.obj.map_fd(object_names.FOLLOW_RING_MAP), per_process
            )
            self._follower.start()
            ctx.links.add(ctx.obj.attach_trace(object_names.FOLLOW_EXEC))
        except BpfError as exc:
            raise EngineError(str(exc)) from exc
        cgroup = self.config.cgroup
        if self.config.filters_tasks:
            return  # the step daemon's processes are all born after the load
        if isinstance(cgroup, int) or (cgroup is None and self.config.cgroup_later):
            return  # by id, or not made yet: its processes are told of as they exec
        for pid in job_processes(Path(cgroup) if cgroup is not None else None, self.config.uid):
            if pid != os.getpid():
                per_process.follow(pid, None)

    @property
    def following(self) -> FollowStats | None:
        """Uprobes scoped to the job: what following its processes came to so far (None when
        no process is followed: node scope, or no uprobe attached)."""
        if self._follower is None:
            return None
        return self._follower.uprobes.stats

    def followed_cpu_ns(self) -> int | None:
        """CPU time of the job's processes followed so far (None: none followed)."""
        return self._follower.uprobes.cpu_ns() if self._follower is not None else None

    def trap_cost_ns(self) -> float | None:
        """What one uprobe hit (entry and exit) costs a process on this node, measured now
        (~0.2 s: the two links it makes are destroyed at once); None where it cannot be."""
        if self._loaded is None:
            return None
        return measure_trap_cost_ns(self._loaded.obj, self._loaded.uprobe_multi, os.getpid())

    def follows(self, pid: int) -> bool:
        """Whether process ``pid`` has its uprobes now (uprobes scoped to the job)."""
        uprobes = self._uprobes.per_process if self._uprobes is not None else None
        return uprobes is not None and uprobes.has(pid)

    @property
    def kernel_functions_via(self) -> dict[str, str]:
        """How each attached kernel function is traced: ``fentry`` or ``kprobe``."""
        return dict(self._kprobes.via) if self._kprobes is not None else {}

    @property
    def link_count(self) -> int:
        """Kernel attachments held now (each costs ~0.1 s to tear down on this kind of kernel)."""
        return len(self._ctx.links) if self._ctx is not None else 0

    def set_cgroup(self, path: Path) -> int:
        """Trace the tasks of cgroup v2 ``path`` and of every cgroup below it, made now or
        later (the engine was loaded with ``cgroup`` or ``cgroup_later``); returns its id.
        The kernel matches tasks by cgroup id, the directory's inode: the same cgroup in every
        cgroup namespace, whatever path this process sees it at."""
        self._cgroup_filter()
        try:
            fd = cgroups.open_cgroup(path)
        except cgroups.CgroupError as exc:
            raise EngineError(str(exc)) from None
        try:
            # the mkdir program is attached: a cgroup made during the walk is added either way
            ids = [os.fstat(fd).st_ino]
            for dirpath, _dirs, _files in os.walk(f"/proc/self/fd/{fd}"):
                with contextlib.suppress(OSError):  # removed meanwhile
                    ids.append(os.stat(dirpath).st_ino)
            for cgroup_id in ids:
                self._add_job_cgroup(cgroup_id)
            return ids[0]
        finally:
            os.close(fd)

    def await_cgroup(self, path: Path) -> Path:
        """Trace cgroup ``path`` from the moment it is made, in the kernel (its cgroup_mkdir
        program matches the names below the deepest ancestor that exists now); returns that
        ancestor. Nothing is traced until then."""
        self._cgroup_filter()
        ancestor = cgroups.deepest_existing(path)
        if ancestor == path:  # made meanwhile
            self.set_cgroup(path)
            return path
        try:
            fd = cgroups.open_cgroup(ancestor)
        except cgroups.CgroupError as exc:
            raise EngineError(str(exc)) from None
        try:
            parent = os.fstat(fd).st_ino
        finally:
            os.close(fd)
        try:
            scope = pack_scope(parent, path.relative_to(ancestor).parts)
        except ValueError as exc:
            raise EngineError(f"cannot wait for cgroup {path}: {exc}") from None
        map_update(self._context.obj.map_fd(object_names.SCOPE_MAP), bytes(4), scope)
        return ancestor

    def awaited_cgroup(self) -> int:
        """The id of the cgroup :meth:`await_cgroup` waits for, once the kernel saw it made;
        0 before."""
        raw = map_lookup(self._context.obj.map_fd(object_names.SCOPE_MAP), bytes(4), SCOPE.size)
        return int(SCOPE.unpack(raw)[1])

    def _cgroup_filter(self) -> None:
        if not self.config.filters_cgroup:
            raise EngineError("the engine was loaded without a cgroup filter")

    def _add_job_cgroup(self, cgroup_id: int) -> None:
        map_update(
            self._context.obj.map_fd(object_names.JOB_CGROUPS_MAP),
            cgroup_id.to_bytes(8, "little"),
            b"\x01",
        )

    # -- function probe hits --------------------------------------------------------------
    def function_hits(self) -> dict[int, int]:
        """Hits so far of each attached uprobe and kprobe, by function id, in every process of
        the node (a breakpoint costs whoever runs the code, traced or not)."""
        ctx = self._context
        fd = ctx.obj.map_fd(object_names.HITS_MAP)
        ncpu = possible_cpus()
        fids = set(ctx.links.by_function)
        if self._uprobes is not None and self._uprobes.per_process is not None:
            fids |= self._uprobes.per_process.fids
        return {fid: sum_per_cpu(fd, fid, ncpu) for fid in fids if fid < self.config.function_slots}

    def detach_functions(self, reasons: Mapping[int, str]) -> list[TargetOutcome]:
        """Detach the functions ``reasons`` names (fid -> why), while the rest keep tracing.

        A function that shares a uprobe_multi link with others of its binary takes the link
        down with it; the others are attached again at once (their calls in those few
        milliseconds are not traced). Returns one failed outcome per detached function, and
        one for any neighbour the kernel would not take back."""
        ctx = self._context
        assert self._uprobes is not None
        detached = set(reasons)
        results: list[TargetOutcome] = []
        if self._uprobes.per_process is not None:
            self._uprobes.per_process.detach(detached)
        for taken in ctx.links.take_functions(detached):
            results += self._uprobes.reattach(taken, detached)
        for fid, reason in reasons.items():
            attached = ctx.function_outcomes.pop(fid, None)
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

    # -- streaming -----------------------------------------------------------------------
    def start(self, sink: RecordSink, budget_bytes: int = 0) -> None:
        """Stream the kernel's records into ``sink`` until :meth:`stop`; with trace mode's
        valve, once the sink wrote ``budget_bytes`` (0: no budget), fold every call."""
        obj = self._context.obj
        if self._poller is not None:
            raise EngineError("the engine is already streaming")
        rings = self._loaded.rings if self._loaded is not None else []
        profile = None
        if self.config.aggregates:
            try:
                flush = obj.attach_iter(object_names.PROFILE_FLUSH)
            except BpfError as exc:
                raise EngineError(str(exc)) from exc
            profile = ProfileMap(
                obj.map_fd(object_names.PROFILE_MAP),
                obj.map_fd(object_names.PROFILE_DONE_MAP),
                obj.map_fd(object_names.FLUSH_BEFORE_MAP),
                flush,
                self.config.aggregate_interval_ns,
                self.profile_interval_shift,
            )
        valve = ValvePolling(drain_bytes_per_s=self.config.drain_bytes_per_s)
        if self.config.valve:
            names = {fid: (f.category, f.name) for fid, f in self.functions.specs.items()}
            fd = obj.map_fd(object_names.FOLDS_MAP)
            valve.watch = ValveWatch(fd, names, self.config.function_slots, possible_cpus())
            valve.budget_bytes = budget_bytes
            valve.spend = self.spend_budget
        self._poller = Poller(
            rings,
            self.config.ringbuf_bytes,
            obj.map_fd(object_names.LOST_MAP),
            sink,
            self.config.poll_interval,
            profile,
            valve,
        )

    @property
    def profile_interval_shift(self) -> int:
        """Aggregates (profile mode, the valve): what the kernel adds to CLOCK_MONOTONIC before
        dividing by the interval (intervals start on wall-clock multiples of their length)."""
        return self._loaded.interval_shift if self._loaded is not None else 0

    def read_loss(self) -> LossCounts:
        """The kernel's loss counters, summed over CPUs."""
        return read_loss(self._context.obj.map_fd(object_names.LOST_MAP))

    def stats(self) -> EngineStats:
        poller = self._poller
        if poller is None or self._ctx is None:
            return self._last
        return EngineStats(poller.ring_bytes, self.read_loss())

    @property
    def failure(self) -> str | None:
        """Why the poller died, if it did: streaming has stopped and the trace is incomplete."""
        if self._poller is None or self._poller.error is None:
            return None
        return str(self._poller.error)

    def stop(self) -> EngineStats:
        """Detach every probe, then drain the ring buffer into the sink (in profile mode, take
        every aggregate, those threads still hold included), then detach the exit program.
        Returns the final counts; raises :class:`EngineError` if the poller had failed."""
        self.detach()
        poller = self._poller
        if poller is None:
            raise EngineError("the engine is not streaming (call start() first)")
        try:
            poller.stop()
        finally:
            self._destroy_exit_link()
        self._poller = None
        self._last = EngineStats(poller.ring_bytes, poller.last_loss)
        if poller.error is not None:
            raise EngineError(f"the ring-buffer poller failed: {poller.error}")
        return self._last

    def detach(self) -> None:
        """Destroy every attachment (idempotent). Each destruction waits for an RCU grace
        period in the kernel (~0.1 s here), so they run on a few threads at once."""
        if self._ctx is None:
            return
        if self._follower is not None:
            self._follower.stop()
            self._follower = None
        if self._uprobes is not None and self._uprobes.per_process is not None:
            self._uprobes.per_process.close()
        self._ctx.links.destroy_all()
        if self._syscalls is not None:
            self._syscalls.release()
        self._ctx.claims.clear()
        self._ctx.function_outcomes.clear()

    def _destroy_exit_link(self) -> None:
        if self._exit_link is not None:
            self._exit_link.destroy()
            self._exit_link = None

    def close(self) -> None:
        """Detach and unload; the engine cannot be used afterwards."""
        self.detach()
        if self._poller is not None:
            self._poller.stop()
            self._poller = None
        self._destroy_exit_link()
        if self._loaded is not None:
            self._loaded.close()
            self._loaded = None
            self._ctx = None

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
