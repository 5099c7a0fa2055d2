"""Kernel function names from BTF (``/sys/kernel/btf/vmlinux``, world-readable).

pyelftools cannot read raw BTF, and tracefs' function lists are root-only (and unreadable even
for root on some kernels), so this walks the BTF type section just far enough to collect the
names of ``BTF_KIND_FUNC`` entries. The layout is the kernel's (include/uapi/linux/btf.h):
a header, then types (12 bytes each plus a kind-dependent tail), then the string section.
"""

from __future__ import annotations

import struct
from pathlib import Path

from datacrumbs.common.errors import DatacrumbsError
from datacrumbs.common.input_file import read_input

__all__ = ["VMLINUX_BTF", "btf_function_names"]

VMLINUX_BTF = Path("/sys/kernel/btf/vmlinux")
_MAGIC = 0xEB9F
_KIND_FUNC = 12
# Bytes after the 12-byte common header, per kind: (fixed, per vlen item).
_TAIL = {
    1: (4, 0), 2: (0, 0), 3: (12, 0), 4: (0, 12), 5: (0, 12), 6: (0, 8), 7: (0, 0),
    8: (0, 0), 9: (0, 0), 10: (0, 0), 11: (0, 0), 12: (0, 0), 13: (0, 8), 14: (4, 0),
    15: (0, 12), 16: (0, 0), 17: (4, 0), 18: (0, 0), 19: (0, 12),
}


def btf_function_names(path: Path = VMLINUX_BTF) -> set[str]:
    """The names of every function described in the BTF at ``path``."""
    data = read_input(path, "kernel BTF")
    if len(data) < 24:
        raise DatacrumbsError(f"kernel BTF {path} is truncated")
    endian = "<" if struct.unpack_from("<H", data)[0] == _MAGIC else ">"
    magic, _version, _flags, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(
        f"{endian}HBBIIIII", data)
    if magic != _MAGIC:
        raise DatacrumbsError(f"kernel BTF {path} has a bad magic number")
    types = data[hdr_len + type_off:hdr_len + type_off + type_len]
    strings = data[hdr_len + str_off:hdr_len + str_off + str_len]
    names: set[str] = set()
    offset = 0
    while offset + 12 <= len(types):
        name_off, info, _ = struct.unpack_from(f"{endian}III", types, offset)
        kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
        if kind not in _TAIL:
            raise DatacrumbsError(f"kernel BTF {path}: unknown type kind {kind}")
        fixed, per_item = _TAIL[kind]
        offset += 12 + fixed + per_item * vlen
        if kind == _KIND_FUNC and name_off:
            end = strings.index(b"\0", name_off)
            names.add(strings[name_off:end].decode("ascii", "replace"))
    return names
