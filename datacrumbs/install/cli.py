"""Command line of ``datacrumbs_install``."""

from __future__ import annotations

import argparse
from pathlib import Path

from datacrumbs.common.errors import run_cli
from datacrumbs.install.installer import InstallOptions, install

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="datacrumbs_install",
        description=(
            "Install datacrumbs into PREFIX for every user and node: the program and its Python "
            "dependencies (PREFIX/libexec/datacrumbs), the commands (PREFIX/bin, PREFIX/sbin), "
            "the setup script, the Lmod modulefile, the systemd units, the system configuration, "
            "the probe secret, the BPF object and the setgid configurator launcher. Must run as "
            "root. Running it again changes nothing and loses nothing."
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
    parser.add_argument(
        "--host",
        help="the installation's name, the same on all its nodes (DATACRUMBS_HOST; default: "
        "this host's name); probe files are signed for it",
    )
    parser.add_argument(
        "--python",
        type=Path,
        help="interpreter to make the runtime from (default: this one's base interpreter if "
        "every user can run it, else the system's python3)",
    )
    parser.add_argument(
        "--wheel",
        type=Path,
        help="the datacrumbs wheel to install (default: built from the source tree this "
        "installer runs from, or the wheel it was installed from)",
    )
    parser.add_argument(
        "--wheelhouse",
        type=Path,
        help="directory of dependency wheels; with it nothing is downloaded (offline sites)",
    )
    parser.add_argument(
        "--rebuild-bpf",
        action="store_true",
        help="compile the BPF object for this kernel (needs clang and bpftool) instead of "
        "installing the one the wheel ships",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    def run() -> int:
        options = InstallOptions(
            install_user=args.install_user,
            host=args.host,
            python=args.python,
            wheel=args.wheel,
            wheelhouse=args.wheelhouse,
            rebuild_bpf=args.rebuild_bpf,
        )
        for line in install(args.prefix, options):
            print(line)
        return 0

    return run_cli("datacrumbs_install", run)
