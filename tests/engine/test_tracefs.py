"""The engine mounts tracefs itself: a fresh machine may boot without it mounted."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from datacrumbs.ebpf.features import TRACEFS, ensure_tracefs


def test_tracefs_is_mounted_when_missing() -> None:
    if (TRACEFS / "events").is_dir():
        unmounted = subprocess.run(["umount", str(TRACEFS)], capture_output=True, text=True)
        if unmounted.returncode != 0:
            pytest.skip(f"tracefs is in use and cannot be unmounted: {unmounted.stderr.strip()}")
    assert not (TRACEFS / "events").is_dir()
    ensure_tracefs()
    assert (TRACEFS / "events/syscalls/sys_enter_write").is_dir()
    ensure_tracefs()  # mounted already: nothing to do, no second mount
    mounts = [line for line in Path("/proc/mounts").read_text().splitlines()
              if f" {TRACEFS} tracefs " in line]
    assert len(mounts) == 1
