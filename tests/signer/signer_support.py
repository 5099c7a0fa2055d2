"""Helpers of the signer tests: installations reachable by ``nobody``, running signers, clients.

pytest's tmp_path is 0700 (``nobody`` cannot reach it), so these tests keep their files in a
0755 directory under /tmp of their own, removed at the end of the session.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from support import clean_env, installed_command, with_identity

from datacrumbs.common.layout import InstallLayout
from datacrumbs.common.settings import Settings, load_settings

NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
NOBODY_UID = 65534


@dataclass
class Node:
    """One installation and the signer serving it."""

    prefix: Path
    run_dir: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.run_dir / "datacrumbs_sign_probes.sock"

    @property
    def configurator(self) -> str:
        """The installed ``datacrumbs_probe_configurator`` users run."""
        return installed_command(self.prefix, "datacrumbs_probe_configurator")

    @property
    def launcher(self) -> Path:
        return InstallLayout(self.prefix).launcher

    def env(self, **extra: str) -> dict[str, str]:
        return (
            clean_env(
                DATACRUMBS_INSTALL_PREFIX=str(self.prefix),
                DATACRUMBS_SERVER_RUN_DIR=str(self.run_dir),
                DATACRUMBS_SIGN_PROBES_SOCKET_PATH=str(self.socket),
            )
            | extra
        )

    def settings(self) -> Settings:
        return load_settings(
            install_prefix=self.prefix,
            server_run_dir=self.run_dir,
            sign_probes_socket_path=self.socket,
        )

    def start(self, request_timeout: float = 3.0, **env: str) -> None:
        self.log.write_bytes(b"")
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [
                    installed_command(self.prefix, "datacrumbs_sign_probes"),
                    "--request-timeout",
                    str(request_timeout),
                ],
                env=self.env(**env),
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + 15
        while b"listening on" not in self.log.read_bytes():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"signer did not start: {self.log.read_text()}")
            time.sleep(0.05)

    def stop(self) -> int:
        assert self.process is not None
        self.process.terminate()
        return self.process.wait(timeout=10)

    def audit(self, pid: int, at_least: int = 1) -> list[str]:
        """The audit lines about peer ``pid``, once there are ``at_least`` of them.

        The signer logs a decision right after replying, so a client may read the reply first.
        """
        deadline = time.monotonic() + 30
        while True:
            lines = [
                line
                for line in self.log.read_text().splitlines()
                if f"PEER_PID={pid} " in line and "DECISION=" in line
            ]
            if len(lines) >= at_least or time.monotonic() > deadline:
                return lines
            time.sleep(0.02)


def run(
    argv: list[str],
    env: dict[str, str],
    *,
    as_nobody: bool = False,
    timeout: float = 60,
    text: bool = True,
) -> tuple[subprocess.CompletedProcess[Any], int]:
    """Run ``argv`` (as nobody if asked); the result and the pid it ran as."""
    full = [*NOBODY, *argv] if as_nobody else argv
    process = subprocess.Popen(
        full, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=text
    )
    out, err = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(full, process.returncode, out, err), process.pid


def frame(message: dict[str, Any] | bytes) -> bytes:
    body = message if isinstance(message, bytes) else json.dumps(message).encode()
    return struct.pack(">I", len(body)) + body


def read_reply(sock: socket.socket) -> dict[str, Any]:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    (size,) = struct.unpack(">I", data[:4])
    assert len(data) == 4 + size, data
    return json.loads(data[4:])


def exchange(path: Path, data: bytes) -> dict[str, Any]:
    """Connect (as this process), send ``data`` as it is, return the reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(str(path))
        sock.sendall(data)
        return read_reply(sock)


class Relay:
    """The crafted launcher of ``node`` (crafted_client.c) relaying between the test and the
    signer: what the test writes reaches the signer as sent by the launcher, when it is sent."""

    def __init__(self, node: Node, *, as_nobody: bool = True) -> None:
        argv = [str(node.launcher), str(node.socket)]
        self.process = subprocess.Popen(
            [*NOBODY, *argv] if as_nobody else argv,
            env=node.env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
        )
        self.pid = self.process.pid  # setpriv execs the relay: the same pid

    def send(self, data: bytes) -> None:
        assert self.process.stdin is not None
        # The signer may have answered and closed already; its reply is still to be read.
        with contextlib.suppress(BrokenPipeError):
            self.process.stdin.write(data)

    def close_input(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()

    def _read(self, size: int) -> bytes:
        assert self.process.stdout is not None
        data = b""
        while len(data) < size:
            chunk = self.process.stdout.read(size - len(data))
            if not chunk:
                raise AssertionError(f"the signer closed after {data!r}")
            data += chunk
        return data

    def message(self) -> dict[str, Any]:
        """The next frame from the signer, decoded."""
        (size,) = struct.unpack(">I", self._read(4))
        return json.loads(self._read(size))

    def challenge(self) -> str:
        first = self.message()
        assert set(first) == {"challenge"}, first
        return first["challenge"]

    def finish(self) -> int:
        """Wait for the relay to end (the signer closed); its exit status."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        return self.process.wait(timeout=30)


def converse(
    node: Node, request: dict[str, Any] | bytes, *, as_nobody: bool = True
) -> tuple[dict[str, Any], int]:
    """Through the relay: take the challenge, answer it with ``request``, return the reply and
    the relay's pid. A dict is sent as the request with the challenge added; bytes are sent
    exactly as they are (they answer no challenge)."""
    relay = Relay(node, as_nobody=as_nobody)
    challenge = relay.challenge()
    relay.send(request if isinstance(request, bytes) else frame({"challenge": challenge} | request))
    reply = relay.message()
    assert relay.finish() == 0
    return reply, relay.pid


def document(settings: Settings, user: str, **summary: Any) -> dict[str, Any]:
    """A document the signer would sign for ``user`` (one libc uprobe, one syscall)."""
    now = datetime.now(UTC)
    base = {
        "config_file_path": "/etc/probes.yaml",
        "probe_file_path": "/tmp/probes.json.gz",
        "hostname": settings.hostname,
        "host": settings.host,
        "user": user,
        "install_user": settings.install_user,
        "created_at": now.isoformat(timespec="seconds"),
        "expires_at": (now + timedelta(days=30)).isoformat(timespec="seconds"),
    }
    return {
        "summary": {k: v for k, v in (base | summary).items() if v is not None},
        "categories": [
            {"type": 0, "name": "posix_io", "functions": ["read", "write"]},
            with_identity(
                {
                    "type": 2,
                    "name": "stdio",
                    "functions": ["fopen", "fclose"],
                    "binary_path": os.path.realpath(settings.libc_so),
                }
            ),
        ],
        "checksum_algorithm": "ed25519",
    }


def write_file(path: Path, text: str, mode: int = 0o644) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path
