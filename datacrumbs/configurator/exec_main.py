"""The configurator itself: the only code ``datacrumbs_probe_configurator_exec`` runs.

Config → discovery → document → signature → file. Run through the setgid launcher (see
launcher.c); the launcher group is set aside first thing and used only to connect to the
signer (:mod:`launcher_group`). The signing key is never read here: only the signer holds it.
"""

from __future__ import annotations

import argparse
import os
import pwd
import sys
from pathlib import Path

from datacrumbs.common.errors import DatacrumbsError, run_cli
from datacrumbs.common.probe_file import write_probe_file
from datacrumbs.common.settings import load_settings
from datacrumbs.configurator.config import load_config
from datacrumbs.configurator.discovery import discover
from datacrumbs.configurator.launcher_group import LauncherGroup
from datacrumbs.configurator.probe_document import build_document
from datacrumbs.configurator.signer_client import request_signature

__all__ = ["PROG", "argument_parser", "main"]

PROG = "datacrumbs_probe_configurator"


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Discover the probes CONFIG asks for on this node, have them signed by "
            "datacrumbs_sign_probes, and write the signed probe file OUTPUT (gzip JSON, 0600). "
            "The config format is in docs/probes.md."
        ),
    )
    parser.add_argument("config", type=Path, help="YAML config with capture_probes")
    parser.add_argument("output", type=Path, help="probe file to write, e.g. probes.json.gz")
    return parser


def _user() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        raise DatacrumbsError(f"uid {os.getuid()} has no user name on this host") from None


def _configure(config_path: Path, output: Path, group: LauncherGroup) -> int:
    config_path = Path(os.path.abspath(config_path))
    output = Path(os.path.abspath(output))
    if not output.parent.is_dir() or not os.access(output.parent, os.W_OK):
        raise DatacrumbsError(f"cannot write {output}: {output.parent} is not a writable directory")
    settings = load_settings()
    config = load_config(config_path)
    user = _user()
    discovered = discover(config.capture_probes, settings)
    document = build_document(
        discovered,
        settings,
        user=user,
        config_path=config_path,
        output_path=output,
        expires_in_days=config.expires_in_days,
    )
    signature = request_signature(settings.sign_probes_socket_path, document, group)
    try:
        write_probe_file(output, {**document, **signature})
    except OSError as exc:
        raise DatacrumbsError(f"cannot write {output}: {exc.strerror}") from None
    functions = sum(len(c["functions"]) for c in document["categories"])
    print(
        f"{output}: {functions} functions in {len(document['categories'])} categories, "
        f"signed for {user} on {settings.hostname} (good on every node of installation "
        f"{settings.host}), expires {document['summary']['expires_at']}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    group = LauncherGroup.set_aside()
    args = argument_parser().parse_args(argv)
    return run_cli(PROG, lambda: _configure(args.config, args.output, group))


if __name__ == "__main__":
    sys.exit(main())
