"""``datacrumbs_probe_configurator CONFIG OUTPUT``: the user's command.

It only finds the installed launcher (from the settings' install prefix) and execs it with the
same arguments and environment: the work happens in the launcher, the one program the signer
trusts (see exec_main.py and docs/security.md).
"""

from __future__ import annotations

import os
import sys

from datacrumbs.common.errors import DatacrumbsError, run_cli
from datacrumbs.common.layout import InstallLayout
from datacrumbs.common.settings import load_settings
from datacrumbs.configurator.exec_main import PROG, argument_parser

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if {"-h", "--help"} & set(args):
        argument_parser().parse_args(args)  # prints the launcher's usage and exits: no launcher

    def run() -> int:
        launcher = InstallLayout(load_settings().install_prefix).launcher
        if not os.access(launcher, os.X_OK):
            raise DatacrumbsError(
                f"{launcher} is not installed or not executable; an admin "
                "runs datacrumbs_install to install it"
            )
        try:
            os.execv(launcher, [str(launcher), *args])
        except OSError as exc:
            raise DatacrumbsError(f"cannot run {launcher}: {exc.strerror}") from None
        return 1  # not reached

    return run_cli(PROG, run)
