"""One job traced as in production: prolog ``datacrumbs_service start``, a workload as the job
user, epilog ``datacrumbs_service stop`` — under a real systemd. The run happens once (the
``job42`` fixture); each test checks one promise about it."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from nspawn_support import CONTAINER_HOSTNAME
from systemd_node import JOB_USER, Node

from datacrumbs.service.instance_files import render_env_file

RUN_ID = "job42"
UNIT = f"datacrumbs@{RUN_ID}.service"
K, S = 25, 4096
LIBC = os.path.realpath("/lib/x86_64-linux-gnu/libc.so.6")
#: Syscall tracepoints and a libc uprobe: the two kinds of attachment the unit must allow.
PROBES = [
    {"type": 0, "name": "posix", "functions": ["openat", "write", "pread64", "fsync", "close"]},
    {"type": 2, "name": "libc", "functions": ["fsync"], "binary_path": LIBC},
]


@dataclass
class TracedJob:
    """What was seen while job42 ran."""

    probe_file: Path
    data: Path
    start: subprocess.CompletedProcess[str]
    samples: list[tuple[str, bool]] = field(default_factory=list)
    running: dict[str, str] = field(default_factory=dict)
    ready_text: str = ""
    env_text: str = ""
    env_stat: str = ""
    log_stat: str = ""
    workload: tuple[int, int] = (0, 0)
    stop: subprocess.CompletedProcess[str] | None = None
    stopped: dict[str, str] = field(default_factory=dict)
    run_files_after_stop: list[str] = field(default_factory=list)

    @property
    def trace(self) -> Path:
        return Path(self.ready_text.splitlines()[1])


def _sample_while(node: Node, done: threading.Event, samples: list[tuple[str, bool]]) -> None:
    ready = node.run_dir / f"datacrumbs-{RUN_ID}.ready"
    while not done.is_set():
        state = node.show(UNIT, "ActiveState")["ActiveState"]
        # Checked after the state: once active, the ready file must already be there.
        samples.append((state, node.exists(ready)))


@pytest.fixture(scope="module")
def job42(node: Node) -> Iterator[TracedJob]:
    job_dir = node.job_dir("job42")
    probe_file = node.make_probe_file(job_dir, PROBES)
    result: list[subprocess.CompletedProcess[str]] = []
    done = threading.Event()

    def start() -> None:
        try:
            result.append(node.service("start", RUN_ID, JOB_USER, str(probe_file)))
        finally:
            done.set()  # also if the start raised: the sampling loop must end

    samples: list[tuple[str, bool]] = []
    starter = threading.Thread(target=start)
    starter.start()
    _sample_while(node, done, samples)
    starter.join()
    job = TracedJob(
        probe_file=probe_file, data=job_dir / "data.bin", start=result[0], samples=samples
    )
    assert job.start.returncode == 0, job.start.stderr
    try:
        job.running = node.show(UNIT, "ActiveState", "SubState", "StatusText", "MainPID")
        job.ready_text = node.read(node.run_dir / f"datacrumbs-{RUN_ID}.ready")
        job.env_text = node.read(node.run_dir / f"datacrumbs-{RUN_ID}.env")
        job.env_stat = node.container.run(
            "stat", "-c", "%a %U %G", str(node.run_dir / f"datacrumbs-{RUN_ID}.env")
        ).stdout
        # once its libc uprobe is in place: a process entering the job is followed within
        # milliseconds, and this one is over sooner
        argv = (str(node.file_io), str(job.data), str(K), str(S), "await")
        out = node.as_job_user(*argv).stdout
        pid, fd = map(int, out.split())
        job.workload = (pid, fd)
    finally:
        job.stop = node.service("stop", RUN_ID)
    job.stopped = node.show(UNIT, "ActiveState", "Result")
    job.log_stat = node.container.run("stat", "-c", "%a %U", str(node.log_file(RUN_ID))).stdout
    job.run_files_after_stop = node.container.run("ls", str(node.run_dir)).stdout.split()
    yield job


def test_start_returns_once_the_unit_is_active_and_the_ready_file_exists(job42: TracedJob) -> None:
    assert job42.start.stdout == (f"{UNIT} started: tracing {JOB_USER} with {job42.probe_file}\n")
    assert (job42.running["ActiveState"], job42.running["SubState"]) == ("active", "running")
    assert all(ready for state, ready in job42.samples if state == "active")
    assert ("activating", False) in job42.samples  # caught before READY=1: gating is real
    assert job42.ready_text.splitlines()[0] == job42.running["MainPID"]  # exec kept the PID


def test_status_text_is_the_daemons_status(job42: TracedJob) -> None:
    assert job42.running["StatusText"] == (
        f"tracing {JOB_USER} (run {RUN_ID}): 6 probes attached, 0 failed -> {job42.trace}"
    )


def test_environment_file_is_root_only_and_names_the_run(node: Node, job42: TracedJob) -> None:
    assert job42.env_stat == "400 root root\n"
    assert job42.env_text == render_env_file(
        {
            "DATACRUMBS_PROBE_FILE": str(job42.probe_file),
            "DATACRUMBS_USER": JOB_USER,
            "DATACRUMBS_SERVICE_RUN_ID": RUN_ID,
            "DATACRUMBS_LOG_DIR": str(node.log_dir),
            "DATACRUMBS_INSTALL_PREFIX": str(node.prefix),
        }
    )


def test_log_file_at_the_exact_path_holds_the_daemons_lines(node: Node, job42: TracedJob) -> None:
    path = node.log_dir / f"datacrumbs_{JOB_USER}_{RUN_ID}_{CONTAINER_HOSTNAME}.log"
    assert node.log_file(RUN_ID) == path
    lines = node.read(path).splitlines()
    pid = job42.running["MainPID"]
    assert f"datacrumbs_service[{pid}] exec " in lines[0]
    assert any(
        f"datacrumbs[{pid}] INFO probes: 6 requested, 6 attached, 0 failed" in line
        for line in lines
    )
    assert any(f"datacrumbs[{pid}] INFO ready in " in line for line in lines)
    assert f"datacrumbs[{pid}] INFO finished: " in lines[-1]
    assert job42.log_stat == f"600 {JOB_USER}\n"  # the job user's to read


def test_journal_shows_the_unit_and_its_structured_records(node: Node, job42: TracedJob) -> None:
    unit_messages = [e["MESSAGE"] for e in node.journal("-u", UNIT)]
    assert "probes: 6 requested, 6 attached, 0 failed, 0 skipped as known-bad" in unit_messages
    records = node.journal(f"DATACRUMBS_RUN_ID={RUN_ID}")
    assert records
    assert {(r["DATACRUMBS_USER"], r["_SYSTEMD_UNIT"]) for r in records} == {(JOB_USER, UNIT)}
    [probes] = [r for r in records if r["MESSAGE"].startswith("probes: ")]
    assert (probes["PROBES_ATTACHED"], probes["PROBES_FAILED"]) == ("6", "0")
    [finished] = [r for r in records if r["MESSAGE"].startswith("finished: ")]
    assert finished["EVENTS_LOST"] == "0"
    assert finished["TRACE_FILE"] == str(job42.trace)


def test_stop_leaves_a_complete_trace_holding_the_jobs_io(node: Node, job42: TracedJob) -> None:
    events = node.trace_events(job42.trace)
    pid, fd = job42.workload
    names = {
        e["args"]["value"]: e["args"]["name"]
        for e in events
        if e.get("ph") == "M" and e["name"] == "FH"
    }
    on_data = [
        e
        for e in events
        if e.get("ph") == "X"
        and e["pid"] == pid
        and names.get(e["args"].get("fhash")) == str(job42.data)
    ]
    writes = [e for e in on_data if e["name"] == "write"]
    assert [(e["args"]["fd"], e["args"]["size"], e["args"]["ret"]) for e in writes] == (
        [(fd, S, S)] * K
    )
    assert sorted(e["args"]["offset"] for e in on_data if e["name"] == "pread") == (
        [i * S for i in range(K)]
    )
    assert [e["args"]["ret"] for e in on_data if e["name"] == "open"] == [fd]
    libc_calls = [
        (e["name"], e["cat"])
        for e in events
        if e.get("ph") == "X" and e["pid"] == pid and e["args"]["category"] == "libc"
    ]
    assert libc_calls == [("fsync", "POSIX")]  # the uprobe: what CAP_SYS_ADMIN is kept for


def test_stop_leaves_the_unit_inactive_with_no_run_files(job42: TracedJob) -> None:
    assert job42.stop is not None
    assert (job42.stop.returncode, job42.stop.stdout, job42.stop.stderr) == (
        0,
        f"{UNIT} stopped\n",
        "",
    )
    assert job42.stopped == {"ActiveState": "inactive", "Result": "success"}
    assert not [name for name in job42.run_files_after_stop if RUN_ID in name]


def test_job_user_can_read_the_trace(node: Node, job42: TracedJob) -> None:
    result = node.as_job_user("test", "-r", str(job42.trace), check=False)
    assert (result.returncode, result.stderr) == (0, "")
