"""Every syscall that takes an fd or a path names its file(s) as strace does (issue 26, M4).

The oracle is ``strace -f -y`` running the same process while datacrumbs traces (then
profiles) it. A two-file call (copy_file_range, sendfile, splice, tee) is named by the file it
writes (``fhash``: DFTracer's tools count these calls as writes of the event's file) and
carries the file it reads as ``args.in_fhash``; ``datacrumbs_summary`` counts its bytes in each
file's row. chdir is named by the directory it went to.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections import Counter
from pathlib import Path

from engine_support import as_user, user_dir

from datacrumbs.common.dftracer_names import syscall_call_name
from datacrumbs.common.probes import Probe, ProbeType
from datacrumbs.trace.summary import summarize

NEVER_OVER_NS = 10**15  # profile intervals none of which ends during a test
CALLS = ["copy_file_range", "sendfile", "splice", "tee", "fallocate", "sync_file_range",
         "utimensat", "chdir", "fchdir", "symlink", "symlinkat", "readlinkat",
         "faccessat2"]  # fmt: skip
_LINE = re.compile(r"^(?P<tid>\d+) +(?P<name>\w+)\((?P<args>.*)\) += (?P<ret>-?\d+)")
_FD = re.compile(r"(?:^|, )(AT_FDCWD|-?\d+)(?:<([^>]*)>)?")
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')


def _expected(log: Path, cwd: str) -> dict[int, list[tuple[str, str | None, str | None, int]]]:
    """Per thread, (syscall, file, source file, ret) of each call in strace's log, named as
    the kernel resolves them: an fd by the path strace shows for it, a path joined to its
    dirfd's (or the working directory, which chdir and fchdir move)."""
    calls: dict[int, list[tuple[str, str | None, str | None, int]]] = {}
    for line in log.read_text().splitlines():
        m = _LINE.match(line)
        assert m, line
        name, args, ret = m["name"], m["args"], int(m["ret"])
        fds = [path for _, path in _FD.findall(args) if path is not None]
        strings = _STRING.findall(args)
        dirfd = _FD.match(args)
        base = dirfd[2] if dirfd and dirfd[2] else cwd
        source = None
        if name in ("copy_file_range", "splice", "tee"):
            file, source = fds[1], fds[0]
        elif name == "sendfile":
            file, source = fds[0], fds[1]
        elif name == "chdir":
            file = cwd = os.path.normpath(os.path.join(cwd, strings[0]))
        elif name == "fchdir":
            file = cwd = fds[0]
        elif name in ("symlink", "symlinkat"):  # the link made; its target is a string
            file = os.path.join(base, strings[1])
        elif strings:
            file = os.path.join(base, strings[0])
        else:  # utimensat(fd, NULL, ...), fallocate, sync_file_range: the fd's file
            file = fds[0]
        calls.setdefault(int(m["tid"]), []).append((name, file, source, ret))
    return calls


def _run(session, traced_user, argv: list[str], work: Path, **config):  # type: ignore[no-untyped-def]
    """Trace argv ("DIR" in it replaced by work, its working directory) under strace."""
    work.mkdir(exist_ok=True)
    os.chown(work, traced_user.uid, traced_user.gid)
    log = work.parent / f"{work.name}.strace"
    strace = ["strace", "-f", "-y", "-qq", "-o", str(log), "-e", f"trace={','.join(CALLS)}",
              *(str(work) if arg == "DIR" else arg for arg in argv)]  # fmt: skip
    probes = [Probe(type=ProbeType.SYSCALLS, name="posix", functions=CALLS)]
    with session(probes, uid=traced_user.uid, **config) as s:
        subprocess.run(as_user(traced_user, strace), check=True, capture_output=True, cwd=work)
    return s.trace, _expected(log, str(work))


def test_every_fd_and_path_of_the_file_calls_is_named_as_strace_names_it(
    session, compile_c, public_dir, traced_user
):
    top = user_dir(public_dir, traced_user, "file-calls")
    binary = compile_c("file_calls.c", "file_calls")
    trace, expected = _run(session, traced_user, [str(binary), "DIR"], top / "trace")
    names = trace.file_names()
    [(tid, calls)] = expected.items()
    assert len(calls) == 18
    events = sorted((e for e in trace.events if e["tid"] == tid), key=lambda e: e["ts"])
    ours = [
        (
            e["args"]["syscall"],
            names.get(e["args"].get("fhash")),
            names.get(e["args"].get("in_fhash")),
            e["args"]["ret"],
        )
        for e in events
    ]
    assert ours == calls
    own = str(top / "trace")
    assert ("copy_file_range", f"{own}/b.bin", f"{own}/a.bin", 65536) in ours
    assert ("chdir", f"{own}/sub", None, 0) in ours and ("fchdir", f"{own}/sub", None, 0) in ours
    # each side's bytes on its own file: a.bin read by three copies, b.bin and c.bin written
    files = {f.path: f.bytes for f in summarize(trace.path).files}
    assert files[f"{own}/b.bin"] == 65536
    assert files[f"{own}/c.bin"] == 65536 + 4096
    assert files[f"{own}/a.bin"] == 65536 + 65536 + 4096  # copy, sendfile, splice

    profile, expected = _run(session, traced_user, [str(binary), "DIR"], top / "profile",
                             profile_interval_ns=NEVER_OVER_NS)  # fmt: skip
    names = profile.file_names()
    [(tid, calls)] = expected.items()
    got: Counter[tuple[str, str | None, str | None]] = Counter()
    for e in profile.objects:
        if e.get("ph") == 3 and e["tid"] == tid:
            args = e["args"]
            key = (e["name"], names.get(args.get("fhash")), names.get(args.get("in_fhash")))
            got[key] += args["dft_cnt"]
    want = Counter((syscall_call_name(syscall), file, source) for syscall, file, source, _ in calls)
    assert got == want


def test_cp_s_copy_lands_on_both_files(session, public_dir, traced_user):
    """cp copies with copy_file_range: its 10 MiB are the destination's bytes written and the
    source's read, per event as strace names them, and in the summary's rows of both."""
    work = user_dir(public_dir, traced_user, "cp-copy") / "run"
    work.mkdir()
    source = work / "src.bin"
    source.write_bytes(os.urandom(10 << 20))
    source.chmod(0o644)
    trace, expected = _run(session, traced_user, ["cp", str(source), "dst.bin"], work)
    names = trace.file_names()
    [(tid, calls)] = expected.items()
    ours = [
        (e["args"]["syscall"], names.get(e["args"].get("fhash")),
         names.get(e["args"].get("in_fhash")), e["args"]["ret"])
        for e in sorted(trace.events, key=lambda e: e["ts"]) if e["tid"] == tid
    ]  # fmt: skip
    assert ours == calls
    assert ("copy_file_range", str(work / "dst.bin"), str(source), 10 << 20) in ours
    files = {f.path: f.bytes for f in summarize(trace.path).files}
    assert files == {str(work / "dst.bin"): 10 << 20, str(source): 10 << 20}
