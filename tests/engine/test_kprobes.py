"""Kernel functions (kprobe targets): traced exactly where the kernel can, through fentry/fexit
(``kfunc_mode="auto"``) or kprobes/kretprobes (``"kprobe"``), and refused with the detected
reasons where it cannot (this machine kind's 6.18 has no kprobes and refuses fentry programs;
Debian's 6.1 and 6.12, booted by the kernel matrix, have both). Never skipped: each kernel runs
the branch that is true of it.

Which way a function went is read from the kernel itself (``bpftool prog``: tracing programs
``dc_kfunc_enter``/``_exit`` for fentry, kprobe programs ``dc_func_enter``/``_exit`` for
kprobes), not only from the engine. The matrix sets ``DC_TEST_FENTRY=1`` for the kernels known
to run fentry programs (../shared/reference/kernel-matrix.md), so that a silent fall back to
kprobes there fails.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from engine_support import as_user, user_dir

from datacrumbs.common.probes import FunctionArgument, Probe, ProbeType
from datacrumbs.ebpf.features import KPROBES_UNSUPPORTED, kprobe_support

K, S = 9, 3000
FUNCTIONS = ["vfs_read", "vfs_write", "d_path"]


def _loaded_programs() -> list[tuple[str, str]]:
    """(name, type) of every BPF program the kernel holds now."""
    out = subprocess.run(
        ["bpftool", "-j", "prog", "show"], capture_output=True, text=True, check=True
    ).stdout
    return [(p.get("name", ""), p["type"]) for p in json.loads(out)]


@pytest.mark.parametrize("kfunc_mode", ["auto", "kprobe"])
def test_kernel_functions_are_traced_exactly_or_refused_with_the_reasons(
    session, compile_c, public_dir, traced_user, kfunc_mode
):
    # static: no dynamic loader, whose reads of the C library would be vfs_reads too
    binary = compile_c("file_io.c", "file_io_static", "-static")
    work = user_dir(public_dir, traced_user, "kprobes")
    size = [FunctionArgument(index=2, label="count")]
    probes = [
        Probe(
            type=ProbeType.KPROBE,
            name="VFS",
            functions=FUNCTIONS,
            function_arguments={"vfs_read": size, "vfs_write": size},
        )
    ]
    with session(probes, uid=traced_user.uid, kfunc_mode=kfunc_mode) as s:
        programs = _loaded_programs()
        via = s.engine.kernel_functions_via
        out = subprocess.run(
            as_user(traced_user, [str(binary), str(work / "data.bin"), str(K), str(S)]),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    trace = s.trace
    pid = int(out.split()[0])
    outcomes = [(o.category, o.function, o.attached, o.reason) for o in trace.outcomes]
    fentry = kfunc_mode == "auto" and via == dict.fromkeys(FUNCTIONS, "fentry")
    if os.environ.get("DC_TEST_FENTRY") == "1" and kfunc_mode == "auto":
        assert fentry, via
    if fentry:  # one fentry and one fexit program per function, loaded for it
        assert programs.count(("dc_kfunc_enter", "tracing")) == len(FUNCTIONS)
        assert programs.count(("dc_kfunc_exit", "tracing")) == len(FUNCTIONS)
    elif kprobe_support() is None:  # the session's one kprobe program pair
        assert via == dict.fromkeys(FUNCTIONS, "kprobe")
        assert ("dc_func_enter", "kprobe") in programs
        assert not any(name.startswith("dc_kfunc") for name, _ in programs)
    else:  # neither: every function refused, with what the kernel said of each way
        assert via == {}
        assert all(not attached for _, _, attached, _ in outcomes)
        reasons = {reason for _, _, _, reason in outcomes}
        if kfunc_mode == "kprobe":
            assert reasons == {KPROBES_UNSUPPORTED}
        else:
            [reason] = reasons
            assert reason.startswith(f"{KPROBES_UNSUPPORTED}, and fentry programs do not load")
        assert trace.events == []
        return

    assert outcomes == [("VFS", f, True, None) for f in FUNCTIONS]
    mine = trace.events_of(pid)
    assert {e["cat"] for e in mine} == {"KERNEL"}
    # K writes of S bytes to the file, then the report on stdout (one write, one vfs_write)
    writes = trace.events_of(pid, "vfs_write")
    assert [(e["args"]["count"], e["args"]["ret"]) for e in writes] == [(S, S)] * K + [
        (len(out), len(out))
    ]
    # K preads of S bytes, each one vfs_read; nothing else of the process reads
    reads = trace.events_of(pid, "vfs_read")
    assert [(e["args"]["count"], e["args"]["ret"]) for e in reads] == [(S, S)] * K
    # d_path returns a kernel pointer: traced (the calls), its value never recorded
    assert all("ret" not in e["args"] for e in trace.events_of(pid, "d_path"))
    assert all(e["dur"] >= 0 for e in mine)
