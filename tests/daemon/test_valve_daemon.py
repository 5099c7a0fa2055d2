"""The daemon's valve (DATACRUMBS_VALVE, on by default in trace mode): the signed probe file's
delivery rules reach the kernel, the trace says the mode and the aggregates' interval, and a
trace budget (DATACRUMBS_TRACE_MAX_MB) turns the rest of the run into aggregates."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from daemon_support import Daemon, as_job_user, trace_events, trace_file

K, S = 25, 4096
RULES = [
    {
        "type": 0,
        "name": "posix",
        "functions": ["openat", "write", "pread64", "fsync", "close"],
        "delivery": "events",
        "function_delivery": {"write": "aggregate"},
    }
]


def _job(daemon: Daemon, file_io: Path, data: Path) -> int:
    out = subprocess.run(
        as_job_user([str(file_io), str(data), str(K), str(S)]),
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    subprocess.run(["sleep", "0.3"], check=True)
    assert daemon.stop() == 0, daemon.stderr
    return int(out.split()[0])


def _calls(events: list[dict[str, Any]], pid: int, file: str) -> dict[str, tuple[int, int]]:
    """Per function, on ``file``: (calls that are events, calls inside aggregates)."""
    names = {e["args"]["value"]: e["args"]["name"] for e in events if e["name"] == "FH"}
    out: dict[str, tuple[int, int]] = {}
    for e in events:
        if e.get("pid") != pid or names.get(e.get("args", {}).get("fhash")) != file:
            continue
        x, c = out.get(e["name"], (0, 0))
        if e.get("ph") == "X":
            x += 1
        elif e.get("ph") == 3:
            c += e["args"]["dft_cnt"]
        out[e["name"]] = (x, c)
    return out


def test_the_probe_file_rules_reach_the_kernel(
    run_env: dict[str, str], make_probe_file: Callable[..., Path], file_io: Path, job_dir: Path
) -> None:
    env = run_env | {"DATACRUMBS_PROFILE_INTERVAL_MS": "100"}
    daemon = Daemon(make_probe_file(RULES), "valve1", env=env)
    daemon.wait_ready("valve1")
    data = job_dir / "valve1.bin"
    pid = _job(daemon, file_io, data)
    assert "valve: calls fold into 100 ms aggregates above 50% of a ring" in daemon.stderr
    events = trace_events(trace_file(env, "valve1"))
    [mode] = [e for e in events if e["name"] == "datacrumbs_mode"]
    assert mode["args"] == {"mode": "trace", "interval_ms": 100}
    assert _calls(events, pid, str(data)) == {
        "open": (1, 0), "write": (0, K), "pread": (K, 0), "fsync": (1, 0), "close": (1, 0),
    }  # fmt: skip
    marks = [e["args"] for e in events if e["name"] == "datacrumbs_valve"]
    assert {(m["function"], m["reasons"]) for m in marks} == {("write", "rule")}
    [summary] = [e for e in events if e["args"].get("name") == "datacrumbs_summary"]
    assert summary["args"]["value"]["lost_events"] == 0


def test_a_spent_trace_budget_aggregates_the_rest(
    run_env: dict[str, str], make_probe_file: Callable[..., Path], file_io: Path, job_dir: Path
) -> None:
    """A 1 MiB trace budget and a job of 2 x 150,000 calls (about 2.5 MiB of trace as events):
    once the trace holds 1 MiB the daemon says so, and the rest of the calls are aggregated;
    every call is one or the other, none lost."""
    env = run_env | {"DATACRUMBS_PROFILE_INTERVAL_MS": "100", "DATACRUMBS_TRACE_MAX_MB": "1"}
    probes = [{"type": 0, "name": "posix", "functions": ["write", "pread64"]}]
    daemon = Daemon(make_probe_file(probes), "valve2", env=env)
    daemon.wait_ready("valve2")
    data = job_dir / "valve2.bin"
    n = 150_000
    out = subprocess.run(
        as_job_user([str(file_io), str(data), str(n), "16"]),
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    subprocess.run(["sleep", "0.3"], check=True)
    assert daemon.stop() == 0, daemon.stderr
    events = trace_events(trace_file(env, "valve2"))
    calls = _calls(events, int(out.split()[0]), str(data))
    assert [sum(calls[f]) for f in ("write", "pread")] == [n, n]
    assert calls["pread"][1] > 0  # the job's last calls: aggregated
    [spent] = [e["args"] for e in events if e["name"] == "datacrumbs_budget"]
    assert spent["budget_bytes"] == 1 << 20 <= spent["trace_bytes"]
    marks = [e["args"] for e in events if e["name"] == "datacrumbs_valve"]
    assert "budget" in {m["reasons"] for m in marks}
    [summary] = [e for e in events if e["args"].get("name") == "datacrumbs_summary"]
    assert summary["args"]["value"]["lost_events"] == 0
