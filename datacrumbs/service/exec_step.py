"""``datacrumbs_service exec <run-id>``: the unit's ExecStart, which becomes the daemon.

systemd cannot send a unit's output to the log file the project promises: ``StandardOutput=``
expands no environment variables (the user and the log directory come from the environment
file), the host name is known only at run time, and with systemd 252 ``append:`` fails the
start (209/STDOUT) when the directory does not exist yet. So this step creates the directory,
opens ``<log-dir>/datacrumbs_<user>_<run-id>_<host>.log`` for append, puts it on stdout and
stderr and ``execv``\\ s the daemon: the same process, so ``MAINPID`` and ``NotifyAccess=main``
hold and the daemon's ``READY=1`` is accepted.

Errors before the log is open go to the unit's own stderr, which is the journal.
"""

from __future__ import annotations

import os
import pwd
import socket
import stat
import sys
import sysconfig
from datetime import datetime
from pathlib import Path
from typing import NoReturn

from datacrumbs.common.directories import make_dirs
from datacrumbs.common.errors import DatacrumbsError
from datacrumbs.common.run_id import validate_run_id
from datacrumbs.service.instance_files import log_file_path

__all__ = ["exec_daemon", "open_log_file"]

LOG_DIR_MODE = 0o755
LOG_FILE_MODE = 0o600


def _required(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise DatacrumbsError(
            f"{name} is not set: the unit's environment file is missing or "
            "incomplete (write it with datacrumbs_service start)"
        )
    return value


def open_log_file(path: Path, owner: pwd.struct_passwd) -> int:
    """Open the run's log for append, owned by the job user (0600) so that they can read it.

    The directory is created 0755 whatever the unit's UMask; a link or anything but a regular
    file at the log's name is refused rather than written through.
    """
    if not path.parent.is_dir():
        try:
            make_dirs(path.parent, LOG_DIR_MODE)
        except OSError as exc:
            raise DatacrumbsError(f"log directory {path.parent}: {exc.strerror}") from None
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, LOG_FILE_MODE)
    except OSError as exc:
        raise DatacrumbsError(f"log file {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            raise DatacrumbsError(f"log file {path}: not a regular file with a single link")
        # Mode before owner: changing the mode of a file root no longer owns needs CAP_FOWNER.
        if stat.S_IMODE(info.st_mode) != LOG_FILE_MODE:
            os.fchmod(fd, LOG_FILE_MODE)
        if (info.st_uid, info.st_gid) != (owner.pw_uid, owner.pw_gid):
            os.fchown(fd, owner.pw_uid, owner.pw_gid)
    except OSError as exc:
        os.close(fd)
        raise DatacrumbsError(f"log file {path}: {exc.strerror}") from None
    except DatacrumbsError:
        os.close(fd)
        raise
    return fd


def exec_daemon(instance: str) -> NoReturn:
    """Check the environment file matches this instance, redirect output, exec ``datacrumbs``."""
    run_id = validate_run_id(instance, "the unit's instance name")
    named = _required("DATACRUMBS_SERVICE_RUN_ID")
    if named != run_id:
        raise DatacrumbsError(f"the environment file is for run-id {named!r}, not {run_id!r}")
    user = _required("DATACRUMBS_USER")
    try:
        owner = pwd.getpwnam(user)
    except KeyError:
        raise DatacrumbsError(f"DATACRUMBS_USER: no user {user!r} on this host") from None
    log_dir = Path(_required("DATACRUMBS_LOG_DIR"))
    if not log_dir.is_absolute():
        raise DatacrumbsError(f"DATACRUMBS_LOG_DIR must be an absolute path, got {log_dir}")
    probe_file = _required("DATACRUMBS_PROBE_FILE")
    log_file = log_file_path(log_dir, user, run_id, socket.gethostname())
    daemon = Path(sysconfig.get_path("scripts")) / "datacrumbs"

    fd = open_log_file(log_file, owner)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)  # the duplicates do not inherit O_CLOEXEC: the daemon keeps them
    os.dup2(fd, 2)
    os.close(fd)
    stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    os.write(
        2,
        f"{stamp} datacrumbs_service[{os.getpid()}] exec {daemon} {probe_file} "
        f"{run_id} (user {user}, log {log_file})\n".encode(),
    )
    try:
        os.execv(daemon, [str(daemon), probe_file, run_id])
    except OSError as exc:
        raise DatacrumbsError(f"cannot run {daemon}: {exc.strerror}") from None
