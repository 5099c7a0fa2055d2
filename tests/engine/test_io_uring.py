"""io_uring requests traced one by one (issue 13): asking for io_uring_enter also traces each
request it submits, from the io_uring tracepoints — opcode, fd and file, size, offset, result
and latency — where the syscall alone shows only io_uring_enter calls. A request is a POSIX
event named as the call it does, marked ``args.syscall: "io_uring"`` (issue 26, M8)."""

from __future__ import annotations

import subprocess
import time

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
    mine = sorted((e for e in trace.events_of(pid) if e["args"]["syscall"] == "io_uring"),
                  key=lambda e: e["ts"])  # fmt: skip
    assert {e["cat"] for e in mine} == {"POSIX"}
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
        + [("write", "WRITE", S, N * S, S, f)]  # a registered file: by the file it holds
    )
    assert [e["args"]["fixed_file"] for e in mine] == [0] * (2 * N + 2) + [1]
    assert {e["args"]["category"] for e in mine} == {"rings"}
    assert all(e["tid"] == pid and e["dur"] >= 0 for e in mine)
    # the syscalls that submitted them are there too
    enters = [e for e in trace.events_of(pid) if e["args"].get("syscall") == "io_uring_enter"]
    assert len(enters) >= 2 * N + 3


ROUNDS, REQS = 6, 31
MINE, THEIRS = 512, 3000  # write sizes: the traced job's, the other user's


def test_only_the_jobs_own_requests_are_recorded_when_another_user_reuses_them(
    session, compile_c, public_dir, traced_user, intruder_user
):
    """Issue 25, N5: the job submits writes with IOSQE_CQE_SKIP_SUCCESS (no completion is
    posted for them) on rings it tears down, so that their requests go back to the kernel's
    allocator; another user's rings then take them (same CPU) and complete writes of another
    size through them. The job's trace holds its own completed writes, exactly, and counts
    the skipped ones lost; nothing of the other user's."""
    binary = compile_c("uring_rounds.c", "uring_rounds", "-luring")
    mine = user_dir(public_dir, traced_user, "uring-mine")
    theirs = user_dir(public_dir, intruder_user, "uring-theirs")
    probes = [Probe(type=ProbeType.SYSCALLS, name="rings", functions=["io_uring_enter"])]

    def start(user, path, size, mode):  # type: ignore[no-untyped-def]
        argv = [str(binary), str(path), str(ROUNDS), str(REQS), str(size), mode]
        return subprocess.Popen(["taskset", "-c", "0", *as_user(user, argv)],
                                stdout=subprocess.PIPE, text=True)  # fmt: skip

    def pid_of(process):  # type: ignore[no-untyped-def]
        out, _ = process.communicate(timeout=60)
        assert process.returncode == 0
        return int(out)

    with session(probes, uid=traced_user.uid) as s:
        pid = pid_of(start(traced_user, mine / "w.bin", MINE, "skip"))
        # its rings are torn down by a kernel worker after it exits: their requests go back
        # to the allocator then (without the wait, the other user's rings are made first)
        time.sleep(1)
        theirs_running = start(intruder_user, theirs / "w.bin", THEIRS, "plain")
        pid2 = pid_of(start(traced_user, mine / "w2.bin", MINE, "skip"))  # at the same time
        other = pid_of(theirs_running)
    trace = s.trace
    batches = 2 * ROUNDS
    assert (mine / "w.bin").stat().st_size == batches * (REQS + 1) * MINE
    assert (theirs / "w.bin").stat().st_size == batches * (REQS + 1) * THEIRS

    requests = [e for e in trace.events if e["args"].get("syscall") == "io_uring"]
    assert {e["pid"] for e in requests} == {pid, pid2}
    assert other not in {e["pid"] for e in trace.events}
    names = trace.file_names()
    for p, name in ((pid, "w.bin"), (pid2, "w2.bin")):
        got = sorted(
            (e["args"]["offset"], e["args"]["size"], e["args"]["ret"], names[e["args"]["fhash"]])
            for e in requests if e["pid"] == p
        )  # fmt: skip
        # the last write of each batch, the one that posts a completion
        assert got == [
            ((b * (REQS + 1) + REQS) * MINE, MINE, MINE, str(mine / name)) for b in range(batches)
        ]
    # the skipped writes: no completion to time them by, counted
    assert (trace.stats.loss.inflight, trace.stats.lost) == (2 * batches * REQS,) * 2
