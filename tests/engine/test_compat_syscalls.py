"""32-bit processes are traced too (issue 13): an ia32 process's syscalls are looked up in the
ia32 table and read from its registers, with the same names, arguments and file names as a
64-bit process's; a syscall whose ia32 arguments differ (pwrite64's split offset) is counted
as lost, never read wrongly nor silently missing."""

from __future__ import annotations

import subprocess

from engine_support import as_user, user_dir

from datacrumbs.common.probes import Probe, ProbeType


def test_a_32_bit_process_is_traced_and_what_cannot_be_read_is_counted(
    session, compile_c, public_dir, traced_user
):
    binary = compile_c(
        "ia32_io.c", "ia32_io", "-m32", "-nostdlib", "-static", "-fno-pie", "-no-pie"
    )
    work = user_dir(public_dir, traced_user, "ia32")
    path = work / "out.txt"
    probes = [
        Probe(type=ProbeType.SYSCALLS, name="posix",
              functions=["open", "openat", "write", "pwrite64", "close"])
    ]  # fmt: skip
    with session(probes, uid=traced_user.uid) as s:
        process = subprocess.Popen(as_user(traced_user, [str(binary), str(path)]))
        assert process.wait(timeout=30) == 0
    trace = s.trace
    assert path.read_text() == "ia32\n" * 3 + "tail\n"

    names = trace.file_names()
    events = sorted(trace.events_of(process.pid), key=lambda e: e["ts"])
    calls = [(e["name"], e["args"]["syscall"], e["args"]["ret"]) for e in events]
    fd = calls[0][2]
    assert calls == [("open", "open", fd)] + [("write", "write", 5)] * 3 + [("close", "close", 0)]
    assert {names[e["args"]["fhash"]] for e in events} == {str(path)}
    assert [e["args"]["size"] for e in events if e["name"] == "write"] == [5, 5, 5]
    assert (trace.stats.loss.compat, trace.stats.lost) == (1, 1)  # the pwrite64
