"""Logging for the long-running commands: plain lines on stderr, structured records in the journal.

Under systemd a unit sends stdout/stderr to a log file; the journal additionally gets every
record with fields — fixed ones given here (e.g. ``DATACRUMBS_RUN_ID``) and per-record ones
passed as ``extra={"FIELD": value}`` on the logging call — so that ``journalctl FIELD=value``
finds a run or a decision without parsing text. Outside systemd only stderr is used.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

__all__ = ["journal_only", "setup_logging"]

_JOURNAL_SOCKET = Path("/run/systemd/journal/socket")


def setup_logging(name: str, identifier: str, **fields: str) -> logging.Logger:
    """(Re)configure logger ``name`` for this process; ``identifier`` is the syslog tag."""
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    plain = logging.StreamHandler(sys.stderr)
    plain.setFormatter(logging.Formatter(
        f"%(asctime)s {identifier}[%(process)d] %(levelname)s %(message)s"))
    logger.addHandler(plain)
    under_systemd = bool(os.environ.get("INVOCATION_ID") or os.environ.get("JOURNAL_STREAM"))
    if under_systemd and _JOURNAL_SOCKET.exists():
        from systemd.journal import JournalHandler

        logger.addHandler(JournalHandler(SYSLOG_IDENTIFIER=identifier, **fields))
    return logger


def journal_only(logger: logging.Logger, level: int, message: str) -> None:
    """Send ``message`` to the journal handlers only (the caller prints it on stderr itself)."""
    record = logger.makeRecord(logger.name, level, __file__, 0, "%s", (message,), None)
    for handler in logger.handlers:
        if not isinstance(handler, logging.StreamHandler):
            handler.handle(record)
