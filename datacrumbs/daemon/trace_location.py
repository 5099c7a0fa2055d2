"""Where a run's trace goes: its directory, held open and acted on as the job user.

The trace is the job user's file in the job user's directory, so everything done there is done
with their filesystem identity (:mod:`datacrumbs.common.fs_identity`): walking and creating the
directory, checking it can be written, moving an older trace of the run-id aside, and creating
the trace. On a root-squashed export of home or scratch that is what works at all (root is
``nobody`` there); everywhere it is what obeys the user's quota and ACLs, and no link the user
controls can make root create or rename anything. Every step acts relative to the held
directory descriptor (see :mod:`datacrumbs.common.fd_paths`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path

from datacrumbs.common.errors import DatacrumbsError
from datacrumbs.common.fd_paths import open_directory
from datacrumbs.common.fs_identity import Identity, acting_as, write_as_users_do
from datacrumbs.common.probe_file import config_name
from datacrumbs.common.settings import Settings, expand_trace_dir, user_component
from datacrumbs.trace.writer import TRACE_MODE, TraceWriter

__all__ = ["TRACE_MODE", "TraceLocation", "open_trace_location"]


@dataclass
class TraceLocation:
    """The trace's directory, held open, its path, and who acts there."""

    dir_fd: int
    path: Path
    user: Identity

    def close(self) -> None:
        os.close(self.dir_fd)

    def create_writer(self) -> TraceWriter:
        """The trace file, created as the job user (``O_EXCL``, ``O_NOFOLLOW``, 0600) in the
        held directory. Its writes go through the open descriptor: a file system checks who
        may write when a file is opened (NFS sends the opener's credentials with each write);
        the thread that writes is the job user's, without ``CAP_SYS_RESOURCE``, so the user's
        quota holds and root's reserved blocks stay root's."""

        def open_as_user(flags: int) -> int:
            with acting_as(self.user):
                return os.open(self.path.name, flags, TRACE_MODE, dir_fd=self.dir_fd)

        try:
            return TraceWriter(
                self.path, opener=open_as_user, thread_setup=partial(write_as_users_do, self.user)
            )
        except OSError as exc:
            raise DatacrumbsError(f"cannot create the trace {self.path}: {exc.strerror}") from None


def open_trace_location(
    settings: Settings, user: Identity, run_id: str, probe_path: Path
) -> TraceLocation:
    """Open (creating it if needed) the run's trace directory as the job user, check they can
    write it, and choose the trace's name; an earlier trace of the run-id is moved aside.

    The directories from the pattern's ``%USER%`` component down are the job user's (0700), so
    that they can index and analyse their traces in place. What the user could not write is
    refused here, in one line, before anything is attached."""
    directory = expand_trace_dir(
        settings.trace_dir_pattern, user=user.name, run_id=run_id, host=settings.hostname
    )
    try:
        dir_fd = open_directory(
            directory, owned_from=user_component(settings.trace_dir_pattern), owner=user
        )
    except DatacrumbsError as exc:
        raise DatacrumbsError(f"trace directory {directory}: {exc}") from None
    name = f"trace-{user.name}-{run_id}-{settings.hostname}-{config_name(probe_path)}.pfw.gz"
    location = TraceLocation(dir_fd, directory / name, user)
    try:
        with acting_as(user):
            if not os.access(".", os.W_OK | os.X_OK, dir_fd=dir_fd, effective_ids=True):
                raise DatacrumbsError(
                    f"trace directory {directory}: {user.name} cannot write it (Permission denied)"
                )
            _move_aside(dir_fd, name)
    except OSError as exc:
        location.close()
        raise DatacrumbsError(f"trace directory {directory}: {exc.strerror}") from None
    except BaseException:
        location.close()
        raise
    return location


def _move_aside(dir_fd: int, name: str) -> None:
    """A trace of an earlier run with this run-id is kept, under its own time (rename never
    follows a link)."""
    try:
        older = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    stamp = datetime.fromtimestamp(older.st_mtime).strftime("%Y%m%dT%H%M%S")
    os.rename(
        name, name.replace(".pfw.gz", f".{stamp}.pfw.gz"), src_dir_fd=dir_fd, dst_dir_fd=dir_fd
    )
