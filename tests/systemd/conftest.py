"""Fixtures of the unit tests: one booted container with datacrumbs installed, per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from nspawn_support import Container, HostFixups, machines_allowed, visible_roots
from systemd_node import Node


@pytest.fixture(scope="session")
def node(product: Path) -> Iterator[Node]:
    """A booted systemd (nspawn over an overlay of /) with datacrumbs installed and linked.

    Powered off, unmounted and removed at the end, also after a failure or Ctrl-C; a SIGTERM
    to pytest is turned into the same clean-up, and atexit is the last backstop. ``product``
    (a host installation) has filled the installer's caches the container installs from.
    """
    with machines_allowed("boots systemd in a container"):
        fixups = HostFixups()
        container = Container(visible_roots())
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
