"""The engine mounts tracefs itself: a fresh machine may boot without it mounted."""

from __future__ import annotations

import subprocess
from pathlib import Path

from datacrumbs.ebpf.features import ensure_tracefs


def _tracefs_mounts_at(path: Path) -> int:
    lines = Path("/proc/mounts").read_text().splitlines()
    return sum(f" {path} tracefs " in line for line in lines)


def test_tracefs_is_mounted_where_missing(root: None, tmp_path: Path) -> None:
    # A second tracefs instance in an empty directory: the same call the engine makes at
    # /sys/kernel/tracing, without taking the host's mount away from anything using it.
    where = tmp_path / "tracing"
    where.mkdir()
    try:
        ensure_tracefs(where)
        assert (where / "events/syscalls/sys_enter_write").is_dir()
        ensure_tracefs(where)  # mounted already: nothing to do, no second mount
        assert _tracefs_mounts_at(where) == 1
    finally:
        subprocess.run(["umount", str(where)], check=False)
    assert _tracefs_mounts_at(where) == 0
