"""What a binary offers to trace, read one way for the configurator, the signer and the daemon:
its defined functions (name → file offset) and its USDT probes.

Functions are the defined ``STT_FUNC`` symbols of ``.dynsym`` and ``.symtab`` (a stripped
library still has ``.dynsym``), under the name a probe file uses and the daemon attaches: the
bare name, without ``@VERSION``. A name with several versions (glibc's ``pthread_cond_wait``
has ``@GLIBC_2.2.5`` and ``@@GLIBC_2.3.2``) is the default version, the one a program links
against today, as libbpf resolves it; a hidden version counts only when there is no default.
A symbol's address is turned into a file offset through the ``PT_LOAD`` segment that contains
it; uprobes are attached by offset. ``STT_GNU_IFUNC`` symbols are left out on purpose: a
uprobe on one would fire in the resolver, once, not in the function the program ends up
calling.

USDT probes are the ``stapsdt`` notes of ``.note.stapsdt`` (pyelftools does not decode them).

The file is opened non-blocking and checked to be a regular file before anything is read (a
FIFO at the path must not hang the daemon, a signer thread or the configurator), with the
caller's own rights. Every way a file can be missing, unreadable or malformed is one
:class:`SymbolError` line.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

from elftools.common.exceptions import ELFError
from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import Section, SymbolTableSection

__all__ = ["ElfSymbols", "SymbolError", "UsdtNote", "usdt_notes", "usdt_probes"]


class SymbolError(LookupError):
    """A binary or a symbol cannot be used; the message is the reason."""


# What pyelftools raises on a malformed file besides ELFError: offsets and sizes out of range
# (ValueError, OverflowError, OSError EINVAL on a seek), a zero entry size, short reads.
_MALFORMED = (ELFError, ValueError, ArithmeticError, struct.error, IndexError, KeyError)


@contextmanager
def _open_elf(path: str, label: str) -> Iterator[tuple[ELFFile, int]]:
    """(the parsed ELF header, the file's size) of the regular file at ``path``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise SymbolError(f"binary {label} does not exist") from None
    except PermissionError:
        raise SymbolError(f"binary {label} is not readable") from None
    except IsADirectoryError:
        raise SymbolError(f"binary {label} is a directory") from None
    except OSError as exc:
        raise SymbolError(f"binary {label} cannot be read: {exc.strerror}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise SymbolError(f"binary {label} is {kind}")
    with os.fdopen(fd, "rb") as f:
        try:
            try:
                elf = ELFFile(f)
            except _MALFORMED as exc:
                raise SymbolError(f"binary {label} is not an ELF file ({exc})") from None
            yield elf, info.st_size
        except _MALFORMED as exc:
            raise SymbolError(f"binary {label} is a malformed ELF file ({exc})") from None
        except OSError as exc:
            if exc.errno == errno.EINVAL:  # a seek to a negative offset the file names
                raise SymbolError(f"binary {label} is a malformed ELF file ({exc})") from None
            raise SymbolError(f"binary {label} cannot be read: {exc.strerror}") from None


def _section_data(section: Section, file_size: int) -> bytes:
    """The bytes of ``section``, refused when the file cannot hold them: a crafted size must
    not make the reader allocate gigabytes."""
    if section["sh_type"] == "SHT_NOBITS":
        return b""
    if section.compressed:
        raise ELFError(f"section {section.name or '?'} is compressed")
    if section["sh_offset"] + section["sh_size"] > file_size:
        raise ELFError(f"section {section.name or '?'} extends past the end of the file")
    return section.data()


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
        with _open_elf(path, label) as (elf, size):
            loads = [
                (seg["p_vaddr"], seg["p_memsz"], seg["p_offset"])
                for seg in elf.iter_segments()
                if seg["p_type"] == "PT_LOAD"
            ]
            sections = list(elf.iter_sections())
            offsets: dict[str, int] = {}
            hidden: dict[str, int] = {}
            for index, section in enumerate(sections):
                if not isinstance(section, SymbolTableSection):
                    continue
                versions = _versions(elf, sections, index, size)
                for name, value, is_hidden in _functions(elf, section, versions, size):
                    offset = _file_offset(value, loads)
                    if offset is not None:
                        # .dynsym comes first; keep the first definition of a name
                        (hidden if is_hidden else offsets).setdefault(name, offset)
            for name, offset in hidden.items():  # a name that only has hidden versions
                offsets.setdefault(name, offset)
            if not offsets and not _has_code(sections):
                raise SymbolError(f"{label} has no executable code")
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
_VERSYM_HIDDEN = 0x8000


def _versions(elf: ELFFile, sections: list[Section], table: int, size: int) -> tuple[int, ...]:
    """The ``.gnu.version`` entries of the symbol table at index ``table`` (one per symbol; empty
    when it has none: ``.symtab``, or a file without symbol versions)."""
    for section in sections:
        if section["sh_type"] == "SHT_GNU_versym" and section["sh_link"] == table:
            data = _section_data(section, size)
            endian = "<" if elf.little_endian else ">"
            return struct.unpack(f"{endian}{len(data) // 2}H", data[: len(data) // 2 * 2])
    return ()


def _bare(name: str, version_entry: int | None) -> tuple[str, bool]:
    """(name without ``@VERSION``, whether it is a hidden, non-default version). ``.dynsym``
    names carry no version (it is in ``.gnu.version``); ``.symtab`` ones may: ``name@@V`` is the
    default version, ``name@V`` a hidden one."""
    bare, at, version = name.partition("@")
    if version_entry is not None:
        return bare, bool(version_entry & _VERSYM_HIDDEN)
    return bare, bool(at) and not version.startswith("@")


def _functions(
    elf: ELFFile, section: SymbolTableSection, versions: tuple[int, ...], size: int
) -> Iterator[tuple[str, int, bool]]:
    """(bare name, address, hidden version) of the defined functions of one symbol table.

    For 64-bit little-endian files (every x86-64 and aarch64 binary) the table is decoded in
    one pass over its raw bytes: pyelftools' per-symbol objects cost ~80 µs each, which made
    checking a probe file's thousands of offsets take most of a second. Other files go through
    pyelftools' own iterator."""

    def entry(index: int) -> int | None:
        return versions[index] if index < len(versions) else None

    if elf.elfclass != 64 or not elf.little_endian or section["sh_entsize"] != _ELF64_SYM.size:
        _section_data(section, size)  # bounds only: pyelftools reads it symbol by symbol
        for index, sym in enumerate(section.iter_symbols()):
            if (
                sym["st_info"]["type"] == "STT_FUNC"
                and sym["st_shndx"] != "SHN_UNDEF"
                and sym["st_value"]
                and sym.name
            ):
                name, is_hidden = _bare(sym.name, entry(index))
                if name:
                    yield name, sym["st_value"], is_hidden
        return
    strings = _section_data(elf.get_section(section["sh_link"]), size)
    data = _section_data(section, size)
    usable = len(data) - len(data) % _ELF64_SYM.size
    for index, (name_at, info, _, shndx, value, _) in enumerate(
        _ELF64_SYM.iter_unpack(data[:usable])
    ):
        if info & 0xF != _STT_FUNC or shndx == _SHN_UNDEF or not value or not name_at:
            continue
        end = strings.find(b"\0", name_at)
        raw = strings[name_at:end] if end >= 0 else strings[name_at:]
        name, is_hidden = _bare(raw.decode("utf-8", "replace"), entry(index))
        if name:
            yield name, value, is_hidden


def _file_offset(vaddr: int, loads: Iterable[tuple[int, int, int]]) -> int | None:
    for start, size, offset in loads:
        if start <= vaddr < start + size:
            return vaddr - start + offset
    return None


def _has_code(sections: Iterable[Section]) -> bool:
    return any(s["sh_flags"] & SH_FLAGS.SHF_EXECINSTR for s in sections)


_NT_STAPSDT = 3


class UsdtNote(NamedTuple):
    """One ``stapsdt`` note: a place of probe ``provider:name`` and its argument specs."""

    provider: str
    name: str
    arguments: str  # e.g. "-4@%eax 8@-16(%rbp) -4@$7"


def usdt_notes(path: str, shown: str | None = None) -> list[UsdtNote]:
    """The USDT notes of the ELF file at ``path``, in file order (same opening and errors as
    :meth:`ElfSymbols.read`)."""
    label = shown or path
    with _open_elf(path, label) as (elf, size):
        section = elf.get_section_by_name(".note.stapsdt")
        data = _section_data(section, size) if section is not None else b""
        endian = "<" if elf.little_endian else ">"
        address_size = 8 if elf.elfclass == 64 else 4
    notes: list[UsdtNote] = []
    offset = 0
    while offset + 12 <= len(data):
        namesz, descsz, note_type = struct.unpack_from(f"{endian}3I", data, offset)
        offset += 12
        owner = data[offset : offset + namesz].rstrip(b"\0")
        offset += (namesz + 3) & ~3
        desc = data[offset : offset + descsz]
        offset += (descsz + 3) & ~3
        if owner != b"stapsdt" or note_type != _NT_STAPSDT:
            continue
        strings = [s.decode("utf-8", "replace") for s in desc[3 * address_size :].split(b"\0")]
        if len(strings) >= 2 and strings[0] and strings[1]:
            notes.append(UsdtNote(strings[0], strings[1], strings[2] if len(strings) > 2 else ""))
    return notes


def usdt_probes(path: str, shown: str | None = None) -> dict[str, set[str]]:
    """USDT probe names of the ELF file at ``path`` by provider (same opening and errors as
    :meth:`ElfSymbols.read`)."""
    probes: dict[str, set[str]] = {}
    for note in usdt_notes(path, shown):
        probes.setdefault(note.provider, set()).add(note.name)
    return probes
