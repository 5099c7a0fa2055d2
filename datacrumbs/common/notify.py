"""Talking to systemd: READY=1, STATUS=, STOPPING=1 and the watchdog keep-alive.

Through ``sdnotify``; every call is a no-op when ``NOTIFY_SOCKET`` is unset (not under
systemd), so the daemon runs the same by hand and in tests. The socket is non-blocking: a
datagram queue that is full (10 messages by default) drops a status update instead of
stalling the daemon — tracing never waits on its manager.
"""

from __future__ import annotations

import os

import sdnotify

__all__ = ["Notifier"]


class Notifier:
    """The daemon's side of the sd_notify protocol."""

    def __init__(self) -> None:
        self._socket = sdnotify.SystemdNotifier() if os.environ.get("NOTIFY_SOCKET") else None
        if self._socket is not None:
            self._socket.socket.setblocking(False)
        usec = os.environ.get("WATCHDOG_USEC", "")
        pid = os.environ.get("WATCHDOG_PID", "")
        wanted = usec.isdigit() and (not pid or pid == str(os.getpid()))
        #: Seconds between keep-alives (half the watchdog period), or None without a watchdog.
        self.watchdog_interval = int(usec) / 2e6 if wanted and int(usec) > 0 else None

    def _send(self, *lines: str) -> None:
        if self._socket is not None:
            self._socket.notify("\n".join(lines))

    def ready(self, status: str) -> None:
        self._send("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def status(self, status: str) -> None:
        self._send(f"STATUS={status}")

    def watchdog(self) -> None:
        self._send("WATCHDOG=1")

    def stopping(self, status: str) -> None:
        self._send("STOPPING=1", f"STATUS={status}")
