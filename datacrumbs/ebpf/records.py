"""The kernel/user ABI in Python: ring-buffer record layouts, loss slots and the config block.

Mirrors ``dc_records.h`` field for field. Kept apart from the decoder (``datacrumbs.trace``)
so that the one place that must change with the C header is small and obvious; the engine's
tests compare these sizes with the compiled object's BTF.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

__all__ = [
    "CALL",
    "CALL_SIZE",
    "CONFIG",
    "MAX_ARGS",
    "NAME_HEADER",
    "PATH_MAX",
    "TASK",
    "Config",
    "LostSlot",
    "RecordType",
    "fnv1a64",
]

MAX_ARGS = 6
PATH_MAX = 256
FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3


class RecordType(IntEnum):
    CALL = 1
    NAME = 2
    TASK = 3


class LostSlot(IntEnum):
    """Indexes of the per-CPU ``dc_lost`` counters."""

    CALLS = 0
    NAMES = 1
    TASKS = 2
    INFLIGHT = 3


LOST_SLOTS = len(LostSlot)

#: struct dc_call: type, fid, pid, tid, ts, dur, ret, fhash, args[6] (96 bytes).
CALL = struct.Struct("<IIIIQQqQ6q")
CALL_SIZE = CALL.size
#: struct dc_name up to its name: type, len, hash, pid, tid (24 bytes); name follows.
NAME_HEADER = struct.Struct("<IIQII")
#: struct dc_task: type, pad, pid, tid, comm[16], process_comm[16] (48 bytes).
TASK = struct.Struct("<IIII16s16s")
#: struct dc_config: uid, filter_uid, filter_cgroup, self_tgid, pidns_dev, pidns_ino,
#: wakeup_bytes.
CONFIG = struct.Struct("<IIIIQQQ")


@dataclass(frozen=True)
class Config:
    """What the kernel filters on; written to ``.rodata`` before load."""

    uid: int | None
    filter_cgroup: bool
    self_tgid: int
    pidns_dev: int
    pidns_ino: int
    wakeup_bytes: int

    def pack(self) -> bytes:
        return CONFIG.pack(
            self.uid if self.uid is not None else 0,
            int(self.uid is not None),
            int(self.filter_cgroup),
            self.self_tgid,
            self.pidns_dev,
            self.pidns_ino,
            self.wakeup_bytes,
        )


def fnv1a64(data: bytes) -> int:
    """The kernel's file-name hash (FNV-1a, 64 bit; 0 maps to 1), for tests and user-made
    names such as the host name."""
    h = FNV_OFFSET
    for byte in data:
        h = ((h ^ byte) * FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return h or 1
