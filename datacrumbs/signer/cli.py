"""``datacrumbs_sign_probes``: the root service that signs probe files made by the configurator.

Run by ``datacrumbs_sign_probes.service`` (``Type=notify``: READY=1 is sent once the socket
listens). Stops on SIGTERM or SIGINT, removing its socket.
"""

from __future__ import annotations

import argparse
import grp
import os
import signal
import threading

from datacrumbs.common.errors import DatacrumbsError, run_cli
from datacrumbs.common.layout import LAUNCHER_GROUP, InstallLayout
from datacrumbs.common.notify import Notifier
from datacrumbs.common.settings import load_settings
from datacrumbs.common.signer_protocol import REQUEST_TIMEOUT_SECONDS
from datacrumbs.common.signing import read_signing_key, read_verify_keys
from datacrumbs.signer.audit import setup_audit_logging
from datacrumbs.signer.server import SignerServer

__all__ = ["main"]

PROG = "datacrumbs_sign_probes"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Sign probe files for datacrumbs_probe_configurator_exec, after checking who asks "
            "and what is asked. Must run as root. Listens on DATACRUMBS_SIGN_PROBES_SOCKET_PATH."
        ),
    )
    parser.add_argument(
        "--request-timeout",
        type=float,
        default=REQUEST_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help=f"time a client has to send its whole request (default {REQUEST_TIMEOUT_SECONDS})",
    )
    return parser


def _serve(request_timeout: float) -> int:
    if os.geteuid() != 0:
        raise DatacrumbsError("must run as root: it reads the signing key")
    if not 0 < request_timeout <= 300:
        raise DatacrumbsError("--request-timeout must be between 0 and 300 seconds")
    settings = load_settings()
    key = read_signing_key(settings.signing_key_file)
    current = read_verify_keys(settings.verify_keys_file).current
    if current.key_id != key.key_id:  # every file signed now would be refused on every node
        raise DatacrumbsError(
            f"signing key {settings.signing_key_file} ({key.key_id}) is not the key the "
            f"installation verifies with ({current.key_id}, {settings.verify_keys_file}): "
            "run datacrumbs_install on this host"
        )
    launcher = InstallLayout(settings.install_prefix).launcher
    if not launcher.is_file():
        raise DatacrumbsError(
            f"the configurator launcher {launcher} is not installed; run datacrumbs_install"
        )
    try:
        gid = grp.getgrnam(LAUNCHER_GROUP).gr_gid
    except KeyError:
        raise DatacrumbsError(
            f"group {LAUNCHER_GROUP!r} does not exist; run datacrumbs_install"
        ) from None
    logger = setup_audit_logging()
    server = SignerServer(settings, key, launcher, gid, logger, request_timeout)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server.bind()
    notifier = Notifier()
    try:
        logger.info("listening on %s, trusting %s", settings.sign_probes_socket_path, launcher)
        notifier.ready(f"listening on {settings.sign_probes_socket_path}")
        server.serve(stop)
        notifier.stopping("stopping")
    finally:
        server.close()
    logger.info("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return run_cli(PROG, lambda: _serve(args.request_timeout))
