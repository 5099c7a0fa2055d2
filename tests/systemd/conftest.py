"""Fixtures of the unit tests: one booted container with datacrumbs installed, per session."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest
from nspawn_support import Container, HostFixups, visible_roots
from systemd_node import Node


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # unwinds through the fixture's finally


@pytest.fixture(scope="session")
def node(product: Path) -> Iterator[Node]:
    """A booted systemd (nspawn over an overlay of /) with datacrumbs installed and linked.

    Powered off, unmounted and removed at the end, also after a failure or Ctrl-C; a SIGTERM
    to pytest is turned into the same clean-up, and atexit is the last backstop. ``product``
    (a host installation) has filled the installer's caches the container installs from.
    """
    if os.geteuid() != 0:
        pytest.skip("boots systemd in a container: needs root (CI runs as root)")
    if shutil.which("systemd-nspawn") is None:
        pytest.fail("systemd-nspawn is missing: install systemd-container (scripts/bootstrap)")
    previous = signal.signal(signal.SIGTERM, _interrupt)
    fixups = HostFixups()
    binds = visible_roots()
    container = Container(binds)
    try:
        fixups.apply()
        container.boot()
        node = Node(container)
        node.install()
        yield node
    finally:
        try:
            container.close()
        finally:
            fixups.undo()
            signal.signal(signal.SIGTERM, previous)
