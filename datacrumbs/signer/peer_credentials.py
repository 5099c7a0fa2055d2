"""Who is on the other end of a signer connection, established without races.

``SO_PEERCRED`` gives the pid, uid and gid the peer had when it called ``connect()``; the
kernel snapshots them, so they cannot change afterwards. ``SO_PEERPIDFD`` (Linux >= 6.5; raw
option 77, which Python 3.11 does not name) gives a pidfd for that very process: it cannot be
redirected to another process that later gets the same pid.

The executable is read later, from ``/proc/<pid>/exe``. Two things keep that read honest:
- after reading it, a signal 0 through the pidfd must succeed: the connecting process is then
  still alive, so the pid still names it (a pid is never reused while its process lives);
- the gid from ``SO_PEERCRED`` must be the launcher's group: only a process that was running the
  setgid launcher at connect time has it. A process that connects first and execs the launcher
  afterwards shows the launcher as its exe, but connected with its own group — refused.
The exe must be the installed launcher's exact path and the same file (device and inode), so a
copy, a same-named binary, or another file mounted over the path in a private mount namespace
is refused.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SO_PEERPIDFD", "PeerCredentials", "PeerRefused", "read_peer", "verify_launcher"]

#: ``SO_PEERPIDFD`` from <asm-generic/socket.h>; not in Python 3.11's socket module.
SO_PEERPIDFD = getattr(socket, "SO_PEERPIDFD", 77)
_UCRED = struct.Struct("3i")


class PeerRefused(Exception):
    """The peer is not the installed launcher; the message is the reason, in one line."""


@dataclass
class PeerCredentials:
    """The connect-time identity of a peer, and a pidfd bound to that process (or None)."""

    pid: int
    uid: int
    gid: int
    pidfd: int | None
    exe: str = "?"

    def close(self) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None


def read_peer(sock: socket.socket) -> PeerCredentials:
    """Take the peer's credentials and pidfd from ``sock`` (at once, right after accept)."""
    pid, uid, gid = _UCRED.unpack(
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    )
    try:
        pidfd: int | None = sock.getsockopt(socket.SOL_SOCKET, SO_PEERPIDFD)
    except OSError:
        pidfd = None  # kernel too old, or the peer already gone: verify_launcher refuses
    return PeerCredentials(pid=pid, uid=uid, gid=gid, pidfd=pidfd)


def _pidfd_pid(pidfd: int) -> int:
    """The pid a pidfd refers to, from its fdinfo (-1 once that process has exited)."""
    with open(f"/proc/self/fdinfo/{pidfd}", encoding="ascii") as info:
        for line in info:
            if line.startswith("Pid:"):
                return int(line.split()[1])
    return -1


def _alive(pidfd: int) -> bool:
    try:
        signal.pidfd_send_signal(pidfd, 0)
    except ProcessLookupError:
        return False
    return True


def verify_launcher(peer: PeerCredentials, launcher: Path, launcher_gid: int) -> None:
    """Raise :class:`PeerRefused` unless ``peer`` is a live process of the installed launcher.

    Sets ``peer.exe`` to what was found, for the audit log.
    """
    if peer.pid <= 0:
        raise PeerRefused("peer pid unknown (connected from another pid namespace)")
    if peer.pidfd is None:
        raise PeerRefused(
            "no pidfd for the peer (SO_PEERPIDFD needs Linux 6.5 or later, or the peer has exited)"
        )
    if _pidfd_pid(peer.pidfd) != peer.pid:
        raise PeerRefused(f"peer process {peer.pid} exited before it could be checked")
    proc_exe = f"/proc/{peer.pid}/exe"
    try:
        exe = os.readlink(proc_exe)
        running = os.stat(proc_exe)
    except (FileNotFoundError, ProcessLookupError):
        raise PeerRefused(f"peer process {peer.pid} exited before it could be checked") from None
    except OSError as exc:
        raise PeerRefused(f"cannot inspect peer process {peer.pid}: {exc.strerror}") from None
    if not _alive(peer.pidfd):
        raise PeerRefused(f"peer process {peer.pid} exited before it could be checked")
    peer.exe = exe  # pidfd alive after the read: exe belongs to the connecting process
    if exe != str(launcher):
        raise PeerRefused(f"peer executable {exe} is not the configurator launcher {launcher}")
    try:
        installed = os.stat(launcher)
    except OSError:
        raise PeerRefused(f"the configurator launcher {launcher} is not installed") from None
    if (running.st_dev, running.st_ino) != (installed.st_dev, installed.st_ino):
        raise PeerRefused(
            f"peer executable is not the installed file {launcher} (device/inode differ: "
            "another file is mounted over that path or it was replaced)"
        )
    if peer.gid != launcher_gid:
        raise PeerRefused(
            f"peer connected with group id {peer.gid}, not the launcher's group id "
            f"{launcher_gid}: it was not running the setgid launcher when it connected"
        )
