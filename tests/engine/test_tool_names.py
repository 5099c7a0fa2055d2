"""Names and layers as DFTracer's tools expect them (issue 26, item 4), on real traced programs:
the tools size and class an event by its ``cat`` and ``name``, so a call under the wrong name
or layer is traced exactly and still counts for nothing in their reports.

- M6: sendfile's tracepoint is ``sendfile64``; strace and the tools say ``sendfile``, and only
  under that name do its bytes count (profile records and ``datacrumbs_summary``).
- M8: dftracer-analyzer counts POSIX and STDIO events only: io_uring requests are POSIX
  events named as the call they do (a fixed-buffer read is a ``read``), marked
  ``args.syscall: "io_uring"``.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from dftracer_support import analyze
from engine_support import User, as_user, user_dir

from datacrumbs.common.probes import Probe, ProbeType
from datacrumbs.trace.summary import summarize

S = 4096
#: Python's os.sendfile from one file to another, S bytes a call until it returns 0; prints
#: its pid, the fds and what each call returned.
SENDFILE = """
import os, sys
src, dst, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
fi = os.open(src, os.O_RDONLY)
fo = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
offset, rets = 0, []
while not rets or rets[-1]:
    rets.append(os.sendfile(fo, fi, offset, size))
    offset += rets[-1]
print(os.getpid(), fo, fi, *rets)
"""
MODES = {"trace": 0, "profile": 50_000_000}


@pytest.mark.parametrize("mode", MODES)
def test_sendfile_is_named_sendfile_and_its_bytes_count(
    session, public_dir: Path, traced_user: User, mode: str
) -> None:
    work = user_dir(public_dir, traced_user, "sendfile")
    src = work / "src.bin"
    src.write_bytes(os.urandom(3 * S + 100))
    src.chmod(0o644)
    probes = [Probe(type=ProbeType.SYSCALLS, name="copies", functions=["sendfile64"])]
    with session(probes, uid=traced_user.uid, profile_interval_ns=MODES[mode]) as s:
        out = subprocess.run(
            as_user(traced_user, ["/usr/bin/python3", "-c", SENDFILE, str(src),
                                  str(work / "dst.bin"), str(S)]),
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
    trace = s.trace
    assert trace is not None and trace.stats.lost == 0
    pid, fo, _fi, *rets = map(int, out.split())
    assert rets == [S, S, S, 100, 0]
    assert (work / "dst.bin").read_bytes() == src.read_bytes()

    names = trace.file_names()
    dst, src_name = str(work / "dst.bin"), str(src)
    if mode == "trace":
        calls = [
            (e["name"], e["cat"], e["args"]["syscall"], e["args"]["fd"],
             names[e["args"]["fhash"]], names[e["args"]["in_fhash"]], e["args"]["size"],
             e["args"]["ret"])
            for e in trace.events_of(pid)
        ]  # fmt: skip
        assert calls == [("sendfile", "POSIX", "sendfile64", fo, dst, src_name, S, r) for r in rets]
    else:
        records = [e for e in trace.objects if e.get("ph") == 3 and e["pid"] == pid]
        assert {
            (e["name"], e["cat"], e["args"]["syscall"], names[e["args"]["fhash"]],
             names[e["args"]["in_fhash"]])
            for e in records
        } == {("sendfile", "POSIX", "sendfile64", dst, src_name)}  # fmt: skip
        assert sum(e["args"]["dft_cnt"] for e in records) == len(rets)
        assert sum(e["args"]["ret_sum"] for e in records) == sum(rets)
        assert max(e["args"]["ret_max"] for e in records) == S

    summary = summarize(trace.path, [pid])
    assert {(f.name, f.cat, f.count, f.bytes) for f in summary.functions.values()} == {
        ("sendfile", "copies", len(rets), 3 * S + 100)
    }
    # the bytes in both files' rows: written to dst.bin, read from src.bin
    assert {(f.path, f.count, f.bytes) for f in summary.files} == {
        (dst, len(rets), 3 * S + 100),
        (src_name, len(rets), 3 * S + 100),
    }


@pytest.mark.parametrize("mode", MODES)
def test_the_analyzer_counts_io_uring_requests_on_their_files(
    session, compile_c, public_dir: Path, traced_user: User, tmp_path: Path, mode: str
) -> None:
    """dftracer-analyzer's per-file read and write bytes and counts, on a workload of plain,
    vectored and fixed-buffer requests and requests through a registered file (fio's
    registerfiles=1) at depth 8, equal what the workload counted from its own completions."""
    binary = compile_c("uring_mix.c", "uring_mix", "-luring")
    work = user_dir(public_dir, traced_user, f"uring-analyzer-{mode}")
    probes = [Probe(type=ProbeType.SYSCALLS, name="rings", functions=["io_uring_enter"])]
    n = 60
    # aggregates as the released analyzer reads them: "ph": "C"
    config = {"profile_interval_ns": MODES[mode], "aggregate_ph": "C"}
    with session(probes, uid=traced_user.uid, **config) as s:
        out = s.run(traced_user, [str(binary), str(work), "2", str(n), str(S), "8"])
    trace = s.trace
    assert trace is not None and trace.stats.lost == 0
    pid, *rows = out.stdout.splitlines()
    own = {}
    for row in rows:
        path, writes, written, reads, read = row.split()
        own[path] = {
            "posix_write_count_sum": int(writes),
            "posix_write_size_sum": int(written),
            "posix_read_count_sum": int(reads),
            "posix_read_size_sum": int(read),
        }
    assert own == {
        str(work / f"mix-{f}.bin"): {
            "posix_write_count_sum": n,
            "posix_write_size_sum": n * S,
            "posix_read_count_sum": n,
            "posix_read_size_sum": n * S,
        }
        for f in range(2)
    }
    requests = [e for e in trace.objects if e.get("ph") in ("X", "C") and e["pid"] == int(pid)
                and e["args"]["syscall"] == "io_uring"]  # fmt: skip
    assert {(e["name"], e["cat"], e["args"]["opcode"]) for e in requests} == {
        ("read", "POSIX", "READ"), ("readv", "POSIX", "READV"), ("read", "POSIX", "READ_FIXED"),
        ("write", "POSIX", "WRITE"), ("writev", "POSIX", "WRITEV"),
        ("write", "POSIX", "WRITE_FIXED"), ("fsync", "POSIX", "FSYNC"),
    }  # fmt: skip

    _summary, by_file = analyze([trace.path], tmp_path)
    got = {
        path: {key: sums[key] for key in own[path]} for path, sums in by_file.items() if path in own
    }
    assert got == own
