"""Command line of ``datacrumbs_install``."""

from __future__ import annotations

import argparse
from pathlib import Path

from datacrumbs.common.errors import run_cli
from datacrumbs.install.installer import install

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="datacrumbs_install",
        description=(
            "Lay out a shared datacrumbs installation under PREFIX: the setup script, the Lmod "
            "modulefile, the rendered systemd units, the system configuration SQLite and the "
            "probe secret. Must run as root. Running it again changes nothing and loses nothing."
        ),
        epilog=(
            "DATACRUMBS_* variables in the environment (e.g. DATACRUMBS_TRACE_DIR_PATTERN, "
            "DATACRUMBS_LOG_DIR) are stored in the system configuration; see docs/settings.md."
        ),
    )
    parser.add_argument("--prefix", required=True, type=Path, help="installation root")
    parser.add_argument(
        "--install-user", help="user owning the installation's status databases (default root)"
    )
    parser.add_argument("--host", help="host name in the system configuration's file name")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    def run() -> int:
        for line in install(args.prefix, args.install_user, args.host):
            print(line)
        return 0

    return run_cli("datacrumbs_install", run)
