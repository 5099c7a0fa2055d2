"""The setgid group of the launcher, held only for the one ``connect()`` that needs it.

The launcher starts with effective gid :data:`LAUNCHER_GROUP`. The configurator sets it aside
at once (effective gid = the user's, the launcher group kept as saved gid), so it reads the
user's config and binaries and could create files with the user's own group only; it takes the
group back for ``connect()`` to the signer's 0660 socket — the kernel records it then, and the
signer checks it — and drops it for good right after. The process stays non-dumpable (the
setgid exec made it so), so the user cannot ptrace it at any point.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["LauncherGroup"]


class LauncherGroup:
    """The real and the launcher's group ids of this process, and switching between them."""

    def __init__(self) -> None:
        real, effective, _saved = os.getresgid()
        self.real = real
        self.launcher = effective
        self.dropped = False

    @classmethod
    def set_aside(cls) -> LauncherGroup:
        """Run as the user's group from now on, keeping the launcher group as saved gid."""
        group = cls()
        if group.launcher != group.real:
            os.setresgid(-1, group.real, group.launcher)
        return group

    @contextmanager
    def held(self) -> Iterator[None]:
        """The launcher group as effective gid for the length of the block."""
        if self.dropped:
            raise RuntimeError("the launcher group was already dropped")
        if self.launcher != self.real:
            os.setresgid(-1, self.launcher, -1)
        try:
            yield
        finally:
            if self.launcher != self.real:
                os.setresgid(-1, self.real, -1)

    def drop(self) -> None:
        """Give the launcher group up for good (real, effective and saved)."""
        os.setresgid(self.real, self.real, self.real)
        self.dropped = True
