"""Fixtures shared by the whole suite: the project's commands and a real installation."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import command


@pytest.fixture(autouse=True)
def _no_ambient_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start from no DATACRUMBS_* environment, whatever the shell running them had."""
    for name in list(os.environ):
        if name.startswith("DATACRUMBS_"):
            monkeypatch.delenv(name)


@pytest.fixture
def prefix(tmp_path: Path) -> Path:
    """A fresh installation prefix (not yet installed)."""
    return tmp_path / "prefix"


@pytest.fixture
def installed(prefix: Path) -> Iterator[Path]:
    """A prefix laid out by the real ``datacrumbs_install``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATACRUMBS_")}
    subprocess.run(
        [command("datacrumbs_install"), "--prefix", str(prefix)],
        check=True, capture_output=True, text=True, env=env,
    )
    yield prefix
