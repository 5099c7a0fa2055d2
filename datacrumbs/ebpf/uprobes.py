"""Uprobe targets: ELF symbols → file offsets, and the cookie that describes captured args.

Symbols are resolved here, once per binary, with pyelftools (``.dynsym`` and ``.symtab``,
defined ``STT_FUNC`` symbols; a symbol's address is turned into a file offset through the
``PT_LOAD`` segment that contains it), and uprobes are attached by offset. libbpf could resolve
``func_name`` itself, but it re-reads the ELF for each name, which is slow for the thousands of
functions a probe file may list.

Uprobes need kernel 3.5+, uretprobes 3.10+, BPF cookies on them 5.15+.
"""

from __future__ import annotations

import os
import stat
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property

from elftools.common.exceptions import ELFError
from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from datacrumbs.common.probes import FunctionArgument
from datacrumbs.ebpf.functions import ArgField

__all__ = [
    "ElfSymbols",
    "SymbolError",
    "argument_fields",
    "function_cookie",
    "parse_target",
]

_UNSIGNED_PREFIXES = ("unsigned", "uint", "size_t", "u8", "u16", "u32", "u64", "bool", "_Bool")


class SymbolError(LookupError):
    """A binary or a symbol cannot be used; the message is the reason."""


@dataclass(frozen=True)
class ElfSymbols:
    """The defined functions of one ELF file, as name → file offset."""

    path: str
    offsets: dict[str, int]

    @classmethod
    def read(cls, path: str, shown: str | None = None) -> ElfSymbols:
        """The functions of the ELF file at ``path``; ``shown`` names it in messages (the
        daemon reads a pinned binary through ``/proc/self/fd/N``)."""
        label = shown or path
        try:
            # Non-blocking and checked first: a FIFO at the path must not hang the daemon.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as f:
                info = os.fstat(f.fileno())
                if stat.S_ISDIR(info.st_mode):
                    raise SymbolError(f"binary {label} is a directory")
                if not stat.S_ISREG(info.st_mode):
                    raise SymbolError(f"binary {label} is not a regular file")
                elf = ELFFile(f)
                loads = [
                    (seg["p_vaddr"], seg["p_memsz"], seg["p_offset"])
                    for seg in elf.iter_segments()
                    if seg["p_type"] == "PT_LOAD"
                ]
                offsets: dict[str, int] = {}
                for section in elf.iter_sections():
                    if not isinstance(section, SymbolTableSection):
                        continue
                    for name, value in _functions(elf, section):
                        offset = _file_offset(value, loads)
                        if offset is not None:
                            # .dynsym comes first; keep the first definition of a name
                            offsets.setdefault(name.split("@", 1)[0], offset)
                if not offsets and not _has_code(elf):
                    raise SymbolError(f"{label} has no executable code")
        except FileNotFoundError as exc:
            raise SymbolError(f"binary {label} does not exist") from exc
        except PermissionError as exc:
            raise SymbolError(f"binary {label} is not readable") from exc
        except IsADirectoryError as exc:
            raise SymbolError(f"binary {label} is a directory") from exc
        except ELFError as exc:
            raise SymbolError(f"binary {label} is not an ELF file ({exc})") from exc
        return cls(label, offsets)

    def offset(self, name: str) -> int:
        try:
            return self.offsets[name]
        except KeyError:
            raise SymbolError(f"{self.path} defines no function {name}") from None

    @cached_property
    def starts(self) -> frozenset[int]:
        """The file offsets at which a function starts."""
        return frozenset(self.offsets.values())

    def check_offset(self, offset: int) -> None:
        """Refuse an offset that does not start a function of the file: a breakpoint anywhere
        else (inside an instruction, in data) would change the code every process of the file
        runs — and it is refused here, before the kernel refuses the whole uprobe_multi link it
        would be part of."""
        if offset not in self.starts:
            raise SymbolError(f"offset {offset:#x} is not the start of a function of {self.path}")


# Elf64_Sym: st_name, st_info, st_other, st_shndx, st_value, st_size (little-endian).
_ELF64_SYM = struct.Struct("<IBBHQQ")
_STT_FUNC = 2
_SHN_UNDEF = 0


def _functions(elf: ELFFile, section: SymbolTableSection) -> Iterator[tuple[str, int]]:
    """(name, address) of the defined functions of one symbol table.

    For 64-bit little-endian files (every x86-64 and aarch64 binary) the table is decoded in
    one pass over its raw bytes: pyelftools' per-symbol objects cost ~80 µs each, which made
    checking a probe file's thousands of offsets take most of a second. Other files go through
    pyelftools' own iterator."""
    if elf.elfclass != 64 or not elf.little_endian or section["sh_entsize"] != _ELF64_SYM.size:
        for sym in section.iter_symbols():
            if (
                sym["st_info"]["type"] == "STT_FUNC"
                and sym["st_shndx"] != "SHN_UNDEF"
                and sym["st_value"]
                and sym.name
            ):
                yield sym.name, sym["st_value"]
        return
    strings = elf.get_section(section["sh_link"]).data()
    for name_at, info, _, shndx, value, _ in _ELF64_SYM.iter_unpack(section.data()):
        if info & 0xF != _STT_FUNC or shndx == _SHN_UNDEF or not value or not name_at:
            continue
        end = strings.find(b"\0", name_at)
        yield strings[name_at:end].decode("utf-8", "replace"), value


def _file_offset(vaddr: int, loads: Iterable[tuple[int, int, int]]) -> int | None:
    for start, size, offset in loads:
        if start <= vaddr < start + size:
            return vaddr - start + offset
    return None


def _has_code(elf: ELFFile) -> bool:
    return any(s["sh_flags"] & SH_FLAGS.SHF_EXECINSTR for s in elf.iter_sections())


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
NO_RETURN_COOKIE = 1 << 63


def function_cookie(fid: int, arguments: Iterable[FunctionArgument]) -> int:
    """Function id, plus which arguments to dereference and how many bytes to read
    (bit layout in ``dc_records.h``)."""
    cookie = fid
    for a in arguments:
        if a.is_pointer:
            cookie |= 1 << (24 + a.index)
            cookie |= (a.num_bytes - 1) << (32 + 3 * a.index)
    return cookie
