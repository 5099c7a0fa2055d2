"""Many targets on few links: uprobe_multi per binary, raw syscall tracepoints, and the
per-target outcomes that must survive both."""

from __future__ import annotations

import ctypes
import os
import re
import subprocess
from pathlib import Path

import pytest
from engine_support import user_dir

from datacrumbs.common.probes import Probe, ProbeType
from datacrumbs.ebpf import bpf_syscall, build, features, kernel_btf, uprobes
from datacrumbs.ebpf.arch import syscall_numbers
from datacrumbs.ebpf.features import TRACEFS
from datacrumbs.ebpf.syscalls import syscall_number

N_FUNCTIONS = 200


def _calls(i: int) -> int:
    """How many times the generated program calls function i."""
    return i % 3 + 1


@pytest.fixture(scope="module")
def many_functions(public_dir: Path) -> tuple[Path, Path]:
    """lib with dcm_f0..dcm_f199 and a program that calls dcm_fi _calls(i) times."""
    lib_c, main_c = public_dir / "libmany.c", public_dir / "many_main.c"
    lib_c.write_text(
        "".join(f"int dcm_f{i}(int x) {{ return x + {i}; }}\n" for i in range(N_FUNCTIONS))
    )
    decls = "".join(f"int dcm_f{i}(int);\n" for i in range(N_FUNCTIONS))
    body = "".join(
        f"    for (int k = 0; k < {_calls(i)}; k++) s += dcm_f{i}(k);\n" for i in range(N_FUNCTIONS)
    )
    main_c.write_text(
        "#include <stdio.h>\n#include <unistd.h>\n"
        + decls
        + "int main(void)\n{\n    long s = 0;\n"
        + body
        + '    printf("%d %ld\\n", getpid(), s);\n    return 0;\n}\n'
    )
    lib, main = public_dir / "libmany.so", public_dir / "many_main"
    subprocess.run(["gcc", "-O1", "-shared", "-fPIC", "-o", lib, lib_c], check=True)
    subprocess.run(
        ["gcc", "-O1", "-o", main, main_c, f"-L{public_dir}", "-lmany",
         f"-Wl,-rpath,{public_dir}"],
        check=True,
    )  # fmt: skip
    return lib, main


def _run(s, user, main: Path) -> int:  # type: ignore[no-untyped-def]
    out = s.run(user, [str(main)])
    return int(out.stdout.split()[0])


def _kernel_has_uprobe_multi() -> bool:
    """What the kernel's own BTF says (6.6+): its attach types include uprobe_multi."""
    return "BPF_TRACE_UPROBE_MULTI" in kernel_btf.vmlinux().enum_values("bpf_attach_type")


def test_uprobe_multi_is_detected_as_this_kernel_has_it(root):
    if _kernel_has_uprobe_multi():
        assert features.uprobe_multi_support() is None
    else:  # 6.1: one perf-event uprobe per function and direction instead
        assert features.uprobe_multi_support() == (
            f"{features.UPROBE_MULTI_UNSUPPORTED} (Invalid argument)"
        )


@pytest.mark.parametrize("scope", ["job", "node"])
def test_200_functions_share_one_link_per_direction_and_a_missing_one_fails_alone(
    session, many_functions, traced_user, scope
):
    lib, main = many_functions
    functions = [f"dcm_f{i}" for i in range(N_FUNCTIONS)]
    functions.insert(77, "dcm_missing")
    probes = [Probe(type=ProbeType.UPROBE, name="MANY", binary_path=str(lib), functions=functions)]
    with session(probes, uid=traced_user.uid, uprobe_scope=scope) as s:
        # the exec tracepoint, and one uprobe_multi link per direction for all 200 functions;
        # without uprobe_multi, a uprobe and a uretprobe per function. Scoped to the job,
        # those are made per process: the node has the lifecycle links only (exec, and fork,
        # exec and exit to follow the job's processes)
        per_direction = 1 if _kernel_has_uprobe_multi() else N_FUNCTIONS
        expected = 1 + 3 if scope == "job" else 1 + 2 * per_direction
        assert s.engine.link_count == expected
        pid = _run(s, traced_user, main)
    trace = s.trace
    failed = {o.function: o.reason for o in trace.outcomes if not o.attached}
    assert failed == {"dcm_missing": f"{lib} defines no function dcm_missing"}
    assert len(trace.outcomes) == N_FUNCTIONS + 1
    counts: dict[str, int] = {}
    for e in trace.events_of(pid):
        counts[e["name"]] = counts.get(e["name"], 0) + 1
    assert counts == {f"dcm_f{i}": _calls(i) for i in range(N_FUNCTIONS)}
    rets = [e["args"]["ret"] for e in trace.events_of(pid, "dcm_f150")]
    assert sorted(rets) == [150 + k for k in range(_calls(150))]


def test_an_offset_the_kernel_refuses_fails_only_its_own_target(
    session, many_functions, traced_user, monkeypatch
):
    """The kernel refuses a whole uprobe_multi link for one bad offset (EINVAL): the engine
    halves the group until the bad target stands alone."""
    lib, main = many_functions
    monkeypatch.setattr(uprobes.ElfSymbols, "check_offset", lambda self, offset: None)
    beyond = lib.stat().st_size + 4096
    functions = [f"dcm_f{i}" for i in range(40)]
    functions.insert(13, f"dcm_bad:{beyond:#x}")
    probes = [Probe(type=ProbeType.UPROBE, name="MANY", binary_path=str(lib), functions=functions)]
    with session(probes, uid=traced_user.uid) as s:
        pid = _run(s, traced_user, main)
    trace = s.trace
    failed = {o.function: o.reason for o in trace.outcomes if not o.attached}
    assert list(failed) == [f"dcm_bad:{beyond:#x}"]
    assert "Invalid argument" in failed[f"dcm_bad:{beyond:#x}"]
    names = [e["name"] for e in trace.events_of(pid)]
    assert {n: names.count(n) for n in set(names)} == {f"dcm_f{i}": _calls(i) for i in range(40)}


def test_an_offset_that_starts_no_function_is_refused_before_the_kernel_sees_it(
    session, many_functions, traced_user
):
    lib, _ = many_functions
    beyond = lib.stat().st_size + 4096
    probes = [
        Probe(
            type=ProbeType.UPROBE,
            name="MANY",
            binary_path=str(lib),
            functions=["dcm_f1", f"dcm_bad:{beyond:#x}"],
        )
    ]
    with session(probes, uid=traced_user.uid) as s:
        pass
    reasons = [o.reason for o in s.trace.outcomes]
    assert reasons == [None, f"offset {beyond:#x} is not the start of a function of {lib}"]


def test_untraced_syscalls_of_the_traced_user_produce_no_event(
    session, compile_c, public_dir, traced_user
):
    binary = compile_c("file_io.c", "file_io")
    work = user_dir(public_dir, traced_user, "untraced")
    probes = [Probe(type=ProbeType.SYSCALLS, name="POSIX", functions=["pread64"])]
    with session(probes, uid=traced_user.uid) as s:
        assert s.engine.link_count == 3  # exec + raw sys_enter + raw sys_exit
        out = s.run(traced_user, [str(binary), str(work / "f"), "5", "100"]).stdout
    pid, fd = map(int, out.split())
    names = {e["name"] for e in s.trace.events}
    assert names == {"pread"}  # openat, write, fsync, close, read, ... left no event
    # (the loader's pread64s of shared libraries, on the same fd number earlier, are left out)
    mine = [e for e in s.trace.events_of(pid) if (e["args"]["fd"], e["args"]["size"]) == (fd, 100)]
    assert [(e["args"]["size"], e["args"]["offset"]) for e in mine] == [
        (100, 100 * i) for i in range(5)
    ]
    # the file was opened by an openat the probe file did not ask for: kept quietly, it still
    # names the fd
    names = s.trace.file_names()
    assert {names[e["args"]["fhash"]] for e in mine} == {str(work / "f")}


def test_syscall_numbers_match_the_system_headers_and_cover_every_tracepoint(root):
    header = Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")
    if header.exists():
        defined = dict(re.findall(r"#define __NR_(\w+) (\d+)", header.read_text()))
        assert {k: int(v) for k, v in defined.items()} == {
            k: v for k, v in syscall_numbers("x86_64").items() if k in defined
        }
    events = Path(TRACEFS, "events", "syscalls")
    missing = []
    for entry in os.listdir(events):
        if entry.startswith("sys_enter_"):
            try:
                syscall_number(entry.removeprefix("sys_enter_"))
            except LookupError:
                missing.append(entry)
    assert missing == []
    assert (syscall_number("newstat"), syscall_number("pread64")) == (4, 17)


def test_link_create_attr_matches_the_kernel_bpf_attr(tmp_path):
    """The ctypes layout of BPF_LINK_CREATE's uprobe_multi, checked by the compiler against
    the running kernel's union bpf_attr (from its BTF); on a kernel without uprobe_multi
    (6.1), the fields it shares with every link and program load."""
    header = build.vmlinux_header(build.default_cache_dir())
    attr = bpf_syscall.UprobeMultiAttr
    fields = {
        "link_create.prog_fd": "prog_fd",
        "link_create.target_fd": "target_fd",
        "link_create.attach_type": "attach_type",
        "link_create.flags": "flags",
    }
    if _kernel_has_uprobe_multi():
        fields |= {
            "link_create.uprobe_multi.path": "path",
            "link_create.uprobe_multi.offsets": "offsets",
            "link_create.uprobe_multi.ref_ctr_offsets": "ref_ctr_offsets",
            "link_create.uprobe_multi.cookies": "cookies",
            "link_create.uprobe_multi.cnt": "cnt",
            "link_create.uprobe_multi.flags": "multi_flags",
            "link_create.uprobe_multi.pid": "pid",
        }
    asserts = "".join(
        f'_Static_assert(__builtin_offsetof(union bpf_attr, {c}) == {getattr(attr, py).offset}, "{c}");\n'  # noqa: E501
        for c, py in fields.items()
    )
    sc = bpf_syscall
    if _kernel_has_uprobe_multi():
        asserts += (
            f'_Static_assert(BPF_TRACE_UPROBE_MULTI == {sc.BPF_TRACE_UPROBE_MULTI}, "type");\n'
            f'_Static_assert(BPF_F_UPROBE_MULTI_RETURN == {sc.BPF_F_UPROBE_MULTI_RETURN}, "f");\n'
        )
    asserts += (
        f'_Static_assert(BPF_LINK_CREATE == {sc.BPF_LINK_CREATE}, "cmd");\n'
        f'_Static_assert(BPF_PROG_LOAD == {sc.BPF_PROG_LOAD}, "cmd");\n'
        f"_Static_assert(__builtin_offsetof(union bpf_attr, expected_attach_type) == "
        f'{bpf_syscall._ProgLoadAttr.expected_attach_type.offset}, "load");\n'
    )
    source = tmp_path / "attr.c"
    source.write_text(f'#include "vmlinux.h"\n{asserts}')
    subprocess.run(
        ["clang", "-target", "bpf", "-fsyntax-only", "-I", str(header.parent), str(source)],
        check=True,
    )
    assert ctypes.sizeof(attr) == 64
