"""The node's clock, as a trace records it: the offset that turns the kernel's CLOCK_MONOTONIC
stamps into wall-clock time, and at the trace's start and end the facts a reader needs to lay
the traces of one job's nodes on one timeline and to know how far to trust that.

Each node stamps its events with its own CLOCK_MONOTONIC and converts them with its own
``CLOCK_REALTIME - CLOCK_MONOTONIC``. Two nodes' traces line up as well as their wall clocks
agree, which the kernel's NTP state says (``adjtimex(2)``, read-only: ``modes`` 0 needs no
privilege): whether the clock is synchronised (``STA_UNSYNC`` clear), its maximum and
estimated error, and the TAI offset. The offset is read at the start and at the end, so that a
step or a drift during the run shows.
"""

from __future__ import annotations

import ctypes
import time
from ctypes import c_int, c_long

__all__ = ["STA_UNSYNC", "clock_facts", "clock_offset_ns", "kernel_time_status"]

#: adjtimex's status bit: the clock is not synchronised (include/uapi/linux/timex.h).
STA_UNSYNC = 0x0040
#: adjtimex's return value: the clock state (TIME_OK ... TIME_ERROR).
_STATES = {0: "ok", 1: "insert_leap", 2: "delete_leap", 3: "leap_in_progress", 4: "leap_done",
           5: "error"}  # fmt: skip


class _Timex(ctypes.Structure):
    """``struct timex`` (glibc's layout of the kernel's ``struct __kernel_timex`` on 64-bit
    machines: the fields read here, then what follows them up to its padding)."""

    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", c_long),
        ("freq", c_long),
        ("maxerror", c_long),
        ("esterror", c_long),
        ("status", c_int),
        ("constant", c_long),
        ("precision", c_long),
        ("tolerance", c_long),
        ("time_sec", c_long),
        ("time_usec", c_long),
        ("tick", c_long),
        ("ppsfreq", c_long),
        ("jitter", c_long),
        ("shift", c_int),
        ("stabil", c_long),
        ("jitcnt", c_long),
        ("calcnt", c_long),
        ("errcnt", c_long),
        ("stbcnt", c_long),
        ("tai", c_int),
        ("_padding", c_int * 11),
    ]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.adjtimex.argtypes = [ctypes.POINTER(_Timex)]
_libc.adjtimex.restype = c_int


def kernel_time_status() -> dict[str, int | str | bool]:
    """The kernel's NTP state, read without changing anything: ``synced``, ``state``,
    ``status`` (the STA_* bits), ``maxerror_us``, ``esterror_us``, ``tai_offset_s``; empty
    when the kernel refuses (a seccomp filter, say)."""
    tx = _Timex()  # modes 0: read only
    state = _libc.adjtimex(ctypes.byref(tx))
    if state < 0:
        return {}
    return {
        "synced": not tx.status & STA_UNSYNC,
        "state": _STATES.get(state, str(state)),
        "status": tx.status,
        "maxerror_us": tx.maxerror,
        "esterror_us": tx.esterror,
        "tai_offset_s": tx.tai,
    }


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


def clock_facts(at: str) -> dict[str, int | str | bool]:
    """What a trace records of the node's clock at its ``start`` or ``end``."""
    return {"at": at, "realtime_minus_monotonic_ns": clock_offset_ns(), **kernel_time_status()}
