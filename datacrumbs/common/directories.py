"""Creating directories with the mode asked for, whatever the umask.

``Path.mkdir(mode=...)`` is filtered by the umask, and parents it creates get the default mode:
under a unit's ``UMask=0077`` or an admin's ``umask 077`` that makes trace, run and
installation directories 0700, so the job user cannot reach their own trace and users cannot
load the modulefile. Every directory created here gets ``mode`` exactly; existing ones are left
as they are.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["make_dirs"]


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
