"""The configurator's side of the signer protocol (docs/signer-protocol.md).

It reads the signer's challenge, sends it back with the unsigned document and gets back the
signature and the name of the key that made it; the private key stays in the signer.
Every way this can fail is one line: the signer is not running, the socket cannot be reached,
the reply is garbled, or the signer refused — with the signer's own reason.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Any, TypeGuard

from datacrumbs.common.errors import DatacrumbsError
from datacrumbs.common.layout import LAUNCHER_GROUP
from datacrumbs.common.signer_protocol import (
    MAX_REPLY_BYTES,
    FrameError,
    loads_strict,
    read_frame,
    send_frame,
)
from datacrumbs.configurator.launcher_group import LauncherGroup

__all__ = ["REPLY_TIMEOUT_SECONDS", "request_signature"]

#: The signer answers in milliseconds; this only bounds a hung signer.
REPLY_TIMEOUT_SECONDS = 30.0
_CHECKSUM = re.compile(r"^[0-9a-f]{128}$")
_KEY_ID = re.compile(r"^[0-9a-f]{16}$")


def _connect(path: Path, group: LauncherGroup) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.settimeout(REPLY_TIMEOUT_SECONDS)
    try:
        with group.held():
            sock.connect(str(path))
    except (FileNotFoundError, ConnectionRefusedError):
        sock.close()
        raise DatacrumbsError(
            f"signer not running at {path} — start datacrumbs_sign_probes.service on this node"
        ) from None
    except PermissionError:
        sock.close()
        raise DatacrumbsError(
            f"permission denied on the signer socket {path}: use datacrumbs_probe_configurator "
            f"(the launcher must be installed setgid {LAUNCHER_GROUP})"
        ) from None
    except OSError as exc:
        sock.close()
        raise DatacrumbsError(f"cannot reach the signer at {path}: {exc.strerror}") from None
    finally:
        group.drop()
    return sock


def _read_message(sock: socket.socket) -> dict[str, Any]:
    return loads_strict(read_frame(sock, MAX_REPLY_BYTES, REPLY_TIMEOUT_SECONDS, "reply"))


def _well_formed(value: Any, pattern: re.Pattern[str]) -> TypeGuard[str]:
    return isinstance(value, str) and pattern.match(value) is not None


def request_signature(path: Path, document: dict[str, Any], group: LauncherGroup) -> dict[str, str]:
    """The signer's ``checksum`` and ``signing_key`` fields for ``document``, or one
    :class:`DatacrumbsError` line."""
    with _connect(path, group) as sock:
        try:
            reply = _read_message(sock)
            challenge = reply.get("challenge")
            if isinstance(challenge, str):  # otherwise the signer refused at once
                send_frame(sock, {"challenge": challenge, "document": document})
                reply = _read_message(sock)
        except (FrameError, ValueError) as exc:
            raise DatacrumbsError(f"no valid reply from the signer: {exc}") from None
        except OSError as exc:
            raise DatacrumbsError(f"the signer closed the connection: {exc.strerror}") from None
    checksum, key = reply.get("checksum"), reply.get("signing_key")
    if reply.get("ok") is True:
        if _well_formed(checksum, _CHECKSUM) and _well_formed(key, _KEY_ID):
            return {"checksum": checksum, "signing_key": key}
        raise DatacrumbsError("no valid reply from the signer: malformed checksum or key name")
    raise DatacrumbsError(f"signer refused: {reply.get('error', 'no reason given')}")
