"""A signed uprobe binary is pinned (issue 11, finding 1): swapped after signing for a symlink
to another file, or replaced by another file, it is refused in one line while the rest of the
probes run — and the other file's code stays untouched. Offsets must start a function."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from daemon_support import JOB_USER, Daemon, compile_c, run_as_job_user

from datacrumbs.ebpf.elf_symbols import ElfSymbols
from datacrumbs.trace.reading import read_trace_lines

SOURCE = Path(__file__).with_name("c") / "selfcheck.c"
POSIX = {"type": 0, "name": "posix", "functions": ["openat", "write", "close"]}
CALLS = 7


@pytest.fixture(scope="module")
def selfcheck(public_dir: Path) -> Path:
    return compile_c(SOURCE, public_dir / "selfcheck")


def _first_byte(binary: Path, as_user: bool = False) -> str:
    argv = [str(binary), "0"]
    out = (
        run_as_job_user(*argv)
        if as_user
        else subprocess.run(argv, check=True, capture_output=True, text=True)
    )
    return out.stdout.strip()


def _users_copy(selfcheck: Path, job_dir: Path) -> Path:
    app = job_dir / "app"
    shutil.copy(selfcheck, app)
    pw = pwd.getpwnam(JOB_USER)
    os.chown(app, pw.pw_uid, pw.pw_gid)
    return app


def _roots_copy(selfcheck: Path, public_dir: Path, job_dir: Path) -> Path:
    directory = public_dir / f"root-{job_dir.name}"
    directory.mkdir(mode=0o755)
    copy = directory / "selfcheck"
    shutil.copy(selfcheck, copy)
    return copy


def test_unswapped_binary_is_traced_every_call(
    run_env: dict[str, str], make_probe_file: Callable[..., Path], selfcheck: Path, job_dir: Path
) -> None:
    app = _users_copy(selfcheck, job_dir)
    original = _first_byte(app)
    uprobe = {"type": 2, "name": "app", "functions": ["dc_target"], "binary_path": str(app)}
    daemon = Daemon(make_probe_file([POSIX, uprobe]), "plain", env=run_env)
    ready = daemon.wait_ready("plain")
    trace = Path(ready.read_text().splitlines()[1])
    job = run_as_job_user(str(app), str(CALLS), "wait")  # until its uprobes are in place
    assert daemon.stop() == 0, daemon.stderr
    assert original != "cc" and job.stdout.strip() == "cc"  # the breakpoint, in the job only
    assert "4 attached, 0 failed" in daemon.stderr
    events = [json.loads(line) for line in read_trace_lines(trace)[1:-1]]
    calls = [e for e in events if e.get("ph") == "X" and e["name"] == "dc_target"]
    assert len(calls) == CALLS and {e["args"]["category"] for e in calls} == {"app"}


@pytest.mark.parametrize("swap", ["symlink", "replace"])
def test_swapped_binary_is_refused_and_the_other_file_untouched(
    run_env: dict[str, str],
    make_probe_file: Callable[..., Path],
    selfcheck: Path,
    job_dir: Path,
    public_dir: Path,
    swap: str,
) -> None:
    app = _users_copy(selfcheck, job_dir)
    copy = _roots_copy(selfcheck, public_dir, job_dir)
    original = _first_byte(copy)
    uprobe = {"type": 2, "name": "app", "functions": ["dc_target"], "binary_path": str(app)}
    probes = make_probe_file([POSIX, uprobe])  # signed: the identity of the user's app

    # After signing, the user points the signed path at root's copy of the same program.
    if swap == "symlink":
        run_as_job_user("ln", "-sf", str(copy), str(app))
        reason = f"binary {app} is a symbolic link; not following it"
    else:
        run_as_job_user("sh", "-c", f'cp "{copy}" "{app}.new" && mv "{app}.new" "{app}"')
        reason = f"binary {app} is not the file that was signed (ino, mtime_ns differ)"

    daemon = Daemon(probes, f"swap-{swap}", env=run_env)
    daemon.wait_ready(f"swap-{swap}")
    during = _first_byte(copy)  # root runs its copy while the job is traced
    assert daemon.stop() == 0, daemon.stderr
    assert during == original  # no breakpoint was planted in root's file
    assert f"cannot trace app:dc_target: {reason}" in daemon.stderr
    assert "probes: 4 requested, 3 attached, 1 failed" in daemon.stderr  # the rest ran


def test_offset_inside_a_function_is_refused(
    run_env: dict[str, str], make_probe_file: Callable[..., Path], selfcheck: Path, job_dir: Path
) -> None:
    app = _users_copy(selfcheck, job_dir)
    start = ElfSymbols.read(str(app)).offset("dc_target")
    inside = f"dc_target:{start + 1:#x}"
    uprobe = {"type": 2, "name": "app", "functions": [inside], "binary_path": str(app)}
    daemon = Daemon(make_probe_file([POSIX, uprobe]), "inside", env=run_env)
    daemon.wait_ready("inside")
    during = _first_byte(app, as_user=True)
    assert daemon.stop() == 0, daemon.stderr
    assert during != "cc"
    assert (
        f"cannot trace app:{inside}: offset {start + 1:#x} is not the start of a function of {app}"
    ) in daemon.stderr
