"""Fixtures of the multi-node tests: one Slurm cluster of nspawn machines per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from nspawn_support import machines_allowed
from slurm_cluster import SlurmCluster


@pytest.fixture(scope="module")
def cluster() -> Iterator[SlurmCluster]:
    """A login machine and two compute nodes, idle; powered off and removed at the end, also
    after a failure, Ctrl-C or a SIGTERM to pytest."""
    with machines_allowed("boots a cluster of containers"):
        cluster = SlurmCluster()
        try:
            cluster.start()
            yield cluster
        finally:
            cluster.close()
