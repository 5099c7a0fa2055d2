"""SIGTERM and SIGINT, turned into an event the run waits on."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

__all__ = ["StopSignal"]


class StopSignal:
    """SIGTERM/SIGINT set an event; a second signal while stopping is logged, not obeyed.

    The handler only records the signal and sets the event; the main thread logs it
    (:meth:`report`). A handler runs between two bytecodes of the main thread, which may be in
    the middle of a write to stderr: a log line written from the handler is a reentrant write
    that Python refuses with RuntimeError, which then escaped into the interrupted code before
    the event was set, and the daemon never stopped (seen under a slow, emulated CPU)."""

    def __init__(self, log: logging.Logger) -> None:
        self.event = threading.Event()
        self._log = log
        self._received: list[str] = []  # appended by the handler; list.append is atomic
        self._reported = 0
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self._received.append(signal.Signals(signum).name)
        self.event.set()

    def report(self) -> None:
        """Log the signals received since the last report (from the main thread)."""
        while self._reported < len(self._received):
            name = self._received[self._reported]
            if self._reported == 0:
                self._log.info("%s: stopping", name)
            else:
                self._log.info("%s while stopping: already finishing the trace", name)
            self._reported += 1
