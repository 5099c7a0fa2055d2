"""Raising the daemon's soft resource limits to their hard limits, best effort.

Thousands of uprobes need thousands of perf-event file descriptors (RLIMIT_NOFILE); older
kernels charge BPF maps to RLIMIT_MEMLOCK (before 5.11, memcg accounting replaced it); large
ring buffers are address space (RLIMIT_AS). A limit that cannot be raised is logged, never fatal.
"""

from __future__ import annotations

import resource

__all__ = ["raise_soft_limits"]

_LIMITS = {
    "RLIMIT_NOFILE": resource.RLIMIT_NOFILE,
    "RLIMIT_AS": resource.RLIMIT_AS,
    "RLIMIT_MEMLOCK": resource.RLIMIT_MEMLOCK,
}


def _show(value: int) -> str:
    return "unlimited" if value == resource.RLIM_INFINITY else str(value)


def raise_soft_limits() -> list[str]:
    """Set each soft limit to its hard limit; return one line per limit saying what happened."""
    report = []
    for name, limit in _LIMITS.items():
        soft, hard = resource.getrlimit(limit)
        if soft == hard:
            report.append(f"{name} {_show(soft)} (already at the hard limit)")
            continue
        try:
            resource.setrlimit(limit, (hard, hard))
        except (ValueError, OSError) as exc:
            report.append(f"{name} stays {_show(soft)}: cannot raise to {_show(hard)}: {exc}")
        else:
            report.append(f"{name} raised {_show(soft)} -> {_show(hard)}")
    return report
