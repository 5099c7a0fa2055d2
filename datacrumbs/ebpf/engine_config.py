"""What a tracing session traces and how much memory it uses (:class:`EngineConfig`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "KFUNC_MODES",
    "SYSCALL_MODES",
    "UPROBE_MODES",
    "UPROBE_SCOPES",
    "EngineConfig",
    "EngineError",
]

#: The choices of :attr:`EngineConfig.syscall_mode` and :attr:`EngineConfig.uprobe_mode`.
SYSCALL_MODES = ("raw_tp", "tracepoint")
UPROBE_MODES = ("auto", "multi", "single")
#: The choices of :attr:`EngineConfig.uprobe_scope`.
UPROBE_SCOPES = ("job", "node")
#: The choices of :attr:`EngineConfig.kfunc_mode`.
KFUNC_MODES = ("auto", "fentry", "kprobe")


class EngineError(RuntimeError):
    """The engine cannot do what was asked; the message is one line with the reason."""


@dataclass(frozen=True)
class EngineConfig:
    """What to trace and how much memory to use.

    ``uid``: only processes whose real uid is this one are traced (None: every process).
    ``cgroup``: also require membership of this cgroup v2 (a path or an id) or a descendant.
    ``cgroup_later``: the same for a cgroup given later (:meth:`Engine.set_cgroup`); until then
    nothing is traced.
    ``parent_cmdline``: instead of a cgroup, only the processes forked by a process whose
    command line starts with this (a scheduler's step daemon, NUL between arguments read as a
    space), and their descendants, from the load on: for schedulers that give a job no cgroup.
    ``ringbuf_bytes``: the size of each ring buffer, a power of two and a multiple of the page
    size. ``rings``: how many (0: one per possible CPU, up to 64); a thread's records go to
    the ring of the CPU it first ran on.
    ``syscall_mode``: ``raw_tp`` (two raw tracepoint links and a number → cookie map: the
    default) or ``tracepoint`` (one syscalls:sys_enter_X/sys_exit_X link pair per syscall).
    ``uprobe_mode``: ``auto`` (uprobe_multi links when the kernel has them), ``multi`` (required:
    load fails without them) or ``single`` (one perf-event uprobe per function and direction).
    ``uprobe_scope``: ``job`` (each job process gets its own uprobe links, made as the kernel
    tells of it: no other process ever traps; a new process's calls before its links are made
    are not traced) or ``node`` (one set of links for every process on the node: exact from a
    process's first instruction, but every process running the code traps, the job's or not —
    for nodes the job has to itself).
    ``kfunc_mode``: how kernel functions (kprobe targets) are traced: ``auto`` (fentry/fexit
    where the kernel loads them, else kprobes), ``fentry`` (only) or ``kprobe`` (only).
    ``function_slots``: how many function ids have a hit counter (``Engine.function_hits``)
    and, in profile mode, an offset slot; the daemon sizes it to its probe file.
    ``profile_interval_ns``: profile mode (0: trace mode): calls are aggregated in the kernel
    per (process, thread, function, file, interval of this length) instead of sent one by one.
    ``profile_keys``: profile mode and the valve: aggregates the kernel holds at most (the
    intervals not harvested yet); a call that finds no room is counted lost.
    ``valve_interval_ns``: trace mode's valve (0: off): a call that would be an event is
    folded into an aggregate of intervals of this length (as profile mode makes them) instead
    of lost when its ring buffer holds more than ``fold_above`` of its size not consumed yet
    (or is full), when its function passed ``rate_limit`` calls in ``rate_window_ns`` on one
    CPU (0: no limit), when :meth:`Engine.spend_budget` was called, or when the function's
    rule (the probe file's ``delivery``, :mod:`fold_rules`) says so.
    ``drain_bytes_per_s``: the poller moves at most this many ring-buffer bytes a second (0:
    as fast as it can): a consumer slowed on purpose, to test and measure the valve.
    """

    uid: int | None
    cgroup: int | str | os.PathLike[str] | None = None
    cgroup_later: bool = False
    parent_cmdline: str | None = None
    ringbuf_bytes: int = 16 << 20
    rings: int = 0
    poll_interval: float = 0.05
    wakeup_fraction: float = 0.25
    bpf_object: Path | None = None  # default: build (or reuse) the cached object
    syscall_mode: str = "raw_tp"
    uprobe_mode: str = "auto"
    uprobe_scope: str = "job"
    kfunc_mode: str = "auto"
    function_slots: int = 4096  # function ids whose probe hits are counted (1 .. slots-1)
    profile_interval_ns: int = 0
    profile_keys: int = 32768
    valve_interval_ns: int = 0
    fold_above: float = 0.5
    rate_limit: int = 0
    rate_window_ns: int = 100_000_000
    drain_bytes_per_s: int = 0

    @property
    def profiles(self) -> bool:
        """Whether calls are aggregated in the kernel (profile mode) rather than sent."""
        return self.profile_interval_ns > 0

    @property
    def valve(self) -> bool:
        """Whether trace mode's calls may fold into aggregates (the valve)."""
        return not self.profiles and self.valve_interval_ns > 0

    @property
    def aggregates(self) -> bool:
        """Whether the kernel keeps aggregates (profile mode, or the valve)."""
        return self.profiles or self.valve

    @property
    def aggregate_interval_ns(self) -> int:
        """The length of an aggregate's interval (0: no aggregates)."""
        if self.profiles:
            return self.profile_interval_ns
        return self.valve_interval_ns if self.valve else 0

    @property
    def filters_cgroup(self) -> bool:
        """Whether the kernel checks the task's cgroup (now or from a cgroup given later)."""
        return self.cgroup is not None or self.cgroup_later

    @property
    def filters_tasks(self) -> bool:
        """Whether the kernel checks the task's process against the job's process tree."""
        return self.parent_cmdline is not None
