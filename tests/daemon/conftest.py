"""Fixtures for the daemon's tests: an installation, a run environment, signed probe files."""

from __future__ import annotations

import os
import pwd
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from daemon_support import JOB_USER
from support import public_subdir, signed_document, signing_key_path

from datacrumbs.common.probe_file import write_probe_file

C_DIR = Path(__file__).parent.parent / "engine" / "c"


@pytest.fixture
def run_env(installed: Path, tmp_path: Path) -> dict[str, str]:
    """Environment of a daemon run: the test installation, private run and trace dirs."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("DATACRUMBS_")}
    return base | {
        "DATACRUMBS_INSTALL_PREFIX": str(installed),
        "DATACRUMBS_USER": JOB_USER,
        "DATACRUMBS_SERVER_RUN_DIR": str(tmp_path / "run"),
        "DATACRUMBS_SERVER_RUN_ID_FILE": str(tmp_path / "run/datacrumbs.runid"),
        "DATACRUMBS_TRACE_DIR_PATTERN": str(tmp_path / "traces/%USER%/%YY%"),
    }


@pytest.fixture
def make_probe_file(installed: Path, reachable_dir: Path) -> Callable[..., Path]:
    """Write a probe file signed with the installation's key (as the signer would), the job
    user's own (0600, as the configurator writes it: the daemon reads it as the job user)."""
    key = signing_key_path(installed)

    def make(
        categories: list[dict[str, Any]],
        name: str = "probes.json.gz",
        signed: bool = True,
        **summary: Any,
    ) -> Path:
        path = reachable_dir / name
        user = summary.pop("user", JOB_USER)
        write_probe_file(
            path, signed_document(key, categories, user=user, signed=signed, **summary)
        )
        owner = pwd.getpwnam(user)  # the user it is made for
        os.chown(path, owner.pw_uid, owner.pw_gid)
        return path

    return make


@pytest.fixture(scope="session")
def public_dir(public_root: Path) -> Path:
    """A 0755 directory outside pytest's 0700 tree, where the job user can run workloads."""
    return public_subdir(public_root, "daemon")


@pytest.fixture(scope="session")
def file_io(public_dir: Path) -> Path:
    """The file workload: ``file_io PATH K S`` writes K blocks of S bytes, preads them back."""
    out = public_dir / "file_io"
    subprocess.run(["gcc", "-O1", "-Wall", "-o", str(out), str(C_DIR / "file_io.c")], check=True)
    return out


@pytest.fixture
def job_dir(public_dir: Path, tmp_path: Path) -> Path:
    """A directory the job user owns, for the workload's files."""
    pw = pwd.getpwnam(JOB_USER)
    path = public_dir / tmp_path.name
    path.mkdir(mode=0o755)
    os.chown(path, pw.pw_uid, pw.pw_gid)
    return path
