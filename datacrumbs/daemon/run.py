"""What ``datacrumbs`` does: one tracing run, from start-up to a finished trace.

Start-up runs in the order the unit and the job scripts rely on (see
:class:`~datacrumbs.daemon.tracing_run.TracingRun`, whose steps are named): limits, settings,
the probe file (signature and summary checked before anything is attached), the run-id lock, the
run-id file, the trace directory, the status database, attaching, and only then the ready file
and ``READY=1``. Any failure before the ready point ends the run with one line and a non-zero
exit; any failure after it still removes the ready file.
"""

from __future__ import annotations

import logging
from pathlib import Path

from datacrumbs.common.errors import DatacrumbsError
from datacrumbs.common.logs import journal_only, setup_logging
from datacrumbs.daemon.limits import raise_soft_limits
from datacrumbs.daemon.stop_signal import StopSignal
from datacrumbs.daemon.tracing_run import TracingRun

__all__ = ["run_daemon"]


def run_daemon(probe_path: Path, run_id_argument: str | None) -> int:
    """Trace one run until SIGTERM/SIGINT; return the exit status."""
    log = setup_logging("datacrumbs", "datacrumbs")
    stop = StopSignal(log)
    log.info("limits: %s", "; ".join(raise_soft_limits()))
    try:
        return TracingRun(probe_path, run_id_argument, stop).run()
    except DatacrumbsError as exc:
        journal_only(logging.getLogger("datacrumbs"), logging.ERROR, str(exc))
        raise
