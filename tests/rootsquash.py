"""A FUSE filesystem that emulates an NFS export with ``root_squash``, for the tests.

Why it exists: sites install datacrumbs on a shared prefix that is a read-only, root-squashed NFS
export, and their users' trace directories are a writable root-squashed export. There, root (the
daemon) is ``nobody`` to the files while every user is themselves. This kernel has no NFS client,
so the tests mount this instead: a passthrough of SOURCE at MOUNTPOINT that performs every request
with the *caller's* identity, except that root is squashed exactly as Linux's nfsd squashes it
(``fs/nfsd/auth.c``, ``nfsd_setuser``): uid 0 becomes 65534 (``nobody``), gid 0 becomes 65534
(``nogroup``), and a supplementary group 0 becomes 65534; every other id is kept, so a root
caller with the usual groups (none, or 0) is 65534:65534 with no group but ``nogroup``. bindfs is
not enough: run as nobody with ``allow_other`` it squashes root, but it then performs every
user's requests as nobody too, so a user could not reach their own 0700 directory.

How: each request runs on its own libfuse worker thread (the multithreaded loop), which takes the
caller's uid, gid and pid from the FUSE request (the kernel sends the caller's fsuid and fsgid),
reads the caller's supplementary groups from ``/proc/<pid>/status`` (``Groups:``; the pid is the
calling thread's), squashes them, and sets them on that thread only: ``setfsuid``/``setfsgid``
(glibc does not broadcast these to the other threads) and the raw ``setgroups`` syscall through
``syscall()`` (glibc's ``setgroups()`` would change every thread of the process). Changing the
fsuid from 0 to anything else drops the thread's filesystem capabilities (CAP_CHOWN,
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_FSETID, ...) from its effective set, so the
daemon's root privileges do not apply to the request (the tests check it in
``/proc/thread-self/status``); after the request the thread goes back to fsuid 0, which raises them
again. The mount has ``allow_other`` (every user may use it) and no ``default_permissions``: the
FUSE kernel leaves the permission checks to the filesystem, which leaves them to the source's
kernel, asked with the caller's identity. Paths are resolved against a descriptor of SOURCE opened
at start, as an NFS file handle would be: SOURCE's own parents need not be reachable by anybody,
while every component below it is checked with the caller's identity. Not emulated: AUTH_SYS's
limit of 16 groups, and nfsd's dropping of CAP_SYS_RESOURCE (the only capability it drops beyond
the filesystem ones).

Open files: ``open``/``create`` open the source file with the caller's identity and the
descriptor is the FUSE file handle, used by every later read, write, fsync, ftruncate and
release, as NFS writes through an open file with the opener's credentials. O_APPEND and O_DIRECT
are left to the kernel (it computes the append offset itself; Python's buffers are unaligned).
A file unlinked while open is renamed to ``.fuse_hiddenNNN`` until its last close (libfuse's
silly rename, NFS's ``.nfsNNN``), so that fstat on it keeps working; libfuse removes it then with
a request of no process (uid 0, pid 0), which is performed as whoever unlinked it, as NFS's
client does.

Read-only mode (``--read-only``, for the prefix): every modifying request, and opening for
writing, gets EROFS, whoever asks, before any permission check, as nfsd answers for a read-only
export; the mount itself stays ``rw`` as an NFS client's mount of such an export does, so
``statvfs`` shows no ST_RDONLY. ``access(W_OK)`` is EROFS too.

Caches: the entry, negative-entry and attribute timeouts are 0, so each lookup is asked again
with the identity of whoever is looking (without ``default_permissions`` the kernel checks no
permission itself; cached entries would let one user's lookup serve another).

Locks: the filesystem implements neither ``lock`` nor ``flock``, so libfuse does not ask for
FUSE_POSIX_LOCKS/FUSE_FLOCK_LOCKS and the kernel keeps both kinds of lock itself, on the FUSE
inode: processes using this mount exclude each other (SQLite works, several writers at once), but
a lock taken on the source file directly is not seen through the mount, unlike NFS, whose locks
live on the server. Extended attributes: ``user.*`` pass through (as NFSv4.2 offers, RFC 8276);
any other namespace is EOPNOTSUPP, as on an NFS mount.

The mount's ``statfs`` ``f_type`` is FUSE_SUPER_MAGIC (0x65735546), not NFS_SUPER_MAGIC, and its
type in /proc/mounts is ``fuse.rootsquash``; datacrumbs treats FUSE as a network filesystem, as
it does NFS.

Binding: mfusepy (PyPI; the maintained fork of fusepy: ctypes over libfuse 3, no compilation, so
it installs into the project's venv with pip). Its high-level API runs libfuse's multithreaded
loop, so each request is on an OS thread of its own and the per-thread identity above simply
follows the request, and ``fuse_get_context()`` gives the caller's uid, gid and pid. pyfuse3
(trio) serves every request on one thread: each request would have to switch identity around
each syscall with no ``await`` in between, one caller's slow fsync would hold up everybody, and
Debian's python3-pyfuse3 is built for Debian's interpreter, not the venv's. mfusepy drops the
file handle of a truncate, the flags of a rename and the UTIME_NOW/UTIME_OMIT of a utimens under
libfuse 3; ``_serve`` subclasses its ``FUSE`` to keep all three. libfuse 3 is required (mfusepy
would pick libfuse 2 first if both are installed, so FUSE_LIBRARY_NAME is set to fuse3).

Run: ``python tests/rootsquash.py [--read-only] SOURCE MOUNTPOINT`` (as root, in the foreground;
SIGTERM or an unmount ends it). Tests use ``rootsquash_mount``.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import functools
import logging
import os
import platform
import re
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

#: NFS's default anonymous ids (exportfs ``anonuid``/``anongid``): ``nobody`` and ``nogroup``.
ANON_UID = 65534
ANON_GID = 65534

#: statfs ``f_type`` of every FUSE mount.
FUSE_SUPER_MAGIC = 0x65735546

#: The type this filesystem's mounts have in /proc/self/mountinfo.
FSTYPE = "fuse.rootsquash"

#: ``setgroups`` by architecture (x86_64's is not the generic table's).
_SYS_SETGROUPS = {"x86_64": 116, "aarch64": 159, "riscv64": 159, "ppc64le": 81, "s390x": 206}

_UTIME_NOW = (1 << 30) - 1
_AT_SYMLINK_NOFOLLOW = 0x100
_AT_EACCESS = 0x200
_PR_SET_PDEATHSIG = 1
_UNCHANGED = 0xFFFFFFFF  # (uid_t)-1: setfsuid/setfsgid change nothing and return the current id

_libc = ctypes.CDLL(None, use_errno=True)
_libc.setfsuid.argtypes = [ctypes.c_uint32]
_libc.setfsuid.restype = ctypes.c_int
_libc.setfsgid.argtypes = [ctypes.c_uint32]
_libc.setfsgid.restype = ctypes.c_int
_libc.syscall.restype = ctypes.c_long


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


@dataclass(frozen=True)
class Identity:
    """A filesystem identity: fsuid, fsgid and supplementary groups."""

    uid: int
    gid: int
    groups: tuple[int, ...]


def squash(uid: int, gid: int, groups: tuple[int, ...]) -> Identity:
    """What nfsd performs a request as under ``root_squash`` (``nfsd_setuser``): id 0 becomes
    the anonymous id, as uid, as gid and among the groups; every other id is kept."""
    return Identity(
        ANON_UID if uid == 0 else uid,
        ANON_GID if gid == 0 else gid,
        tuple(sorted({ANON_GID if g == 0 else g for g in groups})),
    )


def caller_groups(pid: int) -> tuple[int, ...]:
    """The supplementary groups of thread ``pid`` (``Groups:`` of /proc/<pid>/status); none when
    the request has no process (pid 0: a release sent by the kernel) or it is gone."""
    if pid <= 0:
        return ()
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"Groups:"):
                    return tuple(int(g) for g in line.split()[1:])
    except OSError:
        pass
    return ()


def _check(result: int) -> None:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def set_thread_identity(identity: Identity) -> None:
    """Set this thread's (and only this thread's) fsuid, fsgid and supplementary groups."""
    nr = _SYS_SETGROUPS.get(platform.machine())
    if nr is None:
        raise OSError(errno.ENOSYS, f"setgroups syscall number unknown on {platform.machine()}")
    groups = (ctypes.c_uint32 * len(identity.groups))(*identity.groups)
    _check(_libc.syscall(ctypes.c_long(nr), ctypes.c_long(len(identity.groups)), groups))
    _libc.setfsgid(identity.gid)
    _libc.setfsuid(identity.uid)
    # Neither reports failure: read the ids back.
    if _libc.setfsgid(_UNCHANGED) != identity.gid or _libc.setfsuid(_UNCHANGED) != identity.uid:
        raise PermissionError(errno.EPERM, f"cannot take the identity {identity}")


#: The daemon's own identity, which each thread returns to after a request (fsuid 0 raises the
#: filesystem capabilities again). Taken at import, on the main thread.
PROCESS_IDENTITY = Identity(os.geteuid(), os.getegid(), tuple(os.getgroups()))


@contextlib.contextmanager
def thread_identity(identity: Identity) -> Iterator[None]:
    """Run the body with this thread's filesystem identity set to ``identity``."""
    set_thread_identity(identity)
    try:
        yield
    finally:
        set_thread_identity(PROCESS_IDENTITY)


P = ParamSpec("P")
R = TypeVar("R")
Method = Callable[Concatenate["RootSquash", P], R]


def _as_caller(method: Method[P, R]) -> Method[P, R]:
    """Perform the request with the caller's squashed identity."""

    @functools.wraps(method)
    def wrapper(self: RootSquash, *args: P.args, **kwargs: P.kwargs) -> R:
        with thread_identity(self.caller()):
            return method(self, *args, **kwargs)

    return wrapper


def _modifies(method: Method[P, R]) -> Method[P, R]:
    """EROFS on a read-only export, before any permission check (as nfsd answers)."""

    @functools.wraps(method)
    def wrapper(self: RootSquash, *args: P.args, **kwargs: P.kwargs) -> R:
        if self.read_only:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return method(self, *args, **kwargs)

    return wrapper


def _rel(path: str | None) -> str:
    if path is None:  # libfuse has no name for the node any more
        raise OSError(errno.ESTALE, os.strerror(errno.ESTALE))
    return path.lstrip("/") or "."


def _is_silly(path: str) -> bool:
    return os.path.basename(path).startswith(".fuse_hidden")


def _attrs(st: os.stat_result) -> dict[str, int]:
    return {
        "st_mode": st.st_mode,
        "st_ino": st.st_ino,
        "st_nlink": st.st_nlink,
        "st_uid": st.st_uid,
        "st_gid": st.st_gid,
        "st_rdev": st.st_rdev,
        "st_size": st.st_size,
        "st_blocks": st.st_blocks,
        "st_blksize": st.st_blksize,
        "st_atime": st.st_atime_ns,
        "st_mtime": st.st_mtime_ns,
        "st_ctime": st.st_ctime_ns,
    }


def _entry_mode(entry: os.DirEntry[str]) -> int:
    """The file type bits of a directory entry, from d_type (0: unknown, the kernel asks)."""
    try:
        if entry.is_symlink():
            return stat.S_IFLNK
        if entry.is_dir(follow_symlinks=False):
            return stat.S_IFDIR
        if entry.is_file(follow_symlinks=False):
            return stat.S_IFREG
    except OSError:
        pass
    return 0


class RootSquash:
    """The filesystem's operations (mfusepy's high-level API, paths relative to the mount)."""

    use_ns = True  # times as integer nanoseconds

    def __init__(
        self, source: Path, read_only: bool, context: Callable[[], tuple[int, int, int]]
    ) -> None:
        self.root = os.open(source, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self.read_only = read_only
        self.context = context  # the request's (uid, gid, pid)
        #: Files libfuse renamed to .fuse_hidden* as they were unlinked while open, by (st_dev,
        #: st_ino): who unlinked them, who removes them at their last close.
        self.silly: dict[tuple[int, int], Identity] = {}

    def caller(self) -> Identity:
        """The identity to perform the current request with."""
        uid, gid, pid = self.context()
        return squash(uid, gid, caller_groups(pid))

    def _proc(self, path: str | None) -> str:
        """A path to the source file for the calls that take no directory descriptor."""
        return f"/proc/self/fd/{self.root}/{_rel(path)}"

    # Attributes and directories.

    @_as_caller
    def getattr(self, path: str | None, fh: int | None = None) -> dict[str, int]:
        if fh is not None:
            return _attrs(os.fstat(fh))
        return _attrs(os.stat(_rel(path), dir_fd=self.root, follow_symlinks=False))

    @_as_caller
    def access(self, path: str, amode: int) -> int:
        if self.read_only and amode & os.W_OK:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        # AT_EACCESS: checked with this thread's fs identity, not the process's real ids.
        _check(_libc.faccessat(self.root, _rel(path).encode(), amode, _AT_EACCESS))
        return 0

    @_as_caller
    def opendir(self, path: str) -> int:
        return os.open(_rel(path), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=self.root)

    @_as_caller
    def readdir(self, path: str | None, fh: int) -> list[tuple[str, dict[str, int], int]]:
        entries = [(".", {"st_mode": stat.S_IFDIR}, 0), ("..", {"st_mode": stat.S_IFDIR}, 0)]
        with os.scandir(fh) as scan:
            for entry in scan:
                entries.append(
                    (entry.name, {"st_mode": _entry_mode(entry), "st_ino": entry.inode()}, 0)
                )
        return entries

    def releasedir(self, path: str | None, fh: int) -> int:
        os.close(fh)
        return 0

    @_as_caller
    def fsyncdir(self, path: str | None, datasync: int, fh: int) -> int:
        os.fsync(fh)
        return 0

    @_as_caller
    def readlink(self, path: str) -> str:
        return os.readlink(_rel(path), dir_fd=self.root)

    @_as_caller
    def statfs(self, path: str) -> dict[str, int]:
        sv = os.statvfs(self.root)
        keys = ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files", "f_ffree")
        return {key: getattr(sv, key) for key in (*keys, "f_favail", "f_namemax")}

    # Namespace changes.

    @_modifies
    @_as_caller
    def mknod(self, path: str, mode: int, dev: int) -> int:
        os.mknod(_rel(path), mode, dev, dir_fd=self.root)
        return 0

    @_modifies
    @_as_caller
    def mkdir(self, path: str, mode: int) -> int:
        os.mkdir(_rel(path), mode & 0o7777, dir_fd=self.root)
        return 0

    @_modifies
    @_as_caller
    def rmdir(self, path: str) -> int:
        os.rmdir(_rel(path), dir_fd=self.root)
        return 0

    @_modifies
    def unlink(self, path: str) -> int:
        identity = self.caller()
        if self.context()[2] == 0 and _is_silly(path):
            # Sent by no process: libfuse removing a silly-renamed file at its last close, which
            # NFS's client does with the credentials of whoever unlinked it; so does this.
            st = os.stat(_rel(path), dir_fd=self.root, follow_symlinks=False)
            identity = self.silly.pop((st.st_dev, st.st_ino), identity)
        with thread_identity(identity):
            os.unlink(_rel(path), dir_fd=self.root)
        return 0

    @_modifies
    @_as_caller
    def symlink(self, target: str, source: str) -> int:
        """``target`` is the new link, ``source`` its content (mfusepy's names)."""
        os.symlink(source, _rel(target), dir_fd=self.root)
        return 0

    @_modifies
    @_as_caller
    def link(self, target: str, source: str) -> int:
        """``target`` is the new name of the existing ``source``."""
        os.link(
            _rel(source),
            _rel(target),
            src_dir_fd=self.root,
            dst_dir_fd=self.root,
            follow_symlinks=False,
        )
        return 0

    @_modifies
    def rename(self, old: str, new: str, flags: int = 0) -> int:
        """renameat2, so that RENAME_NOREPLACE and RENAME_EXCHANGE keep their meaning."""
        identity = self.caller()
        with thread_identity(identity):
            _check(
                _libc.renameat2(self.root, _rel(old).encode(), self.root, _rel(new).encode(), flags)
            )
            if _is_silly(new):
                st = os.stat(_rel(new), dir_fd=self.root, follow_symlinks=False)
                self.silly[st.st_dev, st.st_ino] = identity
        return 0

    # Attribute changes.

    @_modifies
    @_as_caller
    def chmod(self, path: str | None, mode: int) -> int:
        os.chmod(_rel(path), mode & 0o7777, dir_fd=self.root)
        return 0

    @_modifies
    @_as_caller
    def chown(self, path: str | None, uid: int, gid: int) -> int:
        os.chown(_rel(path), uid, gid, dir_fd=self.root, follow_symlinks=False)
        return 0

    @_modifies
    @_as_caller
    def truncate(self, path: str | None, length: int, fh: int | None = None) -> int:
        if fh is not None:  # ftruncate: through the opener's descriptor
            os.ftruncate(fh, length)
            return 0
        fd = os.open(_rel(path), os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.root)
        try:
            os.ftruncate(fd, length)
        finally:
            os.close(fd)
        return 0

    @_modifies
    @_as_caller
    def utimens(self, path: str | None, times: tuple[tuple[int, int], tuple[int, int]]) -> int:
        """``times``: (atime, mtime) as raw (tv_sec, tv_nsec), UTIME_NOW/UTIME_OMIT kept."""
        spec = (_Timespec * 2)(*(_Timespec(sec, nsec) for sec, nsec in times))
        _check(_libc.utimensat(self.root, _rel(path).encode(), spec, _AT_SYMLINK_NOFOLLOW))
        return 0

    # Files.

    @staticmethod
    def _flags(flags: int) -> int:
        return (flags & ~(os.O_APPEND | os.O_DIRECT)) | os.O_NOFOLLOW | os.O_CLOEXEC

    @_as_caller
    def open(self, path: str, flags: int) -> int:
        if self.read_only and (flags & os.O_ACCMODE != os.O_RDONLY or flags & os.O_TRUNC):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return os.open(_rel(path), self._flags(flags), dir_fd=self.root)

    @_modifies
    @_as_caller
    def create(self, path: str, mode: int, flags: int) -> int:
        return os.open(_rel(path), self._flags(flags) | os.O_CREAT, mode & 0o7777, dir_fd=self.root)

    @_as_caller
    def read(self, path: str | None, size: int, offset: int, fh: int) -> bytes:
        return os.pread(fh, size, offset)

    @_modifies
    @_as_caller
    def write(self, path: str | None, data: bytes, offset: int, fh: int) -> int:
        return os.pwrite(fh, data, offset)

    @_modifies
    @_as_caller
    def fallocate(self, path: str | None, mode: int, offset: int, size: int, fh: int) -> int:
        if mode:
            raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))
        os.posix_fallocate(fh, offset, size)
        return 0

    def flush(self, path: str | None, fh: int) -> int:
        return 0  # writes are not buffered here

    @_as_caller
    def fsync(self, path: str | None, datasync: int, fh: int) -> int:
        (os.fdatasync if datasync else os.fsync)(fh)
        return 0

    def release(self, path: str | None, fh: int) -> int:
        os.close(fh)
        return 0

    # Extended attributes: user.* only, as NFSv4.2 offers.

    @staticmethod
    def _user_namespace(name: str) -> None:
        if not name.startswith("user."):
            raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))

    @_as_caller
    def getxattr(self, path: str, name: str, position: int = 0) -> bytes:
        self._user_namespace(name)
        return os.getxattr(self._proc(path), name, follow_symlinks=False)

    @_as_caller
    def listxattr(self, path: str) -> list[str]:
        names = os.listxattr(self._proc(path), follow_symlinks=False)
        return [name for name in names if name.startswith("user.")]

    @_modifies
    @_as_caller
    def setxattr(self, path: str, name: str, value: bytes, options: int, position: int = 0) -> int:
        self._user_namespace(name)
        os.setxattr(self._proc(path), name, value, options, follow_symlinks=False)
        return 0

    @_modifies
    @_as_caller
    def removexattr(self, path: str, name: str) -> int:
        self._user_namespace(name)
        os.removexattr(self._proc(path), name, follow_symlinks=False)
        return 0


def _escape_option(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,")


def _serve(source: Path, mountpoint: Path, read_only: bool) -> None:
    """Mount and serve until unmounted or signalled (SIGTERM/SIGINT unmount)."""
    os.environ.setdefault("FUSE_LIBRARY_NAME", "fuse3")
    import mfusepy

    if mfusepy.fuse_version_major != 3:
        raise SystemExit(f"rootsquash needs libfuse 3, mfusepy loaded {mfusepy._libfuse_path}")

    def decode(path: bytes | None) -> str | None:
        return None if path is None else path.decode("utf-8", "surrogateescape")

    def handle(fip: Any) -> int | None:
        return fip.contents.fh if fip else None

    class FUSE(mfusepy.FUSE):  # type: ignore[misc]
        """mfusepy's FUSE, keeping what its libfuse 3 glue drops."""

        def truncate_fuse_3(self, path: bytes | None, length: int, fip: Any) -> int:
            result: int = self.operations.truncate(decode(path), length, handle(fip))
            return result

        def rename_fuse_3(self, old: bytes, new: bytes, flags: int) -> int:
            result: int = self.operations.rename(decode(old), decode(new), flags)
            return result

        def utimens_fuse_3(self, path: bytes | None, buf: Any, fip: Any) -> int:
            if buf:
                a, m = buf.contents.actime, buf.contents.modtime
                times = ((a.tv_sec, a.tv_nsec), (m.tv_sec, m.tv_nsec))
            else:
                times = ((0, _UTIME_NOW), (0, _UTIME_NOW))
            result: int = self.operations.utimens(decode(path), times)
            return result

    os.umask(0)  # the kernel applied the caller's umask to the modes it sends
    operations = RootSquash(source, read_only, mfusepy.fuse_get_context)
    FUSE(
        operations,
        str(mountpoint),
        foreground=True,
        allow_other=True,
        fsname=_escape_option(f"rootsquash:{source}"),
        subtype="rootsquash",
        entry_timeout=0,
        negative_timeout=0,
        attr_timeout=0,
        use_ino=True,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--read-only", action="store_true", help="EROFS for every modification")
    parser.add_argument(
        "--die-with-parent", action="store_true", help="unmount when the parent process dies"
    )
    parser.add_argument("source", type=Path)
    parser.add_argument("mountpoint", type=Path)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("must run as root (it switches to its callers' identities)")
    if not args.source.is_dir():
        parser.error(f"{args.source} is not a directory")
    logging.basicConfig(level=logging.WARNING, format="rootsquash: %(levelname)s %(message)s")
    if args.die_with_parent:
        parent = os.getppid()
        _check(_libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0))
        if os.getppid() != parent:
            raise SystemExit("rootsquash: the parent is already gone")
    _serve(args.source.resolve(), args.mountpoint.resolve(), args.read_only)


# The test side: a mount for the duration of a with block.


def _mount_type(mountpoint: Path) -> str | None:
    """The type of the filesystem mounted at ``mountpoint`` (the topmost), or None."""
    found = None
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            fields = line.split()
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), fields[4])  # \040 ...
            if point == str(mountpoint):
                found = fields[fields.index("-") + 1]
    return found


def _unmount(mountpoint: Path) -> bool:
    """Unmount, lazily if busy (then True); nothing when nothing of ours is mounted there."""
    if _mount_type(mountpoint) != FSTYPE:
        return False
    subprocess.run(["umount", str(mountpoint)], capture_output=True, check=False)
    if _mount_type(mountpoint) != FSTYPE:
        return False
    subprocess.run(["umount", "--lazy", str(mountpoint)], capture_output=True, check=False)
    if _mount_type(mountpoint) == FSTYPE:
        raise RuntimeError(f"cannot unmount {mountpoint}")
    return True


def _reap(daemon: subprocess.Popen[bytes], timeout: float, *, wait: bool) -> None:
    """Let the daemon end (it does once unmounted), else end it: after a lazy unmount it would
    serve the processes still inside until they leave; SIGTERM ends it (they get ENOTCONN)."""
    if wait:
        with contextlib.suppress(subprocess.TimeoutExpired):
            daemon.wait(timeout=timeout)
    if daemon.poll() is None:
        daemon.terminate()
        try:
            daemon.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()


@contextlib.contextmanager
def rootsquash_mount(
    source: Path, mountpoint: Path, *, read_only: bool = False, timeout: float = 10.0
) -> Iterator[Path]:
    """Mount ``source`` root-squashed at ``mountpoint`` (created if missing) for the with block
    and yield the mountpoint (resolved); on the way out, even when the block raises, unmount
    (lazily if busy) and reap the daemon. Needs root. ``timeout``: seconds to wait for the
    mount, and for the daemon to end."""
    mountpoint.mkdir(exist_ok=True)
    mountpoint = mountpoint.resolve()
    if _mount_type(mountpoint) is not None:
        raise RuntimeError(f"{mountpoint} is already a mount point")
    command = [sys.executable, str(Path(__file__).resolve()), "--die-with-parent"]
    command += ["--read-only"] if read_only else []
    command += [str(source), str(mountpoint)]
    with tempfile.TemporaryFile() as log:

        def output() -> str:
            log.seek(0)
            return log.read().decode(errors="replace").strip()

        daemon = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
        try:
            deadline = time.monotonic() + timeout
            while _mount_type(mountpoint) != FSTYPE:
                if daemon.poll() is not None:
                    raise RuntimeError(
                        f"rootsquash exited with {daemon.returncode} before mounting: {output()}"
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError(f"rootsquash did not mount in {timeout} s: {output()}")
                time.sleep(0.02)
            yield mountpoint
        finally:
            try:
                lazy = _unmount(mountpoint)
            finally:
                _reap(daemon, timeout, wait=not lazy)
                _unmount(mountpoint)  # had the daemon died without unmounting


if __name__ == "__main__":
    main()
