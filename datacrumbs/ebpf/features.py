"""Run-time detection of the kernel features the engine depends on.

Nothing is assumed from the kernel version: each probe kind is checked where it would be used,
and an unsupported kind turns into a per-target failure with a reason, never a crash.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "KPROBES_UNSUPPORTED",
    "MINIMUM_KERNEL",
    "UPROBE_MULTI_UNSUPPORTED",
    "PidNamespace",
    "ensure_tracefs",
    "kernel_refusal",
    "kprobe_support",
    "own_pid_namespace",
    "uprobe_multi_support",
    "uring_submit_event",
]

TRACEFS = Path("/sys/kernel/tracing")
KPROBE_PMU = Path("/sys/bus/event_source/devices/kprobe")

KPROBES_UNSUPPORTED = "kprobes are not supported by this kernel (CONFIG_KPROBES off)"
UPROBE_MULTI_UNSUPPORTED = "this kernel has no uprobe_multi links (6.6+)"


#: The oldest kernel series the engine runs on: what every traced call needs arrived by then.
MINIMUM_KERNEL = "5.15"
#: (map type, what it is and since when): the engine's maps that cannot be replaced.
_REQUIRED_MAPS = ((27, "BPF ring buffers (5.8)"), (29, "task storage (5.11)"))
#: (helper number, what it is and since when), probed for a kprobe program.
_REQUIRED_HELPERS = (
    (158, "bpf_get_current_task_btf (5.11)"),
    (165, "bpf_snprintf (5.13)"),
    (174, "BPF cookies (bpf_get_attach_cookie, 5.15)"),
)


@functools.cache
def kernel_refusal() -> str | None:
    """None when this kernel has what the engine cannot do without, else one line naming what
    it lacks. Probed, not read off the version: distributions backport (RHEL 9's 5.14 has
    most of 6.x's BPF). Cached: one probe per process (a few ms)."""
    from datacrumbs.ebpf import libbpf
    from datacrumbs.ebpf.bpf_syscall import BPF_PROG_TYPE_KPROBE

    lacks = [what for kind, what in _REQUIRED_MAPS if not libbpf.kernel_has_map_type(kind)]
    lacks += [
        what
        for helper, what in _REQUIRED_HELPERS
        if not libbpf.kernel_has_helper(BPF_PROG_TYPE_KPROBE, helper)
    ]
    if not lacks:
        return None
    return (
        f"this kernel ({os.uname().release}) cannot run datacrumbs (it needs {MINIMUM_KERNEL} "
        f"or newer): it lacks {', '.join(lacks)}"
    )


def ensure_tracefs(path: Path = TRACEFS) -> None:
    """Mount tracefs at ``path`` when it is not mounted (tracepoint attachment reads event ids
    there). Needs root; tracefs exists since kernel 4.1. Raises OSError with the reason."""
    if (path / "events").is_dir():
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_void_p]
    if libc.mount(b"tracefs", os.fsencode(path), b"tracefs", 0, None) != 0:
        err = ctypes.get_errno()
        raise OSError(
            err, f"tracefs is not mounted at {path} and mounting it failed: {os.strerror(err)}"
        )


def kprobe_support(tracefs: Path = TRACEFS) -> str | None:
    """None when kprobes can be attached, else the reason they cannot. A kernel with
    CONFIG_KPROBES has the ``kprobe`` perf PMU (4.17+) or tracefs ``kprobe_events``."""
    if KPROBE_PMU.is_dir() or (tracefs / "kprobe_events").exists():
        return None
    return KPROBES_UNSUPPORTED


def uring_submit_event(tracefs: Path = TRACEFS) -> str:
    """The io_uring tracepoint that fires when a request is submitted: ``io_uring_submit_req``
    since 6.4, ``io_uring_submit_sqe`` before (the same fields; the program reads either)."""
    events = tracefs / "events" / "io_uring"
    if (events / "io_uring_submit_req").is_dir() or not (events / "io_uring_submit_sqe").is_dir():
        return "io_uring_submit_req"
    return "io_uring_submit_sqe"


@dataclass(frozen=True)
class PidNamespace:
    """The daemon's pid namespace, as ``bpf_get_ns_current_pid_tgid`` (5.7+) wants it."""

    dev: int  # kernel-internal dev_t: major << 20 | minor
    ino: int


def own_pid_namespace() -> PidNamespace:
    st = os.stat("/proc/self/ns/pid")
    return PidNamespace((os.major(st.st_dev) << 20) | os.minor(st.st_dev), st.st_ino)


@functools.cache
def uprobe_multi_support() -> str | None:
    """None when uprobe_multi links (kernel 6.6+, with ``bpf_get_attach_cookie``) work, else
    why not. Probed the way libbpf does it: load ``r0 = 0; exit`` as a kprobe program with
    expected attach type BPF_TRACE_UPROBE_MULTI, then ask for a link on the directory ``/``.
    A kernel that knows the attach type gets as far as opening the path and fails with EBADF
    (not a regular file); an older one refuses the attach type (EINVAL) before that. Cached:
    one probe per process (~1 ms)."""
    from datacrumbs.ebpf import bpf_syscall

    try:
        prog = bpf_syscall.prog_load_trivial(
            bpf_syscall.BPF_PROG_TYPE_KPROBE, bpf_syscall.BPF_TRACE_UPROBE_MULTI
        )
    except OSError as exc:
        return f"{UPROBE_MULTI_UNSUPPORTED}: loading a probe program failed ({exc.strerror})"
    try:
        link = bpf_syscall.link_create_uprobe_multi(prog, "/", [0], [0], retprobe=False)
    except OSError as exc:
        if exc.errno == errno.EBADF:
            return None
        return f"{UPROBE_MULTI_UNSUPPORTED} ({exc.strerror})"
    finally:
        os.close(prog)
    os.close(link)  # should not happen ("/" is not a file); supported anyway
    return None
