"""File names of fd-based calls agree with strace's (issue 13): an fd reached through dup2 (as
dd's of= is), dup, fcntl(F_DUPFD) or fstat names the file it was opened for, a pipe dup2'd over
a named fd is named as the pipe it is, and fds inherited from the parent are named too.

The oracle is ``strace -f -y`` running the same process while datacrumbs traces it: for every
read, write and fstat of the process, datacrumbs' file name must be the one strace shows for
the fd (/proc/PID/fd's: the real path, "pipe:[ino]", "socket:[ino]").
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


def _strace_calls(log: Path) -> list[tuple[int, str, str | None]]:
    """(pid, syscall, name strace gives its fd) of each call in strace's log."""
    calls = []
    for line in log.read_text().splitlines():
        if m := _STRACE.match(line):
            pid, name, _fd, path = m.groups()
            calls.append((int(pid), name, path))
    return calls


def _traced_under_strace(session, traced_user, argv: list[str], work: Path):  # type: ignore[no-untyped-def]
    log = work / "strace.log"
    probes = [Probe(type=ProbeType.SYSCALLS, name="posix", functions=SYSCALLS)]
    strace = ["strace", "-f", "-y", "-qq", "-o", str(log),
              "-e", "trace=openat,read,write,newfstatat,fstat", *argv]  # fmt: skip
    with session(probes, uid=traced_user.uid) as s:
        subprocess.run(as_user(traced_user, strace), check=True, capture_output=True, cwd=work)
    return s.trace, _strace_calls(log)


def _compare(trace, calls) -> int:  # type: ignore[no-untyped-def]
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
            if name == "newfstatat" and path is None:
                continue  # a stat by path: named by its path, not by an fd
            assert mine == path, (pid, name, path)
            checked += 1
    return checked


def test_names_through_dup_dup2_fcntl_and_fstat_are_strace_s(
    session, compile_c, public_dir, traced_user
):
    binary = compile_c("fd_names.c", "fd_names")
    work = user_dir(public_dir, traced_user, "fd-names")
    target = work / "out.txt"
    trace, calls = _traced_under_strace(session, traced_user, [str(binary), str(target)], work)
    pid = int(next(p for p, name, _ in calls if name == "write"))
    writes = [e for e in trace.events_of(pid) if e["name"] == "write"]
    names = trace.file_names()
    got = [(e["args"]["ret"], names.get(e["args"].get("fhash"))) for e in writes]
    assert [ret for ret, _ in got] == [len(str(pid)) + 1, 11, 12, 13, 14]
    stdout, own_pipe = got[0][1], got[4][1]
    assert stdout is not None and stdout.startswith("pipe:[")  # a pipe it inherited
    assert [name for _, name in got[1:4]] == [str(target)] * 3  # dup2, dup, F_DUPFD_CLOEXEC
    # the pipe dup2'd over the named fd: named as that pipe, not with the file's stale name
    assert own_pipe is not None and own_pipe.startswith("pipe:[") and own_pipe != stdout
    [fstat] = [e for e in trace.events_of(pid) if e["args"]["syscall"] == "newfstatat"
               and e["args"]["dirfd"] == 7]  # fmt: skip
    assert names[fstat["args"]["fhash"]] == str(target)
    assert _compare(trace, calls) >= 5


def test_dd_of_is_named_as_strace_names_it(session, public_dir, traced_user):
    work = user_dir(public_dir, traced_user, "dd-names")
    source, target = work / "in.bin", work / "out.bin"
    source.write_bytes(b"x" * 4096 * 8)
    source.chmod(0o644)
    trace, calls = _traced_under_strace(
        session, traced_user,
        ["dd", f"if={source}", f"of={target}", "bs=4096", "status=none"], work,
    )  # fmt: skip
    assert {str(source), str(target)} <= {path for _, _, path in calls}
    assert _compare(trace, calls) >= 16  # 8 reads of if=, 8 writes of of= at least


def test_names_are_right_when_only_the_data_calls_are_traced(
    session, compile_c, public_dir, traced_user
):
    # open, close, dup2, dup, fcntl not asked for: the fds are named by the files they hold.
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
    assert {e["name"] for e in events} == {"write"}
    got = [(e["args"]["ret"], names.get(e["args"].get("fhash"))) for e in events]
    assert [ret for ret, _ in got] == [len(str(pid)) + 1, 11, 12, 13, 14]
    assert [name for _, name in got[1:4]] == [str(target)] * 3
    assert all(str(name).startswith("pipe:[") for _, name in (got[0], got[4]))


def test_a_threaded_writer_is_named_and_counted_as_strace_sees_it(
    session, compile_c, public_dir, traced_user
):
    binary = compile_c("threaded_writer.c", "threaded_writer", "-pthread")
    work = user_dir(public_dir, traced_user, "threaded")
    trace, calls = _traced_under_strace(
        session, traced_user, [str(binary), str(work), "4", "50"], work
    )
    files = {str(work / f"thread-{i}.out") for i in range(4)}
    assert files <= {path for _, _, path in calls}
    assert _compare(trace, calls) >= 4 * 50  # every write named, per thread
    tids = {e["tid"] for e in trace.events if e["args"]["syscall"] == "write"
            and trace.file_names().get(e["args"].get("fhash")) in files}  # fmt: skip
    assert len(tids) == 4


_CALL = re.compile(
    r"^(?P<tid>\d+) +(?P<name>\w+)\((?P<dirfd>AT_FDCWD|-?\d+)(?:<(?P<base>[^>]*)>)?"
    r'(?:, "(?P<path>[^"]*)")?.*\) += (?P<ret>-?\d+)(?:<(?P<opened>[^>]*)>)?'
)


def _resolved(base: str, path: str) -> str:
    """A path argument as the kernel resolves it: absolute, or under the directory it is
    relative to ("./" dropped, nothing else normalised)."""
    if path.startswith("/"):
        return path
    path = path.removeprefix("./") if path != "." else ""
    return base if not path else f"{base.rstrip('/')}/{path}"


def test_tar_names_relative_and_dirfd_paths_as_the_kernel_resolves_them(
    session, public_dir, traced_user
):
    """tar creates an archive from a directory named relative to its cwd, and extracts it with
    -C: openat/newfstatat/mkdirat relative to AT_FDCWD and to directory fds. Every call is named
    as strace -y resolves it: an opened fd by its real path, a path argument joined to the
    directory strace shows for its dirfd."""
    work = user_dir(public_dir, traced_user, "tar-names")
    (work / "src" / "sub").mkdir(parents=True)
    (work / "src" / "a.txt").write_text("hello\n")
    (work / "src" / "sub" / "b.txt").write_text("world\n" * 1000)
    (work / "out").mkdir()
    for path in (work / "src", work / "src" / "sub", work / "out"):
        os.chown(path, traced_user.uid, traced_user.gid)
    probes = [Probe(type=ProbeType.SYSCALLS, name="posix",
                    functions=["openat", "read", "write", "newfstatat", "mkdirat"])]  # fmt: skip
    logs = [work / "create.log", work / "extract.log"]
    runs = (["tar", "-cf", "arch.tar", "src"], ["tar", "-C", "out", "-xf", "arch.tar"])
    watched = "trace=openat,read,write,newfstatat,mkdirat,chdir,fchdir"
    with session(probes, uid=traced_user.uid) as s:
        for log, argv in zip(logs, runs, strict=True):
            strace = ["strace", "-f", "-y", "-qq", "-o", str(log), "-e", watched, *argv]
            subprocess.run(as_user(traced_user, strace), check=True, capture_output=True, cwd=work)
    assert (work / "out" / "src" / "sub" / "b.txt").read_text() == "world\n" * 1000
    names = s.trace.file_names()
    expected: dict[int, list[tuple[str, str | None]]] = {}
    for log in logs:
        for line in log.read_text().splitlines():
            m = _CALL.match(line)
            assert m, line
            name, base, path, ret = m["name"], m["base"], m["path"], int(m["ret"])
            assert name not in ("chdir", "fchdir")  # the cwd strace shows is the one in force
            if name == "openat" and ret >= 0:
                want = m["opened"]
            elif path and name != "read" and name != "write":  # a path, against its dirfd's
                want = _resolved(base, path)
            else:
                want = base  # the fd's own file (read, write, fstat)
            expected.setdefault(int(m["tid"]), []).append((name, want))
    relative = 0
    for tid, calls in expected.items():
        events = sorted((e for e in s.trace.events if e["tid"] == tid), key=lambda e: e["ts"])
        ours = [(e["args"]["syscall"], names.get(e["args"].get("fhash"))) for e in events]
        assert ours == calls, tid
        relative += sum(1 for _, want in calls if want and want.startswith(str(work)))
    assert relative >= 20  # the archive, src/, src/sub, a.txt, b.txt, out/... all named
