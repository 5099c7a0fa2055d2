"""The job's cgroup (``DATACRUMBS_JOB_CGROUP``): the daemon traces the job, not the whole user.

The engine filters by cgroup in the kernel, by cgroup id (the directory's inode: the same
cgroup in every cgroup namespace — a daemon in a container sees its own paths, the kernel the
host's), the job's cgroup and every cgroup made below it. A scheduler's prolog usually runs
before the job's cgroup exists (Slurm 22.05 with ``PrologFlags=Contain`` creates ``job_<id>``
~60 ms after its prolog ends): then the kernel itself waits for it (its cgroup_mkdir program
matches the path's names below the deepest ancestor that exists), so the job is traced from
its first task and nothing of the user before; the daemon learns of it by inotify, to say so in
the journal and the trace.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from inotify_simple import INotify, flags

from datacrumbs.common.errors import DatacrumbsError
from datacrumbs.ebpf import cgroups
from datacrumbs.ebpf.engine import Engine, EngineError

__all__ = ["JobScope"]

#: How long one wait for a directory event lasts: the stop request is seen this often.
_WAIT_MS = 200
_WATCHED = flags.CREATE | flags.MOVED_TO | flags.DELETE_SELF | flags.MOVE_SELF


class JobScope:
    """Hands the engine the job's cgroup as soon as it exists, and says so.

    ``announce(fields)`` is called once the filter is in place, with what the trace records of
    the scope (path, cgroup id, milliseconds waited)."""

    def __init__(
        self,
        engine: Engine,
        path: Path,
        log: logging.Logger,
        announce: Callable[[dict[str, int | str]], None],
    ) -> None:
        self.engine = engine
        self.path = path
        self.log = log
        self.announce = announce
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = time.monotonic()

    def check(self) -> None:
        """Refuse, in one line, a path that can never be a cgroup v2 directory."""
        existing = cgroups.deepest_existing(self.path)
        if not cgroups.on_cgroup2(os.stat(existing)):
            mounts = ", ".join(str(m) for m in cgroups.cgroup2_mounts()) or "none is mounted"
            raise DatacrumbsError(
                f"DATACRUMBS_JOB_CGROUP {self.path} is not in a cgroup v2 hierarchy "
                f"({existing} is not; cgroup2 mounts: {mounts})"
            )

    def begin(self) -> None:
        """Scope the engine now if the cgroup exists, else have the kernel wait for it (and
        watch for it, to say when it came)."""
        self._started = time.monotonic()
        if self.path.is_dir():
            self._scope()
            return
        ancestor = self.engine.await_cgroup(self.path)
        self.log.info(
            "waiting for the job's cgroup %s (below %s): nothing is traced until it exists",
            self.path,
            ancestor,
        )
        self._thread = threading.Thread(target=self._watch, name="job-cgroup", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _scope(self) -> None:
        # made after the start: the kernel took it at its mkdir (a directory moved in from
        # elsewhere it could not see: then it is taken now)
        cgroup_id = self.engine.awaited_cgroup() if self._thread else 0
        if not cgroup_id:
            cgroup_id = self.engine.set_cgroup(self.path)
        waited = round((time.monotonic() - self._started) * 1000)
        self.log.info(
            "tracing the job's cgroup %s (id %d), %d ms after start",
            self.path,
            cgroup_id,
            waited,
            extra={"JOB_CGROUP": str(self.path), "JOB_CGROUP_ID": cgroup_id},
        )
        self.announce({"scope": "cgroup", "cgroup": str(self.path), "cgroup_id": cgroup_id,
                       "waited_ms": waited})  # fmt: skip

    def _watch(self) -> None:
        try:
            with INotify() as inotify:
                while not self._stop.is_set():
                    # one look: a check of the path, then a separate look for its deepest
                    # ancestor, could find it made in between and wait below itself forever
                    below = cgroups.deepest_existing(self.path)
                    if below == self.path:
                        self._scope()
                        return
                    self._wait_below(inotify, below)
        except (OSError, EngineError) as exc:
            self.log.error("cannot follow the job's cgroup %s: %s", self.path, exc)

    def _wait_below(self, inotify: INotify, directory: Path) -> None:
        """Until the path's next component appears in ``directory`` (or a stop)."""
        wd = inotify.add_watch(directory, _WATCHED)
        try:
            # armed: what appeared meanwhile is seen by the next look, not lost
            while not self._stop.is_set() and cgroups.deepest_existing(self.path) == directory:
                inotify.read(timeout=_WAIT_MS)
        finally:
            with contextlib.suppress(OSError):  # gone with its directory
                inotify.rm_watch(wd)
