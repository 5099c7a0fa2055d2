"""Kernel functions and their C types, from BTF (``/sys/kernel/btf/vmlinux``, world-readable).

pyelftools cannot read raw BTF, and tracefs' function lists are root-only (and unreadable even
for root on some kernels), so this walks the BTF type section itself. The layout is the
kernel's (include/uapi/linux/btf.h): a header, then types (12 bytes each plus a kind-dependent
tail; type ids count from 1 in order), then the string section.

Two users: the configurator lists the kernel's function names; the engine asks, for a kprobe,
which of the function's return value and parameters may be recorded, and for io_uring, the
names of this kernel's request opcodes. A kernel address written into a user's trace would
give away the kernel's address layout (KASLR), and an integer type says nothing of what it
holds: ``kallsyms_lookup_name`` returns an address as ``unsigned long``,
``slow_virt_to_phys`` a physical one as ``phys_addr_t``, ``bpf_get_current_task`` a
``struct task_struct *`` as ``u64``. So a value is recorded only where its type cannot hold an
address (issue 25, N9): an integer of 32 bits or fewer (``int``, ``bool``, ``u32``, ...), an
enum, or a 64-bit integer the function declares through one of :data:`COUNT_TYPEDEFS`, names
the kernel keeps for counts and offsets. Qualifiers are looked through, typedefs too, but only
the first typedef of the declaration decides (``phys_addr_t`` is a ``u64``, and ``u64`` is
not a count). Each recorded value carries its width: the registers are 64 bits and the ABI
leaves the bits above a narrower value undefined (a ``bool`` set with ``sete %al`` keeps
whatever ``%rax`` held, maybe a pointer), so the trace writes an argument narrowed to its
type. (:attr:`FunctionSignature.returns` has the return's width too, but the trace does not yet
narrow the return: ``FunctionSpec`` has no field for it.)

This node's BTF is the authority: the signer cannot check types (its host may run another
kernel), it only refuses what no kernel makes safe, a pointer to read (:func:`pointer_refusal`).
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
    "COUNT_TYPEDEFS",
    "VMLINUX_BTF",
    "FunctionSignature",
    "Integer",
    "KernelBtf",
    "btf_function_names",
    "kernel_values",
    "pointer_refusal",
    "vmlinux",
]

#: The 64-bit integer typedefs whose values are recorded: by the kernel's convention each holds
#: a count of bytes or blocks, or a position in a file or on a device, never an address.
#: ``ssize_t`` (a byte count or -errno: what vfs_read and its kin return), ``size_t`` (a size
#: or count of bytes), ``loff_t`` and ``off_t`` (a position in a file), ``sector_t`` (a
#: 512-byte sector of a block device) and ``blkcnt_t`` (a count of blocks). Left out on
#: purpose: ``long``, ``unsigned long``, ``u64``/``__u64``/``s64`` (the kernel's usual types for
#: addresses and for anything at all), ``uintptr_t``, ``phys_addr_t``, ``dma_addr_t``,
#: ``resource_size_t`` (a physical address as often as a size) and ``pgoff_t`` (a page frame
#: number in a PFN mapping's vm_pgoff, so a physical address).
COUNT_TYPEDEFS = frozenset({"ssize_t", "size_t", "loff_t", "off_t", "sector_t", "blkcnt_t"})

_MAGIC = 0xEB9F
_INT, _TYPEDEF, _ENUM, _FUNC, _FUNC_PROTO, _ENUM64 = 1, 8, 6, 12, 13, 19
#: Kinds that only name or qualify another type: typedef, volatile, const, restrict, type tag.
_ALIASES = frozenset({_TYPEDEF, 9, 10, 11, 18})
_INT_SIGNED = 1  # BTF_INT_SIGNED, in the encoding bits of an INT's tail
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
class Integer:
    """A value that may be recorded, and its C type's width and signedness: the trace narrows
    the 64-bit register to these (the bits above a narrower value are undefined)."""

    num_bytes: int
    signed: bool


@dataclass(frozen=True)
class FunctionSignature:
    """What of a kernel function may be recorded: its return and each parameter, in order;
    None where the type may hold an address (a pointer, ``unsigned long``, ``u64``, ...), is
    ``void`` or is no integer at all."""

    returns: Integer | None
    parameters: tuple[Integer | None, ...]


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

    def _u32(self, offset: int) -> int:
        value: int = struct.unpack_from(f"{self._e}I", self._types_data, offset)[0]
        return value

    def _recordable(self, type_id: int) -> Integer | None:
        """The integer ``type_id`` is, if it cannot hold an address (see the module's
        docstring): through qualifiers and typedefs, of which the first decides a 64-bit one."""
        typedef = None
        for _ in range(64):  # alias chains are short; a loop in a corrupt blob is not followed
            if type_id >= len(self._kinds):
                return None
            kind, tail = self._kinds[type_id], self._tails[type_id]
            if kind not in _ALIASES:
                break
            if kind == _TYPEDEF and typedef is None:
                typedef = self._name(self._u32(tail - 12))
            type_id = self._refs[type_id]
        else:
            return None
        size = self._refs[type_id]  # an INT's or enum's size in bytes
        if kind in (_ENUM, _ENUM64):  # named constants; kflag (bit 31 of info): signed
            return Integer(size, bool(self._u32(tail - 8) >> 31))
        if kind != _INT or size > 8 or (size == 8 and typedef not in COUNT_TYPEDEFS):
            return None
        return Integer(size, bool((self._u32(tail) >> 24) & _INT_SIGNED))

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
        """What of ``function``'s return and parameters may be recorded; None when BTF does
        not describe it."""
        func_id = self.functions.get(function)
        if func_id is None:
            return None
        proto = self._refs[func_id]
        if proto >= len(self._kinds) or self._kinds[proto] != _FUNC_PROTO:
            return None
        tail = self._tails[proto]
        vlen = self._u32(tail - 8) & 0xFFFF
        params = tuple(self._recordable(self._u32(tail + 8 * i + 4)) for i in range(vlen))
        return FunctionSignature(self._recordable(self._refs[proto]), params)


@cache
def vmlinux() -> KernelBtf:
    """The running kernel's BTF, decoded once per process."""
    return KernelBtf.read()


def btf_function_names(path: Path = VMLINUX_BTF) -> set[str]:
    """The names of every function described in the BTF at ``path``."""
    return set(KernelBtf.read(path).functions)


def kernel_values(
    signature: FunctionSignature | None, arguments: Iterable[FunctionArgument]
) -> tuple[list[FunctionArgument], Integer | None]:
    """What a kprobe may record of a kernel function: the requested arguments whose BTF type
    may be recorded, each with that type's width and signedness (whatever the probe file
    declares), and its return, if it may be. Without BTF for the function, nothing but the
    call itself."""
    if signature is None:
        return [], None
    params = signature.parameters
    values = [
        a.model_copy(update={"num_bytes": p.num_bytes, "c_type": _c_type(p), "is_pointer": False})
        for a in arguments
        if a.index < len(params) and (p := params[a.index]) is not None
    ]
    return values, signature.returns


def _c_type(value: Integer) -> str:
    """The kernel's name of ``value``'s width and signedness (``s32``, ``u8``): what
    uprobes.argument_fields reads the signedness from."""
    return f"{'s' if value.signed else 'u'}{8 * value.num_bytes}"


def pointer_refusal(arguments: Iterable[FunctionArgument]) -> str | None:
    """Why a kprobe may not capture ``arguments``, in one line; None when it may.
    ``is_pointer`` asks to read where an argument points: a kernel function's pointer is a
    kernel address and what it points to kernel memory, neither for a user's trace (a
    uprobe's points into the traced process, which the user could read). The signer refuses
    such a document, the daemon such a target: neither takes the other's word."""
    for a in arguments:
        if a.is_pointer:
            return (
                f"argument {a.index} ({a.label!r}) is_pointer: a kernel function's pointer "
                "points to kernel memory, which is never read"
            )
    return None
