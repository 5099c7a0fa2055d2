"""The signer's audit trail: one record per decision, as text on stderr and fields in the journal.

Every connection ends in exactly one record: ``DECISION`` is ``signed`` or ``refused``, with the
peer's connect-time identity (``PEER_PID``, ``PEER_UID``, ``PEER_GID``), the executable found
(``PEER_EXE``), the ``REASON`` and the number of ``FUNCTIONS`` in the document. Under systemd
the journal gets them as fields (``journalctl -t datacrumbs_sign_probes DECISION=refused``); the
stderr line carries the same ``KEY=value`` pairs so the log file alone is enough too.
"""

from __future__ import annotations

import logging

from datacrumbs.common.logs import setup_logging
from datacrumbs.signer.peer_credentials import PeerCredentials

__all__ = ["SYSLOG_IDENTIFIER", "audit", "setup_audit_logging"]

SYSLOG_IDENTIFIER = "datacrumbs_sign_probes"


def _escaped(value: object) -> str:
    """``value`` on one line: a path or reason a user chose ("a\\nDECISION=signed") must not
    forge a record of its own in the text log. The journal fields keep the exact bytes."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text
    )


def setup_audit_logging() -> logging.Logger:
    """The signer's logger: stderr always, the journal too when running under systemd."""
    return setup_logging("datacrumbs.signer", SYSLOG_IDENTIFIER)


def audit(
    logger: logging.Logger,
    peer: PeerCredentials | None,
    decision: str,
    reason: str,
    functions: int = 0,
) -> None:
    """Log one decision with its journal fields."""
    fields = {
        "PEER_PID": peer.pid if peer else -1,
        "PEER_UID": peer.uid if peer else -1,
        "PEER_GID": peer.gid if peer else -1,
        "PEER_EXE": peer.exe if peer else "?",
        "DECISION": decision,
        "FUNCTIONS": functions,
        "REASON": reason,
    }
    text = " ".join(f"{key}={_escaped(value)}" for key, value in fields.items())
    level = logging.INFO if decision == "signed" else logging.WARNING
    logger.log(level, text, extra={key: str(value) for key, value in fields.items()})
