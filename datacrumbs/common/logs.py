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
    under_systemd = bool(os.environ.get("INVOCATION_ID") or os.environ.get("JOURNAL_STREAM"))
    to_journal = under_systemd and _JOURNAL_SOCKET.exists()
    if not (to_journal and _stderr_is_the_journal()):
        # When systemd connects stderr to the journal itself, the journal handler alone
        # writes each record (with its fields) once.
        plain = logging.StreamHandler(sys.stderr)
        plain.setFormatter(
            logging.Formatter(f"%(asctime)s {identifier}[%(process)d] %(levelname)s %(message)s")
        )
        logger.addHandler(plain)
    if to_journal:
        from systemd.journal import JournalHandler

        logger.addHandler(JournalHandler(SYSLOG_IDENTIFIER=identifier, **fields))
    return logger


def _stderr_is_the_journal() -> bool:
    """Whether stderr is the stream systemd connected to the journal (``JOURNAL_STREAM`` is
    ``device:inode`` of that stream; a unit that redirects stderr to a file no longer matches)."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    try:
        info = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return stream == f"{info.st_dev}:{info.st_ino}"


def journal_only(logger: logging.Logger, level: int, message: str) -> None:
    """Send ``message`` to the journal handlers only (the caller prints it on stderr itself)."""
    record = logger.makeRecord(logger.name, level, __file__, 0, "%s", (message,), None)
    for handler in logger.handlers:
        if not isinstance(handler, logging.StreamHandler):
            handler.handle(record)
