"""The signer's wire format: one length-prefixed JSON request, one length-prefixed JSON reply.

A frame is a 4-byte big-endian unsigned length followed by that many bytes of UTF-8 JSON (an
object). The length comes first so the signer can refuse an oversized request before reading
it, and so a request that stops half-way is told apart from a complete one. See
docs/signer-protocol.md.

The signer speaks first: ``{"challenge": "<32 hex>"}`` (or, if it refuses the peer at once, a
reply). Request: ``{"challenge": ..., "document": {"summary": ..., "categories": [...],
"checksum_algorithm": ...}}``. Reply: ``{"ok": true, "checksum": "<128 hex>", "signing_key":
"<16 hex>"}`` or ``{"ok": false, "error": "<one line>"}``.
"""

from __future__ import annotations

import json
import socket
import struct
import time
from typing import Any

__all__ = [
    "MAX_REPLY_BYTES",
    "MAX_REQUEST_BYTES",
    "REQUEST_TIMEOUT_SECONDS",
    "FrameError",
    "encode_frame",
    "loads_strict",
    "read_frame",
    "send_frame",
]

#: Far above a 16,384-function probe document; anything larger is refused unread.
MAX_REQUEST_BYTES = 8 << 20
MAX_REPLY_BYTES = 64 << 10
#: Time a client has to deliver its whole request (not per read: a trickle is cut off too).
REQUEST_TIMEOUT_SECONDS = 5.0
_HEADER = struct.Struct(">I")
#: ``struct ucred`` of an ``SCM_CREDENTIALS`` message: pid, uid, gid.
_UCRED = struct.Struct("3i")


class FrameError(Exception):
    """A frame that could not be read; the message says why, in one line."""


def encode_frame(message: dict[str, Any]) -> bytes:
    body = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return _HEADER.pack(len(body)) + body


def send_frame(sock: socket.socket, message: dict[str, Any]) -> None:
    """Send one frame; MSG_NOSIGNAL so a vanished peer is an OSError, never SIGPIPE."""
    data = memoryview(encode_frame(message))
    while data:
        sent = sock.send(data, socket.MSG_NOSIGNAL)
        data = data[sent:]


def _receive(sock: socket.socket, size: int, sender_pid: int | None, what: str) -> bytes:
    """One read; with ``sender_pid``, only bytes the kernel says that process sent.

    With ``SO_PASSCRED`` set on the socket, every read returns the credentials the kernel
    attached when the bytes were sent (a process can claim no pid but its own), and never
    merges bytes of two senders into one read.
    """
    if sender_pid is None:
        return sock.recv(size)
    data, ancillary, _, _ = sock.recvmsg(size, socket.CMSG_SPACE(_UCRED.size))
    if not data:
        return data
    pid = 0
    for level, kind, payload in ancillary:
        if (level, kind) == (socket.SOL_SOCKET, socket.SCM_CREDENTIALS):
            pid = _UCRED.unpack(payload[: _UCRED.size])[0]
    if pid != sender_pid:
        raise FrameError(
            f"{what} bytes sent by process {pid}, not by the connected process {sender_pid}"
        )
    return data


def _read_exactly(
    sock: socket.socket, size: int, deadline: float, what: str, sender_pid: int | None
) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FrameError(f"{what} not complete within the time limit")
        sock.settimeout(remaining)
        try:
            chunk = _receive(sock, min(size - len(chunks), 1 << 20), sender_pid, what)
        except TimeoutError:
            raise FrameError(f"{what} not complete within the time limit") from None
        if not chunk:
            raise FrameError(f"connection closed after {len(chunks)} of {size} bytes of {what}")
        chunks += chunk
    return bytes(chunks)


def read_frame(
    sock: socket.socket,
    limit: int,
    timeout: float,
    what: str = "request",
    sender_pid: int | None = None,
) -> bytes:
    """The body of one frame, or :class:`FrameError` (too large, too slow, cut short, or, with
    ``sender_pid`` on a socket with ``SO_PASSCRED``, written by any other process)."""
    deadline = time.monotonic() + timeout
    header = _read_exactly(sock, _HEADER.size, deadline, f"{what} header", sender_pid)
    (size,) = _HEADER.unpack(header)
    if size > limit:
        raise FrameError(f"{what} of {size} bytes exceeds the limit of {limit} bytes")
    return _read_exactly(sock, size, deadline, what, sender_pid)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _no_float(text: str) -> Any:
    raise ValueError(f"non-integer number {text} is not allowed")


def loads_strict(body: bytes) -> dict[str, Any]:
    """Parse a frame body: one JSON object, no duplicate keys, no NaN, no fractions.

    A probe document holds only strings, integers, booleans, lists and objects. Refusing
    duplicates matters: the signer checks and signs the same parsed object, so no two parsers
    may read one text two ways.
    """
    try:
        value = json.loads(
            body.decode("utf-8"),
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constant,
            parse_float=_no_float,
        )
    except UnicodeDecodeError:
        raise ValueError("not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc})") from None
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, found {type(value).__name__}")
    return value
