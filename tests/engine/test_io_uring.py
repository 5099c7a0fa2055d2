"""io_uring requests traced one by one (issue 13): asking for io_uring_enter also traces each
request it submits, from the io_uring tracepoints — opcode, fd and file, size, offset, result
and latency — where the syscall alone shows only io_uring_enter calls."""

from __future__ import annotations

import subprocess

from engine_support import as_user, user_dir

from datacrumbs.common.probes import Probe, ProbeType

N, S = 6, 4096


def test_each_io_uring_request_is_an_event_with_its_file_size_offset_and_result(
    session, compile_c, public_dir, traced_user
):
    binary = compile_c("uring_io.c", "uring_io", "-luring")
    work = user_dir(public_dir, traced_user, "uring")
    path = work / "ring.bin"
    probes = [Probe(type=ProbeType.SYSCALLS, name="rings", functions=["io_uring_enter"])]
    with session(probes, uid=traced_user.uid) as s:
        out = subprocess.run(
            as_user(traced_user, [str(binary), str(path), str(N), str(S)]),
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    pid = int(out)
    trace = s.trace
    assert path.stat().st_size == (N + 1) * S
    outcomes = {o.function: o for o in trace.outcomes}
    assert outcomes["io_uring_requests"].attached, outcomes["io_uring_requests"].reason
    assert trace.stats.lost == 0

    names = trace.file_names()
    mine = sorted((e for e in trace.events_of(pid) if e["cat"] == "IO_URING"),
                  key=lambda e: e["ts"])  # fmt: skip
    got = [
        (e["name"], e["args"]["opcode"], e["args"].get("size", e["args"].get("iovcnt")),
         e["args"].get("offset"), e["args"]["ret"], names.get(e["args"].get("fhash")))
        for e in mine
    ]  # fmt: skip
    f = str(path)
    assert got == (
        [("write", "WRITE", S, i * S, S, f) for i in range(N)]
        + [("fsync", "FSYNC", None, None, 0, f)]
        + [("read", "READ", S, i * S, S, f) for i in range(N)]
        + [("readv", "READV", 2, 0, 2 * S, f)]
        + [("write", "WRITE", S, N * S, S, None)]  # a registered file: an index, no name
    )
    assert [e["args"]["fixed_file"] for e in mine] == [0] * (2 * N + 2) + [1]
    assert {e["args"]["category"] for e in mine} == {"rings"}
    assert all(e["tid"] == pid and e["dur"] >= 0 for e in mine)
    # the syscalls that submitted them are there too
    enters = [e for e in trace.events_of(pid) if e["args"].get("syscall") == "io_uring_enter"]
    assert len(enters) >= 2 * N + 3
