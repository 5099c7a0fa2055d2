"""The ring buffers' memory, from the node's CPUs and memory (docs/performance.md)."""

from __future__ import annotations

import pytest

from datacrumbs.ebpf.ring_sizing import ring_layout

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
