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
from collections import Counter
from pathlib import Path

import pytest
from engine_support import as_user, user_dir

from datacrumbs.common.probes import Probe, ProbeType

SYSCALLS = ["openat", "read", "write", "close", "dup", "dup2", "dup3", "fcntl", "newfstatat"]
_STRACE = re.compile(r"^(\d+) +(\w+)\((?:(-?\d+)(?:<([^>]*)>(\(deleted\))?)?)?")


def _strace_calls(log: Path) -> list[tuple[int, str, str | None]]:
    """(pid, syscall, name strace gives its fd) of each call in strace's log. strace marks an
    unlinked file's fd ``3</a/b>(deleted)``; the name is written as /proc/PID/fd (d_path) and
    datacrumbs write it, "/a/b (deleted)"."""
    calls = []
    for line in log.read_text().splitlines():
        if m := _STRACE.match(line):
            pid, name, _fd, path, deleted = m.groups()
            calls.append((int(pid), name, f"{path} (deleted)" if deleted else path))
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


# Issue 26, M1 and M2: an fd's name is what the fd holds now, not what its memory held.
NEVER_OVER_NS = 10**15  # profile intervals none of which ends during a test


def _profiled_under_strace(session, traced_user, argv: list[str], work: Path):  # type: ignore[no-untyped-def]
    """The same as _traced_under_strace, with the calls aggregated (profile mode)."""
    log = work / "strace-profile.log"
    probes = [Probe(type=ProbeType.SYSCALLS, name="posix", functions=SYSCALLS)]
    strace = ["strace", "-f", "-y", "-qq", "-o", str(log),
              "-e", "trace=openat,read,write,newfstatat,fstat", *argv]  # fmt: skip
    with session(probes, uid=traced_user.uid, profile_interval_ns=NEVER_OVER_NS) as s:
        subprocess.run(as_user(traced_user, strace), check=True, capture_output=True, cwd=work)
    return s.trace, _strace_calls(log)


def _compare_profile(trace, calls) -> int:  # type: ignore[no-untyped-def]
    """Profile mode: the calls of each (process, read or write, file name) are strace's (whose
    own calls are left out)."""
    names = trace.file_names()
    pids = {pid for pid, _, _ in calls}
    ours: Counter[tuple[int, str, str | None]] = Counter()
    for e in trace.objects:
        if e.get("ph") == 3 and e["pid"] in pids and e["name"] in ("read", "write"):
            ours[(e["pid"], e["name"], names.get(e["args"].get("fhash")))] += e["args"]["dft_cnt"]
    theirs = Counter((p, name, path) for p, name, path in calls if name in ("read", "write"))
    assert ours == theirs
    return sum(theirs.values())


def _both_modes(session, traced_user, argv: list[str], work: Path) -> list[str | None]:  # type: ignore[no-untyped-def]
    """Run argv (its "DIR" replaced by a directory of the run's own) under strace traced, then
    profiled: every read and write named as strace names it, per event (trace) and per
    (process, call, file) (profile). Returns the names strace gave the trace run's writes, in
    order."""
    runs = []
    for mode in ("trace", "profile"):
        own = work / mode
        own.mkdir()
        os.chown(own, traced_user.uid, traced_user.gid)
        runs.append([str(own) if arg == "DIR" else arg for arg in argv])
    trace, calls = _traced_under_strace(session, traced_user, runs[0], work / "trace")
    assert _compare(trace, calls) >= sum(1 for _, name, _ in calls if name in ("read", "write"))
    profile, profile_calls = _profiled_under_strace(session, traced_user, runs[1], work / "profile")
    assert _compare_profile(profile, profile_calls) > 0
    return [path for _, name, path in calls if name == "write"]


@pytest.mark.parametrize("kind", ["pipe", "socket", "eventfd", "memfd"])
def test_a_file_opened_on_the_fd_of_a_closed_object_takes_its_own_name(
    session, compile_c, public_dir, traced_user, kind
):
    """200 rounds of: the object made, written and read through (named), closed; a new file
    opened on its fd and written. The object's dentry is freed at close and the new file's
    may take its memory: the name must still be the new file's, every round."""
    binary = compile_c("fd_reuse.c", "fd_reuse")
    work = user_dir(public_dir, traced_user, f"fd-reuse-{kind}")
    writes = _both_modes(session, traced_user, [str(binary), kind, "DIR", "200"], work)
    assert writes[2::2] == [str(work / "trace" / f"new{i:03d}") for i in range(200)]
    prefix = {"eventfd": "anon_inode:[eventfd]", "memfd": "/memfd:dc-memfd (deleted)"}
    assert all(str(name).startswith(prefix.get(kind, f"{kind}:[")) for name in writes[1::2])


def test_bash_names_each_redirect_target(session, public_dir, traced_user):
    """bash reads $(seq 20) from a pipe, then opens each f$i on the fds it had: every echo's
    write is named by its own file, never after the pipe."""
    work = user_dir(public_dir, traced_user, "bash-redirects")
    script = "for i in $(seq 20); do echo x > f$i; done"
    writes = _both_modes(session, traced_user, ["bash", "-c", script], work)
    assert [w for w in writes if not str(w).startswith("pipe:[")] == [
        str(work / "trace" / f"f{i}") for i in range(1, 21)
    ]


def test_a_rename_of_an_open_file_or_its_directory_names_its_next_call_anew(
    session, compile_c, public_dir, traced_user
):
    binary = compile_c("fd_reuse.c", "fd_reuse")
    work = user_dir(public_dir, traced_user, "fd-rename")
    writes = _both_modes(session, traced_user, [str(binary), "rename", "DIR", "20"], work)
    expected, own = [], work / "trace"
    for i in range(20):
        expected += [f"{own}/d{i}/a", f"{own}/d{i}/b", f"{own}/e{i}/b"]
    assert writes[1:] == expected  # after the pid, to stdout


def test_a_file_unlinked_while_open_is_named_deleted_as_strace_names_it(
    session, compile_c, public_dir, traced_user
):
    binary = compile_c("fd_reuse.c", "fd_reuse")
    work = user_dir(public_dir, traced_user, "fd-unlink")
    writes = _both_modes(session, traced_user, [str(binary), "unlink", "DIR", "20"], work)
    expected, own = [], work / "trace"
    for i in range(20):
        expected += [f"{own}/u{i}", f"{own}/u{i} (deleted)"]
    assert writes[1:] == expected
