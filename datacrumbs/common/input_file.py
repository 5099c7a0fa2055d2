"""Opening a file a user named: one wording for every way it can be missing or unreadable.

Probe files, configurator configs, binaries and the kernel's BTF are all read on a user's
say-so; each failure is one :class:`DatacrumbsError` line naming what the file is for
(``probe file X does not exist``), and a size cap keeps a hostile file from exhausting memory.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from datacrumbs.common.errors import DatacrumbsError

__all__ = ["open_input", "read_input"]


def open_input(path: Path, what: str) -> BinaryIO:
    """``path`` opened for binary reading; ``what`` names it in the error.

    Opened non-blocking and checked to be a regular file before anything is read: a FIFO or a
    device a user puts where a file is expected must not hang the reader (the root daemon, a
    signer thread) — it is refused in one line."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise DatacrumbsError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise DatacrumbsError(f"{what} {path} cannot be read: {exc.strerror}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise DatacrumbsError(f"{what} {path} is {kind}")
    return os.fdopen(fd, "rb")


def read_input(path: Path, what: str, limit: int | None = None) -> bytes:
    """The bytes of ``path``, refused when longer than ``limit``."""
    with open_input(path, what) as source:
        try:
            data = source.read(-1 if limit is None else limit + 1)
        except OSError as exc:
            raise DatacrumbsError(f"{what} {path} cannot be read: {exc.strerror}") from None
    if limit is not None and len(data) > limit:
        raise DatacrumbsError(f"{what} {path} is larger than {limit} bytes")
    return data
