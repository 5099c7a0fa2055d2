"""Find the cgroup v2 directory to filter on, from a path or a cgroup id.

The kernel filter matches a task's cgroup (``bpf_get_current_cgroup_id``) against a set of
cgroup ids: the chosen cgroup, its descendants, and every cgroup made below them later. A
cgroup id is the inode number of its directory on the cgroup2 file system, so an id is found by
walking the cgroup2 mounts, and a directory is checked to be on one by its device.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "CgroupError",
    "cgroup2_mounts",
    "deepest_existing",
    "on_cgroup2",
    "open_cgroup",
    "resolve_cgroup",
]


class CgroupError(LookupError):
    """The requested cgroup cannot be used; the message is the reason."""


def cgroup2_mounts(mounts: Path = Path("/proc/self/mounts")) -> list[Path]:
    """Mount points of the cgroup v2 file system (the unified hierarchy)."""
    found = []
    for line in mounts.read_text().splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == "cgroup2":
            found.append(Path(fields[1]))
    return found


def resolve_cgroup(cgroup: int | str | os.PathLike[str]) -> Path:
    """The directory of a cgroup given as a path or as an id."""
    if isinstance(cgroup, int):
        for root in cgroup2_mounts():
            for dirpath, _dirs, _files in os.walk(root):
                if os.stat(dirpath).st_ino == cgroup:
                    return Path(dirpath)
        raise CgroupError(f"no cgroup v2 directory has id {cgroup}")
    path = Path(cgroup)
    if not path.is_dir():
        raise CgroupError(f"cgroup {path} is not a directory")
    return path


def deepest_existing(path: Path) -> Path:
    """``path`` itself if it is a directory, else its nearest ancestor that is (a cgroup not
    made yet is waited for below it)."""
    return next((p for p in (path, *path.parents) if p.is_dir()), Path("/"))


def open_cgroup(path: Path) -> int:
    """An O_RDONLY directory fd of cgroup ``path``, checked to be a cgroup v2 directory (the
    caller closes it)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise CgroupError(f"cannot open cgroup {path}: {exc.strerror}") from exc
    if not on_cgroup2(os.fstat(fd)):
        os.close(fd)
        raise CgroupError(f"{path} is not a cgroup v2 directory (not under {_mounts_text()})")
    return fd


def on_cgroup2(st: os.stat_result) -> bool:
    """Whether the file of ``st`` is on a cgroup v2 file system mounted here."""
    devices = set()
    for mount in cgroup2_mounts():
        try:
            devices.add(os.stat(mount).st_dev)
        except OSError:
            continue
    return st.st_dev in devices


def _mounts_text() -> str:
    return ", ".join(str(m) for m in cgroup2_mounts()) or "any cgroup2 mount: none is mounted"
