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
            "the public keys probe files are verified with, the BPF object and the setgid "
            "configurator launcher; on the signer's host also the private signing key (outside "
            "PREFIX). Must run as root. Running it again changes nothing and loses nothing."
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
        "--state-dir",
        type=Path,
        help="each node's own state: the status databases (DATACRUMBS_STATE_DIR; default "
        "/var/lib/datacrumbs)",
    )
    keys = parser.add_argument_group(
        "keys", "probe files are signed on one host (the signer's) and verified on every node"
    )
    keys.add_argument(
        "--signing-key",
        type=Path,
        metavar="FILE",
        help="the private key, made here unless it exists (DATACRUMBS_SIGNING_KEY_FILE; "
        "default /etc/datacrumbs/probe-signing-key.pem; never under PREFIX)",
    )
    keys.add_argument(
        "--verify-only",
        action="store_true",
        help="this host does not sign: no private key is made or read; PREFIX must hold the "
        "verify keys already (a shared prefix) or get them with --verify-keys",
    )
    keys.add_argument(
        "--verify-keys",
        type=Path,
        metavar="FILE",
        help="with --verify-only: the signer host's PREFIX/share/datacrumbs/data/"
        "probe-verify-keys.json, copied into this PREFIX",
    )
    keys.add_argument(
        "--rotate-key",
        action="store_true",
        help="make a new signing key; files signed with the old one stay valid until they "
        "expire (at most 90 days)",
    )
    keys.add_argument(
        "--revoke",
        action="store_true",
        help="with --rotate-key: refuse files signed with the old keys at once (a key that leaked)",
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
            state_dir=args.state_dir,
            signing_key=args.signing_key,
            verify_only=args.verify_only,
            verify_keys=args.verify_keys,
            rotate_key=args.rotate_key,
            revoke=args.revoke,
        )
        for line in install(args.prefix, options):
            print(line)
        return 0

    return run_cli("datacrumbs_install", run)
