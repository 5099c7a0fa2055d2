"""Uprobes that trap only in the job's processes (issue 25, N2).

A uprobe is a breakpoint written into the code of every process that maps the file, unless
every consumer of it filters by process: then the kernel writes it only into the memory of the
processes a consumer asks for (its ``filter``, checked at register and at mmap). A uprobe_multi
link with a ``pid`` (6.6+) and a perf-event uprobe opened on one task are such consumers. So the
functions of a probe file are attached once per job process, never for the node: another
user's process running the same libc ``read`` or libstdc++ ``operator new`` never traps.

Links hold the task, not its number, and follow it through exec (the new program's mappings
pass the filter); a child made by fork inherits its parent's breakpoints in the copied memory
but not its links (the filter compares the memory), so each new process gets links of its own,
as soon as :mod:`process_follower` hears of it. Its calls before that are not traced (the
attach latency is measured and reported: :attr:`ProcessUprobes.latency`).

A process is identified by its pid and its start time (``/proc/<pid>/stat``'s ``starttime``,
the kernel's ``start_boottime``): links are made through a pidfd held across the check and the
attach, so a pid reused meanwhile by someone else's process is never given breakpoints.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from datacrumbs.ebpf.libbpf import BpfError, BpfObject
from datacrumbs.ebpf.link_set import DETACH_THREADS, Link
from datacrumbs.ebpf.object_names import FUNC_ENTER, FUNC_EXIT, UMULTI_ENTER, UMULTI_EXIT, USDT

__all__ = ["BinaryPlan", "FollowStats", "ProcessUprobes", "Site", "start_ticks"]

_log = logging.getLogger("datacrumbs.engine")
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_NS_PER_TICK = 1_000_000_000 // _CLK_TCK
#: Attach failures logged one by one (a job of thousands of processes on a node out of file
#: descriptors would flood the journal); the rest are counted in :class:`FollowStats`.
_FAILURES_LOGGED = 5


@dataclass(frozen=True)
class Site:
    """One function of a binary: where its breakpoint goes and what its events carry."""

    offset: int
    cookie: int
    fid: int
    usdt: tuple[str, str] | None = None  # a USDT probe's (provider, name): libbpf places it


@dataclass
class BinaryPlan:
    """The functions of one binary, attached together in each process (one uprobe_multi link
    pair, or a perf-event pair per function); ``path`` is what the kernel resolves (the
    daemon's pinned ``/proc/self/fd/N``)."""

    path: str
    sites: list[Site]


@dataclass
class FollowStats:
    """What following the job's processes came to: processes given uprobes, those gone or
    reused before they could be, attaches the kernel refused, and the delay from the kernel
    seeing a process to its breakpoints being in place (ns)."""

    followed: int = 0
    missed: int = 0
    failed: int = 0
    latencies_ns: list[int] = field(default_factory=list)

    def latency_summary(self) -> str:
        """Median and maximum attach delay, in ms (empty when nothing was measured)."""
        values = sorted(self.latencies_ns)
        if not values:
            return ""
        return f"median {values[len(values) // 2] / 1e6:.2f} ms, max {values[-1] / 1e6:.2f} ms"


def _stat(pid: int) -> list[bytes] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (field 3 first); None when
    gone. The name (field 2) may hold spaces and parentheses: the fields follow the last ')'."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rindex(b")") + 2 :].split()


def start_ticks(pid: int) -> int | None:
    """``starttime`` of ``/proc/<pid>/stat`` (clock ticks since boot); None when gone."""
    fields = _stat(pid)
    return int(fields[19]) if fields is not None else None


def _cpu_ns(pid: int) -> int | None:
    """utime + stime of ``/proc/<pid>/stat``, in ns; None when gone."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) * _NS_PER_TICK if fields is not None else None


class ProcessUprobes:
    """The links of each followed process, made from ``plans``; thread-safe."""

    #: Latencies kept for the summary (the rest are counted, not kept).
    MAX_LATENCIES = 100_000

    def __init__(self, obj: BpfObject, multi: bool, plans: list[BinaryPlan]) -> None:
        self.obj = obj
        self.multi = multi
        self.plans = plans
        self.stats = FollowStats()
        self._lock = threading.Lock()
        self._procs: dict[int, tuple[int, list[Link]]] = {}  # pid -> (start ticks, links)
        self._detached: set[int] = set()
        self._retired_ns = 0
        self._closed = False
        self._reaper = ThreadPoolExecutor(DETACH_THREADS, thread_name_prefix="uprobe-detach")

    @property
    def fids(self) -> set[int]:
        """The functions attached in each followed process."""
        with self._lock:
            return {s.fid for p in self.plans for s in p.sites} - self._detached

    def follow(self, pid: int, start_ns: int | None, seen_ns: int | None = None) -> bool:
        """Give process ``pid`` (started at ``start_ns`` of boot time; None: whatever process
        has the pid now) its uprobes; False when it is gone or was reused. A process already
        followed is attached again (its leader task changed)."""
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            self.stats.missed += 1
            return False
        try:
            ticks = start_ticks(pid)
            if ticks is None or (start_ns is not None and ticks != start_ns // _NS_PER_TICK):
                self.stats.missed += 1
                return False
            with self._lock:
                if self._closed:
                    return False
                links = self._attach(pid)
                if select.select([pidfd], [], [], 0)[0]:  # exited: the pid may be another's
                    self._release(links)
                    self.stats.missed += 1
                    return False
                old = self._procs.pop(pid, None)
                self._procs[pid] = (ticks, links)
                self.stats.followed += old is None
                if seen_ns is not None and len(self.stats.latencies_ns) < self.MAX_LATENCIES:
                    self.stats.latencies_ns.append(time.monotonic_ns() - seen_ns)
            if old is not None:
                self._release(old[1])
            return True
        finally:
            os.close(pidfd)

    def forget(self, pid: int, start_ns: int | None = None) -> None:
        """Free the links of process ``pid`` (it exited)."""
        with self._lock:
            entry = self._procs.get(pid)
            if entry is None or (start_ns is not None and entry[0] != start_ns // _NS_PER_TICK):
                return
            del self._procs[pid]
            self._retired_ns += _cpu_ns(pid) or 0  # an exiting process's stat is still there
        self._release(entry[1])

    def detach(self, fids: Iterable[int]) -> None:
        """Stop tracing ``fids`` in every process: each process's links are made again
        without them (its other functions miss the calls of those few milliseconds)."""
        with self._lock:
            self._detached |= set(fids)
            for pid, (ticks, links) in list(self._procs.items()):
                self._release(links)
                try:
                    self._procs[pid] = (ticks, self._attach(pid))
                except BpfError:
                    del self._procs[pid]

    def cpu_ns(self) -> int:
        """CPU time (user and system) of the processes followed now and of those gone: what
        the job's uprobes are budgeted against where the job has no cgroup."""
        with self._lock:
            pids = list(self._procs)
            total = self._retired_ns
        for pid in pids:
            total += _cpu_ns(pid) or 0
        return total

    def has(self, pid: int) -> bool:
        """Whether process ``pid`` has its links now."""
        with self._lock:
            return pid in self._procs

    def close(self) -> None:
        """Free every link and wait for the kernel to let go of them."""
        with self._lock:
            self._closed = True
            procs, self._procs = self._procs, {}
        for _ticks, links in procs.values():
            self._release(links)
        self._reaper.shutdown(wait=True)

    # -- the links of one process --------------------------------------------------------
    def _attach(self, pid: int) -> list[Link]:
        """The links of every binary's functions in process ``pid`` (exits first, so that no
        entry is recorded without its exit). A binary the kernel refuses for this process is
        counted and logged; the others are kept. Called with the lock held."""
        links: list[Link] = []
        for plan in self.plans:
            sites = [s for s in plan.sites if s.fid not in self._detached]
            if not sites:
                continue
            try:
                links += self._attach_binary(plan.path, sites, pid)
            except BpfError as exc:
                if exc.errno == errno.ESRCH:
                    break  # gone: the caller sees it through the pidfd
                self.stats.failed += 1
                if self.stats.failed <= _FAILURES_LOGGED:  # then counted only (the summary)
                    more = " (further failures are only counted)"
                    _log.warning(
                        "cannot attach uprobes to process %d: %s%s",
                        pid,
                        exc,
                        more if self.stats.failed == _FAILURES_LOGGED else "",
                    )
        return links

    def _attach_binary(self, path: str, sites: list[Site], pid: int) -> list[Link]:
        made: list[Link] = []
        functions = [s for s in sites if s.usdt is None]
        try:
            for site in sites:
                if site.usdt is not None:
                    made.append(self.obj.attach_usdt(USDT, path, *site.usdt, site.cookie, pid))
            if self.multi and functions:
                offsets = [s.offset for s in functions]
                cookies = [s.cookie for s in functions]
                for program, ret in ((UMULTI_EXIT, True), (UMULTI_ENTER, False)):
                    made.append(
                        self.obj.attach_uprobe_multi(program, path, offsets, cookies, ret, pid)
                    )
            elif not self.multi:
                for site in functions:
                    for program, ret in ((FUNC_EXIT, True), (FUNC_ENTER, False)):
                        made.append(
                            self.obj.attach_uprobe(
                                program, path, site.offset, site.cookie, ret, pid
                            )
                        )
        except BpfError:
            self._release(made)
            raise
        return made

    def _release(self, links: list[Link]) -> None:
        """Destroy ``links`` on the reaper threads (each waits for an RCU grace period)."""
        for link in links:
            with contextlib.suppress(RuntimeError):  # shut down: destroyed by close()
                self._reaper.submit(link.destroy)
                continue
            link.destroy()
