"""Users of one test alone: numeric uids that no account and no running process has, picked
per test process. The session's ``traced_user`` is the first free uid of a fixed range, so
test sessions running side by side on one machine trace the same uid, and each sees the
other's processes (their names, their losses); a test that counts exactly takes its own."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from engine_support import User


def own_users(count: int = 1) -> list[User]:
    """``count`` uids (gid the same) free now, from a range this test process alone starts
    from."""
    taken = {p.pw_uid for p in pwd.getpwall()}
    for proc in Path("/proc").iterdir():
        try:
            taken.add(proc.stat().st_uid)
        except OSError:
            continue
    start = 50000 + (os.getpid() % 4000) * 4
    uids = [n for n in range(start, start + 4000) if n not in taken][:count]
    return [User(f"uid{uid}", uid, uid) for uid in uids]
