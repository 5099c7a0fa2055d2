"""Helpers of the demo tests (a module of its own: conftest names collide across folders)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from datacrumbs.demo.workload import WorkloadPlan


@dataclass(frozen=True)
class TracedRun:
    """A finished trace of one run of the demo workload."""

    trace: Path
    pid: int
    data_dir: Path
    plan: WorkloadPlan
