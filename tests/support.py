"""Helpers shared by tests in several folders (importable: tests/ is on sys.path via conftest)."""

from __future__ import annotations

import sys
from pathlib import Path

SCRIPTS = Path(sys.executable).parent


def command(name: str) -> str:
    """Absolute path of one of the project's console scripts in this venv."""
    return str(SCRIPTS / name)
