"""Which run this daemon is: the run-id, from the command line, the scheduler, or the clock.

The run-id names files (the ready file, the trace), so it is held to characters that are safe
in a file name and in a systemd instance name.
"""

from __future__ import annotations

import os
import re
from datetime import datetime

from datacrumbs.common.errors import DatacrumbsError

__all__ = ["resolve_run_id", "validate_run_id"]

_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def validate_run_id(run_id: str, source: str) -> str:
    """``run_id`` if it is safe in file names; else one line saying where it came from."""
    if not _SAFE.match(run_id):
        raise DatacrumbsError(
            f"run-id {run_id!r} from {source} is not safe in file names: use 1-128 letters, "
            "digits, '.', '_' or '-', starting with a letter or digit"
        )
    return run_id


def resolve_run_id(argument: str | None, job_id_var: str) -> tuple[str, str]:
    """The run-id and where it came from: the argument, else ``$<job_id_var>``, else the time."""
    if argument is not None:
        return validate_run_id(argument, "the command line"), "command line"
    from_env = os.environ.get(job_id_var)
    if from_env:
        return validate_run_id(from_env, f"${job_id_var}"), f"${job_id_var}"
    return datetime.now().strftime("%Y%m%d-%H%M%S"), "timestamp"
