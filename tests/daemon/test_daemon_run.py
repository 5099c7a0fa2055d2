"""The daemon traces a real job end to end: ready file, READY=1, exact events, clean stop."""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from daemon_support import (
    JOB_USER,
    Daemon,
    NotifySocket,
    as_job_user,
    run_daemon,
    trace_events,
    trace_file,
)

from datacrumbs.common.status_db import StatusDB, status_db_path
from datacrumbs.ebpf.features import kernel_refusal
from datacrumbs.trace.reading import read_trace_lines

HOST = socket.gethostname()
K, S = 25, 4096
SYSCALLS = [
    {"type": 0, "name": "posix", "functions": ["openat", "write", "pread64", "fsync", "close"]}
]


def _status_db(installed: Path, config: str = "probes") -> StatusDB:
    nobody = pwd.getpwnam(JOB_USER).pw_uid
    return StatusDB(
        status_db_path(installed / "share/datacrumbs/data", "root", nobody, Path(f"{config}.json"))
    )


def test_daemon_traces_a_job_and_stops_cleanly(
    installed: Path,
    run_env: dict[str, str],
    make_probe_file: Callable[..., Path],
    file_io: Path,
    job_dir: Path,
    tmp_path: Path,
) -> None:
    notify = NotifySocket(tmp_path / "notify.sock")
    env = run_env | {"NOTIFY_SOCKET": str(notify.path)}
    daemon = Daemon(make_probe_file(SYSCALLS), "job42", env=env)
    ready = daemon.wait_ready("job42")
    run_dir = Path(env["DATACRUMBS_SERVER_RUN_DIR"])
    assert (run_dir / "datacrumbs.runid").read_text() == "job42\n"
    ready_message = notify.messages(until="READY")[0]
    assert ready_message["READY"] == "1"
    assert ready_message["STATUS"].startswith("tracing nobody (run job42): 5 probes attached")

    data = job_dir / "data.bin"
    out = subprocess.run(
        as_job_user([str(file_io), str(data), str(K), str(S)]),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    pid, fd = map(int, out.split())

    assert daemon.stop() == 0, daemon.stderr
    assert not ready.exists()
    assert any(m.get("STOPPING") == "1" for m in notify.messages(until="STOPPING"))
    notify.close()

    trace = trace_file(env, "job42")
    assert trace.stat().st_uid == pwd.getpwnam(JOB_USER).pw_uid
    events = trace_events(trace)
    names = {
        e["args"]["value"]: e["args"]["name"]
        for e in events
        if e.get("ph") == "M" and e["name"] == "FH"
    }
    mine = [e for e in events if e.get("ph") == "X" and e["pid"] == pid]
    by_name: dict[str, list[dict]] = {}
    for e in mine:
        by_name.setdefault(e["name"], []).append(e)

    def on_data(name: str) -> list[dict]:
        return [e for e in by_name[name] if names.get(e["args"].get("fhash")) == str(data)]

    writes = on_data("write")
    assert len(writes) == K
    assert all(
        e["args"]["size"] == S and e["args"]["ret"] == S and e["args"]["fd"] == fd for e in writes
    )
    preads = on_data("pread")
    assert sorted(e["args"]["offset"] for e in preads) == [i * S for i in range(K)]
    assert [e["args"]["ret"] for e in on_data("open")] == [fd]
    assert [e["args"]["fd"] for e in on_data("fsync")] == [fd]
    assert [(e["args"]["fd"], e["args"]["ret"]) for e in on_data("close")] == [(fd, 0)]
    assert all(e["tid"] == pid for e in mine)  # single-threaded: tid == pid, not swapped

    summary = [
        e for e in events if e.get("ph") == "M" and e["args"].get("name") == "datacrumbs_summary"
    ]
    assert summary and summary[-1]["args"]["value"]["lost_events"] == 0
    # the node's clock at the start and the end, for laying the job's nodes on one timeline
    clocks = [e["args"] for e in events if e.get("name") == "datacrumbs_clock"]
    assert [c["at"] for c in clocks] == ["start", "end"]
    assert all({"realtime_minus_monotonic_ns", "synced", "maxerror_us"} <= set(c) for c in clocks)
    assert summary[-1]["args"]["value"]["run_id"] == "job42"
    assert summary[-1]["args"]["value"]["user"] == JOB_USER
    assert summary[-1]["args"]["value"]["duration_s"] > 0
    valid = {r["function_name"] for r in _status_db(installed).rows("successful")}
    assert valid == {"openat", "write", "pread64", "fsync", "close"}
    assert "finished:" in daemon.stderr


def test_the_kernel_is_checked_first_and_one_too_old_refused_in_one_line(
    installed: Path, run_env: dict[str, str], make_probe_file: Callable[..., Path]
) -> None:
    """Never skipped: on a kernel with what the engine needs (every one CI's host and matrix
    run but 5.10) the daemon gets to tracing; on 5.10 (the matrix boots it) it stops at once,
    before writing anything, with one line naming what the kernel lacks."""
    refusal = kernel_refusal()
    if refusal is None:
        daemon = Daemon(make_probe_file(SYSCALLS), "kernel", env=run_env)
        daemon.wait_ready("kernel")
        assert daemon.stop() == 0, daemon.stderr
        return
    # an emulated CPU shared with the other kernels' guests: minutes, not the host's seconds
    result = run_daemon(make_probe_file(SYSCALLS), "kernel", env=run_env, timeout=180)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == f"datacrumbs: error: {refusal}"
    assert "Traceback" not in result.stderr
    assert "lacks task storage (5.11)" in refusal and "5.15 or newer" in refusal
    assert not Path(run_env["DATACRUMBS_SERVER_RUN_DIR"]).exists()
    assert not Path(run_env["DATACRUMBS_TRACE_DIR_PATTERN"]).parent.parent.exists()


def test_second_daemon_with_the_same_run_id_is_refused(
    run_env: dict[str, str],
    make_probe_file: Callable[..., Path],
) -> None:
    probes = make_probe_file(SYSCALLS)
    first = Daemon(probes, "job7", env=run_env)
    ready = first.wait_ready("job7")
    second = run_daemon(probes, "job7", env=run_env)
    assert second.returncode == 2
    assert second.stderr.splitlines()[-1] == (
        f"datacrumbs: error: a datacrumbs daemon for run-id job7 is already running "
        f"(pid {first.proc.pid})"
    )
    assert ready.exists()  # the first is unharmed
    assert first.stop() == 0
    assert trace_events(trace_file(run_env, "job7"))


def test_failing_target_is_skipped_next_time_and_cleared_once_it_attaches(
    installed: Path,
    run_env: dict[str, str],
    make_probe_file: Callable[..., Path],
    public_dir: Path,
    tmp_path: Path,
) -> None:
    library = public_dir / f"{tmp_path.name}-libc-copy.so.6"
    uprobe = {"type": 2, "name": "libc", "functions": ["fsync"], "binary_path": str(library)}
    probes = make_probe_file([*SYSCALLS, uprobe])
    db = _status_db(installed)

    daemon = Daemon(probes, "r1", env=run_env)
    daemon.wait_ready("r1")
    assert daemon.stop() == 0
    [row] = db.rows("invalid")
    assert (row["probe_group"], row["scope_key"], row["function_name"]) == (
        "binary",
        str(library),
        "fsync",
    )
    assert str(library) in row["reason"]
    assert "probes: 6 requested, 5 attached, 1 failed, 0 skipped as known-bad" in daemon.stderr

    daemon = Daemon(probes, "r2", env=run_env)
    daemon.wait_ready("r2")
    assert daemon.stop() == 0
    assert "probes: 6 requested, 5 attached, 0 failed, 1 skipped as known-bad" in daemon.stderr

    shutil.copy(os.path.realpath("/lib/x86_64-linux-gnu/libc.so.6"), library)
    probes = make_probe_file([*SYSCALLS, uprobe])  # signed again, with the file's identity
    daemon = Daemon(probes, "r3", env=run_env)
    daemon.wait_ready("r3")
    assert daemon.stop() == 0
    assert "probes: 6 requested, 6 attached, 0 failed, 0 skipped as known-bad" in daemon.stderr
    assert db.rows("invalid") == []
    assert ("binary", str(library), "fsync") in {
        (r["probe_group"], r["scope_key"], r["function_name"]) for r in db.rows("successful")
    }


def test_another_users_failures_never_make_this_users_targets_skipped(
    run_env: dict[str, str],
    make_probe_file: Callable[..., Path],
    public_dir: Path,
    tmp_path: Path,
) -> None:
    # User "daemon" runs a job whose probe file has the same name and a target that fails;
    # the daemon for nobody must still try that target itself (issue 11, finding 5).
    library = public_dir / f"{tmp_path.name}-shared.so"
    uprobe = {"type": 2, "name": "lib", "functions": ["fsync"], "binary_path": str(library)}
    theirs = make_probe_file([*SYSCALLS, uprobe], user="daemon", name="probes.json.gz")
    daemon = Daemon(theirs, "theirs", env=run_env | {"DATACRUMBS_USER": "daemon"})
    daemon.wait_ready("theirs")
    assert daemon.stop() == 0
    assert "1 failed, 0 skipped as known-bad" in daemon.stderr

    mine = make_probe_file([*SYSCALLS, uprobe], name="probes.json.gz")
    daemon = Daemon(mine, "mine", env=run_env)
    daemon.wait_ready("mine")
    assert daemon.stop() == 0
    assert "probes: 6 requested, 5 attached, 1 failed, 0 skipped as known-bad" in daemon.stderr


def test_run_id_from_argument_then_scheduler_then_clock(
    run_env: dict[str, str],
    make_probe_file: Callable[..., Path],
) -> None:
    probes = make_probe_file(SYSCALLS)
    run_id_file = Path(run_env["DATACRUMBS_SERVER_RUN_ID_FILE"])

    env = run_env | {"SLURM_JOB_ID": "4242"}
    daemon = Daemon(probes, "cli-wins", env=env)
    daemon.wait_ready("cli-wins")
    assert daemon.stop() == 0
    assert run_id_file.read_text() == "cli-wins\n"

    daemon = Daemon(probes, env=env)
    daemon.wait_ready("4242")
    assert daemon.stop() == 0
    assert run_id_file.read_text() == "4242\n"

    env = run_env | {"DATACRUMBS_JOB_ID_VAR": "FLUX_JOB_ID", "FLUX_JOB_ID": "f00d"}
    daemon = Daemon(probes, env=env)
    daemon.wait_ready("f00d")
    assert daemon.stop() == 0

    before = datetime.now().strftime("%Y%m%d-%H%M")
    daemon = Daemon(probes, env=run_env)
    run_dir = Path(run_env["DATACRUMBS_SERVER_RUN_DIR"])
    for _ in range(3000):
        if daemon.proc.poll() is not None or list(run_dir.glob("datacrumbs-2*.ready")):
            break
        subprocess.run(["sleep", "0.02"])
    [ready] = run_dir.glob("datacrumbs-2*.ready")
    run_id = ready.name.removeprefix("datacrumbs-").removesuffix(".ready")
    assert daemon.stop(signal.SIGINT) == 0
    assert run_id.startswith(before[:11])
    assert len(run_id) == len("YYYYmmdd-HHMMSS")
    assert run_id_file.read_text() == f"{run_id}\n"


def test_missing_binary_fails_that_target_only(
    run_env: dict[str, str],
    make_probe_file: Callable[..., Path],
    tmp_path: Path,
) -> None:
    gone = {
        "type": 2,
        "name": "gone",
        "functions": ["f"],
        "binary_path": str(tmp_path / "missing.so"),
    }
    probes = make_probe_file([*SYSCALLS, gone], name="partial.json.gz")
    daemon = Daemon(probes, "partial", env=run_env)
    daemon.wait_ready("partial")
    assert daemon.stop() == 0
    assert "5 attached, 1 failed" in daemon.stderr
    assert f"cannot trace gone:f: binary {tmp_path}/missing.so does not exist" in daemon.stderr


def test_fifo_where_a_binary_should_be_fails_that_target_only(
    run_env: dict[str, str],
    make_probe_file: Callable[..., Path],
    tmp_path: Path,
) -> None:
    # Swapped in by the user after signing: the daemon must not block opening it.
    fifo = tmp_path / "app"
    os.mkfifo(fifo)
    swapped = {"type": 2, "name": "app", "functions": ["main"], "binary_path": str(fifo)}
    daemon = Daemon(make_probe_file([*SYSCALLS, swapped], name="fifo.json.gz"), "fifo", env=run_env)
    daemon.wait_ready("fifo", timeout=30)
    assert daemon.stop() == 0
    assert "5 attached, 1 failed" in daemon.stderr
    assert f"cannot trace app:main: binary {fifo} is not a regular file" in daemon.stderr


def test_probe_file_name_too_long_for_file_names_is_cut_in_them(
    run_env: dict[str, str],
    make_probe_file: Callable[..., Path],
) -> None:
    name = "p" * 230
    daemon = Daemon(make_probe_file(SYSCALLS, name=f"{name}.json.gz"), "long", env=run_env)
    ready = daemon.wait_ready("long")
    trace = Path(ready.read_text().splitlines()[1])
    assert daemon.stop() == 0, daemon.stderr
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    assert trace.name == f"trace-{JOB_USER}-long-{HOST}-{'p' * 51}~{digest}.pfw.gz"
    assert trace_events(trace) is not None  # complete and readable


def test_status_and_watchdog_keep_coming_while_tracing(
    run_env: dict[str, str],
    make_probe_file: Callable[..., Path],
    tmp_path: Path,
) -> None:
    notify = NotifySocket(tmp_path / "notify.sock")
    env = run_env | {"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "200000"}
    daemon = Daemon(make_probe_file(SYSCALLS), "wd", env=env)
    daemon.wait_ready("wd")
    subprocess.run(["sleep", "0.6"], check=True)
    assert daemon.stop() == 0
    messages = notify.messages(until="STOPPING")
    notify.close()
    # Half the watchdog period: a keep-alive every 0.1 s, each with a current status.
    assert sum(m.get("WATCHDOG") == "1" for m in messages) >= 3
    statuses = [
        m["STATUS"] for m in messages if "STATUS" in m and "READY" not in m and "STOPPING" not in m
    ]
    assert statuses and all(s.startswith("tracing: ") and " lost, trace " in s for s in statuses)


def test_second_signal_while_stopping_leaves_a_valid_trace(
    run_env: dict[str, str],
    make_probe_file: Callable[..., Path],
    file_io: Path,
    job_dir: Path,
) -> None:
    daemon = Daemon(make_probe_file(SYSCALLS), "twice", env=run_env)
    daemon.wait_ready("twice")
    subprocess.run(as_job_user([str(file_io), str(job_dir / "d"), "200", "512"]), check=True)
    daemon.proc.send_signal(signal.SIGTERM)
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.stop(signal.SIGINT) == 0
    events = trace_events(trace_file(run_env, "twice"))  # parses, with the closing ]
    assert sum(e.get("name") == "write" and e["args"].get("size") == 512 for e in events) == 200


def test_killed_daemon_leaves_a_stale_ready_file_the_next_start_removes(
    run_env: dict[str, str],
    make_probe_file: Callable[..., Path],
) -> None:
    probes = make_probe_file(SYSCALLS)
    daemon = Daemon(probes, "k9", env=run_env)
    ready = daemon.wait_ready("k9")
    assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL
    assert ready.exists()
    killed_trace = trace_file(run_env, "k9")
    assert read_trace_lines(killed_trace)[0] == "["  # readable up to its last complete line

    daemon = Daemon(probes, "k9", env=run_env)
    daemon.wait_ready("k9")
    assert daemon.stop() == 0
    assert "removed a stale ready file" in daemon.stderr
    assert not ready.exists()
    # The killed run's trace was kept beside the new one, not overwritten.
    kept = list(killed_trace.parent.glob("trace-nobody-k9-*.*.pfw.gz"))
    assert len(kept) == 1 and read_trace_lines(kept[0])[0] == "["
    assert trace_events(killed_trace)


def test_a_target_named_twice_is_not_remembered_as_failing(
    installed: Path, run_env: dict[str, str], make_probe_file: Callable[..., Path]
) -> None:
    """A document that names one syscall in two categories: the second is not attached (one
    trace event per call), and that is nothing about the syscall — the status database records
    no failure for it (issue 25, N3: the shipped libc-stdio.yaml wrote 10 such rows)."""
    twice = [
        {"type": 0, "name": "first", "functions": ["write"]},
        {"type": 0, "name": "second", "functions": ["write", "close"]},
    ]
    daemon = Daemon(make_probe_file(twice, name="twice.json.gz"), "twice", env=run_env)
    daemon.wait_ready("twice")
    assert daemon.stop() == 0, daemon.stderr
    assert "write is already traced by category first" in daemon.stderr
    db = _status_db(installed, "twice")
    assert db.rows("invalid") == []
    assert {r["function_name"] for r in db.rows("successful")} == {"write", "close"}
