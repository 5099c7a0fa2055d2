"""In-kernel filtering: other users' and other cgroups' events never reach the trace."""

from __future__ import annotations

import grp
import os
import subprocess
from pathlib import Path

import pytest
from engine_support import as_user, user_dir

from datacrumbs.common.probes import Probe, ProbeType
from datacrumbs.ebpf.cgroups import cgroup2_mounts

CALLS = ["openat", "write", "pread64", "fsync", "close"]
K, S = 50, 512


def _start(user, binary, path):
    return subprocess.Popen(
        as_user(user, [str(binary), str(path), str(K), str(S)]),
        stdout=subprocess.PIPE,
        text=True,
    )


def _on(trace, pid: int, name: str, path: Path) -> list[dict]:
    """Events ``name`` of ``pid`` on file ``path`` (the loader's own calls left out)."""
    hashes = {h for h, n in trace.file_names().items() if n == str(path)}
    return [e for e in trace.events_of(pid, name) if e["args"].get("fhash") in hashes]


def _pid_of(proc: subprocess.Popen) -> int:
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    return int(out.split()[0])


def test_other_users_events_never_reach_the_trace(
    session, compile_c, public_dir, traced_user, intruder_user
):
    binary = compile_c("file_io.c", "file_io")
    mine = user_dir(public_dir, traced_user, "filter-mine") / "data"
    theirs = user_dir(public_dir, intruder_user, "filter-theirs") / "data"
    probes = [Probe(type=ProbeType.SYSCALLS, name="POSIX", functions=CALLS)]
    with session(probes, uid=traced_user.uid) as s:
        procs = [_start(intruder_user, binary, theirs), _start(traced_user, binary, mine)]
        intruder_pid, traced_pid = (_pid_of(p) for p in procs)
    trace = s.trace

    assert {e["pid"] for e in trace.events} == {traced_pid}
    assert str(theirs) not in trace.file_names().values()
    assert str(mine) in trace.file_names().values()
    assert len(_on(trace, traced_pid, "write", mine)) == K
    assert len(_on(trace, traced_pid, "pread", mine)) == K
    assert not trace.events_of(intruder_pid)


def _unified_root() -> Path | None:
    mounts = cgroup2_mounts()
    return mounts[0] if mounts else None


@pytest.fixture
def child_cgroup(root):
    root = _unified_root()
    assert root is not None, "no cgroup v2 hierarchy is mounted (this machine kind has one)"
    path = root / f"dc-engine-test-{os.getpid()}"
    path.mkdir()
    yield path
    path.rmdir()


def test_cgroup_filter_traces_only_that_cgroup(
    session, compile_c, public_dir, traced_user, child_cgroup
):
    binary = compile_c("file_io.c", "file_io")
    inside = user_dir(public_dir, traced_user, "cgroup-inside") / "data"
    outside = user_dir(public_dir, traced_user, "cgroup-outside") / "data"
    probes = [Probe(type=ProbeType.SYSCALLS, name="POSIX", functions=CALLS)]
    with session(probes, uid=traced_user.uid, cgroup=str(child_cgroup)) as s:
        # the shell (root, untraced) moves itself into the cgroup, then becomes the workload
        procs = [
            subprocess.Popen(
                [
                    "sh",
                    "-c",
                    f'echo $$ > {child_cgroup}/cgroup.procs && exec "$@"',
                    "sh",
                    *as_user(traced_user, [str(binary), str(inside), str(K), str(S)]),
                ],
                stdout=subprocess.PIPE,
                text=True,
            ),
            _start(traced_user, binary, outside),
        ]
        inside_pid, outside_pid = (_pid_of(p) for p in procs)
    trace = s.trace

    assert {e["pid"] for e in trace.events} == {inside_pid}
    assert str(inside) in trace.file_names().values()
    assert str(outside) not in trace.file_names().values()
    assert len(_on(trace, inside_pid, "write", inside)) == K
    assert not trace.events_of(outside_pid)


def test_cgroup_given_by_id_is_resolved_to_its_directory(child_cgroup):
    from datacrumbs.ebpf.cgroups import resolve_cgroup

    assert resolve_cgroup(os.stat(child_cgroup).st_ino) == child_cgroup


def test_setuid_helper_the_user_runs_is_not_traced(session, compile_c, public_dir, traced_user):
    """A setuid-root program keeps the user's real uid but acts as root: its reads and file
    names are root's, not the user's to see (issue 11, finding 3)."""
    binary = compile_c("file_io.c", "file_io")
    helper = public_dir / "file_io_setuid_root"
    helper.write_bytes(binary.read_bytes())
    os.chown(helper, 0, 0)
    os.chmod(helper, 0o4755)
    roots = public_dir / "setuid-root"
    roots.mkdir(mode=0o755, exist_ok=True)  # root's: only the helper (euid 0) can write in it
    mine = user_dir(public_dir, traced_user, "setuid-mine") / "data"
    probes = [Probe(type=ProbeType.SYSCALLS, name="POSIX", functions=CALLS)]
    with session(probes, uid=traced_user.uid) as s:
        procs = [_start(traced_user, helper, roots / "data"), _start(traced_user, binary, mine)]
        helper_pid, plain_pid = (_pid_of(p) for p in procs)
    trace = s.trace

    assert (roots / "data").stat().st_uid == 0  # the helper did run as root
    assert not trace.events_of(helper_pid)
    assert str(roots / "data") not in trace.file_names().values()
    assert len(_on(trace, plain_pid, "write", mine)) == K
    assert len(_on(trace, plain_pid, "pread", mine)) == K


def _privileged_copy(binary: Path, name: str, mode: int, group: int = 0) -> Path:
    helper = binary.with_name(name)
    helper.write_bytes(binary.read_bytes())
    os.chown(helper, 0, group)
    os.chmod(helper, mode)  # after chown, which clears set-id bits
    return helper


def test_setgid_and_capability_helpers_are_not_traced(session, compile_c, public_dir, traced_user):
    """Trace only what the user could ptrace (issue 25, N1): a setgid program, one with a file
    capability, and a setgid program that gave its group back before doing anything (its
    credentials are the user's again; its mm stays undumpable) are never traced; the same
    program without the privileges is, call for call."""
    binary = compile_c("file_io.c", "file_io")
    shadow = grp.getgrnam("shadow").gr_gid  # a group the traced user is not in
    setgid = _privileged_copy(binary, "file_io_setgid", 0o2755, shadow)
    capable = _privileged_copy(binary, "file_io_cap", 0o755)
    subprocess.run(["setcap", "cap_dac_read_search+ep", str(capable)], check=True)
    dropped = _privileged_copy(compile_c("after_drop.c", "after_drop"), "after_drop_sgid",
                               0o2755, shadow)  # fmt: skip
    mine = user_dir(public_dir, traced_user, "privileged")
    probes = [Probe(type=ProbeType.SYSCALLS, name="POSIX", functions=CALLS)]
    with session(probes, uid=traced_user.uid) as s:
        procs = [_start(traced_user, helper, mine / helper.name)
                 for helper in (setgid, capable, binary)]  # fmt: skip
        drop = subprocess.run(as_user(traced_user, [str(dropped), str(mine / "drop"), "7"]),
                              capture_output=True, text=True, check=True)  # fmt: skip
        setgid_pid, capable_pid, plain_pid = (_pid_of(p) for p in procs)
    trace = s.trace

    assert (mine / setgid.name).stat().st_gid == shadow  # it did run with the group
    for pid in (setgid_pid, capable_pid, int(drop.stdout)):
        assert not trace.events_of(pid), pid
    assert {str(mine / setgid.name), str(mine / capable.name), str(mine / "drop")}.isdisjoint(
        trace.file_names().values()
    )
    assert len(_on(trace, plain_pid, "write", mine / binary.name)) == K
    assert len(_on(trace, plain_pid, "pread", mine / binary.name)) == K


def _step_daemon(title: str, script: str, *wrapper: str) -> subprocess.Popen:
    """A root shell whose command line is ``title`` (as slurmstepd's reads ``slurmstepd:
    [<job>.<step>]``) running ``script`` (under ``wrapper``); stdout piped."""
    argv = [*wrapper, "bash", "-c", f'exec -a "{title}" sh -c "$0"', script]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)


def test_parent_cmdline_traces_the_step_daemons_descendants_alone(
    session, compile_c, public_dir, traced_user
):
    """A scheduler without job cgroups: the processes a step daemon of the job forks, and their
    children, are traced, also below a pid namespace of the node's; the same user's process
    under another job's step daemon (whose title only starts alike) and outside any are not.
    (A step daemon in a sibling pid namespace, another machine on the same kernel, is not the
    node's: tests/slurm.)"""
    binary = compile_c("file_io.c", "file_io")
    base = user_dir(public_dir, traced_user, "parent-cmdline")
    run = " ".join(as_user(traced_user, [str(binary)]))
    # the task itself, and a task started by a shell the step daemon started (a grandchild)
    shell = " ".join(as_user(traced_user, ["sh", "-c"]))
    job = f"{run} {base}/task {K} {S}; {shell} '{binary} {base}/grandchild {K} {S}'"
    with session(
        [Probe(type=ProbeType.SYSCALLS, name="POSIX", functions=CALLS)],
        uid=traced_user.uid,
        parent_cmdline="fakestepd: [77.",
    ) as s:
        procs = [
            _step_daemon("fakestepd: [77.0]", job),
            _step_daemon("fakestepd: [770.0]", f"{run} {base}/other-job {K} {S}"),
            _start(traced_user, binary, base / "outside"),
            _step_daemon("fakestepd: [77.1]", f"{run} {base}/contained {K} {S}",
                         "unshare", "--pid", "--fork", "--mount-proc"),
        ]  # fmt: skip
        outs = [p.communicate(timeout=60)[0] for p in procs]
        assert all(p.returncode == 0 for p in procs)
    trace = s.trace
    task, grandchild = (int(line.split()[0]) for line in outs[0].splitlines())
    other_job, outside = (int(out.split()[0]) for out in outs[1:3])
    traced = {e["pid"] for e in trace.events}
    # the two tasks, the user's shell between the step daemon and the grandchild, the task
    # in the pid namespace (its host pid)
    assert {task, grandchild} < traced and len(traced) == 4
    assert other_job not in traced and outside not in traced
    [contained] = {pid for pid in traced if _on(trace, pid, "write", base / "contained")}
    assert len(_on(trace, contained, "write", base / "contained")) == K
    for pid, name in ((task, "task"), (grandchild, "grandchild")):
        assert len(_on(trace, pid, "write", base / name)) == K
        assert len(_on(trace, pid, "pread", base / name)) == K
    names = set(trace.file_names().values())
    assert str(base / "other-job") not in names and str(base / "outside") not in names
