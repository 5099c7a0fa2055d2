"""Fixtures of the multi-node tests: one Slurm cluster of nspawn machines per module."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from types import FrameType

import pytest
from slurm_cluster import SlurmCluster


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # unwinds through the fixture's finally


@pytest.fixture(scope="module")
def cluster() -> Iterator[SlurmCluster]:
    """A login machine and two compute nodes, idle; powered off and removed at the end, also
    after a failure or Ctrl-C (a SIGTERM to pytest is turned into the same clean-up)."""
    if os.geteuid() != 0:
        pytest.skip("boots a cluster of containers: needs root (CI runs as root)")
    if shutil.which("systemd-nspawn") is None:
        pytest.fail("systemd-nspawn is missing: install systemd-container (scripts/bootstrap)")
    previous = signal.signal(signal.SIGTERM, _interrupt)
    cluster = SlurmCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        try:
            cluster.close()
        finally:
            signal.signal(signal.SIGTERM, previous)
