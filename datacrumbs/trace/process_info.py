"""What a trace says about each process beyond its name: its command line, executable, working
directory, parent and MPI rank — DFTracer-style process metadata, read from ``/proc`` when the
process first appears in the trace (and again after an exec).

The rank is the first of ``SLURM_PROCID``, ``PMI_RANK``, ``OMPI_COMM_WORLD_RANK`` and
``PMIX_RANK`` in the process's environment, so that the tools' per-rank views work.

Why it is read the way it is (issue 25, N11): the kernel names a process by its pid, and by the
time its record is formatted (the consumer may be seconds behind) that pid may belong to
another process — another user's, whose command line, executable, directory and environment
the trace must never carry. So the process is pinned first and checked against what the
kernel said, and only then read:

- ``/proc/<pid>`` is opened as a directory: that descriptor holds the process's ``struct pid``
  as a pidfd does, so everything read through it is that process's or fails (``ESRCH``), even
  if the number is reused meanwhile;
- it must be the process the kernel described: the same command name (no exec since), started
  no later than the traced call that came with the description (a process that took the pid
  afterwards started after it; ``/proc/<pid>/stat``'s start time, in clock ticks), alive (not a
  zombie), and, where the job has a user, owned by that user in the kernel's own sense
  (``/proc/<pid>``'s owner is the task's effective uid only while it is dumpable as that user:
  a setuid, setgid or file-capability exec, or another user's process, shows root or them);
- the checks are made again after reading, so that an exec or a privilege gained while
  reading discards what was read.

A process that fails any of this gets no metadata at all, and the trace says so (the caller
writes ``unknown``), never another process's. A field the daemon may not read is left out.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import NamedTuple

__all__ = ["RANK_VARIABLES", "ProcessInfoReader"]

RANK_VARIABLES = (b"SLURM_PROCID", b"PMI_RANK", b"OMPI_COMM_WORLD_RANK", b"PMIX_RANK")
_MAX_CMDLINE = 4096
_TICK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
#: /proc/<pid>/stat's fields after the command name: state is the first, starttime the 20th
_STATE, _STARTTIME = 0, 19


class _Stat(NamedTuple):
    comm: bytes
    state: bytes
    start_ticks: int  # since boot (CLOCK_BOOTTIME), in clock ticks, rounded down
    owner: int  # /proc/<pid>'s uid: the task's euid while it is dumpable as that user


def _read_at(dir_fd: int, name: str) -> bytes | None:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        with open(fd, "rb", closefd=False) as f:
            return f.read(1 << 20)
    except OSError:
        return None
    finally:
        os.close(fd)


def _stat(dir_fd: int) -> _Stat | None:
    raw = _read_at(dir_fd, "stat")
    try:
        owner = os.fstat(dir_fd).st_uid
    except OSError:
        return None
    if not raw or b"(" not in raw or b")" not in raw:
        return None
    # the command name may hold spaces and parentheses: it ends at the last ')'
    comm = raw[raw.index(b"(") + 1 : raw.rindex(b")")]
    fields = raw[raw.rindex(b")") + 1 :].split()
    if len(fields) <= _STARTTIME or not fields[_STARTTIME].isdigit():
        return None
    return _Stat(comm, fields[_STATE], int(fields[_STARTTIME]), owner)


def _fields(dir_fd: int) -> dict[str, str]:
    info: dict[str, str] = {}
    cmdline = _read_at(dir_fd, "cmdline")
    if cmdline:
        text = cmdline.rstrip(b"\0").replace(b"\0", b" ").decode(errors="backslashreplace")
        info["cmd"] = text[:_MAX_CMDLINE]
    for key in ("exe", "cwd"):
        with contextlib.suppress(OSError):  # gone, or not the daemon's to read
            info[key] = os.readlink(key, dir_fd=dir_fd)
    for line in (_read_at(dir_fd, "status") or b"").splitlines():
        if line.startswith(b"PPid:"):
            info["ppid"] = line.split()[1].decode()
    environ = _read_at(dir_fd, "environ") or b""
    variables = dict(entry.split(b"=", 1) for entry in environ.split(b"\0") if b"=" in entry)
    for name in RANK_VARIABLES:
        value = variables.get(name, b"")
        if value.isdigit():
            info["rank"] = value.decode()
            break
    return info


class ProcessInfoReader:
    """Reads the metadata of the processes the kernel describes, each only if it is still the
    very process described (module docstring). ``uid``: the job user's (None: any owner)."""

    def __init__(self, uid: int | None = None) -> None:
        self.uid = uid
        #: processes left without metadata: gone, or no longer the process described
        self.unknown = 0

    def __call__(
        self, pid: int, comm: bytes, alive_at_ns: int | None = None
    ) -> dict[str, str] | None:
        """``cmd``, ``exe``, ``cwd``, ``ppid`` and ``rank`` of the process the kernel described
        as ``pid`` with command name ``comm``, which it saw running at ``alive_at_ns``
        (CLOCK_MONOTONIC, the records' clock; None: not known) — as far as readable; None when
        that process cannot be told apart from another or is gone."""
        info = self._read(pid, comm, alive_at_ns)
        if info is None:
            self.unknown += 1
        return info

    def _read(self, pid: int, comm: bytes, alive_at_ns: int | None) -> dict[str, str] | None:
        try:
            dir_fd = os.open(f"/proc/{pid}", _DIR_FLAGS)
        except OSError:
            return None
        try:
            if not self._described(dir_fd, comm, alive_at_ns):
                return None
            info = _fields(dir_fd)
            # an exec or a privilege gained while reading: what was read may be the new image's
            return info if self._described(dir_fd, comm, alive_at_ns) else None
        finally:
            os.close(dir_fd)

    def _described(self, dir_fd: int, comm: bytes, alive_at_ns: int | None) -> bool:
        stat = _stat(dir_fd)
        if stat is None or stat.state in (b"Z", b"X") or stat.comm != comm:
            return False
        if self.uid is not None and stat.owner != self.uid:
            return False
        if alive_at_ns is not None:
            boot_offset = time.clock_gettime_ns(time.CLOCK_BOOTTIME) - time.monotonic_ns()
            if stat.start_ticks * _TICK_NS > alive_at_ns + boot_offset:
                return False  # started after the call the kernel saw: the pid was reused
        return True
