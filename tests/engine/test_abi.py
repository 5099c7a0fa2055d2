"""The kernel/user ABI: ``dc_records.h`` as gcc compiles it against ``records.py``.

A small C program, generated here and compiled once, includes the header and prints as JSON the
size and every field's offset and size of the mirrored structs, the enum values, the constants,
and the cookie macros applied to cookies given on its command line. Everything it prints is
compared with what ``records.py`` derives from its struct formats and named constants (nothing
is typed in here), so a change to one side only fails; cookies that ``syscalls.syscall_cookie``
and ``uprobes.function_cookie`` build must decode, through the C macros, to what they were
built from.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from datacrumbs.common.probes import FunctionArgument
from datacrumbs.common.settings import PARENT_CMDLINE_BYTES
from datacrumbs.ebpf import records, syscalls, uprobes

HEADER = Path(records.__file__).parent / "bpf" / "dc_records.h"

#: Header constant → records.py value.
CONSTANTS = {
    "DC_MAX_ARGS": records.MAX_ARGS,
    "DC_PATH_MAX": records.PATH_MAX,
    "DC_COMM_LEN": records.COMM_LEN,
    "DC_PARENT_CMDLINE": records.PARENT_CMDLINE,
    "DC_MAX_RINGS": records.MAX_RINGS,
    "DC_MAX_SYSCALL_NR": records.MAX_SYSCALL_NR,
    "DC_FNV_OFFSET": records.FNV_OFFSET,
    "DC_FNV_PRIME": records.FNV_PRIME,
    "DC_SYS_RET_FD": records.SYS_RET_FD,
    "DC_SYS_AT": records.SYS_AT,
    "DC_SYS_RET_CWD": records.SYS_RET_CWD,
    "DC_SYS_COMPAT_UNTRACED": records.SYS_COMPAT_UNTRACED,
    "DC_FUNC_RET_FILE": records.FUNC_RET_FILE,
    "DC_FUNC_RET_FD": records.FUNC_RET_FD,
    "DC_FUNC_RET_ITEMS": records.FUNC_RET_ITEMS,
    "DC_FUNC_NO_RET": records.FUNC_NO_RET,
    "DC_SCOPE_DEPTH": records.SCOPE_DEPTH,
    "DC_SCOPE_NAME": records.SCOPE_NAME,
    "DC_HIST_BUCKETS": records.HIST_BUCKETS,
    "DC_RULE_VALVE": records.Rule.VALVE,
    "DC_RULE_EVENTS": records.Rule.EVENTS,
    "DC_RULE_AGGREGATE": records.Rule.AGGREGATE,
    "DC_VALVE_BUDGET_SPENT": records.VALVE_BUDGET_SPENT,
}
#: Cookie macros: the program applies them to each cookie on its command line.
COOKIE_MACROS = {
    "DC_COOKIE_FID",
    "DC_SYS_FD_ARG",
    "DC_SYS_PATH1",
    "DC_SYS_PATH2",
    "DC_SYS_FD2_ARG",
    "DC_UPROBE_IS_PTR",
    "DC_UPROBE_PTR_SIZE",
    "DC_FUNC_FILE_ARG",
    "DC_FUNC_PATH_ARG",
    "DC_FUNC_FD_ARG",
}
#: Header macros and structs that user space does not mirror (BPF side only).
KERNEL_ONLY_MACROS = {
    "DC_RECORDS_H",
    "DC_FDS_SEEN",
    "DC_AGG_EMPTY",
    "DC_AGG_HELD",
    "DC_AGG_HANDING",
}
KERNEL_ONLY_STRUCTS = {
    "dc_inflight",
    "dc_thread",
    "dc_ukey",
    "dc_fdkey",
    "dc_fdname",
    "dc_uring_req",
    "dc_fd_seen",
}

U64 = (1 << 64) - 1

_DECODE = r"""
    printf("}, \"decode\": [");
    for (int i = 1; i < argc; i++) {
        unsigned long long c = strtoull(argv[i], NULL, 0);
        printf("%s{\"cookie\": %llu, \"fid\": %llu, \"fd_arg\": %llu, \"path1\": %llu, "
               "\"path2\": %llu, \"fd2_arg\": %llu, \"ret_cwd\": %d, "
               "\"ret_fd\": %d, \"at\": %d, \"no_ret\": %d, "
               "\"file_arg\": %llu, \"path_arg\": %llu, "
               "\"func_fd_arg\": %llu",
               i > 1 ? ", " : "", c, U(DC_COOKIE_FID(c)), U(DC_SYS_FD_ARG(c)),
               U(DC_SYS_PATH1(c)), U(DC_SYS_PATH2(c)), U(DC_SYS_FD2_ARG(c)),
               (c & DC_SYS_RET_CWD) != 0, (c & DC_SYS_RET_FD) != 0,
               (c & DC_SYS_AT) != 0, (c & DC_FUNC_NO_RET) != 0, U(DC_FUNC_FILE_ARG(c)),
               U(DC_FUNC_PATH_ARG(c)),
               U(DC_FUNC_FD_ARG(c)));
        printf(", \"is_ptr\": [");
        for (int a = 0; a < DC_MAX_ARGS; a++)
            printf("%s%llu", a ? ", " : "", U(DC_UPROBE_IS_PTR(c, a)));
        printf("], \"ptr_size\": [");
        for (int a = 0; a < DC_MAX_ARGS; a++)
            printf("%s%llu", a ? ", " : "", U(DC_UPROBE_PTR_SIZE(c, a)));
        printf("]}");
    }
    printf("]}\n");
    return 0;
}
"""


def _header_text() -> str:
    return re.sub(r"/\*.*?\*/", "", HEADER.read_text(), flags=re.S)


def _enumerators(enum: str) -> list[str]:
    body = re.search(rf"enum {enum}\s*\{{(.*?)\}};", _header_text(), re.S)
    assert body, f"enum {enum} not in {HEADER}"
    return re.findall(r"\b(DC_\w+)\s*=", body[1])


def _enum_values() -> dict[str, int]:
    """Header enumerator → records.py value."""
    values = {f"DC_REC_{t.name}": int(t) for t in records.RecordType}
    values |= {f"DC_LOST_{s.name}": int(s) for s in records.LostSlot}
    values["DC_LOST_SLOTS"] = records.LOST_SLOTS
    values |= {f"DC_FOLD_{r.name}": int(r) for r in records.FoldReason}
    values["DC_FOLD_REASONS"] = records.FOLD_REASONS
    return values


def _program() -> str:
    lines = [
        "#include <linux/types.h>",
        "#include <stddef.h>",
        "#include <stdio.h>",
        "#include <stdlib.h>",
        '#include "dc_records.h"',
        "#define U(x) ((unsigned long long)(x))",
        "int main(int argc, char **argv)",
        "{",
    ]

    def section(key: str, entries: Iterable[tuple[str, str]], first: bool = False) -> None:
        lines.append(f'    printf("{"{" if first else "}, "}\\"{key}\\": {{");')
        for n, (name, expr) in enumerate(entries):
            sep = ", " if n else ""
            lines.append(f'    printf("{sep}\\"{name}\\": %llu", U({expr}));')

    section("sizeof", ((s, f"sizeof(struct {s})") for s in records.LAYOUTS), first=True)
    fields = [(s, f) for s, (_, names) in records.LAYOUTS.items() for f in names]
    section("offsetof", ((f"{s}.{f}", f"offsetof(struct {s}, {f})") for s, f in fields))
    section("fieldsize", ((f"{s}.{f}", f"sizeof(((struct {s} *)0)->{f})") for s, f in fields))
    enums = [
        *_enumerators("dc_record_type"),
        *_enumerators("dc_lost_slot"),
        *_enumerators("dc_fold_reason"),
    ]
    section("enum", ((e, e) for e in enums))
    section("const", ((c, c) for c in CONSTANTS))
    return "\n".join(lines) + _DECODE


@pytest.fixture(scope="module")
def abi(tmp_path_factory) -> Callable[[Iterable[int]], dict]:
    """Runs the compiled program on some cookies; returns its JSON."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("needs gcc")
    work = tmp_path_factory.mktemp("abi")
    (work / "abi.c").write_text(_program())
    subprocess.run(
        [gcc, "-std=gnu11", "-Wall", "-Werror", f"-I{HEADER.parent}", "-o", "abi", "abi.c"],
        cwd=work,
        check=True,
    )

    def run(cookies: Iterable[int] = ()) -> dict:
        out = subprocess.run(
            [str(work / "abi"), *(hex(c) for c in cookies)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return json.loads(out)

    return run


def _py_decode(c: int) -> dict:
    """A cookie's fields by records.py's constants, keyed like the program's output."""
    sys_mask = (1 << records.SYS_ARG_BITS) - 1
    size_mask = (1 << records.UPROBE_SIZE_BITS) - 1
    return {
        "cookie": c,
        "fid": c & records.COOKIE_FID_MASK,
        "fd_arg": (c >> records.SYS_FD_ARG_SHIFT) & sys_mask,
        "path1": (c >> records.SYS_PATH1_SHIFT) & sys_mask,
        "path2": (c >> records.SYS_PATH2_SHIFT) & sys_mask,
        "fd2_arg": (c >> records.SYS_FD2_ARG_SHIFT) & sys_mask,
        "ret_cwd": int(c & records.SYS_RET_CWD != 0),
        "ret_fd": int(c & records.SYS_RET_FD != 0),
        "at": int(c & records.SYS_AT != 0),
        "no_ret": int(c & records.FUNC_NO_RET != 0),
        "file_arg": (c >> records.FUNC_FILE_ARG_SHIFT) & sys_mask,
        "path_arg": (c >> records.FUNC_PATH_ARG_SHIFT) & sys_mask,
        "func_fd_arg": (c >> records.FUNC_FD_ARG_SHIFT) & sys_mask,
        "is_ptr": [(c >> (records.UPROBE_PTR_SHIFT + i)) & 1 for i in range(records.MAX_ARGS)],
        "ptr_size": [
            ((c >> (records.UPROBE_SIZE_SHIFT + records.UPROBE_SIZE_BITS * i)) & size_mask) + 1
            for i in range(records.MAX_ARGS)
        ],
    }


def test_struct_sizes_and_field_offsets(abi):
    out = abi()
    for name, (fmt, names) in records.LAYOUTS.items():
        assert out["sizeof"][name] == fmt.size, name
        for field, (offset, size) in records.field_offsets(fmt, names).items():
            assert out["offsetof"][f"{name}.{field}"] == offset, f"{name}.{field}"
            assert out["fieldsize"][f"{name}.{field}"] == size, f"{name}.{field}"
    # The ring's name record is the header, then the name.
    assert records.NAME.format.startswith(records.NAME_HEADER.format)
    assert out["offsetof"]["dc_name.name"] == records.NAME_HEADER.size
    assert records.CALL.size == records.CALL_SIZE


def test_every_record_struct_is_mirrored():
    structs = set(re.findall(r"\bstruct (dc_\w+)\s*\{", _header_text()))
    assert structs - KERNEL_ONLY_STRUCTS == set(records.LAYOUTS)


def test_enum_values(abi):
    out = abi()
    assert out["enum"] == _enum_values()


def test_constants(abi):
    out = abi()
    assert out["const"] == CONSTANTS
    assert out["const"]["DC_FUNC_NO_RET"] == uprobes.NO_RETURN_COOKIE
    assert out["const"]["DC_MAX_SYSCALL_NR"] == syscalls.MAX_SYSCALL_NR


def test_every_header_macro_is_checked():
    defined = set(re.findall(r"#define (DC_\w+)", _header_text()))
    assert defined == set(CONSTANTS) | COOKIE_MACROS | KERNEL_ONLY_MACROS


def test_cookie_macros_match_the_named_bits(abi):
    r = records
    probes = [0, U64, *(1 << b for b in range(64))]
    named = {
        U64: ("fid", r.COOKIE_FID_MASK),
        7 << r.SYS_FD_ARG_SHIFT: ("fd_arg", 7),
        5 << r.SYS_PATH1_SHIFT: ("path1", 5),
        6 << r.SYS_PATH2_SHIFT: ("path2", 6),
        r.SYS_RET_FD: ("ret_fd", 1),
        3 << r.SYS_FD2_ARG_SHIFT: ("fd2_arg", 3),
        r.SYS_RET_CWD: ("ret_cwd", 1),
        r.SYS_AT: ("at", 1),
        r.FUNC_NO_RET: ("no_ret", 1),
        4 << r.FUNC_FILE_ARG_SHIFT: ("file_arg", 4),
        2 << r.FUNC_PATH_ARG_SHIFT: ("path_arg", 2),
        3 << r.FUNC_FD_ARG_SHIFT: ("func_fd_arg", 3),
    }
    is_ptr_3 = 1 << (r.UPROBE_PTR_SHIFT + 3)
    size_2 = 5 << (r.UPROBE_SIZE_SHIFT + r.UPROBE_SIZE_BITS * 2)
    decoded = abi([*probes, *named, is_ptr_3, size_2])["decode"]
    by_cookie = {d["cookie"]: d for d in decoded}
    # Each single bit lands in the same field on both sides: the masks and shifts agree.
    for d in decoded:
        assert d == _py_decode(d["cookie"]), hex(d["cookie"])
    for cookie, (field, value) in named.items():
        assert by_cookie[cookie][field] == value, field
    assert by_cookie[is_ptr_3]["is_ptr"] == [int(i == 3) for i in range(r.MAX_ARGS)]
    assert by_cookie[size_2]["ptr_size"] == [6 if i == 2 else 1 for i in range(r.MAX_ARGS)]


def test_syscall_cookies_decode_to_their_layout(abi):
    cases = [(fid, layout) for fid, layout in enumerate(syscalls.SYSCALLS.values())]
    cases += [(records.COOKIE_FID_MASK, layout) for layout in syscalls.SYSCALLS.values()]
    decoded = abi(syscalls.syscall_cookie(fid, layout) for fid, layout in cases)["decode"]
    assert len(decoded) == len(cases)
    for (fid, layout), d in zip(cases, decoded, strict=True):
        paths = [p + 1 for p in layout.path_args] + [0, 0]
        assert d["fid"] == fid, layout.tracepoint
        assert d["fd_arg"] == (0 if layout.fd_arg is None else layout.fd_arg + 1)
        assert (d["path1"], d["path2"]) == tuple(paths[:2]), layout.tracepoint
        assert d["ret_fd"] == layout.returns_fd, layout.tracepoint
        assert d["at"] == layout.at, layout.tracepoint
        assert d["fd2_arg"] == (0 if layout.fd2_arg is None else layout.fd2_arg + 1)
        assert d["ret_cwd"] == layout.cwd, layout.tracepoint
        assert d["no_ret"] == 0


def _arg(index: int, num_bytes: int, is_pointer: bool) -> FunctionArgument:
    return FunctionArgument(index=index, num_bytes=num_bytes, is_pointer=is_pointer, label="a")


def test_function_cookies_decode_to_their_arguments(abi):
    n = records.MAX_ARGS
    arg_lists = [[_arg(i, b, True)] for i in range(n) for b in range(1, 9)]
    arg_lists.append([_arg(i, i % 8 + 1, True) for i in range(n)])
    arg_lists.append([_arg(i, 8 - i, i % 2 == 0) for i in range(n)])
    arg_lists.append([_arg(i, 4, False) for i in range(n)])
    arg_lists.append([])
    cases = [
        (fid, args, no_ret)
        for fid in (0, 1, records.COOKIE_FID_MASK)
        for args in arg_lists
        for no_ret in (False, True)
    ]
    cookies = [
        uprobes.function_cookie(fid, args) | (uprobes.NO_RETURN_COOKIE if no_ret else 0)
        for fid, args, no_ret in cases
    ]
    decoded = abi(cookies)["decode"]
    assert len(decoded) == len(cases)
    for (fid, args, no_ret), d in zip(cases, decoded, strict=True):
        pointers = {a.index: a.num_bytes for a in args if a.is_pointer}
        assert d["fid"] == fid
        assert d["no_ret"] == no_ret
        assert d["is_ptr"] == [int(i in pointers) for i in range(n)], args
        for i, size in pointers.items():
            assert d["ptr_size"][i] == size, args


def test_the_setting_fits_the_kernels_parent_cmdline() -> None:
    """DATACRUMBS_JOB_PARENT_CMDLINE's limit leaves DC_PARENT_CMDLINE room for its NUL."""
    assert PARENT_CMDLINE_BYTES == records.PARENT_CMDLINE - 1
