"""Acting on files as another user: this thread's filesystem identity, for a block.

The root daemon creates each trace in the job user's directory, reads the user's probe file
and writes the status database of the installation's user. Done as root, that fails where
sites keep those files: an NFS export with ``root_squash`` (the default) makes root ``nobody``,
who cannot enter a user's 0700 home or scratch; it also bypasses the user's quota and ACLs, and
a link the user controls could make root write anywhere. Done as the user, the server and the
kernel check exactly what they would check for the user's own processes.

Linux keeps credentials per thread, and ``setfsuid``/``setfsgid`` change only the filesystem
identity of the calling thread: :func:`acting_as` switches the thread that runs the block and
no other (the ring-buffer poller goes on as root meanwhile). Leaving fsuid 0 drops the
thread's filesystem capabilities (``CAP_DAC_OVERRIDE`` and the like); returning to 0 restores
them. Supplementary groups are set with the raw ``setgroups`` system call: glibc's wrapper
changes every thread of the process. Order matters: groups and fsgid while still root, fsuid
last; back in the reverse order.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import pwd
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from datacrumbs.common.errors import DatacrumbsError

__all__ = ["Identity", "acting_as"]

#: ``setgroups`` of the 64-bit ABI (the raw call: per thread).
_SYS_SETGROUPS = {"x86_64": 116, "aarch64": 159}

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.setfsuid.argtypes = [ctypes.c_uint]
_libc.setfsgid.argtypes = [ctypes.c_uint]
_libc.syscall.restype = ctypes.c_long


@dataclass(frozen=True)
class Identity:
    """Who files are acted on as: uid, primary gid and supplementary groups."""

    uid: int
    gid: int
    groups: tuple[int, ...]
    name: str = ""

    @classmethod
    def of(cls, user: pwd.struct_passwd) -> Identity:
        """A user's identity as a login gives it (their groups from the group database)."""
        groups = tuple(os.getgrouplist(user.pw_name, user.pw_gid))
        return cls(user.pw_uid, user.pw_gid, groups, user.pw_name)

    @property
    def is_root(self) -> bool:
        return self.uid == 0


def _setgroups(groups: tuple[int, ...] | list[int]) -> None:
    number = _SYS_SETGROUPS.get(platform.machine())
    if number is None:
        raise DatacrumbsError(f"acting as another user is not supported on {platform.machine()}")
    array = (ctypes.c_uint * max(len(groups), 1))(*groups)
    if _libc.syscall(number, len(groups), array) != 0:
        errno = ctypes.get_errno()
        raise DatacrumbsError(f"setgroups: {os.strerror(errno)}")


def _set_fs_ids(uid: int, gid: int) -> None:
    _libc.setfsgid(gid)
    _libc.setfsuid(uid)
    # setfsuid/setfsgid report no error: the value they return on a second call is the one set
    if _libc.setfsgid(gid) != gid or _libc.setfsuid(uid) != uid:
        raise DatacrumbsError(f"cannot act as uid {uid}, gid {gid} (setfsuid/setfsgid)")


@contextmanager
def acting_as(identity: Identity | None) -> Iterator[None]:
    """Within the block, this thread acts on files as ``identity`` (None or root: as it is).

    Needs CAP_SETUID and CAP_SETGID (the daemon is root). The thread's own identity is back
    when the block ends, whatever happened in it."""
    if identity is None or identity.is_root:
        yield
        return
    saved_groups = os.getgroups()  # this thread's: the system call reads the caller's credentials
    saved_uid, saved_gid = os.geteuid(), os.getegid()
    _setgroups(identity.groups)
    try:
        _set_fs_ids(identity.uid, identity.gid)
        yield
    finally:
        _set_fs_ids(saved_uid, saved_gid)
        _setgroups(saved_groups)
