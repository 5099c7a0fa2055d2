"""Command line of ``datacrumbs_service``: the scheduler hooks and the unit's exec step."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from datacrumbs.common.errors import DatacrumbsError, run_cli
from datacrumbs.service.exec_step import exec_daemon
from datacrumbs.service.job_hooks import start_tracing, stop_tracing

__all__ = ["main"]

PROG = "datacrumbs_service"

_EPILOG = """\
start and stop are for a job's prolog and epilog (root); exec is the ExecStart of
datacrumbs@.service and is not run by hand. The installation is the one whose
datacrumbs@.service is linked into systemd. See docs/deploy.md.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Start and stop the datacrumbs@<run-id> tracing service of one job.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    start = commands.add_parser(
        "start", help="write the run's environment file and systemctl start datacrumbs@RUN_ID"
    )
    start.add_argument("run_id", metavar="RUN_ID", help="the job's id (letters, digits . _ -)")
    start.add_argument("user", metavar="USER", help="the job user whose processes are traced")
    start.add_argument(
        "probe_file", metavar="PROBE_FILE", type=Path, help="signed probe file, readable by USER"
    )
    start.add_argument(
        "--job-cgroup",
        metavar="DIR",
        type=Path,
        help="trace only the processes of this cgroup v2 directory and below (the job's; it "
        "may not exist yet: nothing of USER is traced until it does)",
    )
    start.add_argument(
        "--job-parent-cmdline",
        metavar="TEXT",
        help="for jobs without a cgroup: trace only what processes whose command line starts "
        "with TEXT (the job's step daemons, e.g. 'slurmstepd: [JOBID.') fork from now on, "
        "and their descendants",
    )
    start.add_argument(
        "--mode",
        choices=("trace", "profile"),
        help="trace: every call is an event; profile: calls aggregated per process, thread, "
        "function, file and interval (default: the installation's DATACRUMBS_MODE)",
    )
    start.add_argument(
        "--profile-interval-ms",
        metavar="MS",
        type=int,
        help="profile mode's interval (default: the installation's "
        "DATACRUMBS_PROFILE_INTERVAL_MS, 1000)",
    )
    stop = commands.add_parser(
        "stop", help="systemctl stop datacrumbs@RUN_ID, wait, remove the environment file"
    )
    stop.add_argument("run_id", metavar="RUN_ID")
    exec_ = commands.add_parser("exec", help="(the unit's ExecStart) become the daemon")
    exec_.add_argument("run_id", metavar="RUN_ID")
    return parser


def _run(args: argparse.Namespace) -> int:
    if args.command == "exec":
        exec_daemon(args.run_id)  # does not return
    if os.geteuid() != 0:
        raise DatacrumbsError(f"{args.command} must run as root (a prolog or epilog does)")
    if args.command == "start":
        print(
            start_tracing(
                args.run_id,
                args.user,
                args.probe_file,
                args.job_cgroup,
                args.job_parent_cmdline,
                mode=args.mode,
                profile_interval_ms=args.profile_interval_ms,
            )
        )
    else:
        print(stop_tracing(args.run_id))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return run_cli(PROG, lambda: _run(args))
