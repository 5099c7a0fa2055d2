"""Command line of ``datacrumbs_demo`` (``make demo`` runs it through scripts/demo)."""

from __future__ import annotations

import argparse
from pathlib import Path

from datacrumbs.common.errors import run_cli
from datacrumbs.demo.driver import DemoOptions, print_summary, run_demo
from datacrumbs.trace.summary import wide_console

__all__ = ["main"]

PROG = "datacrumbs_demo"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Trace a small built-in I/O workload end to end, as root: install into PREFIX, "
            "start the probe signer, make a signed probe file as an unprivileged user, start "
            "the tracing daemon for run-id 'demo', run the workload as that user, stop "
            "everything and summarise the trace. Safe to run again."
        ),
    )
    parser.add_argument(
        "--prefix",
        type=Path,
        default=DemoOptions.prefix,
        help=f"demo installation (default {DemoOptions.prefix}); the user must be able to reach it",
    )
    parser.add_argument(
        "--user",
        default=DemoOptions.user,
        help=f"the unprivileged job user (default {DemoOptions.user})",
    )
    parser.add_argument(
        "--no-stdio",
        dest="stdio",
        action="store_false",
        help="trace only POSIX syscalls, no libc stdio uprobes",
    )
    daemon = parser.add_mutually_exclusive_group()
    daemon.add_argument(
        "--systemd",
        dest="systemd",
        action="store_true",
        default=None,
        help="run the daemon under systemd (default: when systemd is running)",
    )
    daemon.add_argument(
        "--no-systemd",
        dest="systemd",
        action="store_false",
        help="run the daemon as a supervised subprocess",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    options = DemoOptions(
        prefix=args.prefix, user=args.user, stdio=args.stdio, systemd=args.systemd
    )
    console = wide_console()

    def run() -> int:
        result = run_demo(options, console)
        print_summary(result, options.plan, console)
        return 0

    return run_cli(PROG, run)
