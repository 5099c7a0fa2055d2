"""Helpers for the daemon's tests (a module of its own: conftest names collide across folders)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from support import command


def run_daemon(probe_file: Path | str, *args: str, env: dict[str, str],
               timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run ``datacrumbs`` to completion (for runs that are refused at start-up)."""
    return subprocess.run([command("datacrumbs"), str(probe_file), *args], env=env,
                          capture_output=True, text=True, timeout=timeout)
