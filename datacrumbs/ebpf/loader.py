"""Loading the BPF object for one session: its filters written into ``.rodata``, its maps sized,
and only the programs of the variants in use verified and loaded."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from datacrumbs.common.settings import parent_cmdline_problem
from datacrumbs.ebpf import features
from datacrumbs.ebpf.bpf_maps import map_update
from datacrumbs.ebpf.bpf_syscall import BPF_TRACE_UPROBE_MULTI
from datacrumbs.ebpf.build import build_bpf_object
from datacrumbs.ebpf.engine_config import (
    KFUNC_MODES,
    SYSCALL_MODES,
    UPROBE_MODES,
    UPROBE_SCOPES,
    EngineConfig,
    EngineError,
)
from datacrumbs.ebpf.libbpf import BpfError, BpfObject, ringbuf_create
from datacrumbs.ebpf.object_names import (
    CGROUP_MKDIR,
    FOLD_RULES_MAP,
    FOLDS_MAP,
    FUNC_ENTER,
    FUNC_EXIT,
    HITS_MAP,
    KFUNC_ENTER,
    KFUNC_EXIT,
    OFFSET_ARGS_MAP,
    PROFILE_DONE_MAP,
    PROFILE_FLUSH,
    PROFILE_MAP,
    RAW_SYS_ENTER,
    RAW_SYS_EXIT,
    RINGS_MAP,
    SYS_ENTER,
    SYS_EXIT,
    TASK_EXIT,
    TASK_FORK,
    UMULTI_ENTER,
    UMULTI_EXIT,
)
from datacrumbs.ebpf.poller import possible_cpus
from datacrumbs.ebpf.records import MAX_RINGS, Config

__all__ = ["MIN_PROFILE_INTERVAL_NS", "Loaded", "check_config", "load", "ring_count"]

#: Profile mode's shortest interval: shorter ones would take more harvesting than tracing.
MIN_PROFILE_INTERVAL_NS = 1_000_000


@dataclass(frozen=True)
class Loaded:
    """A loaded object and what the kernel turned out to support."""

    obj: BpfObject
    path: Path  # the object file (a per-function fentry object is opened from it again)
    config: bytes  # .rodata.config as loaded (the fentry objects get the same)
    uprobe_multi: bool  # uprobes share uprobe_multi links
    kprobes_unsupported: str | None  # why kprobes cannot attach (None: they can)
    rings: list[int]  # the ring buffers' fds, in dc_rings order (the caller closes them)
    interval_shift: int = 0  # profile mode: dc_config.interval_shift

    def close(self) -> None:
        """Close the ring buffers' fds and the object (once)."""
        for fd in self.rings:
            os.close(fd)
        self.obj.close()


def ring_count(cfg: EngineConfig) -> int:
    """How many ring buffers: ``cfg.rings``, or one per possible CPU up to DC_MAX_RINGS."""
    return cfg.rings or min(possible_cpus(), MAX_RINGS)


def _check_ringbuf_size(size: int) -> None:
    page = os.sysconf("SC_PAGE_SIZE")
    if size < page or size & (size - 1):
        raise EngineError(
            f"ring buffer size {size} must be a power of two of at least {page} bytes"
        )


def check_config(cfg: EngineConfig) -> None:
    """Refuse a configuration no load could honour, before anything is loaded."""
    _check_ringbuf_size(cfg.ringbuf_bytes)
    if not 0 <= cfg.rings <= MAX_RINGS:
        raise EngineError(f"rings must be 0 (one per CPU) to {MAX_RINGS}, not {cfg.rings}")
    if cfg.parent_cmdline is not None and (problem := parent_cmdline_problem(cfg.parent_cmdline)):
        raise EngineError(f"parent command line: {problem}")
    if cfg.filters_tasks and cfg.filters_cgroup:
        raise EngineError("a cgroup and a parent command line cannot both scope one session")
    if cfg.profiles and cfg.profile_interval_ns < MIN_PROFILE_INTERVAL_NS:
        raise EngineError(
            f"a profile interval of at least {MIN_PROFILE_INTERVAL_NS // 1_000_000} ms, "
            f"not {cfg.profile_interval_ns} ns"
        )
    if cfg.valve and cfg.valve_interval_ns < MIN_PROFILE_INTERVAL_NS:
        raise EngineError(
            f"a valve interval of at least {MIN_PROFILE_INTERVAL_NS // 1_000_000} ms, "
            f"not {cfg.valve_interval_ns} ns"
        )
    if not 0 < cfg.fold_above <= 1:
        raise EngineError(f"fold_above is a fraction of the ring, not {cfg.fold_above}")
    if cfg.rate_limit < 0 or cfg.rate_window_ns < 1 or cfg.drain_bytes_per_s < 0:
        raise EngineError("rate_limit and drain_bytes_per_s are >= 0, rate_window_ns >= 1")
    if cfg.profile_keys < 1:
        raise EngineError(f"profile_keys must be at least 1, not {cfg.profile_keys}")


def load(cfg: EngineConfig) -> Loaded:
    """Build (if needed) and load the BPF object with ``cfg``'s filters."""
    if cfg.syscall_mode not in SYSCALL_MODES:
        raise EngineError(f"syscall_mode must be one of {', '.join(SYSCALL_MODES)}")
    if cfg.uprobe_mode not in UPROBE_MODES:
        raise EngineError(f"uprobe_mode must be one of {', '.join(UPROBE_MODES)}")
    if cfg.kfunc_mode not in KFUNC_MODES:
        raise EngineError(f"kfunc_mode must be one of {', '.join(KFUNC_MODES)}")
    if cfg.uprobe_scope not in UPROBE_SCOPES:
        raise EngineError(f"uprobe_scope must be one of {', '.join(UPROBE_SCOPES)}")
    try:
        features.ensure_tracefs()
    except OSError as exc:
        raise EngineError(str(exc)) from exc
    try:
        refusal = features.kernel_refusal()
    except BpfError as exc:
        raise EngineError(str(exc)) from exc
    if refusal is not None:
        raise EngineError(refusal)
    kprobes_reason = features.kprobe_support()
    multi_reason = features.uprobe_multi_support() if cfg.uprobe_mode != "single" else ""
    if cfg.uprobe_mode == "multi" and multi_reason:
        raise EngineError(multi_reason)
    uprobe_multi = multi_reason is None
    raw_syscalls = cfg.syscall_mode == "raw_tp"
    path = cfg.bpf_object or build_bpf_object()
    pidns = features.own_pid_namespace()
    shift = interval_shift(cfg.aggregate_interval_ns)
    try:
        obj = BpfObject(path)
        ring_fds: list[int] = []
        try:
            ring_fds = _make_rings(ring_count(cfg), cfg.ringbuf_bytes)
            obj.set_inner_map_fd(RINGS_MAP, ring_fds[0])
            obj.set_max_entries(HITS_MAP, max(1, cfg.function_slots))
            obj.set_max_entries(OFFSET_ARGS_MAP, max(1, cfg.function_slots))
            obj.set_max_entries(PROFILE_MAP, cfg.profile_keys if cfg.aggregates else 1)
            obj.set_max_entries(PROFILE_DONE_MAP, cfg.profile_keys if cfg.aggregates else 1)
            obj.set_max_entries(FOLD_RULES_MAP, max(1, cfg.function_slots) if cfg.valve else 1)
            obj.set_max_entries(FOLDS_MAP, max(1, cfg.function_slots) if cfg.valve else 1)
            config = Config(
                uid=cfg.uid,
                filter_cgroup=cfg.filters_cgroup,
                self_tgid=os.getpid(),
                pidns_dev=pidns.dev,
                pidns_ino=pidns.ino,
                wakeup_bytes=max(1, int(cfg.ringbuf_bytes * cfg.wakeup_fraction)),
                parent_cmdline=(cfg.parent_cmdline or "").encode(),
                rings=len(ring_fds),
                interval_ns=cfg.aggregate_interval_ns,
                interval_shift=shift,
                profile=cfg.profiles,
                valve=cfg.valve,
                fold_above=int(cfg.ringbuf_bytes * cfg.fold_above) if cfg.fold_above < 1 else 0,
                rate_limit=cfg.rate_limit if cfg.valve else 0,
                rate_window_ns=cfg.rate_window_ns,
            )
            packed = config.pack()
            obj.set_initial_value(".rodata.config", packed)
            # only the programs of the variants in use are verified and loaded
            obj.set_autoload(RAW_SYS_ENTER, raw_syscalls)
            obj.set_autoload(RAW_SYS_EXIT, raw_syscalls)
            obj.set_autoload(SYS_ENTER, not raw_syscalls)
            obj.set_autoload(SYS_EXIT, not raw_syscalls)
            for program in (UMULTI_ENTER, UMULTI_EXIT):
                obj.set_autoload(program, uprobe_multi)
                if uprobe_multi:
                    obj.set_expected_attach_type(program, BPF_TRACE_UPROBE_MULTI)
            per_function = not uprobe_multi or kprobes_reason is None
            obj.set_autoload(FUNC_ENTER, per_function)
            obj.set_autoload(FUNC_EXIT, per_function)
            obj.set_autoload(KFUNC_ENTER, False)  # loaded per kernel function (attach_kprobes)
            obj.set_autoload(KFUNC_EXIT, False)
            obj.set_autoload(CGROUP_MKDIR, cfg.filters_cgroup)
            obj.set_autoload(TASK_FORK, cfg.filters_tasks)
            obj.set_autoload(TASK_EXIT, cfg.filters_tasks or cfg.aggregates)
            obj.set_autoload(PROFILE_FLUSH, cfg.aggregates)
            obj.load()
            outer = obj.map_fd(RINGS_MAP)
            for i, fd in enumerate(ring_fds):
                map_update(outer, i.to_bytes(4, "little"), fd.to_bytes(4, "little"))
        except BaseException:
            for fd in ring_fds:
                os.close(fd)
            obj.close()
            raise
    except BpfError as exc:
        raise EngineError(str(exc)) from exc
    return Loaded(obj, Path(path), packed, uprobe_multi, kprobes_reason, ring_fds, shift)


def interval_shift(interval_ns: int) -> int:
    """What the kernel adds to CLOCK_MONOTONIC so that profile intervals start on whole
    multiples of ``interval_ns`` in wall-clock time: the wall clock's offset from it, modulo
    the interval (read now; the trace's timestamps round to the intervals' starts)."""
    if not interval_ns:
        return 0
    return (time.time_ns() - time.monotonic_ns()) % interval_ns


def _make_rings(count: int, size: int) -> list[int]:
    """``count`` new ring buffers of ``size`` bytes; their fds."""
    fds: list[int] = []
    try:
        for i in range(count):
            fds.append(ringbuf_create(f"dc_ring{i}", size))
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return fds
