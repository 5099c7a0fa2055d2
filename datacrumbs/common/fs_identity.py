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
import os
import platform
import pwd
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from datacrumbs.common.errors import DatacrumbsError

__all__ = ["Identity", "acting_as", "write_as_users_do"]

#: ``setgroups`` of the 64-bit ABI (the raw call: per thread).
_SYS_SETGROUPS = {"x86_64": 116, "aarch64": 159}

_libc = ctypes.CDLL(None, use_errno=True)  # the C library this process runs on
_libc.setfsuid.argtypes = [ctypes.c_uint]
_libc.setfsgid.argtypes = [ctypes.c_uint]
_libc.syscall.restype = ctypes.c_long

#: ``CAP_SYS_RESOURCE``: lets root exceed disk quotas and use the blocks ext4 keeps for root.
_CAP_SYS_RESOURCE = 24
_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


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


def write_as_users_do(identity: Identity | None) -> None:
    """From now on this thread writes as ``identity`` would (None: as an ordinary user, keeping
    its own ids): with their filesystem identity for good, and without ``CAP_SYS_RESOURCE`` in
    its effective set, so that a user's quota holds for what it writes into their file, and a
    full disk is full for it before the blocks ext4 reserves for root (by capability and by
    fsuid) are eaten. Only this thread (``capset`` on thread id 0, the caller); for a thread
    that does nothing else (the trace's writer)."""
    if identity is not None and not identity.is_root:
        _setgroups(identity.groups)
        _set_fs_ids(identity.uid, identity.gid)
    header = _CapHeader(_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    if _libc.capget(ctypes.byref(header), data) != 0:
        raise DatacrumbsError(f"capget: {os.strerror(ctypes.get_errno())}")
    data[0].effective &= ~(1 << _CAP_SYS_RESOURCE)
    if _libc.capset(ctypes.byref(header), data) != 0:
        raise DatacrumbsError(f"capset: {os.strerror(ctypes.get_errno())}")
