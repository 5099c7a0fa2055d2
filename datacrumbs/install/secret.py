"""Creation of the probe secret: the HMAC key that makes a probe file trusted.

The secret is 32 random bytes written as 64 hex digits, owned by root with mode 0400, created
once and never overwritten: replacing it would silently invalidate every signed probe file.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
from pathlib import Path

from datacrumbs.common.errors import DatacrumbsError

__all__ = ["SECRET_MODE", "ensure_secret"]

SECRET_MODE = 0o400
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def ensure_secret(path: Path) -> str:
    """Create the secret at ``path`` unless it exists; return what was done, for the report.

    An existing secret is kept byte for byte; only a wrong owner or mode is repaired.
    Something at ``path`` that is not a regular file holding 64 hex digits is refused.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, SECRET_MODE)
    except FileExistsError:
        return _check_existing(path)
    try:
        os.fchown(fd, 0, 0)
        os.fchmod(fd, SECRET_MODE)
        os.write(fd, (secrets.token_hex(32) + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    return "created"


def _check_existing(path: Path) -> str:
    info = path.lstat()
    if not stat.S_ISREG(info.st_mode):
        raise DatacrumbsError(f"{path} exists and is not a regular file; remove it first")
    if not _HEX64.match(path.read_text(encoding="ascii", errors="replace").strip()):
        raise DatacrumbsError(f"{path} exists but does not hold 64 hex digits; not overwriting it")
    repaired = []
    if info.st_uid != 0 or info.st_gid != 0:
        os.chown(path, 0, 0, follow_symlinks=False)
        repaired.append("owner")
    if stat.S_IMODE(info.st_mode) != SECRET_MODE:
        os.chmod(path, SECRET_MODE)
        repaired.append("mode")
    return f"kept ({' and '.join(repaired)} repaired)" if repaired else "kept"
