"""Replacing a file so that no reader ever sees it half written.

The new content goes to a temporary file in the same directory, gets its mode (and owner)
while still private, is flushed to disk, and is renamed over the target: a reader, a crash or
a kill sees the old file or the new one, never a mixture. Used for probe files, ready and
run-id files, and everything the installer lays out.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["write_atomically"]


def write_atomically(
    path: Path, data: bytes | str, mode: int = 0o644, owner: tuple[int, int] | None = None
) -> None:
    """Replace ``path`` with ``data`` (str is written as UTF-8), ``mode`` and ``owner``."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    # The temporary name stays short: a name near NAME_MAX (255) must still fit once prefixed.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:64]}.")
    try:
        with os.fdopen(fd, "wb") as out:
            if owner is not None:
                os.fchown(out.fileno(), *owner)
            os.fchmod(out.fileno(), mode)  # after chown, which clears setgid bits
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
