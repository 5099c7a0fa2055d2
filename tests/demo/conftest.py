"""Fixtures of the demo and summary tests: one real traced run of the demo workload, shared by
the summary tests (an installation, a signed probe file, the daemon, the workload as nobody)."""

from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path

import pytest
from demo_support import JOB_USER, SummaryInstall, TracedRun, data_dir, trace_command
from support import (
    clean_env,
    command,
    install_options,
    public_subdir,
    signed_document,
    signing_key_path,
)

from datacrumbs.common.probe_file import write_probe_file
from datacrumbs.demo.workload import WorkloadPlan, build_workload
from datacrumbs.trace.summary import summarize

PROBED = ["openat", "write", "read", "pread64", "fsync", "close"]
PLAN = WorkloadPlan(files=2, writes=300, block=1024, lines=20)


@pytest.fixture(scope="session")
def world(public_root: Path) -> Path:
    """A 0755 directory under /tmp: nobody must reach the workload and its data (tmp_path is
    0700)."""
    return public_subdir(public_root, "demo")


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
