"""Opening a file a user named: one wording for every way it can be missing or unreadable.

Probe files, configurator configs, binaries and the kernel's BTF are all read on a user's
say-so; each failure is one :class:`DatacrumbsError` line naming what the file is for
(``probe file X does not exist``), and a size cap keeps a hostile file from exhausting memory.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Collection
from pathlib import Path
from typing import BinaryIO

from datacrumbs.common.errors import DatacrumbsError
from datacrumbs.common.fs_identity import Identity, acting_as

__all__ = ["open_input", "open_regular", "read_input"]


def open_regular(
    path: Path | str, what: str, *, follow: bool = True, owners: Collection[int] | None = None
) -> int:
    """A read-only descriptor of the regular file at ``path``; ``what`` names it in the error.

    Opened non-blocking and checked to be a regular file before anything is read: a FIFO or a
    device a user puts where a file is expected must not hang the reader (the root daemon, a
    signer thread) — it is refused in one line. Without ``follow`` a final symlink is refused,
    not followed. With ``owners`` (root reading a user's file) the open file must also belong to
    one of those uids: a user who swaps their file for a link to a root-only one between a
    check and root's open gets a refusal, not root's read of it."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise DatacrumbsError(f"{what} {path} does not exist") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow:
            raise DatacrumbsError(f"{what} {path} is a symbolic link; not following it") from None
        raise DatacrumbsError(f"{what} {path} cannot be read: {exc.strerror}") from None
    info = os.fstat(fd)
    refusal = None
    if not stat.S_ISREG(info.st_mode):
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        refusal = f"{what} {path} is {kind}"
    elif owners is not None and info.st_uid not in owners:
        refusal = f"{what} {path} belongs to uid {info.st_uid}, not to the job user"
    if refusal is not None:
        os.close(fd)
        raise DatacrumbsError(refusal)
    return fd


def open_input(path: Path, what: str, owners: Collection[int] | None = None) -> BinaryIO:
    """``path`` opened for binary reading (see :func:`open_regular`); with ``owners``, no final
    symlink is followed."""
    return os.fdopen(open_regular(path, what, follow=owners is None, owners=owners), "rb")


def read_input(
    path: Path,
    what: str,
    limit: int | None = None,
    owners: Collection[int] | None = None,
    identity: Identity | None = None,
) -> bytes:
    """The bytes of ``path``, refused when longer than ``limit`` (``owners``: see
    :func:`open_input`), opened and read as ``identity`` (see :mod:`fs_identity`; only the
    system calls: Python may import modules while parsing, which the identity may not
    read)."""
    with acting_as(identity), open_input(path, what, owners) as source:
        try:
            data = source.read(-1 if limit is None else limit + 1)
        except OSError as exc:
            raise DatacrumbsError(f"{what} {path} cannot be read: {exc.strerror}") from None
    if limit is not None and len(data) > limit:
        raise DatacrumbsError(f"{what} {path} is larger than {limit} bytes")
    return data
