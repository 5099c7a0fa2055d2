"""File names of fd-based calls agree with strace's (issue 13): an fd reached through dup2 (as
dd's of= is), dup, fcntl(F_DUPFD) or fstat names the file it was opened for, and a pipe dup2'd
over a named fd is not given the old name.

The oracle is ``strace -f -y`` running the same process while datacrumbs traces it: for every
read, write and fstat of the process, datacrumbs' file name must be strace's wherever strace
names a file the process opened itself (fds it inherited, pipes and sockets have no name in
the trace).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from engine_support import as_user, user_dir

from datacrumbs.common.probes import Probe, ProbeType

SYSCALLS = ["openat", "read", "write", "close", "dup", "dup2", "dup3", "fcntl", "newfstatat"]
_STRACE = re.compile(r"^(\d+) +(\w+)\((?:(-?\d+)(?:<([^>]*)>)?)?")


def _strace_calls(log: Path) -> tuple[list[tuple[int, str, str | None]], set[str]]:
    """(pid, syscall, path of its fd) of each call in strace's log, and the paths opened
    (resolved: strace names an fd by its real path, datacrumbs by the path as opened)."""
    calls, opened = [], set()
    pending: dict[str, str] = {}  # tid -> path of its openat that another thread interrupted
    for line in log.read_text().splitlines():
        if (r := re.match(r"^(\d+) +<\.\.\. openat resumed>.* = (\d+)", line)) and (
            r.group(1) in pending
        ):
            opened.add(os.path.realpath(pending.pop(r.group(1))))
            continue
        m = _STRACE.match(line)
        if m is None:
            continue
        pid, name, _fd, path = m.groups()
        o = re.search(r'"([^"]+)"', line)
        if name == "openat" and o and line.endswith("<unfinished ...>"):
            pending[pid] = o.group(1)
        elif name == "openat" and o and " = " in line and "= -1" not in line:
            opened.add(os.path.realpath(o.group(1)))  # strace -y shows resolved paths
        calls.append((int(pid), name, path))
    return calls, opened


def _traced_under_strace(session, traced_user, argv: list[str], work: Path):  # type: ignore[no-untyped-def]
    log = work / "strace.log"
    probes = [Probe(type=ProbeType.SYSCALLS, name="posix", functions=SYSCALLS)]
    strace = ["strace", "-f", "-y", "-qq", "-o", str(log),
              "-e", "trace=openat,read,write,newfstatat,fstat", *argv]  # fmt: skip
    with session(probes, uid=traced_user.uid) as s:
        subprocess.run(as_user(traced_user, strace), check=True, capture_output=True, cwd=work)
    return s.trace, *_strace_calls(log)


def _compare(trace, calls, opened) -> int:  # type: ignore[no-untyped-def]
    """Match datacrumbs' read/write/fstat events with strace's calls, in order per thread
    (strace -f names each thread by its tid)."""
    names = trace.file_names()
    checked = 0
    pids = {pid for pid, _, _ in calls}
    for pid in pids:
        ours = [
            (e["args"]["syscall"], names.get(e["args"].get("fhash")))
            for e in sorted(trace.events, key=lambda e: e["ts"])
            if e["tid"] == pid and e["args"]["syscall"] in ("read", "write", "newfstatat")
        ]
        theirs = [
            ("newfstatat" if name in ("fstat", "newfstatat") else name, path)
            for p, name, path in calls
            if p == pid and name in ("read", "write", "newfstatat", "fstat")
        ]
        assert [n for n, _ in ours] == [n for n, _ in theirs], pid
        for (name, mine), (_, path) in zip(ours, theirs, strict=True):
            expected = path if path in opened else None
            if name == "newfstatat" and path is None:
                continue  # a stat by path: named by its path, not by an fd
            assert (os.path.realpath(mine) if mine else None) == expected, (pid, name, path)
            checked += expected is not None
    return checked


def test_names_through_dup_dup2_fcntl_and_fstat_are_strace_s(
    session, compile_c, public_dir, traced_user
):
    binary = compile_c("fd_names.c", "fd_names")
    work = user_dir(public_dir, traced_user, "fd-names")
    target = work / "out.txt"
    trace, calls, opened = _traced_under_strace(
        session, traced_user, [str(binary), str(target)], work
    )
    pid = int(next(p for p, name, _ in calls if name == "write"))
    writes = [e for e in trace.events_of(pid) if e["name"] == "write"]
    names = trace.file_names()
    assert [(e["args"]["ret"], names.get(e["args"].get("fhash"))) for e in writes] == [
        (len(str(pid)) + 1, None),  # its pid on stdout: a pipe it inherited
        (11, str(target)),  # dup2
        (12, str(target)),  # dup
        (13, str(target)),  # fcntl(F_DUPFD_CLOEXEC)
        (14, None),  # the pipe dup2'd over the named fd: no stale name
    ]
    [fstat] = [e for e in trace.events_of(pid) if e["args"]["syscall"] == "newfstatat"
               and e["args"]["dirfd"] == 7]  # fmt: skip
    assert names[fstat["args"]["fhash"]] == str(target)
    assert _compare(trace, calls, opened) >= 5


def test_dd_of_is_named_as_strace_names_it(session, public_dir, traced_user):
    work = user_dir(public_dir, traced_user, "dd-names")
    source, target = work / "in.bin", work / "out.bin"
    source.write_bytes(b"x" * 4096 * 8)
    source.chmod(0o644)
    trace, calls, opened = _traced_under_strace(
        session, traced_user,
        ["dd", f"if={source}", f"of={target}", "bs=4096", "status=none"], work,
    )  # fmt: skip
    assert {str(source), str(target)} <= opened
    assert _compare(trace, calls, opened) >= 16  # 8 reads of if=, 8 writes of of= at least


def test_names_are_right_when_only_the_data_calls_are_traced(
    session, compile_c, public_dir, traced_user
):
    # open, close, dup2, dup, fcntl not asked for: kept quietly for the fd names (no events).
    binary = compile_c("fd_names.c", "fd_names")
    work = user_dir(public_dir, traced_user, "fd-names-quiet")
    target = work / "out.txt"
    probes = [Probe(type=ProbeType.SYSCALLS, name="posix", functions=["write"])]
    with session(probes, uid=traced_user.uid) as s:
        out = subprocess.run(
            as_user(traced_user, [str(binary), str(target)]), capture_output=True, text=True,
            check=True, cwd=work,
        ).stdout  # fmt: skip
    pid = int(out.split()[0])
    names = s.trace.file_names()
    events = sorted(s.trace.events_of(pid), key=lambda e: e["ts"])
    assert {e["name"] for e in events} == {"write"}  # the quiet ones wrote nothing
    assert [(e["args"]["ret"], names.get(e["args"].get("fhash"))) for e in events] == [
        (len(str(pid)) + 1, None),
        (11, str(target)),
        (12, str(target)),
        (13, str(target)),
        (14, None),  # the pipe over the named fd
    ]


def test_a_threaded_writer_is_named_and_counted_as_strace_sees_it(
    session, compile_c, public_dir, traced_user
):
    binary = compile_c("threaded_writer.c", "threaded_writer", "-pthread")
    work = user_dir(public_dir, traced_user, "threaded")
    trace, calls, opened = _traced_under_strace(
        session, traced_user, [str(binary), str(work), "4", "50"], work
    )
    files = {str(work / f"thread-{i}.out") for i in range(4)}
    assert files <= opened
    assert _compare(trace, calls, opened) >= 4 * 50  # every write named, per thread
    tids = {e["tid"] for e in trace.events if e["args"]["syscall"] == "write"
            and trace.file_names().get(e["args"].get("fhash")) in files}  # fmt: skip
    assert len(tids) == 4
