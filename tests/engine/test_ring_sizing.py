"""The ring buffers' memory, from the node's CPUs and memory (docs/performance.md)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from datacrumbs.ebpf.cgroups import cgroup2_mounts
from datacrumbs.ebpf.ring_sizing import cgroup_memory_limit, ring_layout

GiB, MiB = 1 << 30, 1 << 20


@pytest.mark.parametrize(
    ("cpus", "memory", "total", "expected"),
    [
        (2, 8 * GiB, 0, (2, 64 * MiB)),  # 1/64 of the memory
        (2, 1 * GiB, 0, (2, 16 * MiB)),  # at least 32 MiB in all
        (16, 128 * GiB, 0, (16, 64 * MiB)),  # at most 1 GiB in all
        (128, 512 * GiB, 0, (64, 16 * MiB)),  # one ring per CPU up to 64
        (3, 8 * GiB, 100 * MiB, (3, 32 * MiB)),  # DATACRUMBS_RING_BUFFER_MB: a power of two each
        (64, 8 * GiB, 8 * MiB, (64, 1 * MiB)),  # never below 1 MiB a ring
    ],
)
def test_layout(cpus: int, memory: int, total: int, expected: tuple[int, int]) -> None:
    assert ring_layout(total, cpus=cpus, mem_total=memory) == expected


@pytest.mark.parametrize(
    ("cpus", "memory", "total", "limit", "ring", "job", "expected"),
    [
        (16, 128 * GiB, 0, 0, 0, 4 * GiB, (16, 4 * MiB)),  # 1/64 of the job's limit (64 MiB)
        (16, 128 * GiB, 0, 0, 0, 256 * GiB, (16, 64 * MiB)),  # not above the node's share
        (16, 128 * GiB, 0, 0, 0, 256 * MiB, (16, 2 * MiB)),  # and at least 32 MiB in all
        (16, 128 * GiB, 0, 512 * MiB, 0, 0, (16, 32 * MiB)),  # within the daemon's share
        (2, 8 * GiB, 4 * GiB, 1 * GiB, 0, 0, (2, 256 * MiB)),  # DATACRUMBS_RING_BUFFER_MB too
        (64, 8 * GiB, 8 * MiB, 16 * MiB, 0, 0, (16, 1 * MiB)),  # fewer rings, 1 MiB each
        (2, 24 * GiB, 0, 256 * MiB, 64 * MiB, 0, (2, 64 * MiB)),  # a ring is one chunk at most
    ],
)
def test_layout_within_limits(
    cpus: int, memory: int, total: int, limit: int, ring: int, job: int, expected: tuple[int, int]
) -> None:
    layout = ring_layout(
        total, cpus=cpus, mem_total=memory, limit=limit, max_ring=ring or 1 << 30, job_memory=job
    )
    assert layout == expected
    assert not limit or layout.rings * layout.ring_bytes <= limit


def test_job_memory_limit_is_read_from_its_cgroup_or_its_ancestors(root: None) -> None:
    """On this machine's cgroup v2 mount: a cgroup made for the test, its limit set where the
    memory controller is there (the matrix's guests), none where it is not (a hybrid host,
    memory on v1), and the same for a job cgroup not made yet below it (its parent's holds)."""
    mount = cgroup2_mounts()[0]
    has_memory = "memory" in (mount / "cgroup.subtree_control").read_text().split()
    cgroup = mount / f"dc-ring-sizing-{os.getpid()}"
    cgroup.mkdir()
    try:
        if has_memory:
            (cgroup / "memory.max").write_text(str(3 * GiB))
        expected = 3 * GiB if has_memory else 0
        assert cgroup_memory_limit(cgroup) == expected
        assert cgroup_memory_limit(cgroup / "job_42" / "step_0") == expected
        assert cgroup_memory_limit(Path("/nonexistent/cgroup")) == 0
    finally:
        cgroup.rmdir()
