"""The kernel/user ABI in Python: ring-buffer record layouts, loss slots, the config block and
the cookie bit layout.

Mirrors ``dc_records.h`` field for field: each struct is a little-endian ``struct.Struct``
(no padding, so the C struct must have none either) plus its field names, one per format item;
:func:`field_offsets` derives each field's byte offset and size from the two. Kept apart from
the decoder (``datacrumbs.trace``) so that the one place that must change with the C header is
small and obvious. ``tests/engine/test_abi.py`` compiles the header with gcc and checks every
size, offset, enum value, constant and cookie macro against this module.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from enum import IntEnum

__all__ = [
    "AGG",
    "AGG_FIELDS",
    "AGG_KEY",
    "AGG_KEY_FIELDS",
    "CALL",
    "CALL_FIELDS",
    "CALL_SIZE",
    "COMM_LEN",
    "CONFIG",
    "CONFIG_FIELDS",
    "COOKIE_FID_MASK",
    "FNV_OFFSET",
    "FNV_PRIME",
    "FOLD",
    "FOLD_FIELDS",
    "FOLD_REASONS",
    "FUNC_FD_ARG_SHIFT",
    "FUNC_FILE_ARG_SHIFT",
    "FUNC_NO_RET",
    "FUNC_PATH_ARG_SHIFT",
    "FUNC_RET_FD",
    "FUNC_RET_FILE",
    "FUNC_RET_ITEMS",
    "HIST_BUCKETS",
    "LAYOUTS",
    "LOST_SLOTS",
    "MAX_ARGS",
    "MAX_SYSCALL_NR",
    "NAME",
    "NAME_FIELDS",
    "NAME_HEADER",
    "PATH_MAX",
    "SCOPE",
    "SCOPE_DEPTH",
    "SCOPE_FIELDS",
    "SCOPE_NAME",
    "SYS_ARG_BITS",
    "SYS_AT",
    "SYS_COMPAT_UNTRACED",
    "SYS_FD_ARG_SHIFT",
    "SYS_PATH1_SHIFT",
    "SYS_PATH2_SHIFT",
    "SYS_RET_FD",
    "TASK",
    "TASK_FIELDS",
    "UPROBE_PTR_SHIFT",
    "UPROBE_SIZE_BITS",
    "UPROBE_SIZE_SHIFT",
    "VALVE_BUDGET_SPENT",
    "Config",
    "FoldReason",
    "LostSlot",
    "RecordType",
    "Rule",
    "field_offsets",
    "fnv1a64",
    "pack_scope",
]

MAX_ARGS = 6  # DC_MAX_ARGS
PATH_MAX = 512  # DC_PATH_MAX
COMM_LEN = 16  # DC_COMM_LEN
#: Size of the kernel's syscall-number → cookie map (DC_MAX_SYSCALL_NR).
MAX_SYSCALL_NR = 512
FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3

# Cookie, 64 bits (see dc_records.h). All probes: bits 0-23 the function id.
COOKIE_FID_MASK = 0xFFFFFF  # DC_COOKIE_FID
#: Syscalls: three 3-bit fields, each an argument index + 1 (0 = none).
SYS_ARG_BITS = 3
SYS_FD_ARG_SHIFT = 32  # DC_SYS_FD_ARG
SYS_PATH1_SHIFT = 35  # DC_SYS_PATH1
SYS_PATH2_SHIFT = 38  # DC_SYS_PATH2
SYS_RET_FD = 1 << 41  # DC_SYS_RET_FD: the return value is a new fd
SYS_AT = 1 << 42  # DC_SYS_AT: each path is relative to the directory fd before it
SYS_FD2_ARG_SHIFT = 24  # DC_SYS_FD2_ARG: a two-file call's other fd, its slot named
SYS_RET_CWD = 1 << 27  # DC_SYS_RET_CWD: a success names the new working directory (chdir)
SYS_COMPAT_UNTRACED = 1 << 45  # DC_SYS_COMPAT_UNTRACED: a 32-bit syscall counted, not read
#: Uprobes: bit UPROBE_PTR_SHIFT + i set when argument i is a pointer to dereference
#: (DC_UPROBE_IS_PTR); bytes to read minus one in the UPROBE_SIZE_BITS bits at
#: UPROBE_SIZE_SHIFT + UPROBE_SIZE_BITS * i (DC_UPROBE_PTR_SIZE).
UPROBE_PTR_SHIFT = 24
UPROBE_SIZE_SHIFT = 32
UPROBE_SIZE_BITS = 3
#: Function probes: the return value is not an integer and is not sent (DC_FUNC_NO_RET).
FUNC_NO_RET = 1 << 63
#: Function probes of the C library: where the call's file is, index + 1 in 3 bits each (0:
#: none) — a FILE * argument (DC_FUNC_FILE_ARG), a path (DC_FUNC_PATH_ARG), an fd
#: (DC_FUNC_FD_ARG) — and whether the return value is a FILE * or an fd opened for it.
FUNC_FILE_ARG_SHIFT = 50
FUNC_PATH_ARG_SHIFT = 53
FUNC_FD_ARG_SHIFT = 56
FUNC_RET_FILE = 1 << 59  # DC_FUNC_RET_FILE
FUNC_RET_FD = 1 << 60  # DC_FUNC_RET_FD
FUNC_RET_ITEMS = 1 << 61  # DC_FUNC_RET_ITEMS: ret counts items of args[1] bytes


class RecordType(IntEnum):
    """enum dc_record_type (``DC_REC_<name>``)."""

    CALL = 1
    NAME = 2
    TASK = 3


class LostSlot(IntEnum):
    """Indexes of the per-CPU ``dc_lost`` counters (enum dc_lost_slot, ``DC_LOST_<name>``)."""

    CALLS = 0
    NAMES = 1
    TASKS = 2
    INFLIGHT = 3
    NESTED = 4
    COMPAT = 5
    PROFILE = 6


LOST_SLOTS = len(LostSlot)  # DC_LOST_SLOTS

#: struct dc_call (96 bytes).
CALL = struct.Struct(f"<IIIIQQqQ{MAX_ARGS}q")
CALL_FIELDS = ("type", "fid", "pid", "tid", "ts", "dur", "ret", "fhash", "args")
CALL_SIZE = CALL.size
#: struct dc_name up to its name (24 bytes); len + 1 bytes of name follow.
NAME_HEADER = struct.Struct("<IIQII")
#: struct dc_name whole, as the C compiler sizes it (records on the ring are shorter).
NAME = struct.Struct(f"{NAME_HEADER.format}{PATH_MAX}s")
NAME_FIELDS = ("type", "len", "hash", "pid", "tid", "name")
#: struct dc_task (48 bytes).
TASK = struct.Struct(f"<IIII{COMM_LEN}s{COMM_LEN}s")
TASK_FIELDS = ("type", "pad", "pid", "tid", "comm", "process_comm")
#: DC_PARENT_CMDLINE: room for a step daemon's command-line start, its NUL included.
PARENT_CMDLINE = 64
#: DC_MAX_RINGS: ring buffers at most (one per CPU up to this many).
MAX_RINGS = 64
#: struct dc_config (160 bytes).
CONFIG = struct.Struct(f"<IIIIQQQII{PARENT_CMDLINE}sIIQQQQII")
CONFIG_FIELDS = (
    "uid",
    "filter_uid",
    "filter_cgroup",
    "self_tgid",
    "pidns_dev",
    "pidns_ino",
    "wakeup_bytes",
    "filter_tasks",
    "parent_cmdline_len",
    "parent_cmdline",
    "rings",
    "profile",
    "interval_ns",
    "interval_shift",
    "fold_above",
    "rate_window_ns",
    "rate_limit",
    "valve",
)
#: struct dc_scope: the job's cgroup before it exists (DC_SCOPE_DEPTH names of
#: DC_SCOPE_NAME bytes below the cgroup ``parent``).
SCOPE_DEPTH = 4
SCOPE_NAME = 64
SCOPE = struct.Struct(f"<QQII{SCOPE_DEPTH * SCOPE_NAME}s")
SCOPE_FIELDS = ("parent", "found", "next", "depth", "names")

#: Profile mode: struct dc_agg_key (40 bytes) and struct dc_agg (336 bytes), with
#: DC_HIST_BUCKETS buckets of return values by their log2.
HIST_BUCKETS = 32
AGG_KEY = struct.Struct("<IIIIQQQ")
AGG_KEY_FIELDS = ("pid", "tid", "fid", "pad", "interval", "fhash", "fhash2")
AGG = struct.Struct(f"<QQQQqQqqqq{HIST_BUCKETS}Q")
AGG_FIELDS = (
    "count",
    "dur_sum",
    "dur_min",
    "dur_max",
    "ret_sum",
    "errors",
    "ret_min",
    "ret_max",
    "offset_min",
    "offset_max",
    "ret_log2",
)


class FoldReason(IntEnum):
    """Why trace mode's valve folded a call into an aggregate (enum dc_fold_reason,
    ``DC_FOLD_<name>``): the index of its count in struct dc_fold."""

    RING = 0
    RATE = 1
    BUDGET = 2
    RULE = 3


FOLD_REASONS = len(FoldReason)  # DC_FOLD_REASONS


class Rule(IntEnum):
    """A function's rule in ``dc_fold_rules`` (``DC_RULE_<name>``): events until the valve
    opens, always events, always aggregated."""

    VALVE = 0
    EVENTS = 1
    AGGREGATE = 2


#: dc_valve's flag: the trace's byte budget is spent (DC_VALVE_BUDGET_SPENT).
VALVE_BUDGET_SPENT = 1
#: struct dc_fold (48 bytes): folded calls by reason, then the CPU's rate window.
FOLD = struct.Struct(f"<{FOLD_REASONS}QQQ")
FOLD_FIELDS = ("calls", "window", "window_calls")

#: C struct name → (its format, its field names): what the ABI test compares with the header.
LAYOUTS: dict[str, tuple[struct.Struct, tuple[str, ...]]] = {
    "dc_call": (CALL, CALL_FIELDS),
    "dc_name": (NAME, NAME_FIELDS),
    "dc_task": (TASK, TASK_FIELDS),
    "dc_config": (CONFIG, CONFIG_FIELDS),
    "dc_scope": (SCOPE, SCOPE_FIELDS),
    "dc_agg_key": (AGG_KEY, AGG_KEY_FIELDS),
    "dc_agg": (AGG, AGG_FIELDS),
    "dc_fold": (FOLD, FOLD_FIELDS),
}

_FORMAT_ITEM = re.compile(r"(\d*)([xcbB?hHiIlLqQnNefdspP])")


def field_offsets(fmt: struct.Struct, names: tuple[str, ...]) -> dict[str, tuple[int, int]]:
    """Field name → (byte offset, byte size) in a standard-size (``<``) format, one name per
    format item (a repeat count such as ``6q`` or ``16s`` is one array field)."""
    if fmt.format[:1] != "<":
        raise ValueError(f"{fmt.format!r}: only little-endian standard-size formats")
    items = _FORMAT_ITEM.findall(fmt.format[1:])
    if "".join(c + k for c, k in items) != fmt.format[1:] or len(items) != len(names):
        raise ValueError(f"{fmt.format!r} does not have one item per name of {names}")
    out: dict[str, tuple[int, int]] = {}
    offset = 0
    for name, (count, code) in zip(names, items, strict=True):
        size = struct.calcsize(f"<{count}{code}")
        out[name] = (offset, size)
        offset += size
    return out


@dataclass(frozen=True)
class Config:
    """What the kernel filters on; written to ``.rodata`` before load."""

    uid: int | None
    filter_cgroup: bool
    self_tgid: int
    pidns_dev: int
    pidns_ino: int
    wakeup_bytes: int
    parent_cmdline: bytes = b""  # b"": no process-tree filter
    rings: int = 1
    interval_ns: int = 0  # the aggregates' interval (profile mode, the valve); 0: none
    interval_shift: int = 0  # added to CLOCK_MONOTONIC: intervals start on wall-clock multiples
    profile: bool = False  # profile mode: every call aggregated
    valve: bool = False  # trace mode's valve: calls may fold into aggregates
    fold_above: int = 0  # the valve: ring bytes not consumed above which calls fold (0: full)
    rate_limit: int = 0  # the valve: calls per function, CPU and window before folding (0: none)
    rate_window_ns: int = 0

    def pack(self) -> bytes:
        if len(self.parent_cmdline) >= PARENT_CMDLINE:
            raise ValueError(f"a parent command line of at most {PARENT_CMDLINE - 1} bytes")
        return CONFIG.pack(
            self.uid if self.uid is not None else 0,
            int(self.uid is not None),
            int(self.filter_cgroup),
            self.self_tgid,
            self.pidns_dev,
            self.pidns_ino,
            self.wakeup_bytes,
            int(bool(self.parent_cmdline)),
            len(self.parent_cmdline),
            self.parent_cmdline,
            self.rings,
            int(self.profile),
            self.interval_ns,
            self.interval_shift,
            self.fold_above,
            self.rate_window_ns,
            self.rate_limit,
            int(self.valve),
        )


def pack_scope(parent: int, names: tuple[str, ...]) -> bytes:
    """A dc_scope awaiting ``names`` below the cgroup of id ``parent``."""
    if not 1 <= len(names) <= SCOPE_DEPTH:
        raise ValueError(f"1 to {SCOPE_DEPTH} path components, not {len(names)}")
    raw = [name.encode() for name in names]
    if any(not 0 < len(r) < SCOPE_NAME for r in raw):
        raise ValueError(f"a cgroup name of 1 to {SCOPE_NAME - 1} bytes, not {names}")
    table = b"".join(r.ljust(SCOPE_NAME, b"\0") for r in raw).ljust(SCOPE_DEPTH * SCOPE_NAME, b"\0")
    return SCOPE.pack(parent, 0, 0, len(names), table)


def fnv1a64(data: bytes) -> int:
    """The kernel's file-name hash (FNV-1a, 64 bit; 0 maps to 1), for tests and user-made
    names such as the host name."""
    h = FNV_OFFSET
    for byte in data:
        h = ((h ^ byte) * FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return h or 1
