"""Creating directories with the mode asked for, whatever the umask.

``Path.mkdir(mode=...)`` is filtered by the umask, and parents it creates get the default mode:
under a unit's ``UMask=0077`` or an admin's ``umask 077`` that makes trace, run and
installation directories 0700, so the job user cannot reach their own trace and users cannot
load the modulefile. Every directory created here gets ``mode`` exactly; existing ones are left
as they are.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["closed_to_others", "make_dirs"]


def make_dirs(path: Path, mode: int = 0o755) -> list[Path]:
    """Create ``path`` and its missing parents with ``mode``; return those created."""
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    created = []
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=mode)
        except FileExistsError:
            continue  # made meanwhile by another process: theirs to set
        os.chmod(directory, mode)
        created.append(directory)
    return created


def closed_to_others(path: Path) -> tuple[Path, int] | None:
    """The first directory on the way to ``path`` (``path`` itself, if a directory, included)
    that other users cannot traverse, with its mode; None when every one of them can.

    A prefix or an interpreter behind a 0700 directory (a home, ``mktemp -d``) makes every user
    command fail later, far from the cause; callers say so at once, naming the directory.
    """
    chain = [*reversed(path.parents), path]
    for directory in chain:
        try:
            info = directory.stat()
        except FileNotFoundError:
            return None  # created later, with a mode the caller chooses
        if stat.S_ISDIR(info.st_mode) and not info.st_mode & stat.S_IXOTH:
            return directory, stat.S_IMODE(info.st_mode)
    return None
