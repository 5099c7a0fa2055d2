"""The signer's socket server: one thread per connection, bounded, and nothing a client sends
can stop it.

Each connection gets one challenge, one request and one reply, then is closed. The peer must
be the installed launcher before the signer reads a byte (:mod:`peer_credentials`); the request
must answer a fresh challenge sent after that check, and every byte of it must come from the
connecting process itself (``SCM_CREDENTIALS``). Together they bind the request to the
launcher's code: bytes written before the process became the launcher are refused (nothing may
precede the challenge), bytes from any other process holding the socket are refused by pid.
Then the content is checked (:mod:`content_checks`); only then is the document signed with the
private key, which never leaves this process. A client that is slow or silent only holds its own
thread until the request deadline; a user cannot hold more than
:data:`MAX_CONNECTIONS_PER_UID` of them.
"""

from __future__ import annotations

import errno
import hmac
import logging
import os
import pwd
import secrets
import socket
import stat
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datacrumbs.common.errors import DatacrumbsError
from datacrumbs.common.settings import Settings
from datacrumbs.common.signer_protocol import (
    MAX_REQUEST_BYTES,
    REQUEST_TIMEOUT_SECONDS,
    FrameError,
    loads_strict,
    read_frame,
    send_frame,
)
from datacrumbs.common.signing import SigningKey, sign
from datacrumbs.signer.audit import audit
from datacrumbs.signer.content_checks import ContentRefused, check_document
from datacrumbs.signer.peer_credentials import (
    PeerCredentials,
    PeerRefused,
    read_peer,
    verify_launcher,
)

__all__ = ["MAX_CONNECTIONS", "MAX_CONNECTIONS_PER_UID", "SOCKET_MODE", "SignerServer"]

SOCKET_MODE = 0o660
MAX_CONNECTIONS = 128
MAX_CONNECTIONS_PER_UID = 8
#: Longest a refused client's unread input is drained so that it can read the reply.
DRAIN_SECONDS = 1.0


class _Refusal(Exception):
    """Any reason to refuse, carried to the one place that replies and audits."""


@dataclass
class SignerServer:
    """A listening signer: its settings, key, the launcher it trusts and that launcher's group."""

    settings: Settings
    key: SigningKey
    launcher: Path
    launcher_gid: int
    logger: logging.Logger
    request_timeout: float = REQUEST_TIMEOUT_SECONDS

    def __post_init__(self) -> None:
        self._active: Counter[int] = Counter()
        self._refusing = 0
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None

    # -- the listening socket ------------------------------------------------------------

    def bind(self) -> None:
        """Create the socket: root-only while it is set up, then 0660 with the launcher group."""
        path = self.settings.sign_probes_socket_path
        _prepare_run_dir(path.parent)
        _remove_stale_socket(path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        old_umask = os.umask(0o177)
        try:
            listener.bind(str(path))
        except OSError as exc:
            listener.close()
            raise DatacrumbsError(f"cannot bind {path}: {exc.strerror}") from None
        finally:
            os.umask(old_umask)
        os.chown(path, 0, self.launcher_gid)
        os.chmod(path, SOCKET_MODE)
        listener.listen(64)
        listener.settimeout(0.5)  # lets serve() notice the stop event
        self._listener = listener

    def close(self) -> None:
        """Stop listening and remove the socket file (if it is still ours)."""
        if self._listener is None:
            return
        path = self.settings.sign_probes_socket_path
        try:
            if stat.S_ISSOCK(path.lstat().st_mode):
                path.unlink()
        except FileNotFoundError:
            pass
        self._listener.close()
        self._listener = None

    def serve(self, stop: threading.Event) -> None:
        """Accept connections until ``stop`` is set; each is handled on its own thread."""
        assert self._listener is not None, "bind() first"
        while not stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError as exc:
                if exc.errno in (errno.EBADF, errno.EINVAL):
                    return  # the listening socket is gone
                self.logger.error("accept failed: %s", exc.strerror)  # EMFILE and the like
                stop.wait(0.1)
                continue
            self._start(conn)

    # -- one connection -------------------------------------------------------------------

    def _start(self, conn: socket.socket) -> None:
        try:
            peer = read_peer(conn)
        except OSError as exc:
            conn.close()
            self.logger.warning("could not read peer credentials: %s", exc.strerror)
            return
        with self._lock:
            busy = (
                self._active[peer.uid] >= MAX_CONNECTIONS_PER_UID
                or sum(self._active.values()) >= MAX_CONNECTIONS
            )
            if not busy:
                self._active[peer.uid] += 1
            elif self._refusing >= MAX_CONNECTIONS:
                conn.close()  # a flood: not even a reply
                peer.close()
                return
            else:
                self._refusing += 1
        target = self._refuse_busy if busy else self._serve_one
        thread = threading.Thread(
            target=target, args=(conn, peer), daemon=True, name=f"peer-{peer.pid}"
        )
        try:
            thread.start()
        except RuntimeError:  # no thread to be had: drop this connection, keep serving
            self.logger.error("cannot start a thread for peer %d", peer.pid)
            conn.close()
            peer.close()
            with self._lock:
                if busy:
                    self._refusing -= 1
                else:
                    self._active[peer.uid] -= 1

    def _refuse_busy(self, conn: socket.socket, peer: PeerCredentials) -> None:
        """Refuse without reading: its own short-lived thread, so accepting never waits."""
        try:
            self._finish(conn, peer, "signer busy: too many connections, try again", 0, None)
        finally:
            with self._lock:
                self._refusing -= 1

    def _serve_one(self, conn: socket.socket, peer: PeerCredentials) -> None:
        try:
            try:
                checksum, functions = self._decide(conn, peer)
            except _Refusal as refusal:
                self._finish(conn, peer, str(refusal), 0, None)
            except Exception as exc:  # never let one request take the service down
                self.logger.exception("internal error while serving peer %d", peer.pid)
                self._finish(conn, peer, f"internal error: {type(exc).__name__}", 0, None)
            else:
                self._finish(conn, peer, "", functions, checksum)
        finally:
            with self._lock:
                self._active[peer.uid] -= 1
                if self._active[peer.uid] <= 0:
                    del self._active[peer.uid]

    def _decide(self, conn: socket.socket, peer: PeerCredentials) -> tuple[str, int]:
        self._check_peer(peer)  # before anything is read: the launcher, already now
        challenge = secrets.token_hex(16)
        try:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            if _pending(conn):
                raise _Refusal("request sent before the signer's challenge")
            send_frame(conn, {"challenge": challenge})
            body = read_frame(conn, MAX_REQUEST_BYTES, self.request_timeout, sender_pid=peer.pid)
        except FrameError as exc:
            raise _Refusal(str(exc)) from None
        except OSError as exc:
            raise _Refusal(f"reading the request failed: {exc.strerror}") from None
        document = _request_document(body, challenge)
        self._check_peer(peer)  # and still, alive, when its request is complete
        try:
            user = pwd.getpwuid(peer.uid).pw_name
        except KeyError:
            raise _Refusal(f"peer uid {peer.uid} has no user name on this host") from None
        try:
            model = check_document(document, user, self.settings)
        except ContentRefused as exc:
            raise _Refusal(str(exc)) from None
        return sign(self.key, document), sum(len(p.functions) for p in model.categories)

    def _check_peer(self, peer: PeerCredentials) -> None:
        try:
            verify_launcher(peer, self.launcher, self.launcher_gid)
        except PeerRefused as exc:
            raise _Refusal(str(exc)) from None

    def _finish(
        self,
        conn: socket.socket,
        peer: PeerCredentials,
        reason: str,
        functions: int,
        checksum: str | None,
    ) -> None:
        """Reply, audit, close: the one way every connection ends."""
        reply: dict[str, Any] = (
            {"ok": True, "checksum": checksum, "signing_key": self.key.key_id}
            if checksum
            else {"ok": False, "error": reason}
        )
        delivered = True
        try:
            conn.settimeout(self.request_timeout)
            send_frame(conn, reply)
        except OSError as exc:
            delivered = False
            reason = f"{reason}; reply not delivered: {exc.strerror or exc}".lstrip("; ")
        audit(
            self.logger,
            peer,
            "signed" if checksum else "refused",
            reason or "checks passed",
            functions,
        )
        try:
            if delivered:
                _drain(conn)
        finally:
            conn.close()
            peer.close()


def _drain(conn: socket.socket) -> None:
    """Let the client read the reply before the socket closes.

    Closing a Unix socket with unread input makes the peer's next read fail with ECONNRESET
    even though the reply is waiting, so after a refusal that left part of the request unread
    (too large, malformed) the rest is read and discarded, for at most a second.
    """
    conn.shutdown(socket.SHUT_WR)
    deadline = time.monotonic() + DRAIN_SECONDS
    while (remaining := deadline - time.monotonic()) > 0:
        conn.settimeout(remaining)
        try:
            if not conn.recv(1 << 16):
                return
        except (TimeoutError, OSError):
            return


def _pending(conn: socket.socket) -> bool:
    """Whether the peer sent anything yet (it must not have: the challenge comes first)."""
    try:
        return bool(conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except BlockingIOError:
        return False


def _request_document(body: bytes, challenge: str) -> dict[str, Any]:
    try:
        request = loads_strict(body)
    except ValueError as exc:
        raise _Refusal(f"malformed request: {exc}") from None
    if set(request) != {"challenge", "document"} or not isinstance(request["document"], dict):
        raise _Refusal('malformed request: expected {"challenge": "...", "document": {...}}')
    if not isinstance(request["challenge"], str) or not hmac.compare_digest(
        request["challenge"].encode(), challenge.encode()
    ):
        raise _Refusal("the request does not answer this connection's challenge")
    return request["document"]


def _prepare_run_dir(directory: Path) -> None:
    """The socket's directory must exist, be root's and be writable by no one else."""
    if not directory.exists():
        directory.mkdir(mode=0o755, parents=True)
    info = directory.lstat()
    if not stat.S_ISDIR(info.st_mode):
        raise DatacrumbsError(f"{directory} is not a directory")
    if info.st_uid != 0 or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise DatacrumbsError(
            f"{directory} must be owned by root and writable by no one else, so that no one "
            "can replace the signer's socket"
        )


def _remove_stale_socket(path: Path) -> None:
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise DatacrumbsError(f"{path} exists and is not a socket; remove it first")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink()  # nobody listens: left over from a signer that did not stop cleanly
        return
    finally:
        probe.close()
    raise DatacrumbsError(f"another signer is already listening on {path}")
