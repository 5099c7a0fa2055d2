"""The files one ``datacrumbs@<run-id>.service`` instance is made of, named in one place.

The prolog helper writes the environment file, the unit reads it (``EnvironmentFile=``), the
unit's exec step opens the log file and the helper reads its last error back when a start
fails: all four must agree on the names, so they are computed here only.
"""

from __future__ import annotations

from pathlib import Path

from datacrumbs.common.errors import DatacrumbsError

__all__ = [
    "ENV_FILE_KEYS",
    "OPTIONAL_ENV_FILE_KEYS",
    "env_file_path",
    "log_file_path",
    "render_env_file",
    "unit_name",
]

#: What the environment file gives the daemon, in the order it is written (upstream's names).
ENV_FILE_KEYS = (
    "DATACRUMBS_PROBE_FILE",
    "DATACRUMBS_USER",
    "DATACRUMBS_SERVICE_RUN_ID",
    "DATACRUMBS_LOG_DIR",
    "DATACRUMBS_INSTALL_PREFIX",
)
#: Written after those when the job has them.
OPTIONAL_ENV_FILE_KEYS = (
    "DATACRUMBS_JOB_CGROUP",
    "DATACRUMBS_JOB_PARENT_CMDLINE",
    "DATACRUMBS_MODE",
    "DATACRUMBS_PROFILE_INTERVAL_MS",
)

# Characters systemd's EnvironmentFile= parser needs escaped inside double quotes.
_ESCAPED = ("\\", '"', "$", "`")


def unit_name(run_id: str) -> str:
    return f"datacrumbs@{run_id}.service"


def env_file_path(run_dir: Path, run_id: str) -> Path:
    """``<run-dir>/datacrumbs-<run-id>.env``: the unit's ``EnvironmentFile=``."""
    return run_dir / f"datacrumbs-{run_id}.env"


def log_file_path(log_dir: Path, user: str, run_id: str, host: str) -> Path:
    """``<log-dir>/datacrumbs_<user>_<run-id>_<host>.log``: the daemon's stdout and stderr."""
    return log_dir / f"datacrumbs_{user}_{run_id}_{host}.log"


def render_env_file(values: dict[str, str]) -> str:
    """The environment file's text: one ``KEY="value"`` line per key, quoted for systemd.

    A control character (a newline above all) would end the value early and could smuggle
    in another variable, so it is refused rather than escaped.
    """
    lines = [
        f"# {unit_name(values['DATACRUMBS_SERVICE_RUN_ID'])}: written by "
        "datacrumbs_service start, removed by datacrumbs_service stop"
    ]
    for key in (*ENV_FILE_KEYS, *(k for k in OPTIONAL_ENV_FILE_KEYS if k in values)):
        value = values[key]
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
            raise DatacrumbsError(f"{key}: {value!r} holds a control character")
        for char in _ESCAPED:
            value = value.replace(char, "\\" + char)
        lines.append(f'{key}="{value}"')
    return "\n".join(lines) + "\n"
