"""The daemon in profile mode (DATACRUMBS_MODE=profile): the same job as the trace-mode test,
aggregated in the kernel; the trace, STATUS= and the status database say which mode it was."""

from __future__ import annotations

import json
import pwd
import socket
import subprocess
from collections.abc import Callable
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
from support import command

from datacrumbs.common.status_db import status_db_path

HOST = socket.gethostname()
K, S = 25, 4096
SYSCALLS = [
    {"type": 0, "name": "posix", "functions": ["openat", "write", "pread64", "fsync", "close"]}
]


def test_a_profiled_job_sums_to_its_calls_and_bytes(
    installed: Path,
    run_env: dict[str, str],
    make_probe_file: Callable[..., Path],
    file_io: Path,
    job_dir: Path,
    tmp_path: Path,
) -> None:
    notify = NotifySocket(tmp_path / "notify.sock")
    env = run_env | {
        "NOTIFY_SOCKET": str(notify.path),
        "WATCHDOG_USEC": "400000",
        "DATACRUMBS_MODE": "profile",
        "DATACRUMBS_PROFILE_INTERVAL_MS": "100",
    }
    daemon = Daemon(make_probe_file(SYSCALLS), "prof1", env=env)
    daemon.wait_ready("prof1")
    data = job_dir / "data.bin"
    out = subprocess.run(
        as_job_user([str(file_io), str(data), str(K), str(S)]),
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    pid, _fd = map(int, out.split())
    subprocess.run(["sleep", "0.5"], check=True)
    assert daemon.stop() == 0, daemon.stderr
    messages = notify.messages(until="STOPPING")
    notify.close()
    assert messages[0]["STATUS"].startswith("profiling nobody (run prof1): 5 probes attached")
    statuses = [m["STATUS"] for m in messages[1:] if "STATUS" in m and "STOPPING" not in m]
    assert statuses and all(s.startswith("profiling: ") for s in statuses)
    assert "profile mode: 100 ms intervals" in daemon.stderr

    events = trace_events(trace_file(env, "prof1"))
    [mode] = [e for e in events if e["name"] == "datacrumbs_mode"]
    assert mode["args"] == {"mode": "profile", "interval_ms": 100}
    assert not [e for e in events if e.get("ph") == "X"]
    names = {e["args"]["value"]: e["args"]["name"] for e in events if e["name"] == "FH"}
    mine = [e for e in events if e.get("ph") == 3 and e["pid"] == pid]
    on_data = [e for e in mine if names.get(e["args"].get("fhash")) == str(data)]
    totals: dict[str, list[int]] = {}
    for e in on_data:
        t = totals.setdefault(e["name"], [0, 0])
        t[0] += e["args"]["dft_cnt"]
        t[1] += e["args"].get("ret_sum", 0)
    assert totals["write"] == [K, K * S]
    assert totals["pread"] == [K, K * S]
    assert [totals[n][0] for n in ("open", "fsync", "close")] == [1, 1, 1]
    [summary] = [e for e in events if e["args"].get("name") == "datacrumbs_summary"]
    value = summary["args"]["value"]
    assert value["mode"] == "profile" and value["lost_events"] == 0
    assert value["events"] == sum(e["args"]["dft_cnt"] for e in events if e.get("ph") == 3)

    nobody = pwd.getpwnam(JOB_USER).pw_uid
    db = status_db_path(installed / "share/datacrumbs/data", "root", nobody, Path("probes.json"))
    extracted = subprocess.run(
        [command("datacrumbs_sqlite_extract"), str(db), "--section", "runs"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    [run] = [r for r in json.loads(extracted.stdout) if r["run_id"] == "prof1"]
    assert (run["host"], run["mode"], run["profile_interval_ms"]) == (HOST, "profile", 100)
    assert run["trace_file"].endswith(f"trace-{JOB_USER}-prof1-{HOST}-probes.pfw.gz")
    # how it ended, as the trace's summary says
    assert (run["events"], run["lost_events"], run["unwritten_events"]) == (value["events"], 0, 0)
    assert (run["write_error"], run["trace_complete"]) == ("", 1)


def test_a_bad_mode_is_one_line_and_nothing_starts(
    run_env: dict[str, str], make_probe_file: Callable[..., Path]
) -> None:
    for key, value in (("DATACRUMBS_MODE", "profiles"), ("DATACRUMBS_PROFILE_INTERVAL_MS", "0")):
        result = run_daemon(make_probe_file(SYSCALLS), "badmode", env=run_env | {key: value})
        assert result.returncode != 0
        errors = [line for line in result.stderr.splitlines() if "error" in line]
        assert len(errors) == 1 and errors[0].startswith(f"datacrumbs: error: {key}: ")
        assert "Traceback" not in result.stderr
