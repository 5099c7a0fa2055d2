"""A runaway uprobe is detached (issue 11, finding 4): a function that takes the job over its
hits-per-second limit stops being traced, and the daemon says so in the journal, the status
database and the trace, while the other functions of the same binary keep tracing."""

from __future__ import annotations

import json
import pwd
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from daemon_support import JOB_USER, Daemon

from datacrumbs.common.status_db import StatusDB
from datacrumbs.trace.writer import read_trace_lines

SOURCE = Path(__file__).with_name("c") / "hot_loop.c"
LIMIT = 2000


@pytest.fixture(scope="module")
def hot_loop(public_dir: Path) -> Path:
    out = public_dir / "hot_loop"
    subprocess.run(["gcc", "-O1", "-o", str(out), str(SOURCE)], check=True)
    return out


def _run_as_user(*argv: str) -> str:
    pw = pwd.getpwnam(JOB_USER)
    return subprocess.run(
        ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups", *argv],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def test_function_over_the_hit_limit_is_detached_and_its_neighbour_keeps_tracing(
    run_env: dict[str, str], make_probe_file: Callable[..., Path], hot_loop: Path, installed: Path
) -> None:
    uprobe = {
        "type": 2,
        "name": "app",
        "functions": ["dc_hot", "dc_cold"],
        "binary_path": str(hot_loop),
    }
    env = run_env | {"DATACRUMBS_UPROBE_HIT_LIMIT": str(LIMIT)}
    daemon = Daemon(make_probe_file([uprobe], name="runaway.json.gz"), "hot", env=env)
    trace = Path(daemon.wait_ready("hot").read_text().splitlines()[1])
    calls = int(_run_as_user(str(hot_loop), "4"))
    assert daemon.stop() == 0, daemon.stderr

    events = [json.loads(line) for line in read_trace_lines(trace)[1:-1]]
    hot = [e for e in events if e.get("ph") == "X" and e["name"] == "dc_hot"]
    cold = [e for e in events if e.get("ph") == "X" and e["name"] == "dc_cold"]
    [notice] = [e for e in events if e.get("name") == "probe_detached"]
    reason = notice["args"]["reason"]
    assert notice["ph"] == "i" and notice["cat"] == "datacrumbs"
    assert notice["args"] | {"reason": ""} == {
        "category": "app",
        "function": "dc_hot",
        "binary": str(hot_loop),
        "reason": "",
    }
    assert reason.startswith("detached: ")
    assert reason.endswith(
        f" hits/s in all processes, over this job's limit of {LIMIT:,} "
        "(DATACRUMBS_UPROBE_HIT_LIMIT)"
    )
    assert int(reason.split()[1].replace(",", "")) > LIMIT
    # Traced until detached, then not: the calls after it ran at full speed, untraced.
    assert 0 < len(hot) < calls
    assert all(e["ts"] <= notice["ts"] for e in hot)
    assert len(cold) == 3  # the neighbour that shared its link was attached again
    assert f"stopped tracing app:dc_hot: {reason}" in daemon.stderr

    db = StatusDB(
        installed
        / "share/datacrumbs/data"
        / f"probes-runtime-status-root-{JOB_USER}-runaway.sqlite"
    )
    [row] = db.rows("invalid")
    assert (row["function_name"], row["scope_key"], row["reason"]) == (
        "dc_hot",
        str(hot_loop),
        reason,
    )
    assert {r["function_name"] for r in db.rows("successful")} == {"dc_cold"}


def test_within_the_limit_nothing_is_detached(
    run_env: dict[str, str], make_probe_file: Callable[..., Path], hot_loop: Path
) -> None:
    uprobe = {
        "type": 2,
        "name": "app",
        "functions": ["dc_hot", "dc_cold"],
        "binary_path": str(hot_loop),
    }
    daemon = Daemon(make_probe_file([uprobe], name="calm.json.gz"), "calm", env=run_env)
    trace = Path(daemon.wait_ready("calm").read_text().splitlines()[1])
    calls = int(_run_as_user(str(hot_loop), "0.05"))
    assert daemon.stop() == 0, daemon.stderr
    events = [json.loads(line) for line in read_trace_lines(trace)[1:-1]]
    assert not [e for e in events if e.get("name") == "probe_detached"]
    assert len([e for e in events if e.get("name") == "dc_hot"]) == calls
    assert "stopped tracing" not in daemon.stderr
