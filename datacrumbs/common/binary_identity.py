"""Which file a signed uprobe binary is: pinned when it is signed, checked when it is attached.

A uprobe plants a breakpoint in a file's code, and every process that maps the file — other
users' and root's included — runs into it. So the root daemon must attach to exactly the file
that was signed, not to whatever the path names by the time the job starts: a user who swaps
their own binary for a symlink to libc (or any other file) after signing must not get root to
plant breakpoints there. The configurator records the identity of the file it read (device,
inode, size, modification time, SHA-256 of the content), the signer recomputes it from the
file it validated and refuses a mismatch, and the daemon opens the path without following a
final symlink, checks the identity on the open file and attaches through that descriptor
(``/proc/self/fd/N``), so the kernel resolves the very inode that was checked.

Every open here is non-blocking and checked to be a regular file first: a FIFO or a device at
the path never blocks the daemon or the signer.
"""

from __future__ import annotations

import hashlib
import os

from pydantic import BaseModel, ConfigDict, Field

from datacrumbs.common.input_file import open_regular

__all__ = ["BinaryIdentity", "file_identity", "identity_of", "kernel_path", "open_binary"]

_CHUNK = 1 << 20


class BinaryIdentity(BaseModel):
    """What makes a file the one that was signed (kept in the signed probe file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dev: int = Field(ge=0)
    ino: int = Field(ge=0)
    size: int = Field(ge=0)
    mtime_ns: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    def differences(self, other: BinaryIdentity) -> list[str]:
        """The fields in which ``other`` differs from this identity."""
        return [
            name for name in type(self).model_fields if getattr(self, name) != getattr(other, name)
        ]


def open_binary(path: str) -> int:
    """A read-only descriptor of the regular file at ``path``: no final symlink followed, never
    blocking (a FIFO is refused, not waited on). :class:`DatacrumbsError` says why not."""
    return open_regular(path, "binary", follow=False)


def identity_of(fd: int) -> BinaryIdentity:
    """The identity of the open file ``fd`` (its whole content is hashed)."""
    info = os.fstat(fd)
    digest = hashlib.sha256()
    offset = 0
    while chunk := os.pread(fd, _CHUNK, offset):
        digest.update(chunk)
        offset += len(chunk)
    return BinaryIdentity(
        dev=info.st_dev,
        ino=info.st_ino,
        size=info.st_size,
        mtime_ns=info.st_mtime_ns,
        sha256=digest.hexdigest(),
    )


def file_identity(path: str) -> BinaryIdentity:
    """The identity of the regular file at ``path`` (as the configurator records it)."""
    fd = open_binary(path)
    try:
        return identity_of(fd)
    finally:
        os.close(fd)


def kernel_path(fd: int) -> str:
    """A path through which the kernel (and any reader) reaches exactly the open file ``fd``."""
    return f"/proc/self/fd/{fd}"
