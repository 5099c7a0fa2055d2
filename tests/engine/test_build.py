"""The BPF object build: cached by content, and its ABI matches the Python mirror."""

from __future__ import annotations

import re
import subprocess

from datacrumbs.ebpf import object_names, records
from datacrumbs.ebpf.build import build_bpf_object


def test_second_build_is_a_no_op(tmp_path):
    first = build_bpf_object(tmp_path)
    mtime = first.stat().st_mtime_ns
    assert build_bpf_object(tmp_path) == first
    assert first.stat().st_mtime_ns == mtime
    assert len(list(tmp_path.glob("*.bpf.o"))) == 1


def test_record_layouts_match_the_compiled_object(bpf_object):
    btf = subprocess.run(
        ["bpftool", "btf", "dump", "file", str(bpf_object)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    sizes = {name: int(size) for name, size in re.findall(r"STRUCT '(dc_\w+)' size=(\d+)", btf)}
    # dc_call and dc_task appear only behind ring-buffer pointers, so not in the BTF; the
    # header's _Static_asserts pin them to the sizes checked here.
    assert records.CALL.size == 96
    assert records.TASK.size == 48
    assert sizes["dc_config"] == records.CONFIG.size == 160
    assert sizes["dc_name"] == records.NAME_HEADER.size + records.PATH_MAX == 536
    # profile mode's map key and value (dc_profile)
    assert sizes["dc_agg_key"] == records.AGG_KEY.size == 40
    assert sizes["dc_agg"] == records.AGG.size == 336
    # trace mode's valve: folds per function and CPU (dc_folds)
    assert sizes["dc_fold"] == records.FOLD.size == 48


def test_python_names_every_program_and_map_as_the_object_does(bpf_object):
    """object_names is the one place Python names the object's programs and maps: exactly
    those of the compiled object."""
    from elftools.elf.elffile import ELFFile

    with bpf_object.open("rb") as f:
        elf = ELFFile(f)
        sections = [s.name for s in elf.iter_sections()]
        symbols = [  # those defined in a section of the object (not SHN_ABS, not undefined)
            s
            for s in elf.get_section_by_name(".symtab").iter_symbols()
            if isinstance(s["st_shndx"], int)
        ]
        programs = {
            s.name
            for s in symbols
            if s["st_info"]["type"] == "STT_FUNC"
            and s["st_info"]["bind"] == "STB_GLOBAL"
            and sections[s["st_shndx"]] != ".text"  # the global functions programs call
        }
        maps = {s.name for s in symbols if sections[s["st_shndx"]] == ".maps"}
    assert programs == set(object_names.PROGRAMS)
    assert maps == set(object_names.MAPS)  # a per-function fentry object shares every one
