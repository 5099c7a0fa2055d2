"""``datacrumbs_service start|stop``: what a scheduler's prolog and epilog run, as root.

``start`` turns a job into a running ``datacrumbs@<run-id>.service``: it checks the run-id, the
user and that the probe file is readable *as that user* (root reading it on the user's behalf
must not reach files the user could not open), writes the unit's 0400 environment file and
runs ``systemctl start``, which returns once the daemon said ``READY=1``. ``stop`` stops the
unit, waits until it is inactive, removes the environment file and says whether the run had
failed.

Which installation: the one whose unit is linked. ``systemctl show`` gives the unit's
``DATACRUMBS_INSTALL_PREFIX`` and its ``EnvironmentFiles=``, so the prolog needs no settings
of its own and writes the environment file exactly where the unit reads it.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from datacrumbs.common.atomic_file import write_atomically
from datacrumbs.common.errors import DatacrumbsError
from datacrumbs.common.run_files import RunFiles
from datacrumbs.common.run_id import validate_run_id
from datacrumbs.common.settings import PROFILE_INTERVAL_MS_MAX, Settings, load_settings
from datacrumbs.service.instance_files import (
    log_file_path,
    render_env_file,
    unit_name,
)

__all__ = ["readable_as", "start_tracing", "stop_tracing"]

ENV_FILE_MODE = 0o400
RUN_DIR_MODE = 0o755
#: How long ``stop`` waits for inactive beyond what ``systemctl stop`` already waited.
STOP_GRACE_SECONDS = 30.0
_BUSY = ("active", "activating", "deactivating", "reloading")


def _systemctl(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("systemctl") or "/bin/systemctl"  # a prolog may run with no PATH
    return subprocess.run(
        [tool, "--no-ask-password", *args], capture_output=True, text=True, stdin=subprocess.DEVNULL
    )


def _show(unit: str, *properties: str) -> dict[str, str]:
    result = _systemctl("show", "--property=" + ",".join(properties), unit)
    if result.returncode != 0:
        raise DatacrumbsError(f"systemctl show {unit}: {_one_line(result.stderr)}")
    return dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "no message"


@dataclass(frozen=True)
class _LinkedUnit:
    """One instance of the installed ``datacrumbs@.service`` and the installation it names."""

    name: str
    env_file: Path
    settings: Settings

    @classmethod
    def find(cls, run_id: str) -> _LinkedUnit:
        name = unit_name(run_id)
        props = _show(name, "LoadState", "Environment", "EnvironmentFiles")
        if props.get("LoadState") != "loaded":
            raise DatacrumbsError(
                f"{name} is not installed ({props.get('LoadState', 'unknown')}): link "
                "<prefix>/etc/datacrumbs/systemd/datacrumbs@.service into /etc/systemd/system "
                "and run systemctl daemon-reload (see docs/deploy.md)"
            )
        # The installer refuses white space in every value, so the list splits on blanks.
        environment = dict(
            item.split("=", 1) for item in props.get("Environment", "").split() if "=" in item
        )
        prefix = environment.get("DATACRUMBS_INSTALL_PREFIX")
        files = props.get("EnvironmentFiles", "").split()
        if not prefix or not files:
            raise DatacrumbsError(
                f"{name} sets no DATACRUMBS_INSTALL_PREFIX or no "
                "EnvironmentFiles=: it is not a datacrumbs unit"
            )
        ambient = os.environ.get("DATACRUMBS_INSTALL_PREFIX")
        if ambient and Path(ambient) != Path(prefix):
            raise DatacrumbsError(
                f"DATACRUMBS_INSTALL_PREFIX is {ambient} but the linked "
                f"{name} belongs to the installation at {prefix}"
            )
        return cls(name, Path(files[0]), load_settings(install_prefix=Path(prefix)))

    def state(self) -> dict[str, str]:
        return _show(self.name, "ActiveState", "Result", "ExecMainStatus", "InvocationID")


def readable_as(path: Path, user: pwd.struct_passwd) -> str | None:
    """None if ``user`` can open ``path`` for reading and it is a regular file; else why not.

    Checked by opening it in a child that has become the user (groups included), since
    ``access()`` and mode bits miss ACLs, root-squashing file systems and the directories on
    the way.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into the caller's code
        status = 1
        try:
            os.close(read_end)
            os.setgroups(os.getgrouplist(user.pw_name, user.pw_gid))
            os.setresgid(user.pw_gid, user.pw_gid, user.pw_gid)
            os.setresuid(user.pw_uid, user.pw_uid, user.pw_uid)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
                why = "" if stat.S_ISREG(os.fstat(fd).st_mode) else "not a regular file"
            except OSError as exc:
                why = exc.strerror or "cannot open"
            os.write(write_end, why.encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as answer:
        why = answer.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        return "the check as that user failed"
    return why or None


def _failure_reason(invocation: str) -> str | None:
    """The last error the unit's own processes logged in one run (their one-line reason).

    Taken from the journal of that invocation only: the log file is appended to by every run
    of a run-id, so its last error may be an older run's.
    """
    if not invocation:
        return None
    tool = shutil.which("journalctl") or "/bin/journalctl"
    result = subprocess.run(
        [tool, f"_SYSTEMD_INVOCATION_ID={invocation}", "--output=json", "--no-pager"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    reason = None
    for line in result.stdout.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        message = entry.get("MESSAGE")
        if not isinstance(message, str):
            continue
        if entry.get("PRIORITY") in ("0", "1", "2", "3") or ": error: " in message:
            reason = message.strip()
    return reason


def _last_log_line(log_file: Path) -> str | None:
    """The log's last line: where a crash's traceback ends (stderr goes there, not to the
    journal)."""
    try:
        lines = log_file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    lines = [line for line in lines if line.strip()]
    return f"last log line: {lines[-1].strip()}" if lines else None


def start_tracing(
    run_id: str,
    user_name: str,
    probe_file: Path,
    job_cgroup: Path | None = None,
    job_parent_cmdline: str | None = None,
    *,
    mode: str | None = None,
    profile_interval_ms: int | None = None,
) -> str:
    """Start ``datacrumbs@<run-id>`` for ``user_name`` (only the processes in ``job_cgroup``
    and below, when given: it may not exist yet; or only what processes whose command line
    starts with ``job_parent_cmdline`` fork, and their descendants), in ``mode`` (None: the
    installation's); return the line to print."""
    if job_cgroup is not None and job_parent_cmdline is not None:
        raise DatacrumbsError("--job-cgroup and --job-parent-cmdline both scope the job: give one")
    if mode not in (None, "trace", "profile"):
        raise DatacrumbsError(f"--mode: trace or profile, not {mode!r}")
    if profile_interval_ms is not None and not 1 <= profile_interval_ms <= PROFILE_INTERVAL_MS_MAX:
        raise DatacrumbsError(
            f"--profile-interval-ms: 1 to {PROFILE_INTERVAL_MS_MAX} milliseconds, "
            f"not {profile_interval_ms}"
        )
    run_id = validate_run_id(run_id, "the command line")
    try:
        user = pwd.getpwnam(user_name)
    except KeyError:
        raise DatacrumbsError(f"no user {user_name!r} on this host") from None
    probe_file = Path(os.path.abspath(probe_file))
    why = readable_as(probe_file, user)
    if why:
        raise DatacrumbsError(f"probe file {probe_file} is not readable as {user_name}: {why}")
    unit = _LinkedUnit.find(run_id)
    state = unit.state()["ActiveState"]
    if state in _BUSY:
        raise DatacrumbsError(
            f"{unit.name} is already {state}: stop it first (datacrumbs_service stop {run_id})"
        )

    settings = unit.settings
    values = {
        "DATACRUMBS_PROBE_FILE": str(probe_file),
        "DATACRUMBS_USER": user.pw_name,
        "DATACRUMBS_SERVICE_RUN_ID": run_id,
        "DATACRUMBS_LOG_DIR": str(settings.log_dir),
        "DATACRUMBS_INSTALL_PREFIX": str(settings.install_prefix),
    }
    if job_cgroup is not None:
        if not job_cgroup.is_absolute():
            raise DatacrumbsError(f"--job-cgroup must be an absolute path, got {job_cgroup}")
        values["DATACRUMBS_JOB_CGROUP"] = str(job_cgroup)
    if job_parent_cmdline is not None:
        values["DATACRUMBS_JOB_PARENT_CMDLINE"] = job_parent_cmdline
    if mode is not None:
        values["DATACRUMBS_MODE"] = mode
    if profile_interval_ms is not None:
        values["DATACRUMBS_PROFILE_INTERVAL_MS"] = str(profile_interval_ms)
    text = render_env_file(values)
    run_dir = unit.env_file.parent
    if not run_dir.is_dir():
        run_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(run_dir, RUN_DIR_MODE)
    write_atomically(unit.env_file, text, mode=ENV_FILE_MODE)

    result = _systemctl("start", unit.name)
    if result.returncode == 0:
        scope = f" in {job_cgroup}" if job_cgroup is not None else ""
        if job_parent_cmdline is not None:
            scope = f" below processes {job_parent_cmdline!r}"
        doing = "profiling" if (mode or settings.mode) == "profile" else "tracing"
        return f"{unit.name} started: {doing} {user.pw_name}{scope} with {probe_file}"
    unit.env_file.unlink(missing_ok=True)
    status = unit.state()
    log_file = log_file_path(settings.log_dir, user.pw_name, run_id, socket.gethostname())
    reason = (
        _failure_reason(status.get("InvocationID", ""))
        or _last_log_line(log_file)
        or _one_line(result.stderr)
    )
    raise DatacrumbsError(
        f"{unit.name} did not start ({status.get('Result', '?')}): {reason} "
        f"(log {log_file}; journalctl -u {unit.name})"
    )


def stop_tracing(run_id: str) -> str:
    """Stop ``datacrumbs@<run-id>``, wait until inactive, remove its environment file."""
    run_id = validate_run_id(run_id, "the command line")
    unit = _LinkedUnit.find(run_id)
    before = unit.state()
    stopped = _systemctl("stop", unit.name)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    state = unit.state()
    while state["ActiveState"] not in ("inactive", "failed"):
        if time.monotonic() > deadline:
            raise DatacrumbsError(
                f"{unit.name} is still {state['ActiveState']} after "
                f"systemctl stop: {_one_line(stopped.stderr)}"
            )
        time.sleep(0.1)
        state = unit.state()
    unit.env_file.unlink(missing_ok=True)
    # No daemon runs for this run-id any more: a ready file left by one that was killed would
    # claim tracing is on, and the lock file would stay for every job the node ever ran.
    files = RunFiles(unit.env_file.parent, run_id, unit.settings.server_run_id_file)
    files.ready.unlink(missing_ok=True)
    files.lock.unlink(missing_ok=True)
    if state["ActiveState"] == "failed":
        reason = _failure_reason(state.get("InvocationID", ""))
        # The journal keeps the record; clearing the state keeps `systemctl --failed` from
        # filling up with one instance per job.
        _systemctl("reset-failed", unit.name)
        raise DatacrumbsError(
            f"{unit.name} had failed ({state['Result']}, status {state['ExecMainStatus']})"
            f"{': ' + reason if reason else ''}; its trace may be incomplete "
            f"(journalctl -u {unit.name})"
        )
    if before["ActiveState"] not in _BUSY:
        return f"{unit.name} was not running"
    return f"{unit.name} stopped"
