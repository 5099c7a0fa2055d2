"""One ELF reader: what the configurator discovers is what the signer checks and the engine
attaches — bare names (no ``@VERSION``), default symbol versions, no IFUNC — and a binary none
of them can use is one line."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from datacrumbs.common.errors import DatacrumbsError
from datacrumbs.common.probes import Probe, ProbeType
from datacrumbs.common.settings import load_settings
from datacrumbs.configurator.config import LIBC_PLACEHOLDER, CaptureProbe
from datacrumbs.configurator.discovery import discover
from datacrumbs.ebpf.elf_symbols import ElfSymbols, SymbolError

C_DIR = Path(__file__).parent / "c"


@pytest.fixture(scope="module")
def versioned_lib(compile_c) -> Path:  # type: ignore[no-untyped-def]
    """libdcver.so: dc_ver@DC_1 (hidden, first in .dynsym) and dc_ver@@DC_2 (default)."""
    return compile_c(
        "dcver.c", "libdcver.so", "-shared", "-fPIC", f"-Wl,--version-script={C_DIR}/dcver.map"
    )


def _discover(binary: str, **selection: object) -> list[str]:
    probe = CaptureProbe(name="lib", probe="uprobe", binary_path=binary, **selection)
    (found,) = discover([probe], load_settings())
    return found.functions


def test_a_versioned_function_is_discovered_under_the_name_the_engine_attaches(
    versioned_lib: Path,
) -> None:
    symbols = ElfSymbols.read(str(versioned_lib))
    discovered = _discover(str(versioned_lib), regex="dc_.*")
    assert set(discovered) == {name for name in symbols.offsets if name.startswith("dc_")}
    assert "dc_ver" in discovered and "dc_plain" in discovered
    assert not [name for name in discovered if "@" in name]  # .symtab has dc_ver@@DC_2
    assert "dc_ifunc" not in discovered
    # the default version, the one programs call — not the hidden one listed first
    assert symbols.offset("dc_ver") == symbols.offset("dc_ver_new")
    assert symbols.offset("dc_ver") != symbols.offset("dc_ver_old")
    with pytest.raises(DatacrumbsError) as caught:
        _discover(str(versioned_lib), functions=["dc_ver@@DC_2"])
    assert str(caught.value) == (
        f"probe 'lib': dc_ver@@DC_2 not found in the functions of {versioned_lib}"
    )


def test_discovery_and_the_engine_agree_on_the_functions_of_libc() -> None:
    libc = load_settings().libc_so
    discovered = _discover(LIBC_PLACEHOLDER, regex=".*")
    assert set(discovered) == set(ElfSymbols.read(str(libc)).offsets)
    assert "fopen" in discovered and not [name for name in discovered if "@" in name]


def _past_the_end(source: Path, target: Path) -> None:
    """A copy of ``source`` whose .dynsym claims 2**36 symbols (1.5 TiB)."""
    shutil.copyfile(source, target)
    with open(source, "rb") as f:
        elf = ELFFile(f)
        index = next(i for i, s in enumerate(elf.iter_sections()) if s.name == ".dynsym")
        at = elf["e_shoff"] + index * elf["e_shentsize"] + 32  # Elf64_Shdr.sh_size
    with open(target, "r+b") as f:
        f.seek(at)
        f.write(struct.pack("<Q", 24 << 36))  # a whole number of Elf64_Sym


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (
            lambda _, p: p.write_text("#!/bin/sh\n"),
            "is not an ELF file (Magic number does not match)",
        ),
        (
            _past_the_end,
            "is a malformed ELF file (section .dynsym extends past the end of the file)",
        ),
    ],
)
def test_an_unusable_binary_is_the_same_one_line_everywhere(
    versioned_lib: Path, tmp_path: Path, make, reason: str
) -> None:  # type: ignore[no-untyped-def]
    binary = tmp_path / "lib.so"
    make(versioned_lib, binary)
    with pytest.raises(SymbolError) as engine:
        ElfSymbols.read(str(binary))
    assert str(engine.value) == f"binary {binary} {reason}"
    with pytest.raises(DatacrumbsError) as configurator:
        _discover(str(binary), regex="dc_.*")
    assert str(configurator.value) == f"probe 'lib': binary {binary} {reason}"


def test_a_versioned_function_is_traced_at_its_default_version(
    session, compile_c, public_dir, traced_user, versioned_lib
):
    main = compile_c(
        "dcver_main.c", "dcver_main", f"-L{public_dir}", "-ldcver", f"-Wl,-rpath,{public_dir}"
    )
    functions = _discover(str(versioned_lib), functions=["dc_ver", "dc_plain"])
    probes = [
        Probe(
            type=ProbeType.UPROBE, name="VER", binary_path=str(versioned_lib), functions=functions
        )
    ]
    with session(probes, uid=traced_user.uid) as s:
        out = s.run(traced_user, [str(main)]).stdout
    assert {o.function: o.reason for o in s.trace.outcomes} == {"dc_ver": None, "dc_plain": None}
    pid = int(out.split()[0])
    assert [e["args"]["ret"] for e in s.trace.events_of(pid, "dc_ver")] == [1, 2, 3, 4, 5]
    assert [e["args"]["ret"] for e in s.trace.events_of(pid, "dc_plain")] == [42]
