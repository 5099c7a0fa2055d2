"""Which filesystem a path is on, for what only local filesystems do right.

SQLite's WAL mode keeps its index in shared memory (the ``-shm`` file, mmapped): every
connection must be on one host. A status database on NFS, Lustre, GPFS or any other network
filesystem shared by the nodes of a cluster must therefore use a rollback journal, with the
filesystem's own locks. ``statfs``'s ``f_type`` names the filesystem; Python's ``os.statvfs``
does not return it, so it is read through ctypes.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

__all__ = ["NETWORK_FILESYSTEMS", "filesystem_magic", "network_filesystem"]

#: ``f_type`` of the filesystems whose files other hosts may open too (linux/magic.h and the
#: filesystems' own sources). FUSE is among them: sshfs, s3fs and the like are remote, and a
#: FUSE filesystem cannot say whether it is.
NETWORK_FILESYSTEMS = {
    0x6969: "nfs",
    0x0BD00BD0: "lustre",
    0x47504653: "gpfs",
    0x19830326: "beegfs",
    0x00C36400: "ceph",
    0xFF534D42: "cifs",
    0xFE534D42: "smb2",
    0x01021997: "9p",
    0x65735546: "fuse",
    0x013111A8: "ibrix",
    0x564C: "ncp",
    0x517B: "smb",
    0x5346414F: "afs",
    0x6B414653: "afs",
    0x73757245: "coda",
    0x47FD: "panfs",
}


class _Statfs(ctypes.Structure):
    """``struct statfs`` of 64-bit Linux (x86-64 and arm64 alike)."""

    _fields_ = [
        ("f_type", ctypes.c_long),
        ("f_bsize", ctypes.c_long),
        ("f_blocks", ctypes.c_ulong),
        ("f_bfree", ctypes.c_ulong),
        ("f_bavail", ctypes.c_ulong),
        ("f_files", ctypes.c_ulong),
        ("f_ffree", ctypes.c_ulong),
        ("f_fsid", ctypes.c_int * 2),
        ("f_namelen", ctypes.c_long),
        ("f_frsize", ctypes.c_long),
        ("f_flags", ctypes.c_long),
        ("f_spare", ctypes.c_long * 4),
    ]


_libc = ctypes.CDLL(None, use_errno=True)  # the C library this process runs on
_libc.statfs.argtypes = [ctypes.c_char_p, ctypes.POINTER(_Statfs)]
_libc.fstatfs.argtypes = [ctypes.c_int, ctypes.POINTER(_Statfs)]


def filesystem_magic(where: Path | int) -> int:
    """The ``f_type`` of the filesystem holding ``where`` (a path or an open descriptor)."""
    buf = _Statfs()
    if isinstance(where, int):
        result = _libc.fstatfs(where, ctypes.byref(buf))
    else:
        result = _libc.statfs(os.fsencode(where), ctypes.byref(buf))
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno), str(where))
    return int(buf.f_type) & 0xFFFFFFFF


def network_filesystem(where: Path | int) -> str | None:
    """The name of the network filesystem holding ``where``, or None when it is local."""
    return NETWORK_FILESYSTEMS.get(filesystem_magic(where))
