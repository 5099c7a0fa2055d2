"""Fixtures of the demo and summary tests: one real traced run of the demo workload, shared by
the summary tests (an installation, a signed probe file, the daemon, the workload as nobody)."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from demo_support import TracedRun
from support import (
    clean_env,
    command,
    install_options,
    public_subdir,
    signed_document,
    signing_key_path,
)

from datacrumbs.common.probe_file import write_probe_file
from datacrumbs.common.run_files import wait_ready
from datacrumbs.demo.workload import WorkloadPlan, build_workload
from datacrumbs.trace.summary import summarize

JOB_USER = "nobody"
PROBED = ["openat", "write", "read", "pread64", "fsync", "close"]
PLAN = WorkloadPlan(files=2, writes=300, block=1024, lines=20)


@pytest.fixture(scope="session")
def world(public_root: Path) -> Path:
    """A 0755 directory under /tmp: nobody must reach the workload and its data (tmp_path is
    0700)."""
    return public_subdir(public_root, "demo")


@dataclass(frozen=True)
class SummaryInstall:
    """An installation, a signed probe file tracing PROBED for nobody, the built workload."""

    world: Path
    env: dict[str, str]
    probes: Path
    binary: Path


@pytest.fixture(scope="session")
def summary_install(world: Path) -> SummaryInstall:
    prefix = world / "summary-prefix"
    env = clean_env(
        DATACRUMBS_INSTALL_PREFIX=str(prefix),
        DATACRUMBS_SERVER_RUN_DIR=str(world / "summary-run"),
        DATACRUMBS_TRACE_DIR_PATTERN=str(world / "summary-traces/%USER%"),
        DATACRUMBS_USER=JOB_USER,
    )
    flags, paths = install_options(prefix)
    subprocess.run(
        [command("datacrumbs_install"), "--prefix", str(prefix), *flags],
        env=env | paths,
        check=True,
        capture_output=True,
    )
    probes = world / "probes.json.gz"
    write_probe_file(
        probes,
        signed_document(
            signing_key_path(prefix),
            [{"type": 0, "name": "posix", "functions": PROBED}],
            user=JOB_USER,
        ),
    )
    owner = pwd.getpwnam(JOB_USER)  # the user's own, as the configurator writes it
    os.chown(probes, owner.pw_uid, owner.pw_gid)
    return SummaryInstall(world, env, probes, build_workload(world / "bin"))


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


def _trace_workload(setup: SummaryInstall, run_id: str, kill: bool) -> TracedRun:
    """The demo workload traced (:func:`trace_command`); with ``kill``, the daemon killed
    with SIGKILL once the workload's writes are flushed into the trace."""
    data = data_dir(setup, run_id)
    flushed = (lambda trace, pid: _writes_in(trace, pid) >= PLAN.write_calls) if kill else None
    trace, pid, _ = trace_command(setup, run_id, PLAN.argv(setup.binary, data), flushed=flushed)
    return TracedRun(trace, pid, data, PLAN)


def _writes_in(trace: Path, pid: int) -> int:
    summary = summarize(trace, [pid])
    return sum(f.count for f in summary.functions.values() if f.name == "write")


@pytest.fixture(scope="session")
def traced_run(summary_install: SummaryInstall) -> TracedRun:
    """A trace the daemon finished (SIGTERM) of one run of the demo workload."""
    return _trace_workload(summary_install, "summary", kill=False)


@pytest.fixture(scope="session")
def killed_run(summary_install: SummaryInstall) -> TracedRun:
    """A trace whose daemon was killed with SIGKILL after the workload (no end, no trailer)."""
    return _trace_workload(summary_install, "killed", kill=True)
