"""Fixtures of the signer tests: one real installation and signer for the whole folder, and a
second one whose launcher is the test's crafted client (to reach the content checks)."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from signer_support import NOBODY_UID, Node
from support import install, public_subdir

from datacrumbs.install.launcher import LAUNCHER_MODE, ensure_group


@pytest.fixture(scope="session")
def world(public_root: Path) -> Path:
    """A 0755 directory under /tmp that ``nobody`` can reach (tmp_path is 0700)."""
    return public_subdir(public_root, "signer")


def _node(world: Path, name: str) -> Node:
    prefix = world / name
    run_dir = world / f"{name}-run"
    run_dir.mkdir(mode=0o755)
    install(prefix)
    return Node(prefix=prefix, run_dir=run_dir, log=world / f"{name}-signer.log")


@pytest.fixture(scope="session")
def node(world: Path) -> Iterator[Node]:
    """The real installation, its setgid launcher and a running signer."""
    node = _node(world, "prefix")
    node.start()
    yield node
    node.stop()


@pytest.fixture(scope="session")
def crafted_node(world: Path) -> Iterator[Node]:
    """An installation whose launcher is crafted_client.c: it sends any request we write."""
    node = _node(world, "crafted")
    _, gid = ensure_group()
    source = Path(__file__).with_name("crafted_client.c")
    subprocess.run(["gcc", "-O2", "-o", str(node.launcher), str(source)], check=True)
    os.chown(node.launcher, 0, gid)
    os.chmod(node.launcher, LAUNCHER_MODE)
    node.start()
    yield node
    node.stop()


@pytest.fixture
def nobody_dir(world: Path) -> Path:
    """A fresh directory owned by nobody, for the files a test makes as nobody."""
    path = world / f"out-{uuid.uuid4().hex[:8]}"
    path.mkdir(mode=0o755)
    os.chown(path, NOBODY_UID, NOBODY_UID)
    return path
