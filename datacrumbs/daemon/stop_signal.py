"""SIGTERM and SIGINT, turned into something the run waits on.

The handler touches no lock: it records the signal in a list (``list.append`` is atomic) and
nothing else, and the wake-up comes from the interpreter's own C-level handler, which writes to
a pipe (``signal.set_wakeup_fd``) that :meth:`StopSignal.wait` selects on. A handler runs
between two bytecodes of the main thread, wherever it is:
- a log line written from it can be a reentrant write to stderr, which Python refuses with
  RuntimeError (seen under a slow, emulated CPU), so the main thread logs (:meth:`report`);
- ``threading.Event.set`` from it can meet the main thread inside ``Event.wait``, holding the
  event's own lock: the process aborted (``Fatal Python error: Aborted``, seen in CI).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
from types import FrameType

__all__ = ["StopSignal"]


class StopSignal:
    """SIGTERM/SIGINT stop the run; a second signal while stopping is logged, not obeyed."""

    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self._received: list[str] = []  # appended by the handler; list.append is atomic
        self._reported = 0
        self._read, write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self._received.append(signal.Signals(signum).name)

    @property
    def received(self) -> bool:
        return bool(self._received)

    def wait(self, timeout: float) -> bool:
        """Whether a stop signal came, waiting up to ``timeout`` seconds for one."""
        if not self._received:
            select.select([self._read], [], [], timeout)
            with contextlib.suppress(BlockingIOError):
                os.read(self._read, 512)  # the wake-up bytes: drained
        return self.received

    def report(self) -> None:
        """Log the signals received since the last report (from the main thread)."""
        while self._reported < len(self._received):
            name = self._received[self._reported]
            if self._reported == 0:
                self._log.info("%s: stopping", name)
            else:
                self._log.info("%s while stopping: already finishing the trace", name)
            self._reported += 1
