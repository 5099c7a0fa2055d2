"""The thread that gives each new job process its uprobes (see :mod:`process_uprobes`).

The kernel tells of the job's processes through a ring of its own (``follow.bpf.c``): a new
one (forked by a job process, or an exec that made a process the job's), one whose exec ran
on another thread than its leader, one whose last thread exited. Each record wakes this
thread at once: the sooner the links are made, the fewer of a new process's first calls go
untraced. The processes that exist when tracing starts are found by :func:`job_processes`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

from datacrumbs.ebpf.process_uprobes import ProcessUprobes
from datacrumbs.ebpf.ringbuf import DISCARD_BIT, HEADER_SIZE, RingBufferReader

__all__ = ["FOLLOW_RING_BYTES", "ProcessFollower", "job_processes"]

_log = logging.getLogger("datacrumbs.engine")

#: The follow ring's size (follow.bpf.c's max_entries).
FOLLOW_RING_BYTES = 256 * 1024
_RECORD = struct.Struct("<IIQQ")  # struct dc_follow
_NEW, _LEADER, _GONE = 1, 2, 3
_LENGTH_MASK = DISCARD_BIT - 1


def job_processes(cgroup: Path | None, uid: int | None) -> Iterator[int]:
    """The processes of the job that exist now: those of ``cgroup`` and the cgroups below it,
    else (no cgroup) those ``uid`` owns (``/proc/<pid>``'s owner: the effective uid while the
    process is dumpable; the kernel filters each event by its own rule anyway)."""
    if cgroup is not None:
        for dirpath, _dirs, _files in os.walk(cgroup):
            with contextlib.suppress(OSError):  # removed meanwhile
                for line in Path(dirpath, "cgroup.procs").read_text().split():
                    yield int(line)
        return
    if uid is None:
        return
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if entry.stat(follow_symlinks=False).st_uid == uid:
                    yield int(entry.name)


class ProcessFollower:
    """Reads the follow ring on its own thread and hands each record to ``uprobes``."""

    def __init__(self, ring_fd: int, uprobes: ProcessUprobes) -> None:
        self.uprobes = uprobes
        self._reader = RingBufferReader(ring_fd, FOLLOW_RING_BYTES)
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._thread = threading.Thread(target=self._run, name="uprobe-follower", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop reading (records still in the ring are handled first)."""
        os.write(self._wake_w, b"x")
        self._thread.join()
        self._reader.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _run(self) -> None:
        poller = select.epoll()
        try:
            poller.register(self._reader.fd, select.EPOLLIN)
            poller.register(self._wake_r, select.EPOLLIN)
            while True:
                ready = {fd for fd, _ in poller.poll(1.0)}
                self._handle(self._reader.read())
                if self._wake_r in ready:
                    return
        except Exception:  # the tracing goes on: say why following stopped
            _log.exception("following the job's processes stopped")
        finally:
            poller.close()

    def _handle(self, chunk: bytes) -> None:
        pos = 0
        while pos + HEADER_SIZE <= len(chunk):
            header = int.from_bytes(chunk[pos : pos + 4], "little")
            length = header & _LENGTH_MASK
            body = pos + HEADER_SIZE
            pos = body + ((length + 7) & ~7)
            if header & DISCARD_BIT or length < _RECORD.size:
                continue
            kind, pid, start, seen = _RECORD.unpack_from(chunk, body)
            if kind == _GONE:
                self.uprobes.forget(pid, start)
            elif kind in (_NEW, _LEADER):
                self.uprobes.follow(pid, start, seen)
