"""DATACRUMBS_JOB_CGROUP: the daemon traces the job's cgroup, not every process of the user
(issue 14) — real cgroup v2 directories, real processes of the same user inside and outside.

A scheduler's prolog runs before the job's cgroup exists: the daemon then traces nothing of the
user until the directory appears, and from then on the job's processes alone."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from daemon_support import Daemon, as_job_user, run_daemon

from datacrumbs.ebpf.cgroups import cgroup2_mounts
from datacrumbs.trace.reading import read_trace_lines

K, S = 7, 512
POSIX = [{"type": 0, "name": "posix", "functions": ["openat", "write", "close"]}]


@pytest.fixture
def cgroup_base() -> Iterator[Path]:
    """A fresh cgroup v2 directory of the test's own (found from the mounts: on this machine
    kind v2 is /sys/fs/cgroup/unified), removed with everything below it."""
    base = cgroup2_mounts()[0] / f"dc-test-{uuid.uuid4().hex[:8]}"
    base.mkdir()
    yield base
    for directory in sorted(base.rglob("*"), key=lambda p: -len(p.parts)):
        if directory.is_dir():
            directory.rmdir()
    base.rmdir()


def _run_in(cgroup: Path | None, file_io: Path, data: Path) -> int:
    """Run the file workload as the job user (inside ``cgroup`` when given); its pid."""
    argv = as_job_user([str(file_io), str(data), str(K), str(S)])
    if cgroup is not None:  # root moves the shell in, then drops to the user
        argv = ["sh", "-c", f'echo $$ > {cgroup}/cgroup.procs && exec "$@"', "sh", *argv]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return int(out.split()[0])


def _trace(run_env: dict[str, str]) -> list[dict]:
    [path] = Path(run_env["DATACRUMBS_TRACE_DIR_PATTERN"].split("%USER%")[0]).rglob("*.pfw.gz")
    return [json.loads(line) for line in read_trace_lines(path)[1:-1]]


def _writes_by_pid(events: list[dict]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for e in events:
        if e.get("ph") == "X" and e["name"] == "write" and e["args"]["size"] == S:
            counts[e["pid"]] = counts.get(e["pid"], 0) + 1
    return counts


def _scope_notice(events: list[dict]) -> dict:
    [notice] = [e["args"] for e in events if e["name"] == "job_scope"]
    return notice


def test_only_the_job_cgroup_is_traced(
    run_env: dict[str, str],
    make_probe_file: Callable[..., Path],
    file_io: Path,
    job_dir: Path,
    cgroup_base: Path,
) -> None:
    job = cgroup_base / "job_1"
    (job / "step_extern").mkdir(parents=True)  # below the job before the start
    env = run_env | {"DATACRUMBS_JOB_CGROUP": str(job)}
    daemon = Daemon(make_probe_file(POSIX), "job1", env=env)
    daemon.wait_ready("job1")
    inside = _run_in(job, file_io, job_dir / "in.bin")
    before = _run_in(job / "step_extern", file_io, job_dir / "extern.bin")
    (job / "step_0" / "user").mkdir(parents=True)  # below the job, made while tracing
    after = _run_in(job / "step_0" / "user", file_io, job_dir / "step.bin")
    outside = _run_in(None, file_io, job_dir / "out.bin")  # same user, not in the job
    assert daemon.stop() == 0, daemon.stderr
    events = _trace(env)
    assert _writes_by_pid(events) == {inside: K, before: K, after: K}
    assert outside not in {e.get("pid") for e in events if e.get("ph") == "X"}
    notice = _scope_notice(events)
    assert (notice["scope"], notice["cgroup"]) == ("cgroup", str(job))
    assert notice["cgroup_id"] == job.stat().st_ino  # a cgroup's id is its directory's inode


def test_a_job_cgroup_made_after_the_start_is_picked_up_and_nothing_before(
    run_env: dict[str, str],
    make_probe_file: Callable[..., Path],
    file_io: Path,
    job_dir: Path,
    cgroup_base: Path,
) -> None:
    # As under Slurm: the daemon starts in the prolog, the scope and job directories are
    # made afterwards, one level at a time.
    scope = cgroup_base / "node1_slurmstepd.scope"
    job = scope / "job_7"
    env = run_env | {"DATACRUMBS_JOB_CGROUP": str(job)}
    daemon = Daemon(make_probe_file(POSIX), "job7", env=env)
    daemon.wait_ready("job7")
    before = _run_in(None, file_io, job_dir / "before.bin")  # the user's, before the job
    # The job's first task starts the moment its cgroup is made, as a step daemon starts it:
    # the kernel has the cgroup from its mkdir, so the task's first call is traced.
    step = job / "step_0"
    argv = as_job_user([str(file_io), str(job_dir / "in.bin"), str(K), str(S)])
    made = f'mkdir {scope} {job} {step} && echo $$ > {step}/cgroup.procs && exec "$@"'
    out = subprocess.run(["sh", "-c", made, "sh", *argv], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    inside = int(out.split()[0])
    daemon.wait_for_log("tracing the job's cgroup")
    outside = _run_in(None, file_io, job_dir / "out.bin")
    assert daemon.stop() == 0, daemon.stderr
    events = _trace(env)
    assert _writes_by_pid(events) == {inside: K}
    mine = [e for e in events if e.get("ph") == "X" and e["pid"] == inside]
    # every call of the task from its first: the loader's open of its cache, then the data file
    names = {e["args"]["value"]: e["args"]["name"] for e in events if e["name"] == "FH"}
    opened = [names.get(e["args"].get("fhash")) for e in mine if e["name"] == "open"]
    assert opened[0] == "/etc/ld.so.cache" and opened[-1] == str(job_dir / "in.bin")
    traced = {e.get("pid") for e in events if e.get("ph") == "X"}
    assert before not in traced and outside not in traced
    notice = _scope_notice(events)
    assert notice["cgroup_id"] == job.stat().st_ino and notice["waited_ms"] > 0


def test_a_path_outside_cgroup_v2_is_refused_in_one_line(
    run_env: dict[str, str], make_probe_file: Callable[..., Path], tmp_path: Path
) -> None:
    path = tmp_path / "not-a-cgroup" / "job_1"
    env = run_env | {"DATACRUMBS_JOB_CGROUP": str(path)}
    result = run_daemon(make_probe_file(POSIX), "job1", env=env)
    assert result.returncode == 2, result.stderr
    last = result.stderr.splitlines()[-1]
    assert last.startswith(f"datacrumbs: error: DATACRUMBS_JOB_CGROUP {path} is not in a cgroup")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        ({"DATACRUMBS_JOB_CGROUP": "/sys/fs/cgroup/job_1",
          "DATACRUMBS_JOB_PARENT_CMDLINE": "slurmstepd: [1."},
         "DATACRUMBS_JOB_CGROUP and DATACRUMBS_JOB_PARENT_CMDLINE both scope the job: give one"),
        ({"DATACRUMBS_JOB_PARENT_CMDLINE": "x" * 64}, "1 to 63 printable bytes"),
        ({"DATACRUMBS_JOB_PARENT_CMDLINE": "  "}, "1 to 63 printable bytes"),
    ],
    ids=["both-scopes", "too-long", "blank"],
)  # fmt: skip
def test_a_scope_the_kernel_cannot_apply_is_refused_in_one_line(
    run_env: dict[str, str], make_probe_file: Callable[..., Path], extra: dict, said: str
) -> None:
    result = run_daemon(make_probe_file(POSIX), "job1", env=run_env | extra)
    assert result.returncode == 2, result.stderr
    assert said in result.stderr.splitlines()[-1]
    assert "Traceback" not in result.stderr
