"""Uprobe targets: ``name`` or ``name:0xOFFSET``, and the cookie that describes captured args.

Symbols are resolved by :mod:`datacrumbs.ebpf.elf_symbols` (:class:`ElfSymbols`, re-exported
here), once per binary, and uprobes are attached by offset. libbpf could resolve
``func_name`` itself, but it re-reads the ELF for each name, which is slow for the thousands of
functions a probe file may list.

Uprobes need kernel 3.5+, uretprobes 3.10+, BPF cookies on them 5.15+.
"""

from __future__ import annotations

from collections.abc import Iterable

from datacrumbs.common.probes import FunctionArgument
from datacrumbs.ebpf.elf_symbols import ElfSymbols, SymbolError
from datacrumbs.ebpf.functions import ArgField
from datacrumbs.ebpf.records import (
    FUNC_FD_ARG_SHIFT,
    FUNC_FILE_ARG_SHIFT,
    FUNC_NO_RET,
    FUNC_PATH_ARG_SHIFT,
    FUNC_RET_FD,
    FUNC_RET_FILE,
    UPROBE_PTR_SHIFT,
    UPROBE_SIZE_BITS,
    UPROBE_SIZE_SHIFT,
)

__all__ = [
    "ElfSymbols",
    "SymbolError",
    "argument_fields",
    "file_bits",
    "function_cookie",
    "parse_target",
]

_UNSIGNED_PREFIXES = ("unsigned", "uint", "size_t", "u8", "u16", "u32", "u64", "bool", "_Bool")


def parse_target(function: str) -> tuple[str, int | None]:
    """``name`` or ``name:0xOFFSET`` (upstream's ``include_offsets`` form) → (name, offset)."""
    name, sep, offset = function.partition(":")
    if not sep:
        return function, None
    try:
        return name, int(offset, 0)
    except ValueError:
        raise SymbolError(f"{function}: {offset!r} is not an offset") from None


def _is_signed(c_type: str) -> bool:
    text = c_type.strip()
    return not (text.startswith(_UNSIGNED_PREFIXES) or "*" in text)


def argument_fields(arguments: Iterable[FunctionArgument]) -> tuple[ArgField, ...]:
    """The trace ``args`` entries for a function's captured arguments."""
    return tuple(
        ArgField(a.label, a.index, num_bytes=a.num_bytes, signed=_is_signed(a.c_type))
        for a in arguments
    )


#: Cookie bit of a function whose return value is not sent (``DC_FUNC_NO_RET``).
NO_RETURN_COOKIE = FUNC_NO_RET


def file_bits(where: tuple[str, int, str | None] | None) -> int:
    """The cookie bits that say where a C-library call's file is (``LIBC_FILES``)."""
    if where is None:
        return 0
    kind, index, returns = where
    shift = {"file": FUNC_FILE_ARG_SHIFT, "path": FUNC_PATH_ARG_SHIFT, "fd": FUNC_FD_ARG_SHIFT}
    bits = (index + 1) << shift[kind]
    if returns == "FILE":
        bits |= FUNC_RET_FILE
    elif returns == "fd":
        bits |= FUNC_RET_FD
    return bits


def function_cookie(fid: int, arguments: Iterable[FunctionArgument], files: int = 0) -> int:
    """Function id, plus which arguments to dereference and how many bytes to read, and
    ``files`` (:func:`file_bits`; bit layout in ``dc_records.h``)."""
    cookie = fid | files
    for a in arguments:
        if a.is_pointer:
            cookie |= 1 << (UPROBE_PTR_SHIFT + a.index)
            cookie |= (a.num_bytes - 1) << (UPROBE_SIZE_SHIFT + UPROBE_SIZE_BITS * a.index)
    return cookie
