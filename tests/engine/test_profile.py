"""Profile mode: calls aggregated in the kernel per (process, thread, function, file,
interval), harvested interval by interval, written as DFTracer's aggregated records; the sums
of ``dft_cnt`` and ``ret_sum`` are exactly the calls and bytes the workload made."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from engine_support import Trace, User, as_user, user_dir

from datacrumbs.common.probes import Probe, ProbeType
from datacrumbs.common.settings import load_settings
from datacrumbs.trace.summary import summarize

K, S = 1000, 4096
# Intervals of about 11.6 days, aligned to the wall clock: none ends during a test (an hour's
# would, once in a few thousand runs, in the half second a test takes)
NEVER_OVER_NS = 10**15
POSIX = Probe(type=ProbeType.SYSCALLS, name="POSIX", functions=["openat", "write", "pread64",
                                                                  "fsync", "close"])  # fmt: skip


def _aggregates(trace: Trace, pid: int) -> list[dict]:
    return [e for e in trace.objects if e.get("ph") == 3 and e["pid"] == pid]


def _by_function_and_file(trace: Trace, pid: int) -> dict[tuple[str, str], dict[str, int]]:
    """Per (function, file name): the sums over the process's aggregates."""
    names = trace.file_names()
    totals: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for e in _aggregates(trace, pid):
        a = e["args"]
        t = totals[(e["name"], names.get(a.get("fhash", ""), ""))]
        t["calls"] += a["dft_cnt"]
        t["bytes"] += a.get("ret_sum", 0)
        t["aggregates"] += 1
    return {k: dict(v) for k, v in totals.items()}


def test_a_known_workload_sums_to_its_calls_and_bytes(
    session, compile_c, traced_user, public_dir: Path
) -> None:
    binary = compile_c("file_io.c", "file_io")
    data = user_dir(public_dir, traced_user, "profile-file-io") / "data.bin"
    with session([POSIX], uid=traced_user.uid, profile_interval_ns=20_000_000) as s:
        out = subprocess.run(
            as_user(traced_user, [str(binary), str(data), str(K), str(S)]),
            check=True, capture_output=True, text=True,
        )  # fmt: skip
    trace = s.trace
    assert trace is not None
    pid = int(out.stdout.split()[0])
    assert trace.stats.lost == 0
    assert not trace.events  # no per-call events in profile mode
    totals = _by_function_and_file(trace, pid)
    file = str(data)
    assert totals[("write", file)]["calls"] == K
    assert totals[("write", file)]["bytes"] == K * S
    assert totals[("pread", file)]["calls"] == K
    assert totals[("pread", file)]["bytes"] == K * S
    assert totals[("fsync", file)]["calls"] == 1
    assert totals[("close", file)]["calls"] == 1
    assert totals[("open", file)]["calls"] == 1
    # the one write of "<pid> <fd>\n" to the pipe, apart from the file's
    stdout_writes = [(k, v) for k, v in totals.items() if k[0] == "write" and k[1] != file]
    assert [v["calls"] for _, v in stdout_writes] == [1]
    assert [v["bytes"] for _, v in stdout_writes] == [len(out.stdout)]

    [fhash] = [h for h, name in trace.file_names().items() if name == file]
    preads = [e["args"] for e in _aggregates(trace, pid)
              if e["name"] == "pread" and e["args"]["fhash"] == fhash]  # fmt: skip
    assert min(a["offset_min"] for a in preads) == 0
    assert max(a["offset_max"] for a in preads) == (K - 1) * S
    for a in preads:  # every pread read S bytes: 2^12, the 13th bucket
        assert a["ret_log2"][13] == a["dft_cnt"] == sum(a["ret_log2"])
        assert a["ret_min"] == a["ret_max"] == S
        assert a["dur_min"] <= a["dur_max"] and a["dur_sum"] >= a["dur_max"]
    # the trace's own count of calls is the sum of the aggregates'
    assert trace.stats.events == sum(e["args"]["dft_cnt"] for e in trace.objects
                                     if e.get("ph") == 3)  # fmt: skip


def test_intervals_are_harvested_while_the_job_runs(session, compile_c, traced_user) -> None:
    """100,000 writes over 2 s in 100 ms intervals: aggregates reach the trace while the
    workload still runs (never the open interval), one per interval, and add up exactly."""
    binary = compile_c("flood.c", "flood")
    probes = [Probe(type=ProbeType.SYSCALLS, name="POSIX", functions=["write"])]
    n, rate, interval_ns = 100_000, 50_000, 100_000_000
    with session(probes, uid=traced_user.uid, profile_interval_ns=interval_ns) as s:
        proc = subprocess.Popen(as_user(traced_user, [str(binary), str(n), str(rate)]))
        harvested_while_running = 0
        deadline = time.monotonic() + 30  # not a fixed sleep: a loaded machine starts it late
        while not harvested_while_running and time.monotonic() < deadline:
            time.sleep(0.02)
            events = s.recording.stats().events
            if proc.poll() is not None:
                break  # read before the workload was seen to run still: not counted
            harvested_while_running = events
        assert proc.wait(timeout=60) == 0
    trace = s.trace
    assert trace is not None
    aggregates = _aggregates(trace, proc.pid)
    assert sum(e["args"]["dft_cnt"] for e in aggregates) == n
    assert (trace.stats.events, trace.stats.lost) == (n, 0)
    assert 0 < harvested_while_running < n
    starts = [e["ts"] for e in aggregates]
    assert len(set(starts)) == len(starts) >= 15  # one aggregate per interval
    # on the wall clock's whole tenths of a second, as on every node: the nodes' intervals
    # line up
    assert all(t % (interval_ns // 1000) == 0 for t in starts), starts
    assert all(time.time() - 60 < t / 1e6 < time.time() for t in starts)
    for e in aggregates:
        assert e["args"]["ret_sum"] == e["args"]["dft_cnt"]  # one byte each
        assert e["args"]["ret_log2"][1] == e["args"]["dft_cnt"]


def test_a_full_map_is_counted_lost(session, compile_c, traced_user, public_dir: Path) -> None:
    """Room for 2 aggregates, 3 threads writing each to its own file: the third thread's calls
    find no room and are counted lost, call by call; the trace holds the rest exactly."""
    binary = compile_c("threaded_writer.c", "threaded_writer")
    out = user_dir(public_dir, traced_user, "profile-full")
    probes = [Probe(type=ProbeType.SYSCALLS, name="POSIX", functions=["write"])]
    writes = 500
    with session(
        probes, uid=traced_user.uid, profile_interval_ns=NEVER_OVER_NS, profile_keys=2
    ) as s:
        subprocess.run(as_user(traced_user, [str(binary), str(out), "3", str(writes)]), check=True)
    trace = s.trace
    assert trace is not None
    calls = sum(e["args"]["dft_cnt"] for e in trace.objects if e.get("ph") == 3)
    assert trace.stats.loss.profile > 0
    assert calls + trace.stats.loss.profile == 3 * writes
    assert trace.stats.lost == trace.stats.loss.profile
    assert len([e for e in trace.objects if e.get("ph") == 3]) == 2


def test_the_summary_reads_a_profile_as_it_reads_a_trace(
    session, compile_c, traced_user, public_dir: Path
) -> None:
    """The same workload traced and profiled: datacrumbs_summary's calls and bytes per function
    and for the workload's file are the same from both traces."""
    binary = compile_c("file_io.c", "file_io")
    data = user_dir(public_dir, traced_user, "profile-summary") / "data.bin"
    results = {}
    for mode, interval in (("trace", 0), ("profile", 50_000_000)):
        with session([POSIX], uid=traced_user.uid, profile_interval_ns=interval) as s:
            out = subprocess.run(
                as_user(traced_user, [str(binary), str(data), str(K), str(S)]),
                check=True, capture_output=True, text=True,
            )  # fmt: skip
        assert s.trace is not None
        summary = summarize(s.trace.path, [int(out.stdout.split()[0])])
        assert summary.mode == mode
        functions = {(f.name, f.count, f.bytes) for f in summary.functions.values()}
        files = {(f.path, f.count, f.bytes) for f in summary.files if f.path == str(data)}
        results[mode] = (functions, files)
    assert results["trace"] == results["profile"]
    functions, files = results["profile"]
    assert ("write", K + 1, K * S + len(out.stdout)) in functions
    assert files == {(str(data), 2 * K + 3, 2 * K * S)}  # open, writes, preads, fsync, close


def test_io_uring_requests_are_aggregated_too(session, compile_c, public_dir, traced_user):
    """io_uring completions (added atomically: they may land on any CPU) sum to the requests
    made: N writes and N reads of S bytes at offsets 0 .. (N-1)*S, a readv of 2*S, a write to
    a registered file (no name)."""
    binary = compile_c("uring_io.c", "uring_io", "-luring")
    path = user_dir(public_dir, traced_user, "profile-uring") / "ring.bin"
    probes = [Probe(type=ProbeType.SYSCALLS, name="rings", functions=["io_uring_enter"])]
    n = 50
    with session(probes, uid=traced_user.uid, profile_interval_ns=10_000_000) as s:
        out = s.run(traced_user, [str(binary), str(path), str(n), str(S)])
    trace = s.trace
    assert trace is not None and trace.stats.lost == 0
    names = trace.file_names()
    totals: dict[tuple[str, str | None], list[int]] = defaultdict(lambda: [0, 0, 1 << 62, -1])
    for e in _aggregates(trace, int(out.stdout)):
        if e["args"]["syscall"] != "io_uring":
            continue
        a = e["args"]
        t = totals[(e["name"], names.get(a.get("fhash", "")))]
        t[0] += a["dft_cnt"]
        t[1] += a.get("ret_sum", 0)
        if "offset_min" in a:
            t[2], t[3] = min(t[2], a["offset_min"]), max(t[3], a["offset_max"])
    f = str(path)
    # n writes, then one through the registered file (named by the file it holds)
    assert totals[("write", f)] == [n + 1, (n + 1) * S, 0, n * S]
    assert totals[("read", f)] == [n, n * S, 0, (n - 1) * S]
    assert totals[("readv", f)] == [1, 2 * S, 0, 0]
    assert ("write", None) not in totals
    assert totals[("fsync", f)][0] == 1


@contextlib.contextmanager
def _idle_writer(binary: Path, user: User, n: int) -> Iterator[subprocess.Popen[str]]:
    """write_then_wait as ``user``: its ``n`` writes to /dev/null made (and its "ready" line
    to the pipe), it stays alive and idle until the block ends."""
    proc = subprocess.Popen(
        as_user(user, [str(binary), str(n)]),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        yield proc
    finally:
        proc.communicate("go\n", timeout=30)


def _on_file(trace: Trace, pid: int, path: str) -> list[dict]:
    """The process's aggregates of the file ``path``."""
    names = trace.file_names()
    return [e for e in _aggregates(trace, pid) if names.get(e["args"].get("fhash")) == path]


def test_an_idle_thread_s_last_aggregate_is_not_held_back(session, compile_c, traced_user):
    """A thread adds to the aggregate it holds while its calls keep one function, file and
    interval; one that then goes idle (compute, a barrier) still has its aggregate written
    once the interval is over (the harvest's task iterator takes it), not at its exit."""
    binary = compile_c("write_then_wait.c", "write_then_wait")
    probes = [Probe(type=ProbeType.SYSCALLS, name="POSIX", functions=["write"])]
    n = 1000
    with (
        session(probes, uid=traced_user.uid, profile_interval_ns=100_000_000) as s,
        _idle_writer(binary, traced_user, n) as proc,
    ):
        deadline = time.monotonic() + 30
        while s.recording.stats().events < n + 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        written_while_idle = s.recording.stats().events
        assert proc.poll() is None  # still alive, idle
    assert written_while_idle == n + 1  # and the "ready" line to the pipe
    trace = s.trace
    assert trace is not None and (trace.stats.events, trace.stats.lost) == (n + 1, 0)
    on_null = _on_file(trace, proc.pid, "/dev/null")
    assert sum(e["args"]["dft_cnt"] for e in on_null) == n
    assert len(on_null) <= 2  # one interval, or two if the loop crossed into the next


def test_what_a_live_thread_holds_is_taken_at_the_end(session, compile_c, traced_user):
    """Intervals of days: nothing is over while the job runs, so the thread still holds
    its aggregate when tracing stops; the last harvest takes it (the probes detached first, the
    task iterator over every thread), and it is exact."""
    binary = compile_c("write_then_wait.c", "write_then_wait")
    probes = [Probe(type=ProbeType.SYSCALLS, name="POSIX", functions=["write"])]
    n = 1000
    with contextlib.ExitStack() as outlives_tracing:
        with session(probes, uid=traced_user.uid, profile_interval_ns=NEVER_OVER_NS) as s:
            proc = outlives_tracing.enter_context(_idle_writer(binary, traced_user, n))
            time.sleep(0.3)  # several harvests: none may take the open interval
            assert s.recording.stats().events == 0
        assert proc.poll() is None  # tracing stopped while the thread lives
    trace = s.trace
    assert trace is not None and (trace.stats.events, trace.stats.lost) == (n + 1, 0)
    [on_null] = _on_file(trace, proc.pid, "/dev/null")
    assert on_null["args"]["dft_cnt"] == n


def test_uprobes_and_syscalls_of_one_thread_aggregate_together(
    session, compile_c, public_dir, traced_user
) -> None:
    """The C library's stdio functions (uprobes) and write(2) of one thread, in one interval:
    each (function, file) is one aggregate of exactly the calls made; fwrite's bytes are its
    items' bytes, and the write(2) that flushes them carries the same bytes."""
    binary = compile_c("stdio_files.c", "stdio_files")
    path = user_dir(public_dir, traced_user, "profile-stdio") / "notes.txt"
    libc = os.path.realpath(load_settings().libc_so)
    probes = [
        Probe(type=ProbeType.UPROBE, name="stdio", binary_path=libc,
              functions=["fopen", "fwrite", "fflush", "fclose", "fgets", "fread"]),
        Probe(type=ProbeType.SYSCALLS, name="POSIX", functions=["write"]),
    ]  # fmt: skip
    with session(probes, uid=traced_user.uid, profile_interval_ns=NEVER_OVER_NS) as s:
        out = s.run(traced_user, [str(binary), str(path)])
    trace = s.trace
    assert trace is not None and trace.stats.lost == 0
    assert all(o.attached for o in trace.outcomes), trace.outcomes
    names = trace.file_names()
    got = {
        (e["name"], e["cat"]): (e["args"]["dft_cnt"], e["args"].get("ret_sum"))
        for e in _aggregates(trace, int(out.stdout))
        if names.get(e["args"].get("fhash")) == str(path)
    }
    assert got == {
        ("fopen", "STDIO"): (2, None),
        ("fwrite", "STDIO"): (3, 33),
        ("fflush", "STDIO"): (1, None),
        ("fclose", "STDIO"): (2, None),
        ("fgets", "STDIO"): (4, None),  # three lines, then the end
        ("fread", "STDIO"): (1, 0),
        ("write", "POSIX"): (1, 33),  # the flush of the three lines
    }
