"""Command line of the tracing daemon ``datacrumbs``."""

from __future__ import annotations

import argparse
from pathlib import Path

from datacrumbs.common.errors import run_cli
from datacrumbs.daemon.run import run_daemon

__all__ = ["main"]

_EPILOG = """\
run-id: the RUN_ID argument; else the value of the environment variable named by
  DATACRUMBS_JOB_ID_VAR (default SLURM_JOB_ID); else a timestamp (YYYYmmdd-HHMMSS).
  Letters, digits, '.', '_' and '-' only.

environment (also read from the installed system configuration; see docs/settings.md):
  DATACRUMBS_USER                  the job user whose processes are traced (required)
  DATACRUMBS_INSTALL_PREFIX        the installation (default /opt/datacrumbs)
  DATACRUMBS_INSTALL_USER          owner of the status databases (default root)
  DATACRUMBS_JOB_ID_VAR            name of the scheduler's job-id variable
  DATACRUMBS_TRACE_DIR_PATTERN     trace directory; %YY% %MM% %DD% %HH% %USER% %HOST% %RUN_ID%
  DATACRUMBS_SERVER_RUN_DIR        ready file <run-dir>/datacrumbs-<run-id>.ready, lock
  DATACRUMBS_SERVER_RUN_ID_FILE    where the run-id is written
  DATACRUMBS_VERIFY_KEYS_FILE      the public keys probe files are verified with
  DATACRUMBS_STATE_DIR             status databases (default /var/lib/datacrumbs)

The trace is <trace-dir>/trace-<user>-<run-id>-<host>-<config>.pfw.gz, where <config> is the
probe file's name without .json.gz. SIGTERM or SIGINT stops tracing, finishes the trace and
removes the ready file. Under systemd (Type=notify) READY=1 is sent once every probe is attached.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="datacrumbs",
        description="Trace one job's I/O and function calls with eBPF into a DFTracer trace.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("probe_file", type=Path, help="signed probe file (.json.gz or .json)")
    parser.add_argument("run_id", nargs="?", help="run-id (see below)")
    args = parser.parse_args(argv)
    return run_cli("datacrumbs", lambda: run_daemon(args.probe_file, args.run_id))
