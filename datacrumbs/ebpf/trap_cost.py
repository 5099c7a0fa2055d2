"""What one uprobe hit costs the process that takes it, measured on this node at start.

A uprobe hit is a breakpoint trap, a pass through the kernel's uprobe machinery, the BPF program
and, for a uretprobe, a second trap at the return: ~1 µs on bare metal, ~10 µs under
virtualisation (int3 exits to the hypervisor on some), so no constant fits every node. The
daemon budgets the job's uprobes in time (:mod:`datacrumbs.daemon.trap_budget`): hits times
this cost, against the job's CPU time. It is measured with the engine's own programs, as an
entry and exit pair on the C library's ``getppid`` in the daemon's own process only (the
programs return at once for the daemon: what is measured is the traps), timed against the same
calls without them.
"""

from __future__ import annotations

import ctypes
import statistics
import time
from pathlib import Path

from datacrumbs.ebpf.elf_symbols import ElfSymbols, SymbolError
from datacrumbs.ebpf.libbpf import BpfError, BpfObject
from datacrumbs.ebpf.link_set import Link, LinkSet
from datacrumbs.ebpf.object_names import FUNC_ENTER, FUNC_EXIT, UMULTI_ENTER, UMULTI_EXIT

__all__ = ["measure_trap_cost_ns", "own_libc"]

_CALLS = 2000
_ROUNDS = 3


def own_libc() -> Path | None:
    """The C library this process runs on, as mapped."""
    with open("/proc/self/maps", encoding="utf-8") as maps:
        for line in maps:
            path = line.rstrip("\n").split(maxsplit=5)[-1]
            if "/libc.so" in path or "/libc-" in path:
                return Path(path)
    return None


def _time_calls(call: ctypes._CFuncPtr) -> float:  # type: ignore[name-defined]
    start = time.perf_counter_ns()
    for _ in range(_CALLS):
        call()
    return (time.perf_counter_ns() - start) / _CALLS


def measure_trap_cost_ns(obj: BpfObject, multi: bool, pid: int) -> float | None:
    """Nanoseconds one entry-and-exit uprobe hit adds to a call (None: cannot be measured here,
    e.g. no C library symbol table)."""
    libc = own_libc()
    if libc is None:
        return None
    try:
        offset = ElfSymbols.read(str(libc)).offset("getppid")
    except SymbolError:
        return None
    getppid = ctypes.CDLL(None).getppid
    bare = [_time_calls(getppid)]
    links: list[Link] = []
    try:
        if multi:
            links += [
                obj.attach_uprobe_multi(UMULTI_EXIT, str(libc), [offset], [0], True, pid),
                obj.attach_uprobe_multi(UMULTI_ENTER, str(libc), [offset], [0], False, pid),
            ]
        else:
            links += [
                obj.attach_uprobe(FUNC_EXIT, str(libc), offset, 0, True, pid),
                obj.attach_uprobe(FUNC_ENTER, str(libc), offset, 0, False, pid),
            ]
        probed = [_time_calls(getppid) for _ in range(_ROUNDS)]
    except BpfError:
        return None
    finally:
        LinkSet(links).destroy_all()  # each waits for an RCU grace period: once, together
    bare.append(_time_calls(getppid))
    return max(0.0, statistics.median(probed) - min(bare))
