"""What a binary offers to trace: its defined functions, and its USDT probes.

Functions are the defined ``STT_FUNC`` symbols of ``.dynsym`` and ``.symtab`` (a stripped
library still has ``.dynsym``). ``STT_GNU_IFUNC`` symbols are left out on purpose: a uprobe on
one would fire in the resolver, once, not in the function the program ends up calling.
USDT probes are the ``stapsdt`` notes of ``.note.stapsdt`` (pyelftools does not decode them,
so they are parsed here).
"""

from __future__ import annotations

import struct
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from datacrumbs.common.errors import DatacrumbsError
from datacrumbs.common.input_file import open_input

__all__ = ["defined_functions", "usdt_probes"]

_NT_STAPSDT = 3


def _open_elf(path: Path) -> tuple[ELFFile, object]:
    stream = open_input(path, "binary")  # closed by the caller through the pair
    try:
        return ELFFile(stream), stream
    except ELFError:
        stream.close()
        raise DatacrumbsError(f"binary {path} is not an ELF file") from None


def defined_functions(path: Path) -> set[str]:
    """Names of the functions ``path`` defines (``STT_FUNC``, not undefined)."""
    elf, stream = _open_elf(path)
    names: set[str] = set()
    try:
        for section in elf.iter_sections():
            if not isinstance(section, SymbolTableSection):
                continue
            for symbol in section.iter_symbols():
                if (
                    symbol["st_info"]["type"] == "STT_FUNC"
                    and symbol["st_shndx"] != "SHN_UNDEF"
                    and symbol.name
                ):
                    names.add(symbol.name)
    except ELFError as exc:
        raise DatacrumbsError(f"binary {path}: unreadable symbol table ({exc})") from None
    finally:
        stream.close()  # type: ignore[attr-defined]
    return names


def usdt_probes(path: Path) -> dict[str, set[str]]:
    """USDT probe names of ``path`` by provider."""
    elf, stream = _open_elf(path)
    try:
        section = elf.get_section_by_name(".note.stapsdt")
        data = section.data() if section is not None else b""
        endian = "<" if elf.little_endian else ">"
        address_size = 8 if elf.elfclass == 64 else 4
    finally:
        stream.close()  # type: ignore[attr-defined]
    probes: dict[str, set[str]] = {}
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
        strings = desc[3 * address_size :].split(b"\0")
        if len(strings) >= 2 and strings[0] and strings[1]:
            provider = strings[0].decode("utf-8", "replace")
            probes.setdefault(provider, set()).add(strings[1].decode("utf-8", "replace"))
    return probes
