"""What the DFTracer tools expect a trace to call things, in one place.

datacrumbs writes DFTracer-style traces so that its users' own tools work on them, and those
tools decide by name: dftracer-analyzer takes sizes only for events whose ``cat`` is ``POSIX``
or ``STDIO`` (case-insensitive), from ``args.ret``, and classes each call (read, write,
metadata, sync, ...) by its libc function name. So an event's ``cat`` is the I/O layer it
belongs to and its ``name`` the libc-level name of the call; what datacrumbs knows beyond that
stays in ``args``: the syscall that was traced (``args.syscall``) and the category the probe
file gave it (``args.category``).
"""

from __future__ import annotations

import re
from pathlib import PurePath

__all__ = [
    "APP",
    "BYTE_RETURNS",
    "DATA_CALLS",
    "IO_URING",
    "KERNEL",
    "LIBC_FILES",
    "LIBC_ITEM_RETURNS",
    "LIBC_POINTER_RETURNS",
    "POSIX",
    "STDIO",
    "STDIO_FUNCTIONS",
    "layer_of",
    "syscall_call_name",
    "uring_call_name",
]

POSIX = "POSIX"
STDIO = "STDIO"
KERNEL = "KERNEL"  # kprobes: no DFTracer layer of their own
APP = "APP"  # functions of the program itself, or of a library of no known layer
#: What io_uring requests carry in ``args.syscall``: they are written in the POSIX layer under
#: the libc-level name of what they do (:func:`uring_call_name`), since dftracer-analyzer counts
#: only POSIX and STDIO events, and this (with ``args.opcode``) says they were io_uring requests.
IO_URING = "io_uring"

#: Syscalls whose libc-level name (the one the tools class by) differs from the syscall's.
_SYSCALL_CALL_NAMES = {
    "pread64": "pread",
    "pwrite64": "pwrite",
    "preadv2": "preadv",
    "pwritev2": "pwritev",
    "openat": "open",
    "openat2": "open",
    "creat": "open",
    "newfstatat": "fstatat",
    "newstat": "stat",
    "newlstat": "lstat",
    "newfstat": "fstat",
    "statx": "stat",
    "mkdirat": "mkdir",
    "unlinkat": "unlink",
    "renameat": "rename",
    "renameat2": "rename",
    "linkat": "link",
    "symlinkat": "symlink",
    "readlinkat": "readlink",
    "faccessat": "access",
    "faccessat2": "access",
    "getdents": "readdir",
    "getdents64": "readdir",
    "fchmodat": "chmod",
    "fchmodat2": "chmod",
    "fchownat": "chown",
    # the tracepoint's name (SYSCALL_DEFINE4(sendfile64, ...)): strace and the tools say sendfile
    "sendfile64": "sendfile",
}

#: io_uring opcodes (lowercased) whose libc-level name is not the opcode's own or the
#: syscall's: fixed-buffer and multishot reads and writes move bytes as read and write do.
_URING_CALL_NAMES = {
    "read_fixed": "read",
    "write_fixed": "write",
    "read_multishot": "read",
}

#: Calls whose return value is the bytes they moved (when positive): the read and write
#: classes of the tools, and the calls that copy between descriptors.
DATA_CALLS = frozenset(
    {
        "read",
        "pread",
        "readv",
        "preadv",
        "write",
        "pwrite",
        "writev",
        "pwritev",
        "sendfile",
        "copy_file_range",
        "splice",
        "tee",
    }
)

#: The C library's buffered-I/O functions: the STDIO layer.
STDIO_FUNCTIONS = frozenset(
    {
        "fopen", "fopen64", "fdopen", "freopen", "freopen64", "fclose", "fcloseall",
        "fread", "fread_unlocked", "fwrite", "fwrite_unlocked", "fgets", "fgets_unlocked",
        "fputs", "fputs_unlocked", "fgetc", "fgetc_unlocked", "fputc", "fputc_unlocked",
        "getc", "getc_unlocked", "putc", "putc_unlocked", "ungetc", "getline", "getdelim",
        "fprintf", "vfprintf", "fscanf", "vfscanf", "__isoc99_fscanf", "__isoc99_vfscanf",
        "fseek", "fseeko", "fseeko64", "ftell", "ftello", "ftello64", "fgetpos", "fgetpos64",
        "fsetpos", "fsetpos64", "rewind", "fflush", "fflush_unlocked", "setvbuf", "setbuf",
        "feof", "ferror", "clearerr", "fileno",
    }
)  # fmt: skip

#: Libraries of a known layer, by their file name. Distributions name one library several ways
#: (Debian's ``libhdf5_serial.so.103`` and ``libhdf5_openmpi.so.103``, RHEL's and Spack's
#: ``libhdf5.so.310``, the ``_hl``, ``_cpp`` and Fortran companions; ``libmpi.so.40``,
#: ``libmpich.so.12``, ``libmpi_cxx``, ``libmpifort``, Cray's ``libmpi_gnu_91``;
#: ``libnetcdf.so.19``, ``libnetcdf_mpi``, ``libnetcdff``): a layer is the library's name
#: followed by anything up to ``.so`` (``libhdf5*.so*``).
_LIBRARY_LAYERS = (
    (re.compile(r"^libc(-[\d.]+)?\.so(\.|$)"), POSIX),
    (re.compile(r"^lib(p?mpi|mpich)[\w.+-]*?\.so(\.|$)"), "MPI"),
    (re.compile(r"^libpnetcdf[\w.+-]*?\.so(\.|$)"), "PNETCDF"),
    (re.compile(r"^libnetcdf[\w.+-]*?\.so(\.|$)"), "NETCDF"),
    (re.compile(r"^libhdf5[\w.+-]*?\.so(\.|$)"), "HDF5"),
)


#: Where a C-library function's file is: ("file", i) a FILE * argument, ("path", i) a path,
#: ("fd", i) an fd; and what it returns: "FILE" (a FILE * it opened for that file) or "fd".
LIBC_FILES: dict[str, tuple[str, int, str | None]] = {
    **{name: ("path", 0, "FILE") for name in ("fopen", "fopen64", "freopen", "freopen64")},
    "fdopen": ("fd", 0, "FILE"),
    **{name: ("file", 0, None) for name in (
        "fclose", "fflush", "fflush_unlocked", "fseek", "fseeko", "fseeko64", "ftell", "ftello",
        "ftello64", "rewind", "fgetc", "fgetc_unlocked", "getc", "getc_unlocked", "fprintf",
        "vfprintf", "fscanf", "vfscanf", "__isoc99_fscanf", "__isoc99_vfscanf", "fileno",
        "feof", "ferror", "clearerr", "setvbuf", "setbuf", "fgetpos", "fgetpos64", "fsetpos",
        "fsetpos64")},
    **{name: ("file", 3, None) for name in (
        "fread", "fread_unlocked", "fwrite", "fwrite_unlocked")},
    **{name: ("file", 2, None) for name in ("fgets", "fgets_unlocked", "getdelim")},
    **{name: ("file", 1, None) for name in (
        "fputs", "fputs_unlocked", "fputc", "fputc_unlocked", "putc", "putc_unlocked",
        "ungetc")},
    "getline": ("file", 2, None),
    **{name: ("path", 0, "fd") for name in ("open", "open64", "creat", "creat64")},
    **{name: ("path", 1, "fd") for name in ("openat", "openat64")},
    **{name: ("path", 0, None) for name in (
        "unlink", "rename", "mkdir", "rmdir", "stat", "stat64", "lstat", "lstat64", "access",
        "truncate", "truncate64")},
    **{name: ("fd", 0, None) for name in (
        "close", "read", "write", "pread", "pread64", "pwrite", "pwrite64", "readv", "writev",
        "lseek", "lseek64", "fsync", "fdatasync", "ftruncate", "ftruncate64", "fstat",
        "fstat64")},
}  # fmt: skip


#: C-library functions that return a pointer: their return value is an address, not a count
#: (it would pollute the tools' sums), and is not written.
LIBC_POINTER_RETURNS = frozenset(
    {
        "fopen", "fopen64", "fdopen", "freopen", "freopen64", "fgets", "fgets_unlocked",
        "tmpfile", "tmpfile64", "popen", "opendir", "fdopendir", "readdir", "readdir64",
        "getcwd", "realpath", "mmap", "mmap64",
    }
)  # fmt: skip
#: C-library functions whose return value counts items of their second argument's size: the
#: trace's ret is their bytes.
LIBC_ITEM_RETURNS = frozenset({"fread", "fread_unlocked", "fwrite", "fwrite_unlocked"})
#: Every name whose return value, when not negative, is the bytes the call moved: the data
#: calls (io_uring's reads and writes among them: :func:`uring_call_name`) and fread and fwrite
#: (the trace gives their ret in bytes).
BYTE_RETURNS = DATA_CALLS | LIBC_ITEM_RETURNS


def syscall_call_name(syscall: str) -> str:
    """The libc-level name of ``syscall`` (``pread64`` → ``pread``, ``openat`` → ``open``)."""
    return _SYSCALL_CALL_NAMES.get(syscall, syscall)


def uring_call_name(opcode: str) -> str:
    """The libc-level name of an io_uring request of ``opcode`` (the uapi name without
    ``IORING_OP_``): ``READ_FIXED`` → ``read``, ``OPENAT`` → ``open``, ``STATX`` → ``stat``,
    ``FSYNC`` → ``fsync``. dftracer-analyzer sizes and classes a POSIX event by this name;
    the opcode itself stays in ``args.opcode``."""
    name = opcode.lower()
    return _URING_CALL_NAMES.get(name) or syscall_call_name(name)


def layer_of(binary_path: str | None, function: str) -> str:
    """The DFTracer layer of ``function`` in ``binary_path``: ``STDIO`` for the C library's
    buffered I/O, ``POSIX`` for its other functions, ``MPI``/``HDF5``/``NETCDF``/``PNETCDF``
    for those libraries, and ``APP`` for anything else (the program's own code)."""
    name = PurePath(binary_path or "").name
    for pattern, layer in _LIBRARY_LAYERS:
        if pattern.match(name):
            if layer == POSIX and function in STDIO_FUNCTIONS:
                return STDIO
            return layer
    return APP
