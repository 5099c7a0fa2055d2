"""Idempotent file writes for the installer: same content, same file — nothing touched.

Re-running ``datacrumbs_install`` must change nothing and lose nothing, so every file is
compared before it is written, and written atomically (temporary file + rename) when it differs.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from datacrumbs.common.atomic_file import write_atomically
from datacrumbs.common.directories import make_dirs

__all__ = ["ensure_dir", "ensure_file"]


def ensure_dir(path: Path, mode: int = 0o755) -> str:
    """Create ``path`` (and parents, all with ``mode``); an existing directory is kept."""
    if path.is_dir():
        return "kept"
    make_dirs(path, mode)
    return "created"


def ensure_file(path: Path, content: str | bytes, mode: int = 0o644) -> str:
    """Make ``path`` hold ``content`` with ``mode``; return ``created``/``updated``/``kept``."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    try:
        info = path.lstat()
    except FileNotFoundError:
        info = None
    same = info is not None and stat.S_ISREG(info.st_mode) and path.read_bytes() == data
    if same and info is not None:
        if stat.S_IMODE(info.st_mode) == mode:
            return "kept"
        os.chmod(path, mode)
        return "kept (mode repaired)"
    write_atomically(path, data, mode)
    return "created" if info is None else "updated"
