"""Kernel functions and their C types, from BTF (``/sys/kernel/btf/vmlinux``, world-readable).

pyelftools cannot read raw BTF, and tracefs' function lists are root-only (and unreadable even
for root on some kernels), so this walks the BTF type section itself. The layout is the
kernel's (include/uapi/linux/btf.h): a header, then types (12 bytes each plus a kind-dependent
tail; type ids count from 1 in order), then the string section.

Two users: the configurator lists the kernel's function names; the engine asks, for a kprobe,
which of the function's return value and parameters are integers, and for io_uring, the names
of this kernel's request opcodes. A kernel pointer written
into a user's trace would give away the kernel's address layout (KASLR), so only integer
values (``int``, ``long``, ``size_t``, enums, through typedefs and qualifiers) are recorded.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from datacrumbs.common.errors import DatacrumbsError
from datacrumbs.common.input_file import read_input
from datacrumbs.common.probes import FunctionArgument
from datacrumbs.ebpf.build import VMLINUX_BTF

__all__ = [
    "VMLINUX_BTF",
    "FunctionSignature",
    "KernelBtf",
    "btf_function_names",
    "kernel_values",
    "vmlinux",
]

_MAGIC = 0xEB9F
_INT, _ENUM, _FUNC, _FUNC_PROTO, _ENUM64 = 1, 6, 12, 13, 19
#: Kinds that only name or qualify another type: typedef, volatile, const, restrict, type tag.
_ALIASES = frozenset({8, 9, 10, 11, 18})
_INTEGERS = frozenset({_INT, _ENUM, _ENUM64})
# Bytes after the 12-byte common header, per kind: (fixed, per vlen item).
_TAIL = {
    1: (4, 0),
    2: (0, 0),
    3: (12, 0),
    4: (0, 12),
    5: (0, 12),
    6: (0, 8),
    7: (0, 0),
    8: (0, 0),
    9: (0, 0),
    10: (0, 0),
    11: (0, 0),
    12: (0, 0),
    13: (0, 8),
    14: (4, 0),
    15: (0, 12),
    16: (0, 0),
    17: (4, 0),
    18: (0, 0),
    19: (0, 12),
}


@dataclass(frozen=True)
class FunctionSignature:
    """Which values of a kernel function are integers: its return (False also for ``void``)
    and each parameter, in order."""

    returns_integer: bool
    integer_parameters: tuple[bool, ...]


class KernelBtf:
    """One BTF blob, decoded far enough to name functions and classify their types."""

    def __init__(self, data: bytes, shown: str) -> None:
        if len(data) < 24:
            raise DatacrumbsError(f"kernel BTF {shown} is truncated")
        self._e = "<" if struct.unpack_from("<H", data)[0] == _MAGIC else ">"
        magic, _v, _f, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(
            f"{self._e}HBBIIIII", data
        )
        if magic != _MAGIC:
            raise DatacrumbsError(f"kernel BTF {shown} has a bad magic number")
        self._types_data = data[hdr_len + type_off : hdr_len + type_off + type_len]
        self._strings = data[hdr_len + str_off : hdr_len + str_off + str_len]
        # By type id (0 is void): its kind, the type it refers to (alias, pointer, function,
        # return type; a size for others) and where its tail starts in the type section.
        self._kinds, self._refs, self._tails = [0], [0], [0]
        self.functions: dict[str, int] = {}  # name -> id of its FUNC type
        self._enums: dict[str, int] = {}  # name -> id of its ENUM type
        offset = 0
        header = struct.Struct(f"{self._e}III")
        while offset + 12 <= len(self._types_data):
            name_off, info, ref = header.unpack_from(self._types_data, offset)
            kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
            if kind not in _TAIL:
                raise DatacrumbsError(f"kernel BTF {shown}: unknown type kind {kind}")
            if kind == _FUNC and name_off:
                self.functions[self._name(name_off)] = len(self._kinds)
            elif kind == _ENUM and name_off:
                self._enums[self._name(name_off)] = len(self._kinds)
            self._kinds.append(kind)
            self._refs.append(ref)
            self._tails.append(offset + 12)
            fixed, per_item = _TAIL[kind]
            offset += 12 + fixed + per_item * vlen

    @classmethod
    def read(cls, path: Path = VMLINUX_BTF) -> KernelBtf:
        return cls(read_input(path, "kernel BTF"), str(path))

    def _name(self, offset: int) -> str:
        end = self._strings.index(b"\0", offset)
        return self._strings[offset:end].decode("ascii", "replace")

    def _is_integer(self, type_id: int) -> bool:
        for _ in range(64):  # alias chains are short; a loop in a corrupt blob is not followed
            if type_id >= len(self._kinds):
                return False
            if self._kinds[type_id] not in _ALIASES:
                return self._kinds[type_id] in _INTEGERS
            type_id = self._refs[type_id]
        return False

    def enum_values(self, enum: str) -> dict[str, int]:
        """The constants of ``enum`` (e.g. ``io_uring_op``) in this kernel, by name; empty when
        BTF does not describe it."""
        type_id = self._enums.get(enum)
        if type_id is None:
            return {}
        tail = self._tails[type_id]
        vlen = struct.unpack_from(f"{self._e}I", self._types_data, tail - 8)[0] & 0xFFFF
        items = (struct.unpack_from(f"{self._e}Ii", self._types_data, tail + 8 * i)
                 for i in range(vlen))  # fmt: skip
        return {self._name(name_off): value for name_off, value in items}

    def signature(self, function: str) -> FunctionSignature | None:
        """The integer-ness of ``function``'s return and parameters; None when BTF does not
        describe it."""
        func_id = self.functions.get(function)
        if func_id is None:
            return None
        proto = self._refs[func_id]
        if proto >= len(self._kinds) or self._kinds[proto] != _FUNC_PROTO:
            return None
        tail = self._tails[proto]
        vlen = struct.unpack_from(f"{self._e}I", self._types_data, tail - 8)[0] & 0xFFFF
        params = tuple(
            self._is_integer(
                struct.unpack_from(f"{self._e}I", self._types_data, tail + 8 * i + 4)[0]
            )
            for i in range(vlen)
        )
        return FunctionSignature(self._is_integer(self._refs[proto]), params)


@cache
def vmlinux() -> KernelBtf:
    """The running kernel's BTF, decoded once per process."""
    return KernelBtf.read()


def btf_function_names(path: Path = VMLINUX_BTF) -> set[str]:
    """The names of every function described in the BTF at ``path``."""
    return set(KernelBtf.read(path).functions)


def kernel_values(
    signature: FunctionSignature | None, arguments: Iterable[FunctionArgument]
) -> tuple[list[FunctionArgument], bool]:
    """What a kprobe may record of a kernel function: the requested arguments whose BTF type is
    an integer (whatever the probe file declares them as), and whether its return is one.
    Without BTF for the function, nothing but the call itself."""
    if signature is None:
        return [], False
    params = signature.integer_parameters
    values = [a for a in arguments if a.index < len(params) and params[a.index]]
    return values, signature.returns_integer
