"""The job's budget of function-probe hits per second, and the functions that overspend it.

A uprobe is a breakpoint in a file's code. Scoped to the job (``DATACRUMBS_UPROBE_SCOPE``,
the default) only the job's processes have it and pay for it; scoped to the node, every process
that runs the code traps into the kernel, the job's or not, before any filter. The signer
refuses the known hot functions of shared libraries (``DATACRUMBS_HOT_FUNCTIONS``); what it
cannot foresee — a function that is hot only in this job, a library function missing from the
list — is caught here. The daemon
samples the kernel's per-function hit counters about once a second; when the job's total rate
passes ``DATACRUMBS_UPROBE_HIT_LIMIT``, the busiest functions are detached, one after another,
until what remains fits the limit.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["HitLimit"]


class HitLimit:
    """Rates between successive samples of cumulative hit counts, against ``limit`` per second
    (0: no limit)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._last: tuple[float, dict[int, int]] | None = None

    def over(self, counts: Mapping[int, int], now: float) -> dict[int, int]:
        """The functions to detach (function id -> its hits per second), busiest first;
        empty while the job is within its limit. The first sample only sets the baseline."""
        previous, self._last = self._last, (now, dict(counts))
        if not self.limit or previous is None or now <= previous[0]:
            return {}
        elapsed = now - previous[0]
        rates = {fid: (n - previous[1].get(fid, 0)) / elapsed for fid, n in counts.items()}
        total = sum(rates.values())
        chosen: dict[int, int] = {}
        for fid, rate in sorted(rates.items(), key=lambda item: -item[1]):
            if total <= self.limit:
                break
            chosen[fid] = round(rate)
            total -= rate
        return chosen
