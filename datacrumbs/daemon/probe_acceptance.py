"""Whether this daemon may run a probe file: signed by this installation, made for this job.

Everything here happens before anything is attached. The signature proves the signer (root)
approved the content; the summary then has to match where and for whom the daemon runs, so a
file signed for another user, host or installation, or one past its expiry, is refused.
"""

from __future__ import annotations

import pwd
from datetime import UTC, datetime
from pathlib import Path

from datacrumbs.common.errors import DatacrumbsError
from datacrumbs.common.fs_identity import Identity
from datacrumbs.common.probe_file import read_probe_file
from datacrumbs.common.probes import ProbeFile
from datacrumbs.common.settings import Settings
from datacrumbs.common.signing import MAX_EXPIRY, read_verify_keys, verify

__all__ = ["accept_probe_file"]


def _owners(user: str) -> set[int]:
    try:
        return {0, pwd.getpwnam(user).pw_uid}
    except KeyError:
        return {0}


_WHAT = {"user": "user", "host": "installation", "install_user": "install user"}


def accept_probe_file(
    path: Path, settings: Settings, user: str, identity: Identity | None = None
) -> ProbeFile:
    """The checked probe file, or one :class:`DatacrumbsError` line saying why it is refused.

    The daemon reads it as the job user (``identity``: on a root-squashed home only they can,
    and no directory link they swap after the prolog's check can make root read another's
    file); it must be the job user's (or root's) own file, reached without a final symlink."""
    document, model = read_probe_file(path, owners=_owners(user), identity=identity)
    try:
        verify(read_verify_keys(settings.verify_keys_file), document)
    except DatacrumbsError as exc:
        raise DatacrumbsError(f"probe file {path} refused: {exc}") from None
    summary = model.summary
    if summary.host is None:
        raise DatacrumbsError(
            f"probe file {path} refused: it names no installation (summary.host); it was "
            "signed by an older datacrumbs: make it again with datacrumbs_probe_configurator"
        )
    # Any node of the installation: the file is bound to its user and installation, not to
    # the node it was signed on (summary.hostname, kept for the record).
    wrong = summary.mismatch(user=user, host=settings.host, install_user=settings.install_user)
    if wrong is not None:
        what, made_for, here = wrong
        raise DatacrumbsError(
            f"probe file {path} refused: made for {_WHAT[what]} {made_for!r}, "
            f"this daemon runs for {here!r}"
        )
    if not summary.expires_at:  # the signer always sets one: a file without never expires
        raise DatacrumbsError(f"probe file {path} refused: it has no expiry (summary.expires_at)")
    try:
        expires = summary.time("expires_at")
    except ValueError as exc:
        raise DatacrumbsError(str(exc)) from None
    now = datetime.now(UTC)
    if expires < now:
        raise DatacrumbsError(f"probe file {path} refused: expired at {summary.expires_at}")
    if expires > now + MAX_EXPIRY:  # the signer never signs that: a key that did is not its
        raise DatacrumbsError(
            f"probe file {path} refused: it is valid until {summary.expires_at}, more than "
            f"{MAX_EXPIRY.days} days away"
        )
    return model
