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

#: Set by CI and the kernel matrix: a skipped test is a failure there. Tests skip only for a
#: stated reason (no root); on the machines CI runs on, that reason must never hold.
NO_SKIPS = os.environ.get("DC_TEST_NO_SKIPS") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if NO_SKIPS and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"a skip, and skips fail here (DC_TEST_NO_SKIPS=1): {report.longrepr}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):  # type: ignore[no-untyped-def]
    """A module skipped as a whole (``allow_module_level``) is a failure there too."""
    outcome = yield
    report = outcome.get_result()
    if NO_SKIPS and report.skipped:
        report.outcome = "failed"


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


#: The kernel matrix sets this to an installation it made on the host: installing under
#: emulation would take minutes, and a node runs an installation made elsewhere anyway. Each
#: guest writes to it through its own overlay, so no test sees another's files.
PREINSTALLED = os.environ.get("DC_TEST_INSTALLATION")


@pytest.fixture
def installed(prefix: Path) -> Path:
    """A prefix laid out by the real ``datacrumbs_install``."""
    return Path(PREINSTALLED) if PREINSTALLED else install(prefix)


@pytest.fixture(scope="session")
def product(public_root: Path) -> Path:
    """One installation for the session, for tests that only run what it installed."""
    return install(public_root / "product")
