"""Nothing a client sends (or fails to send) stops the signer or blocks other clients."""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from pathlib import Path

from signer_support import Node, document, exchange, frame, read_reply, run, write_file

CONFIG = """\
capture_probes:
  - name: posix_io
    probe: syscalls
    functions: [read, write]
"""


def _still_serving(node: Node, nobody_dir: Path) -> None:
    config = write_file(nobody_dir / "alive.yaml", CONFIG)
    result, _ = run([node.configurator, str(config),
                     str(nobody_dir / "alive.json.gz")], node.env(), as_nobody=True)
    assert result.returncode == 0, result.stderr
    assert node.process is not None and node.process.poll() is None


def test_oversized_request_is_refused_unread(node: Node, nobody_dir: Path) -> None:
    size = 9 << 20
    seen = len(node.audit(os.getpid(), at_least=0))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(str(node.socket))
        sock.sendall(struct.pack(">I", size) + b"{" * 65536)
        reply = read_reply(sock)
    reason = f"request of {size} bytes exceeds the limit of {8 << 20} bytes"
    assert reply == {"ok": False, "error": reason}
    line = node.audit(os.getpid(), at_least=seen + 1)[-1]
    assert line.endswith(f"DECISION=refused FUNCTIONS=0 REASON={reason}")
    _still_serving(node, nobody_dir)


def test_silent_client_times_out_while_others_are_served(node: Node, nobody_dir: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent:
        silent.settimeout(30)
        silent.connect(str(node.socket))
        started = time.monotonic()
        _still_serving(node, nobody_dir)  # served while the silent client holds its thread
        assert time.monotonic() - started < 3.0, "the other client waited for the silent one"
        reply = read_reply(silent)
        waited = time.monotonic() - started
    assert reply == {"ok": False, "error": "request header not complete within the time limit"}
    assert 2.9 < waited < 6


def test_trickling_client_is_cut_off_at_the_deadline(node: Node) -> None:
    # A byte at a time never lets a per-read timeout fire; the deadline is for the whole request.
    request = frame({"document": document(node.settings(), "root")})
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(str(node.socket))
        started = time.monotonic()
        sock.sendall(request[:10])
        stop = threading.Event()

        def trickle() -> None:
            for byte in request[10:-1]:
                if stop.wait(0.2):
                    return
                try:
                    sock.send(bytes([byte]))
                except OSError:
                    return

        thread = threading.Thread(target=trickle)
        thread.start()
        reply = read_reply(sock)
        stop.set()
        thread.join()
    assert reply == {"ok": False, "error": "request not complete within the time limit"}
    assert 2.9 < time.monotonic() - started < 6


def test_garbage_and_truncated_requests_are_refused_and_the_signer_lives(
        node: Node, nobody_dir: Path) -> None:
    assert exchange(node.socket, frame(b"\xff\xfe not json")) == {
        "ok": False, "error": "malformed request: not UTF-8"}
    assert exchange(node.socket, frame(b"[1, 2]")) == {
        "ok": False, "error": "malformed request: expected a JSON object, found list"}
    assert exchange(node.socket, frame(b'{"document": {"a": NaN}}')) == {
        "ok": False, "error": "malformed request: NaN is not allowed"}
    assert exchange(node.socket, frame(b"[" * 100_000 + b"]" * 100_000)) == {
        "ok": False, "error": "malformed request: JSON nested too deeply"}
    assert exchange(node.socket, frame({"sign": "this"})) == {
        "ok": False, "error": 'malformed request: expected {"document": {...}}'}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(node.socket))
        sock.sendall(struct.pack(">I", 100) + b"{}")
        sock.shutdown(socket.SHUT_WR)
        assert read_reply(sock) == {
            "ok": False, "error": "connection closed after 2 of 100 bytes of request"}
    _still_serving(node, nobody_dir)


def test_client_gone_before_the_reply_does_not_kill_the_signer(node: Node,
                                                               nobody_dir: Path) -> None:
    # Writing to a closed peer raises EPIPE (MSG_NOSIGNAL), never SIGPIPE.
    for _ in range(5):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(node.socket))
            sock.sendall(frame({"document": document(node.settings(), "root")}))
    time.sleep(0.3)
    assert "reply not delivered" in node.log.read_text()
    _still_serving(node, nobody_dir)


def test_signer_notifies_ready_then_stops_on_sigterm_removing_its_socket(
        node: Node, world: Path) -> None:
    own = Node(prefix=node.prefix, run_dir=world / "stop-run", log=world / "stop-signer.log")
    own.run_dir.mkdir(mode=0o755)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(world / "notify.sock"))
        notify.settimeout(15)
        own.start(NOTIFY_SOCKET=str(world / "notify.sock"))
        message = notify.recv(4096).decode()
    assert message.splitlines()[:2] == ["READY=1", f"STATUS=listening on {own.socket}"]
    assert own.socket.is_socket()
    assert own.stop() == 0
    assert not own.socket.exists()
    assert own.log.read_text().rstrip().endswith("INFO stopped")


def test_one_user_holding_many_connections_does_not_lock_out_others(
        node: Node, nobody_dir: Path) -> None:
    silent = []
    try:
        for _ in range(8):  # MAX_CONNECTIONS_PER_UID, all held by root (this process)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(30)
            sock.connect(str(node.socket))
            silent.append(sock)
        time.sleep(0.2)
        assert exchange(node.socket, frame({"document": {}})) == {
            "ok": False, "error": "signer busy: too many connections, try again"}
        _still_serving(node, nobody_dir)  # nobody's own quota is untouched
    finally:
        for sock in silent:
            sock.close()
