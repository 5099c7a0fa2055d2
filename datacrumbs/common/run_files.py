"""The daemon's files in the run directory: its lock, the run-id file and the ready file.

``<run-dir>/datacrumbs-<run-id>.lock`` is held (flock) for the daemon's whole life, so a second
daemon with the same run-id is refused before it touches anything of the first. Only the lock
holder removes a stale ready file. The ready file is written atomically, after every probe is
attached, so whoever sees it may rely on tracing being on; it is removed on every exit.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datacrumbs.common.atomic_file import write_atomically
from datacrumbs.common.directories import make_dirs
from datacrumbs.common.errors import DatacrumbsError

__all__ = ["ReadyFile", "RunFiles", "wait_ready"]


@dataclass(frozen=True)
class ReadyFile:
    """What a ready file says: the daemon's pid (one line) and its trace's path (the next)."""

    pid: int
    trace: Path

    @classmethod
    def read(cls, path: Path) -> ReadyFile | None:
        """The ready file at ``path``, or None while there is none (it is written atomically)."""
        try:
            pid, trace = path.read_text(encoding="utf-8").splitlines()[:2]
        except (FileNotFoundError, ValueError):
            return None
        return cls(int(pid), Path(trace))


def wait_ready(process: subprocess.Popen[Any], ready: Path, timeout: float) -> Path:
    """Wait until ``process`` (a daemon) has written ``ready``; its trace path. A ready file
    of another pid is a stale one. Raises :class:`DatacrumbsError` if the daemon exits first
    or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        found = ReadyFile.read(ready)
        if found is not None and found.pid == process.pid:
            return found.trace
        if process.poll() is not None:
            raise DatacrumbsError(f"the daemon exited ({process.returncode}) before it was ready")
        if time.monotonic() > deadline:
            raise DatacrumbsError(f"the daemon was not ready within {timeout:.0f} s")
        time.sleep(0.02)


class RunFiles:
    """The run directory's files for one run-id."""

    def __init__(self, run_dir: Path, run_id: str, run_id_file: Path) -> None:
        self.run_dir = run_dir
        self.run_id = run_id
        self.run_id_file = run_id_file
        self.ready = run_dir / f"datacrumbs-{run_id}.ready"
        self.lock = run_dir / f"datacrumbs-{run_id}.lock"
        self._lock_fd: int | None = None

    def acquire(self) -> None:
        """Create the run directory and take this run-id's lock, or refuse in one line."""
        try:
            make_dirs(self.run_dir)
            fd = os.open(self.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise DatacrumbsError(f"run directory {self.run_dir}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = self.lock.read_text(encoding="utf-8", errors="replace").strip() or "?"
            raise DatacrumbsError(
                f"a datacrumbs daemon for run-id {self.run_id} is already running (pid {holder})"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def prepare(self) -> bool:
        """Remove a stale ready file and write the run-id file; True if a stale one was found."""
        stale = self.ready.exists()
        self.ready.unlink(missing_ok=True)
        try:
            make_dirs(self.run_id_file.parent)
            write_atomically(self.run_id_file, f"{self.run_id}\n")
        except OSError as exc:
            raise DatacrumbsError(f"run-id file {self.run_id_file}: {exc.strerror}") from None
        return stale

    def mark_ready(self, trace: Path) -> None:
        write_atomically(self.ready, f"{os.getpid()}\n{trace}\n")

    def release(self) -> None:
        """Remove the ready file and drop the lock (called on every exit path)."""
        self.ready.unlink(missing_ok=True)
        if self._lock_fd is not None:
            # The lock file stays: unlinking it would let a waiter lock a stale inode.
            os.close(self._lock_fd)
            self._lock_fd = None
