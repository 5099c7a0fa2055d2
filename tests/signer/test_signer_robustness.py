"""Nothing a client sends (or fails to send) stops the signer or blocks other clients."""

from __future__ import annotations

import signal
import socket
import struct
import threading
import time
from pathlib import Path

from signer_support import Node, Relay, converse, document, exchange, frame


def _still_serving(node: Node) -> None:
    reply, _ = converse(node, {"document": document(node.settings(), "nobody")})
    assert reply["ok"] is True, reply
    assert node.process is not None and node.process.poll() is None


def test_oversized_request_is_refused_unread(crafted_node: Node) -> None:
    size = 9 << 20
    reply, pid = converse(crafted_node, struct.pack(">I", size) + b"{" * 65536)
    reason = f"request of {size} bytes exceeds the limit of {8 << 20} bytes"
    assert reply == {"ok": False, "error": reason}
    assert crafted_node.audit(pid)[-1].endswith(f"DECISION=refused FUNCTIONS=0 REASON={reason}")
    _still_serving(crafted_node)


def test_silent_client_times_out_while_others_are_served(crafted_node: Node) -> None:
    silent = Relay(crafted_node)
    silent.challenge()
    started = time.monotonic()
    _still_serving(crafted_node)  # served while the silent client holds its thread
    assert time.monotonic() - started < 3.0, "the other client waited for the silent one"
    reply = silent.message()
    waited = time.monotonic() - started
    assert silent.finish() == 0
    assert reply == {"ok": False, "error": "request header not complete within the time limit"}
    assert 2.5 < waited < 6


def test_trickling_client_is_cut_off_at_the_deadline(crafted_node: Node) -> None:
    # A byte at a time never lets a per-read timeout fire; the deadline is for the whole request.
    relay = Relay(crafted_node)
    request = frame(
        {"challenge": relay.challenge(), "document": document(crafted_node.settings(), "nobody")}
    )
    started = time.monotonic()
    relay.send(request[:10])
    stop = threading.Event()

    def trickle() -> None:
        for byte in request[10:-1]:
            if stop.wait(0.2):
                return
            relay.send(bytes([byte]))

    thread = threading.Thread(target=trickle)
    thread.start()
    reply = relay.message()
    stop.set()
    thread.join()
    assert relay.finish() == 0
    assert reply == {"ok": False, "error": "request not complete within the time limit"}
    assert 2.9 < time.monotonic() - started < 6


def test_garbage_and_truncated_requests_are_refused_and_the_signer_lives(
    crafted_node: Node,
) -> None:
    node = crafted_node
    assert converse(node, frame(b"\xff\xfe not json"))[0] == {
        "ok": False,
        "error": "malformed request: not UTF-8",
    }
    assert converse(node, frame(b"[1, 2]"))[0] == {
        "ok": False,
        "error": "malformed request: expected a JSON object, found list",
    }
    assert converse(node, {"document": {"a": float("nan")}})[0] == {
        "ok": False,
        "error": "malformed request: NaN is not allowed",
    }
    assert converse(node, frame(b"[" * 100_000 + b"]" * 100_000))[0] == {
        "ok": False,
        "error": "malformed request: JSON nested too deeply",
    }
    assert converse(node, {"sign": "this"})[0] == {
        "ok": False,
        "error": 'malformed request: expected {"challenge": "...", "document": {...}}',
    }
    relay = Relay(node)
    relay.challenge()
    relay.send(struct.pack(">I", 100) + b"{}")
    relay.close_input()
    assert relay.message() == {
        "ok": False,
        "error": "connection closed after 2 of 100 bytes of request",
    }
    assert relay.finish() == 0
    _still_serving(node)


def test_client_gone_before_the_reply_does_not_kill_the_signer(crafted_node: Node) -> None:
    # Writing to a closed peer raises EPIPE (MSG_NOSIGNAL), never SIGPIPE.
    for _ in range(5):
        relay = Relay(crafted_node)
        challenge = relay.challenge()
        relay.process.send_signal(signal.SIGSTOP)  # the request is sent, the reply never read
        relay.send(
            frame({"challenge": challenge, "document": document(crafted_node.settings(), "root")})
        )
        relay.process.kill()
        relay.process.wait()
    deadline = time.monotonic() + 30
    while "reply not delivered" not in crafted_node.log.read_text():
        assert time.monotonic() < deadline, crafted_node.log.read_text()
        time.sleep(0.05)
    _still_serving(crafted_node)


def test_signer_notifies_ready_then_stops_on_sigterm_removing_its_socket(
    node: Node, world: Path
) -> None:
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


def test_one_user_holding_many_connections_does_not_lock_out_others(crafted_node: Node) -> None:
    silent = []
    try:
        for _ in range(8):  # MAX_CONNECTIONS_PER_UID, all held by root
            relay = Relay(crafted_node, as_nobody=False)
            relay.challenge()
            silent.append(relay)
        assert exchange(crafted_node.socket, b"") == {
            "ok": False,
            "error": "signer busy: too many connections, try again",
        }
        _still_serving(crafted_node)  # nobody's own quota is untouched
    finally:
        for relay in silent:
            relay.process.kill()
            relay.process.wait()
