"""The daemon survives the trace's disk filling up: a 2 MiB tmpfs under the trace directory and
a job of 1.5 M writes. It stays up to the end, exits 0, says so in one line, and every call is
either an event of the trace or counted lost; the trace opens in every reader."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from daemon_support import JOB_USER, Daemon, as_job_user, compile_c
from dftracer_support import dftracer_tool
from support import command, small_tmpfs

from datacrumbs.common.status_db import StatusDB, status_db_path
from datacrumbs.trace.reading import read_trace_lines
from datacrumbs.trace.summary import summarize

CALLS = 1_500_000
WRITES = [{"type": 0, "name": "posix", "functions": ["write"]}]
FLOOD = Path(__file__).parent.parent / "engine" / "c" / "flood.c"


@pytest.fixture
def small_disk(reachable_dir: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounts a tmpfs and runs the daemon: needs root")
    with small_tmpfs(reachable_dir / "small") as mount:
        yield mount


def test_a_job_that_fills_the_trace_s_disk(
    installed: Path,
    run_env: dict[str, str],
    make_probe_file: Callable[..., Path],
    public_dir: Path,
    small_disk: Path,
) -> None:
    flood = compile_c(FLOOD, public_dir / "flood")
    env = run_env | {"DATACRUMBS_TRACE_DIR_PATTERN": f"{small_disk}/%USER%"}
    daemon = Daemon(make_probe_file(WRITES), "full1", env=env)
    daemon.wait_ready("full1")
    job = subprocess.run(as_job_user([str(flood), str(CALLS)]), capture_output=True, check=False)
    assert job.returncode == 0
    assert daemon.stop(timeout=300) == 0, daemon.stderr
    warnings = [line for line in daemon.stderr.splitlines() if "No space left on device" in line]
    assert len(warnings) == 2, daemon.stderr  # when it happens, and at the end with the count
    assert "tracing goes on" in warnings[0]

    (trace,) = (small_disk / JOB_USER).glob("trace-*.pfw.gz")
    lines = read_trace_lines(trace)
    writes = sum(1 for line in lines if '"name":"write"' in line and '"ph":"X"' in line)
    read = summarize(trace)
    assert read.complete, "the summary and the gzip trailer were written into the held room"
    lost = read.lost["lost_events"]
    assert writes + lost == CALLS  # every call: an event or counted lost
    assert 0 < writes < CALLS and read.events == writes
    (end,) = [json.loads(line) for line in lines if '"datacrumbs_summary"' in line]
    unwritten = end["args"]["value"]["unwritten_events"]
    assert 0 < unwritten <= lost
    summary = subprocess.run(
        [command("datacrumbs_summary"), str(trace)], capture_output=True, text=True, check=False
    )
    assert summary.returncode == 0, summary.stderr
    validated = dftracer_tool("dftracer_validate", "--files", str(trace))
    assert f"1 passed, 0 failed, {len(lines) - 2} lines" in validated

    nobody = pwd.getpwnam(JOB_USER).pw_uid
    db = status_db_path(installed / "share/datacrumbs/data", "root", nobody, Path("probes.json"))
    [run] = [r for r in StatusDB(db).runs() if r["run_id"] == "full1"]
    assert (run["events"], run["lost_events"]) == (writes, lost)
    assert run["unwritten_events"] == unwritten
    assert (run["write_error"], run["trace_complete"]) == ("No space left on device", 1)
