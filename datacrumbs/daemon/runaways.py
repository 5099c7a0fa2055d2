"""Functions that take the job over its trap-time budget or its hit limit: detached, and said
so everywhere."""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from datacrumbs.daemon.hit_limit import HitLimit
from datacrumbs.daemon.trap_budget import TrapBudget
from datacrumbs.ebpf.engine import Engine
from datacrumbs.trace.writer import TraceWriter

__all__ = ["Runaways"]


@dataclass
class Runaways:
    """Detaches the functions that take the job over its trap-time budget (uprobes scoped to
    the job: ``budget``, a fraction of the job's CPU) or its hit limit (hits per second), and
    says so: in the journal and in the trace, where an instant event marks the moment the
    function stops appearing. Not in the status database: a detach says how busy the job was
    in this run, not that the target fails, and a run's load must not make later runs skip a
    target (issue 25, N3). ``cgroup``: the job's cgroup, whose ``cpu.stat`` is its CPU time
    (else the CPU time of the processes the engine follows)."""

    engine: Engine
    limit: HitLimit
    writer: TraceWriter
    log: logging.Logger
    budget_fraction: float = 0.0
    cgroup: Path | None = None
    _budget: TrapBudget | None = field(default=None, init=False)
    _measured: bool = field(default=False, init=False)

    def check(self) -> None:
        reasons = self._over_budget() or self._over_limit()
        if reasons:
            self._detach(reasons)

    def _over_limit(self) -> dict[int, str]:
        if not self.limit.limit:
            return {}
        over = self.limit.over(self.engine.function_hits(), time.monotonic())
        where = "the job's" if self.engine.following is not None else "all"
        return {
            fid: (
                f"detached: {rate:,} hits/s in {where} processes, over this job's limit of "
                f"{self.limit.limit:,} (DATACRUMBS_UPROBE_HIT_LIMIT)"
            )
            for fid, rate in over.items()
        }

    def _over_budget(self) -> dict[int, str]:
        budget = self._trap_budget()
        cpu = self._job_cpu_ns()
        if budget is None or cpu is None:
            return {}
        over = budget.over(self.engine.function_hits(), cpu)
        return {
            fid: (
                f"detached: its traps took {share:.0%} of the job's CPU time "
                f"({budget.cost_ns / 1000:.1f} µs each), over the budget of "
                f"{budget.fraction:.0%} (DATACRUMBS_UPROBE_TIME_BUDGET)"
            )
            for fid, share in over.items()
        }

    def _trap_budget(self) -> TrapBudget | None:
        """The budget, once one trap's cost is measured (at the first check: not at start,
        where it would delay READY=1); None without uprobes scoped to the job."""
        if not self._measured and self.budget_fraction and self.engine.following is not None:
            self._measured = True
            cost = self.engine.trap_cost_ns()
            if cost:
                self._budget = TrapBudget(self.budget_fraction, cost)
                self.log.info(
                    "one uprobe hit costs %.1f µs here: the job's uprobes may take %.0f%% of "
                    "its CPU time (DATACRUMBS_UPROBE_TIME_BUDGET)",
                    cost / 1000,
                    self.budget_fraction * 100,
                )
            else:
                self.log.warning("cannot measure a uprobe hit's cost: no trap-time budget")
        return self._budget

    def _job_cpu_ns(self) -> int | None:
        if self.cgroup is not None:
            with contextlib.suppress(OSError, ValueError):
                for line in (self.cgroup / "cpu.stat").read_text().splitlines():
                    key, _, value = line.partition(" ")
                    if key == "usage_usec":
                        return int(value) * 1000
            return None
        return self.engine.followed_cpu_ns()

    def _detach(self, reasons: dict[int, str]) -> None:
        for outcome in self.engine.detach_functions(reasons):
            self.log.warning(
                "stopped tracing %s:%s: %s",
                outcome.category,
                outcome.function,
                outcome.reason,
                extra={
                    "CATEGORY": outcome.category,
                    "FUNCTION": outcome.function,
                    "BINARY": outcome.binary or "",
                },
            )
            self.writer.write_notice(
                "probe_detached",
                {
                    "category": outcome.category,
                    "function": outcome.function,
                    "binary": outcome.binary or "",
                    "reason": outcome.reason or "",
                },
            )
