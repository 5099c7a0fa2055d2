"""Functions that take the job over its hit limit: detached, and said so everywhere."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from datacrumbs.daemon.hit_limit import HitLimit
from datacrumbs.ebpf.engine import Engine
from datacrumbs.trace.writer import TraceWriter

__all__ = ["Runaways"]


@dataclass
class Runaways:
    """Detaches the functions that take the job over its hit limit, and says so: in the
    journal and in the trace, where an instant event marks the moment the function stops
    appearing. Not in the status database: a detach says how busy the node was in this run
    (other users' processes count), not that the target fails, and another user could make
    it happen to skip this user's targets in every later run (issue 25, N3)."""

    engine: Engine
    limit: HitLimit
    writer: TraceWriter
    log: logging.Logger

    def check(self) -> None:
        if not self.limit.limit:
            return
        over = self.limit.over(self.engine.function_hits(), time.monotonic())
        if not over:
            return
        where = "the job's" if self.engine.config.uprobe_scope == "job" else "all"
        reasons = {
            fid: (
                f"detached: {rate:,} hits/s in {where} processes, over this job's limit of "
                f"{self.limit.limit:,} (DATACRUMBS_UPROBE_HIT_LIMIT)"
            )
            for fid, rate in over.items()
        }
        outcomes = self.engine.detach_functions(reasons)
        for outcome in outcomes:
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
