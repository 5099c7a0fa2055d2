"""When a run goes wrong under systemd: a refused probe file, a killed daemon, bad input to the
prolog and epilog helper. Each ends in one line that says why, and leaves the run-id usable."""

from __future__ import annotations

import gzip
import json
import time

import pytest
from systemd_node import JOB_USER, Node

SYSCALLS = [{"type": 0, "name": "posix", "functions": ["openat", "write", "close"]}]
MISMATCH = "signature mismatch: the probe file was changed after signing or signed with another key"


def _wait_for_state(node: Node, unit: str, wanted: str, timeout: float = 30) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        state = node.show(unit, "ActiveState", "Result", "ExecMainCode", "ExecMainStatus")
        if state["ActiveState"] == wanted or time.monotonic() > deadline:
            return state
        time.sleep(0.05)


def test_tampered_probe_file_fails_the_start_and_says_why(node: Node) -> None:
    run_id, unit = "tampered", "datacrumbs@tampered.service"
    probe_file = node.make_probe_file(node.job_dir(run_id), SYSCALLS)
    document = json.loads(gzip.decompress(node.container.host_path(probe_file).read_bytes()))
    document["categories"][0]["functions"].append("execve")
    node.write_probe_document(probe_file, document)
    refusal = f"probe file {probe_file} refused: {MISMATCH}"
    log_file = node.log_file(run_id)

    started = node.service("start", run_id, JOB_USER, str(probe_file))

    assert (started.returncode, started.stdout) == (2, "")
    assert started.stderr == (
        f"datacrumbs_service: error: {unit} did not start (exit-code): {refusal} "
        f"(log {log_file}; journalctl -u {unit})\n"
    )
    assert node.show(unit, "ActiveState", "Result") == {
        "ActiveState": "failed",
        "Result": "exit-code",
    }
    status = node.systemctl("status", "--no-pager", "--lines=20", unit).stdout
    assert refusal in status
    assert node.read(log_file).splitlines()[-1] == f"datacrumbs: error: {refusal}"
    assert not node.exists(node.run_dir / f"datacrumbs-{run_id}.env")

    stopped = node.service("stop", run_id)
    assert (stopped.returncode, stopped.stderr) == (
        2,
        (
            f"datacrumbs_service: error: {unit} had failed (exit-code, status 2): {refusal}; its "
            f"trace may be incomplete (journalctl -u {unit})\n"
        ),
    )
    assert node.show(unit, "ActiveState")["ActiveState"] == "inactive"  # reset, not piling up


def test_kill_9_fails_the_unit_and_the_same_run_id_starts_again(node: Node) -> None:
    run_id, unit = "killed", "datacrumbs@killed.service"
    probe_file = node.make_probe_file(node.job_dir(run_id), SYSCALLS)
    ready = node.run_dir / f"datacrumbs-{run_id}.ready"
    assert node.service("start", run_id, JOB_USER, str(probe_file)).returncode == 0
    first_pid = node.show(unit, "MainPID")["MainPID"]

    node.container.run("kill", "-9", first_pid)
    state = _wait_for_state(node, unit, "failed")
    assert state == {
        "ActiveState": "failed",
        "Result": "signal",
        "ExecMainCode": "2",
        "ExecMainStatus": "9",
    }
    assert node.exists(ready)  # stale: nothing removed it

    restarted = node.service("start", run_id, JOB_USER, str(probe_file))
    assert (restarted.returncode, restarted.stderr) == (0, "")
    second_pid = node.show(unit, "MainPID")["MainPID"]
    assert second_pid != first_pid
    assert node.read(ready).splitlines()[0] == second_pid
    log = node.read(node.log_file(run_id))
    assert f"datacrumbs[{second_pid}] INFO removed a stale ready file {ready}" in log
    assert node.service("stop", run_id).stdout == f"{unit} stopped\n"
    assert node.show(unit, "ActiveState", "Result") == {
        "ActiveState": "inactive",
        "Result": "success",
    }


def test_stop_after_a_killed_daemon_reports_it_and_clears_its_files(node: Node) -> None:
    run_id, unit = "killed-then-stopped", "datacrumbs@killed-then-stopped.service"
    probe_file = node.make_probe_file(node.job_dir(run_id), SYSCALLS)
    assert node.service("start", run_id, JOB_USER, str(probe_file)).returncode == 0
    node.container.run("kill", "-9", node.show(unit, "MainPID")["MainPID"])
    assert _wait_for_state(node, unit, "failed")["ActiveState"] == "failed"

    stopped = node.service("stop", run_id)

    assert (stopped.returncode, stopped.stderr) == (
        2,
        (
            f"datacrumbs_service: error: {unit} had failed (signal, status 9); its trace may be "
            f"incomplete (journalctl -u {unit})\n"
        ),
    )
    leftovers = node.container.run("ls", str(node.run_dir)).stdout.split()
    assert [name for name in leftovers if run_id in name] == []
    assert node.show(unit, "ActiveState")["ActiveState"] == "inactive"


def test_start_refuses_a_run_id_that_is_already_active(node: Node) -> None:
    run_id, unit = "twice", "datacrumbs@twice.service"
    probe_file = node.make_probe_file(node.job_dir(run_id), SYSCALLS)
    assert node.service("start", run_id, JOB_USER, str(probe_file)).returncode == 0
    env_file = node.run_dir / f"datacrumbs-{run_id}.env"
    before = node.read(env_file)
    try:
        again = node.service("start", run_id, "root", "/etc/hostname")
        assert (again.returncode, again.stderr) == (
            2,
            (
                f"datacrumbs_service: error: {unit} is already active: stop it first "
                f"(datacrumbs_service stop {run_id})\n"
            ),
        )
        assert node.read(env_file) == before  # the running daemon's file is untouched
    finally:
        assert node.service("stop", run_id).returncode == 0


def test_stop_of_a_run_that_never_started_says_so(node: Node) -> None:
    stopped = node.service("stop", "never-started")
    assert (stopped.returncode, stopped.stdout, stopped.stderr) == (
        0,
        "datacrumbs@never-started.service was not running\n",
        "",
    )


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (
            ("start", "../job", JOB_USER, "{probe}"),
            "run-id '../job' from the command line is not safe in file names: use 1-128 letters, "
            "digits, '.', '_' or '-', starting with a letter or digit",
        ),
        (("start", "job-u", "no-such-user", "{probe}"), "no user 'no-such-user' on this host"),
        (
            ("start", "job-r", JOB_USER, "/root/.bashrc"),
            "probe file /root/.bashrc is not readable as nobody: Permission denied",
        ),
        (
            ("start", "job-m", JOB_USER, "{dir}/missing.json.gz"),
            "probe file {dir}/missing.json.gz is not readable as nobody: No such file or directory",
        ),
        (
            ("start", "job-d", JOB_USER, "{dir}"),
            "probe file {dir} is not readable as nobody: not a regular file",
        ),
        (
            (
                "start",
                "job-i",
                JOB_USER,
                "{probe}",
                "--mode",
                "profile",
                "--profile-interval-ms",
                "0",
            ),
            "--profile-interval-ms: 1 to 3600000 milliseconds, not 0",
        ),
        (
            ("stop", "job 42"),
            "run-id 'job 42' from the command line is not safe in file names: use 1-128 letters, "
            "digits, '.', '_' or '-', starting with a letter or digit",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(node: Node, args: tuple[str, ...], error: str) -> None:
    directory = node.jobs / "bad-input"
    if not node.exists(directory):
        node.job_dir("bad-input")
    probe = node.make_probe_file(directory, SYSCALLS)
    values = {"probe": str(probe), "dir": str(directory)}
    result = node.service(*(arg.format(**values) for arg in args))
    assert (result.returncode, result.stdout, result.stderr) == (
        2,
        "",
        f"datacrumbs_service: error: {error.format(**values)}\n",
    )
    leftovers = node.container.run("ls", "-a", str(node.run_dir), check=False).stdout.split()
    assert [name for name in leftovers if name.endswith(".env")] == []


def test_stop_as_a_normal_user_is_refused(node: Node) -> None:
    result = node.as_job_user(node.command("datacrumbs_service"), "stop", "job42", check=False)
    assert (result.returncode, result.stderr) == (
        2,
        "datacrumbs_service: error: stop must run as root (a prolog or epilog does)\n",
    )
