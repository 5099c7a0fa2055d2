"""A runaway uprobe is detached (issue 11, finding 4): a function that takes the job over its
hits-per-second limit stops being traced, and the daemon says so in the journal and the trace
(not in the status database: issue 25, N3), while the other functions of the same binary keep
tracing."""

from __future__ import annotations

import json
import pwd
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from daemon_support import JOB_USER, Daemon, compile_c, run_as_job_user

from datacrumbs.common.status_db import StatusDB, status_db_path
from datacrumbs.trace.reading import read_trace_lines

SOURCE = Path(__file__).with_name("c") / "hot_loop.c"
LIMIT = 2000


@pytest.fixture(scope="module")
def hot_loop(public_dir: Path) -> Path:
    return compile_c(SOURCE, public_dir / "hot_loop")


def _run(
    hot_loop: Path,
    make_probe_file: Callable[..., Path],
    env: dict[str, str],
    run: str,
    seconds: str,
) -> tuple[Daemon, list[dict[str, Any]], int]:
    """Trace ``hot_loop`` (dc_hot, dc_cold) while it runs ``seconds``: the stopped daemon,
    the trace's events and the calls of dc_hot it made."""
    uprobe = {
        "type": 2,
        "name": "app",
        "functions": ["dc_hot", "dc_cold"],
        "binary_path": str(hot_loop),
    }
    daemon = Daemon(make_probe_file([uprobe], name=f"{run}.json.gz"), run, env=env)
    trace = Path(daemon.wait_ready(run).read_text().splitlines()[1])
    calls = int(run_as_job_user(str(hot_loop), seconds).stdout)
    assert daemon.stop() == 0, daemon.stderr
    return daemon, [json.loads(line) for line in read_trace_lines(trace)[1:-1]], calls


def test_function_over_the_hit_limit_is_detached_and_its_neighbour_keeps_tracing(
    run_env: dict[str, str], make_probe_file: Callable[..., Path], hot_loop: Path, installed: Path
) -> None:
    env = run_env | {
        "DATACRUMBS_UPROBE_HIT_LIMIT": str(LIMIT),
        "DATACRUMBS_UPROBE_TIME_BUDGET": "0",  # the hit limit alone
    }
    daemon, events, calls = _run(hot_loop, make_probe_file, env, "runaway", "4")
    hot = [e for e in events if e.get("ph") == "X" and e["name"] == "dc_hot"]
    cold = [e for e in events if e.get("ph") == "X" and e["name"] == "dc_cold"]
    [notice] = [e for e in events if e.get("name") == "probe_detached"]
    reason = notice["args"]["reason"]
    assert notice["ph"] == "M" and notice["cat"] == "datacrumbs"
    assert notice["args"] | {"reason": ""} == {
        "category": "app",
        "function": "dc_hot",
        "binary": str(hot_loop),
        "reason": "",
    }
    assert reason.startswith("detached: ")
    assert reason.endswith(
        f" hits/s in the job's processes, over this job's limit of {LIMIT:,} "
        "(DATACRUMBS_UPROBE_HIT_LIMIT)"
    )
    assert int(reason.split()[1].replace(",", "")) > LIMIT
    # Traced until detached, then not: the calls after it ran at full speed, untraced.
    assert 0 < len(hot) < calls
    assert all(e["ts"] <= notice["ts"] for e in hot)
    assert len(cold) == 3  # the neighbour that shared its link was attached again
    assert f"stopped tracing app:dc_hot: {reason}" in daemon.stderr

    # A detach says how busy the job was, not that the target fails: the status database
    # keeps it as attached, so the next run tries it again (issue 25, N3).
    nobody = pwd.getpwnam(JOB_USER).pw_uid
    data = installed / "share/datacrumbs/data"
    db = StatusDB(status_db_path(data, "root", nobody, Path("runaway.json.gz")))
    assert db.rows("invalid") == []
    assert {r["function_name"] for r in db.rows("successful")} == {"dc_hot", "dc_cold"}


def test_within_the_limit_nothing_is_detached(
    run_env: dict[str, str], make_probe_file: Callable[..., Path], hot_loop: Path
) -> None:
    daemon, events, calls = _run(hot_loop, make_probe_file, run_env, "calm", "0.05")
    assert not [e for e in events if e.get("name") == "probe_detached"]
    assert len([e for e in events if e.get("name") == "dc_hot"]) == calls
    assert "stopped tracing" not in daemon.stderr


def test_function_over_the_trap_time_budget_is_detached(
    run_env: dict[str, str], make_probe_file: Callable[..., Path], hot_loop: Path
) -> None:
    """Issue 25, N2: the job's uprobes are budgeted in time: dc_hot's traps take nearly all of
    hot_loop's CPU, over the default half; the hit limit is off."""
    env = run_env | {"DATACRUMBS_UPROBE_HIT_LIMIT": "0"}
    daemon, events, calls = _run(hot_loop, make_probe_file, env, "budget", "4")
    [notice] = [e for e in events if e.get("name") == "probe_detached"]
    reason = notice["args"]["reason"]
    assert notice["args"]["function"] == "dc_hot"
    assert reason.startswith("detached: its traps took ")
    assert reason.endswith(" over the budget of 50% (DATACRUMBS_UPROBE_TIME_BUDGET)")
    # hits x the measured cost over the job's CPU time: above 100% where a trap's hypervisor
    # part counts as stolen time, not as the process's
    assert int(reason.split()[4].rstrip("%")) > 50
    hot = [e for e in events if e.get("ph") == "X" and e["name"] == "dc_hot"]
    cold = [e for e in events if e.get("ph") == "X" and e["name"] == "dc_cold"]
    assert 0 < len(hot) < calls and len(cold) == 3
    assert "one uprobe hit costs " in daemon.stderr
    assert f"stopped tracing app:dc_hot: {reason}" in daemon.stderr
