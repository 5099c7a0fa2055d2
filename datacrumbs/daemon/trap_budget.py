"""The job's uprobes budgeted in time: the functions whose traps take too much of its CPU.

Scoped to the job, a uprobe costs only the job's processes, but it still costs them: each hit
is a trap (~10 µs here with its return). A count of hits per second says nothing of that cost
(a fast node takes 100,000 traps in a tenth of a second, a virtual machine in a whole one), so
the daemon measures one hit's cost on the node at start (:mod:`datacrumbs.ebpf.trap_cost`)
and, about once a second, compares the time the new hits took (hits x cost) with the CPU time
the job used in the same interval (``DATACRUMBS_UPROBE_TIME_BUDGET``, a fraction of it). Over
it, the functions that cost most are detached, one after another, until the rest fit. Only the
job's hits are counted: other users' processes never run these probes. (The share can pass
100% in a virtual machine, where a trap's exit to the hypervisor is stolen time, not the
process's CPU time: it is then over any budget, as it should be.)
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["TrapBudget"]

#: Below this much job CPU in an interval (ns), the job is idle: no share is computed.
MIN_CPU_NS = 10_000_000


class TrapBudget:
    """Successive samples of cumulative hit counts and job CPU time, against ``fraction`` of
    the job's CPU spent in traps of ``cost_ns`` each (0: no budget)."""

    def __init__(self, fraction: float, cost_ns: float) -> None:
        self.fraction = fraction
        self.cost_ns = cost_ns
        self._last: tuple[int, dict[int, int]] | None = None

    def over(self, counts: Mapping[int, int], cpu_ns: int) -> dict[int, float]:
        """The functions to detach (function id -> the share of the job's CPU its traps took
        in the interval), costliest first; empty while within budget. The first sample only
        sets the baseline."""
        previous, self._last = self._last, (cpu_ns, dict(counts))
        if not self.fraction or previous is None:
            return {}
        cpu = cpu_ns - previous[0]
        if cpu < MIN_CPU_NS:
            return {}
        shares = {
            fid: (n - previous[1].get(fid, 0)) * self.cost_ns / cpu for fid, n in counts.items()
        }
        total = sum(shares.values())
        chosen: dict[int, float] = {}
        for fid, share in sorted(shares.items(), key=lambda item: -item[1]):
            if total <= self.fraction:
                break
            chosen[fid] = share
            total -= share
        return chosen
