"""Kernel functions (kprobe targets): traced exactly where the kernel has kprobes, refused with
the detected reason where it has none (this machine kind's 6.18 is built without them; Debian's
6.1 and 6.12, booted by the kernel matrix, have them). Never skipped: each kernel runs the
branch that is true of it."""

from __future__ import annotations

import subprocess

from engine_support import as_user, user_dir

from datacrumbs.common.probes import FunctionArgument, Probe, ProbeType
from datacrumbs.ebpf.features import KPROBES_UNSUPPORTED, kprobe_support

K, S = 9, 3000


def test_kernel_functions_are_traced_exactly_or_refused_with_the_reason(
    session, compile_c, public_dir, traced_user
):
    # static: no dynamic loader, whose reads of the C library would be vfs_reads too
    binary = compile_c("file_io.c", "file_io_static", "-static")
    work = user_dir(public_dir, traced_user, "kprobes")
    size = [FunctionArgument(index=2, label="count")]
    probes = [
        Probe(
            type=ProbeType.KPROBE,
            name="VFS",
            functions=["vfs_read", "vfs_write", "d_path"],
            function_arguments={"vfs_read": size, "vfs_write": size},
        )
    ]
    with session(probes, uid=traced_user.uid) as s:
        out = subprocess.run(
            as_user(traced_user, [str(binary), str(work / "data.bin"), str(K), str(S)]),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    trace = s.trace
    pid = int(out.split()[0])
    outcomes = [(o.category, o.function, o.attached, o.reason) for o in trace.outcomes]
    reason = kprobe_support()
    if reason is not None:
        assert reason == KPROBES_UNSUPPORTED
        assert outcomes == [("VFS", f, False, reason) for f in ("vfs_read", "vfs_write", "d_path")]
        assert trace.events == []
        return

    assert outcomes == [("VFS", f, True, None) for f in ("vfs_read", "vfs_write", "d_path")]
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
