"""The daemon's logging: plain lines on stderr, and structured records in the journal.

Under systemd the unit sends stdout/stderr to the run's log file; the journal additionally gets
each record with fields (``DATACRUMBS_RUN_ID``, ``DATACRUMBS_USER``, and per record e.g.
``PROBES_ATTACHED``, ``EVENTS``, ``EVENTS_LOST``) so that ``journalctl DATACRUMBS_RUN_ID=job42``
finds the run. Fields are passed as ``extra={"FIELD": value}`` on the logging call.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

__all__ = ["journal_error", "setup_logging"]

_JOURNAL_SOCKET = Path("/run/systemd/journal/socket")


def setup_logging(run_id: str | None = None, user: str | None = None) -> logging.Logger:
    """Configure the ``datacrumbs`` logger for this process and return it."""
    logger = logging.getLogger("datacrumbs")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    plain = logging.StreamHandler(sys.stderr)
    plain.setFormatter(logging.Formatter("%(asctime)s datacrumbs[%(process)d] %(levelname)s "
                                         "%(message)s"))
    logger.addHandler(plain)
    under_systemd = bool(os.environ.get("INVOCATION_ID") or os.environ.get("JOURNAL_STREAM"))
    if under_systemd and _JOURNAL_SOCKET.exists():
        from systemd.journal import JournalHandler

        fields = {"SYSLOG_IDENTIFIER": "datacrumbs"}
        if run_id:
            fields["DATACRUMBS_RUN_ID"] = run_id
        if user:
            fields["DATACRUMBS_USER"] = user
        logger.addHandler(JournalHandler(**fields))
    return logger


def journal_error(logger: logging.Logger, message: str) -> None:
    """Send a fatal error to the journal only: the command prints it on stderr itself."""
    record = logger.makeRecord(logger.name, logging.ERROR, __file__, 0, "%s", (message,), None)
    for handler in logger.handlers:
        if not isinstance(handler, logging.StreamHandler):
            handler.handle(record)
