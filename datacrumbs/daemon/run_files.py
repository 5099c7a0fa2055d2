"""The daemon's files in the run directory: its lock, the run-id file and the ready file.

``<run-dir>/datacrumbs-<run-id>.lock`` is held (flock) for the daemon's whole life, so a second
daemon with the same run-id is refused before it touches anything of the first. Only the lock
holder removes a stale ready file. The ready file is written atomically, after every probe is
attached, so whoever sees it may rely on tracing being on; it is removed on every exit.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from datacrumbs.common.atomic_file import write_atomically
from datacrumbs.common.directories import make_dirs
from datacrumbs.common.errors import DatacrumbsError

__all__ = ["RunFiles"]


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

    def mark_ready(self, text: str) -> None:
        write_atomically(self.ready, text)

    def release(self) -> None:
        """Remove the ready file and drop the lock (called on every exit path)."""
        self.ready.unlink(missing_ok=True)
        if self._lock_fd is not None:
            # The lock file stays: unlinking it would let a waiter lock a stale inode.
            os.close(self._lock_fd)
            self._lock_fd = None
