"""Per-syscall layouts: which argument is the fd, which are paths, what the trace reports.

One generic tracepoint program pair serves every syscall; the cookie tells it, per attached
tracepoint, which argument holds the fd (named by the file the kernel holds for it), which
hold paths to read and hash (and whether they are relative to a directory fd), and whether the
return value is a new fd, which then names the call. This table is the only place those facts
live.

A syscall that is not in the table but has a tracepoint is still traced: its argument names
and types come from the tracepoint's ``format`` file in tracefs, and its non-pointer arguments
are reported raw. Syscall tracepoints need CONFIG_FTRACE_SYSCALLS (kernel 2.6.33+); the cookie
needs 5.15+.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from datacrumbs.ebpf import arch
from datacrumbs.ebpf.features import TRACEFS
from datacrumbs.ebpf.functions import ArgField, ArgKind
from datacrumbs.ebpf.records import (
    MAX_SYSCALL_NR,
    SYS_AT,
    SYS_FD2_ARG_SHIFT,
    SYS_FD_ARG_SHIFT,
    SYS_PATH1_SHIFT,
    SYS_PATH2_SHIFT,
    SYS_RET_CWD,
    SYS_RET_FD,
)

__all__ = [
    "MAX_SYSCALL_NR",
    "SYSCALLS",
    "TRACEFS",
    "SyscallLayout",
    "resolve_syscall",
    "syscall_cookie",
    "syscall_number",
]


@dataclass(frozen=True)
class SyscallLayout:
    """How one syscall is read. Indexes are positions in the syscall's argument list."""

    tracepoint: str  # the name after sys_enter_/sys_exit_
    fields: tuple[ArgField, ...] = ()
    fd_arg: int | None = None
    path_args: tuple[int, ...] = ()  # at most two; the first becomes the event's fhash
    returns_fd: bool = False
    at: bool = False  # each path is relative to the directory fd just before it (openat, ...)
    #: a two-file call's other fd (the source of copy_file_range, sendfile, splice, tee): named
    #: at entry, its slot holds the name's hash (a HASH field, ``in_fhash``)
    fd2_arg: int | None = None
    cwd: bool = False  # a success makes the path the working directory (chdir): named so

    @property
    def has_file(self) -> bool:
        return self.fd_arg is not None or bool(self.path_args)


def _f(key: str, index: int) -> ArgField:
    return ArgField(key, index)


def _fd(index: int = 0) -> ArgField:
    return ArgField("fd", index)


def _hash(key: str, index: int) -> ArgField:
    return ArgField(key, index, ArgKind.HASH)


def _in(index: int) -> ArgField:
    """A two-file call's source, by its name's hash."""
    return _hash("in_fhash", index)


_READ = SyscallLayout("read", (_fd(), _f("size", 2)), fd_arg=0)
_PREAD = SyscallLayout("pread64", (_fd(), _f("size", 2), _f("offset", 3)), fd_arg=0)
_VEC = (_fd(), _f("iovcnt", 2))
_VEC_AT = (_fd(), _f("iovcnt", 2), _f("offset", 3))
_OPEN_FIELDS = (_f("flags", 1), _f("mode", 2))
_OPENAT_FIELDS = (_f("flags", 2), _f("mode", 3))
_COPY = (_fd(2), _in(0), _f("size", 4), _f("flags", 5))  # copy_file_range, splice
_OWNER = (_f("user", 1), _f("group", 2))

#: Syscalls by the name a probe file uses. Layouts follow the x86-64 tracepoint formats.
SYSCALLS: dict[str, SyscallLayout] = {
    "open": SyscallLayout("open", _OPEN_FIELDS, path_args=(0,), returns_fd=True),
    "openat": SyscallLayout("openat", _OPENAT_FIELDS, path_args=(1,), returns_fd=True, at=True),
    "openat2": SyscallLayout("openat2", (), path_args=(1,), returns_fd=True, at=True),
    "creat": SyscallLayout("creat", (_f("mode", 1),), path_args=(0,), returns_fd=True),
    "close": SyscallLayout("close", (_fd(),), fd_arg=0),
    "read": _READ,
    "write": SyscallLayout("write", _READ.fields, fd_arg=0),
    "pread64": _PREAD,
    "pwrite64": SyscallLayout("pwrite64", _PREAD.fields, fd_arg=0),
    "readv": SyscallLayout("readv", _VEC, fd_arg=0),
    "writev": SyscallLayout("writev", _VEC, fd_arg=0),
    "preadv": SyscallLayout("preadv", _VEC_AT, fd_arg=0),
    "pwritev": SyscallLayout("pwritev", _VEC_AT, fd_arg=0),
    "preadv2": SyscallLayout("preadv2", (*_VEC_AT, _f("flags", 5)), fd_arg=0),
    "pwritev2": SyscallLayout("pwritev2", (*_VEC_AT, _f("flags", 5)), fd_arg=0),
    "lseek": SyscallLayout("lseek", (_fd(), _f("offset", 1), _f("whence", 2)), fd_arg=0),
    "fsync": SyscallLayout("fsync", (_fd(),), fd_arg=0),
    "fdatasync": SyscallLayout("fdatasync", (_fd(),), fd_arg=0),
    "ftruncate": SyscallLayout("ftruncate", (_fd(), _f("size", 1)), fd_arg=0),
    "truncate": SyscallLayout("truncate", (_f("size", 1),), path_args=(0,)),
    "mmap": SyscallLayout(
        "mmap",
        (_fd(4), _f("size", 1), _f("offset", 5), _f("prot", 2), _f("flags", 3)),
        fd_arg=4,
    ),
    "munmap": SyscallLayout("munmap", (_f("addr", 0), _f("size", 1))),
    # a mapping's range and no fd: no file (DFTracer's tools class it as a sync)
    "msync": SyscallLayout("msync", (_f("addr", 0), _f("size", 1), _f("flags", 2))),
    "unlink": SyscallLayout("unlink", (), path_args=(0,)),
    "unlinkat": SyscallLayout("unlinkat", (_f("flags", 2),), path_args=(1,), at=True),
    "rename": SyscallLayout("rename", (_hash("new_fhash", 1),), path_args=(0, 1)),
    "renameat": SyscallLayout("renameat", (_hash("new_fhash", 3),), path_args=(1, 3), at=True),
    "renameat2": SyscallLayout(
        "renameat2", (_hash("new_fhash", 3), _f("flags", 4)), path_args=(1, 3), at=True
    ),
    "mkdir": SyscallLayout("mkdir", (_f("mode", 1),), path_args=(0,)),
    "mkdirat": SyscallLayout("mkdirat", (_f("mode", 2),), path_args=(1,), at=True),
    "rmdir": SyscallLayout("rmdir", (), path_args=(0,)),
    "stat": SyscallLayout("newstat", (), path_args=(0,)),
    "lstat": SyscallLayout("newlstat", (), path_args=(0,)),
    "fstat": SyscallLayout("newfstat", (_fd(),), fd_arg=0),
    # dirfd: with AT_EMPTY_PATH and "" (every fstat of glibc; statx for 32-bit glibc 2.36's)
    # the file is the dirfd's
    "newfstatat": SyscallLayout(
        "newfstatat", (_f("dirfd", 0), _f("flags", 3)), fd_arg=0, path_args=(1,), at=True
    ),
    "statx": SyscallLayout(
        "statx", (_f("dirfd", 0), _f("flags", 2), _f("mask", 3)), fd_arg=0, path_args=(1,), at=True
    ),
    "access": SyscallLayout("access", (_f("mode", 1),), path_args=(0,)),
    "faccessat": SyscallLayout("faccessat", (_f("mode", 2),), path_args=(1,), at=True),
    "getdents64": SyscallLayout("getdents64", (_fd(), _f("size", 2)), fd_arg=0),
    "dup": SyscallLayout("dup", (_fd(),), fd_arg=0),
    "dup2": SyscallLayout("dup2", (_fd(), _f("newfd", 1)), fd_arg=0),
    "dup3": SyscallLayout("dup3", (_fd(), _f("newfd", 1), _f("flags", 2)), fd_arg=0),
    "fcntl": SyscallLayout("fcntl", (_fd(), _f("cmd", 1), _f("arg", 2)), fd_arg=0),
    "getdents": SyscallLayout("getdents", (_fd(), _f("size", 2)), fd_arg=0),
    # Two-file calls: named by the file written (DFTracer's tools count sendfile, splice and
    # copy_file_range as writes of the event's file), the one read is args.in_fhash.
    # sendfile64 is the kernel's SYSCALL_DEFINE name; the trace names it sendfile.
    "sendfile64": SyscallLayout("sendfile64", (_fd(0), _in(1), _f("size", 3)), fd_arg=0, fd2_arg=1),
    "copy_file_range": SyscallLayout("copy_file_range", _COPY, fd_arg=2, fd2_arg=0),
    "splice": SyscallLayout("splice", _COPY, fd_arg=2, fd2_arg=0),
    "tee": SyscallLayout(
        "tee", (_fd(1), _in(0), _f("size", 2), _f("flags", 3)), fd_arg=1, fd2_arg=0
    ),
    "fallocate": SyscallLayout(
        "fallocate", (_fd(), _f("mode", 1), _f("offset", 2), _f("size", 3)), fd_arg=0
    ),
    "sync_file_range": SyscallLayout(
        "sync_file_range", (_fd(), _f("offset", 1), _f("size", 2), _f("flags", 3)), fd_arg=0
    ),
    "fadvise64": SyscallLayout(
        "fadvise64", (_fd(), _f("offset", 1), _f("size", 2), _f("advice", 3)), fd_arg=0
    ),
    "readahead": SyscallLayout("readahead", (_fd(), _f("offset", 1), _f("size", 2)), fd_arg=0),
    "syncfs": SyscallLayout("syncfs", (_fd(),), fd_arg=0),
    "flock": SyscallLayout("flock", (_fd(), _f("cmd", 1)), fd_arg=0),
    "fstatfs": SyscallLayout("fstatfs", (_fd(),), fd_arg=0),
    "statfs": SyscallLayout("statfs", (), path_args=(0,)),
    # utimensat(fd, NULL, ...) (futimens) is on its fd, as statx(fd, "") is
    "utimensat": SyscallLayout(
        "utimensat", (_f("dirfd", 0), _f("flags", 3)), fd_arg=0, path_args=(1,), at=True
    ),
    "futimesat": SyscallLayout("futimesat", (_f("dirfd", 0),), fd_arg=0, path_args=(1,), at=True),
    "utimes": SyscallLayout("utimes", (), path_args=(0,)),
    "utime": SyscallLayout("utime", (), path_args=(0,)),
    "chdir": SyscallLayout("chdir", (), path_args=(0,), cwd=True),
    "fchdir": SyscallLayout("fchdir", (_fd(),), fd_arg=0),
    # bufsiz, not size: the link's length it returns is no I/O (the summary counts none)
    "readlink": SyscallLayout("readlink", (_f("bufsiz", 2),), path_args=(0,)),
    "readlinkat": SyscallLayout("readlinkat", (_f("bufsiz", 3),), path_args=(1,), at=True),
    "faccessat2": SyscallLayout(
        "faccessat2", (_f("mode", 2), _f("flags", 3)), path_args=(1,), at=True
    ),
    "chmod": SyscallLayout("chmod", (_f("mode", 1),), path_args=(0,)),
    "fchmod": SyscallLayout("fchmod", (_fd(), _f("mode", 1)), fd_arg=0),
    "fchmodat": SyscallLayout("fchmodat", (_f("mode", 2),), path_args=(1,), at=True),
    "chown": SyscallLayout("chown", _OWNER, path_args=(0,)),
    "lchown": SyscallLayout("lchown", _OWNER, path_args=(0,)),
    "fchown": SyscallLayout("fchown", (_fd(), *_OWNER), fd_arg=0),
    "fchownat": SyscallLayout(
        "fchownat", (_f("user", 2), _f("group", 3), _f("flags", 4)), path_args=(1,), at=True
    ),
    "link": SyscallLayout("link", (_hash("new_fhash", 1),), path_args=(0, 1)),
    "linkat": SyscallLayout(
        "linkat", (_hash("new_fhash", 3), _f("flags", 4)), path_args=(1, 3), at=True
    ),
    # the link made is the file; its target is a string the kernel does not resolve
    "symlink": SyscallLayout("symlink", (), path_args=(1,)),
    "symlinkat": SyscallLayout("symlinkat", (), path_args=(2,), at=True),
    "mknod": SyscallLayout("mknod", (_f("mode", 1),), path_args=(0,)),
    "mknodat": SyscallLayout("mknodat", (_f("mode", 2),), path_args=(1,), at=True),
    # the ring's fd: "anon_inode:[io_uring]"; its requests are their own events (io_uring)
    "io_uring_enter": SyscallLayout(
        "io_uring_enter",
        (_fd(), _f("to_submit", 1), _f("min_complete", 2), _f("flags", 3)),
        fd_arg=0,
    ),
    "io_uring_register": SyscallLayout(
        "io_uring_register", (_fd(), _f("opcode", 1), _f("nr_args", 3)), fd_arg=0
    ),
}
for _alias, _name in {
    "newstat": "stat",
    "newlstat": "lstat",
    "newfstat": "fstat",
    "fstatat": "newfstatat",
    "fstatat64": "newfstatat",
    "pread": "pread64",
    "pwrite": "pwrite64",
    "sendfile": "sendfile64",
}.items():
    SYSCALLS[_alias] = SYSCALLS[_name]

#: Tracepoint names (the kernel's SYSCALL_DEFINE names) whose __NR_ name differs; besides
#: these, "newX" tracepoints are syscall X (newstat → stat, newuname → uname).
_TRACEPOINT_TO_NR_NAME = {"sendfile64": "sendfile", "umount": "umount2"}


def syscall_number(tracepoint: str) -> int:
    """This machine's number of the syscall whose tracepoints are sys_enter_/sys_exit_
    ``tracepoint``. Raises :class:`LookupError` with the reason."""
    numbers = arch.syscall_numbers()
    for name in (
        tracepoint,
        _TRACEPOINT_TO_NR_NAME.get(tracepoint, ""),
        tracepoint.removeprefix("new"),
    ):
        if name in numbers:
            return numbers[name]
    raise LookupError(f"the {arch.MACHINE} number of syscall {tracepoint} is not known")


_FIELD = re.compile(r"field:(?P<type>[^;]*?)\s*(?P<name>\w+);\s*offset:(?P<offset>\d+);")


def _generic_layout(tracepoint: str, tracefs: Path) -> SyscallLayout:
    """A layout from the tracepoint's format file: non-pointer arguments, reported raw."""
    text = (tracefs / "events" / "syscalls" / f"sys_enter_{tracepoint}" / "format").read_text()
    fields: list[ArgField] = []
    index = 0
    for m in _FIELD.finditer(text):
        name = m["name"]
        if name.startswith("common_") or name == "__syscall_nr":
            continue
        if "*" not in m["type"]:
            fields.append(ArgField(name, index))
        index += 1
    return SyscallLayout(tracepoint, tuple(fields))


def resolve_syscall(name: str, tracefs: Path = TRACEFS) -> SyscallLayout:
    """The layout of syscall ``name``. Raises :class:`LookupError` with the reason when this
    kernel has no tracepoint for it."""
    layout = SYSCALLS.get(name)
    tracepoint = layout.tracepoint if layout else name
    enter = tracefs / "events" / "syscalls" / f"sys_enter_{tracepoint}"
    if not enter.is_dir():
        raise LookupError(f"this kernel has no tracepoint syscalls:sys_enter_{tracepoint}")
    return layout if layout is not None else _generic_layout(tracepoint, tracefs)


def syscall_cookie(fid: int, layout: SyscallLayout) -> int:
    """The cookie of a syscall: function id plus layout (bit layout in ``dc_records.h``)."""
    cookie = fid
    if layout.fd_arg is not None:
        cookie |= (layout.fd_arg + 1) << SYS_FD_ARG_SHIFT
    if layout.path_args:
        cookie |= (layout.path_args[0] + 1) << SYS_PATH1_SHIFT
    if len(layout.path_args) > 1:
        cookie |= (layout.path_args[1] + 1) << SYS_PATH2_SHIFT
    if layout.returns_fd:
        cookie |= SYS_RET_FD
    if layout.at:
        cookie |= SYS_AT
    if layout.fd2_arg is not None:
        cookie |= (layout.fd2_arg + 1) << SYS_FD2_ARG_SHIFT
    if layout.cwd:
        cookie |= SYS_RET_CWD
    return cookie
