"""Fixtures shared by the whole suite: the project's commands and real installations.

Every installation lives under one 0755 directory of the session's under /tmp: an installation
is run by every user, and the installer refuses a prefix others cannot reach (pytest's own
tmp_path is 0700). The clone the tests run from may itself sit in a 0700 directory (CI puts it
there): code run as an unprivileged user always runs from an installation, never the clone.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import install


@pytest.fixture(autouse=True)
def _no_ambient_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start from no DATACRUMBS_* environment, whatever the shell running them had."""
    for name in list(os.environ):
        if name.startswith("DATACRUMBS_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def public_root() -> Iterator[Path]:
    """A 0755 directory under /tmp for the session's installations and shared files."""
    base = Path(tempfile.mkdtemp(prefix="dc-tests-", dir="/tmp"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)  # every folder's shared directory is under it


@pytest.fixture
def reachable_dir(public_root: Path) -> Path:
    """A fresh 0755 directory of this test's, reachable by every user."""
    path = Path(tempfile.mkdtemp(dir=public_root))
    path.chmod(0o755)
    return path


@pytest.fixture
def prefix(reachable_dir: Path) -> Path:
    """A fresh installation prefix (not yet installed) that every user can reach."""
    return reachable_dir / "prefix"


@pytest.fixture
def installed(prefix: Path) -> Path:
    """A prefix laid out by the real ``datacrumbs_install``."""
    return install(prefix)


@pytest.fixture(scope="session")
def product(public_root: Path) -> Path:
    """One installation for the session, for tests that only run what it installed."""
    return install(public_root / "product")
