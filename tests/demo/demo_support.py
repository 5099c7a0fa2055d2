"""Helpers of the demo tests (a module of its own: conftest names collide across folders)."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from support import command

from datacrumbs.common.run_files import wait_ready
from datacrumbs.demo.workload import WorkloadPlan

JOB_USER = "nobody"


@dataclass(frozen=True)
class TracedRun:
    """A finished trace of one run of the demo workload."""

    trace: Path
    pid: int
    data_dir: Path
    plan: WorkloadPlan


@dataclass(frozen=True)
class SummaryInstall:
    """An installation, a signed probe file tracing PROBED for nobody, the built workload."""

    world: Path
    env: dict[str, str]
    probes: Path
    binary: Path


def trace_command(
    setup: SummaryInstall,
    run_id: str,
    argv: list[str],
    env: dict[str, str] | None = None,
    flushed: Callable[[Path, int], bool] | None = None,
) -> tuple[Path, int, str]:
    """Run the daemon, ``argv`` as nobody, then stop the daemon with SIGTERM — or, given
    ``flushed`` (trace, pid -> whether the workload's calls are in it), SIGKILL it once they
    are. The trace, the workload's pid and its output."""
    pw = pwd.getpwnam(JOB_USER)
    daemon = subprocess.Popen(
        [command("datacrumbs"), str(setup.probes), run_id],
        env=setup.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ready = Path(setup.env["DATACRUMBS_SERVER_RUN_DIR"]) / f"datacrumbs-{run_id}.ready"
    trace = wait_ready(daemon, ready, 60)
    # setpriv execs the workload: the pid started here is the pid the trace shows
    workload = subprocess.Popen(
        ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    out, workload_err = workload.communicate(timeout=60)
    assert workload.returncode == 0, workload_err
    if flushed is not None:
        deadline = time.monotonic() + 30
        while not flushed(trace, workload.pid):
            assert time.monotonic() < deadline, "the calls were not flushed in 30 s"
            time.sleep(0.1)
        daemon.kill()
        daemon.communicate(timeout=60)
    else:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=120)
        assert daemon.returncode == 0, err
    return trace, workload.pid, out


def data_dir(setup: SummaryInstall, run_id: str) -> Path:
    """A directory of nobody's for one run's files."""
    pw = pwd.getpwnam(JOB_USER)
    made = setup.world / f"data-{run_id}"
    made.mkdir(mode=0o755)
    os.chown(made, pw.pw_uid, pw.pw_gid)
    return made
