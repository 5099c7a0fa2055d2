"""Every ``DATACRUMBS_*`` setting, as one typed model with three sources.

Precedence, highest first: explicit arguments (the installer's flags), the process environment,
the installed system configuration SQLite (see :mod:`datacrumbs.common.system_config`), then the
built-in defaults below. Defaults that depend on other settings (the data directory on the
prefix, the run-id file on the run directory) are computed from the values already resolved, so
moving the prefix moves everything under it.

A bad value — a relative path, an unknown placeholder, bytes that are not UTF-8 — is reported as
one line naming the setting (:func:`load_settings`), never as a pydantic traceback.
"""

from __future__ import annotations

import os
import re
import socket
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from datacrumbs.common.errors import DatacrumbsError
from datacrumbs.common.hot_functions import HOT_FUNCTIONS, UPROBE_HIT_LIMIT
from datacrumbs.common.layout import InstallLayout, running_prefix
from datacrumbs.common.mode_settings import PROFILE_INTERVAL_MS_MAX, ModeSettings
from datacrumbs.common.system_config import find_system_config, read_table

__all__ = [
    "ENV_PREFIX",
    "PER_RUN_FIELDS",
    "POLICY_FIELDS",
    "PROFILE_INTERVAL_MS_MAX",
    "TRACE_DIR_PLACEHOLDERS",
    "Settings",
    "expand_trace_dir",
    "load_settings",
    "parent_cmdline_problem",
]

ENV_PREFIX = "DATACRUMBS_"
#: The prefix of a command that does not run from an installation and is not told one.
DEFAULT_PREFIX = Path("/opt/datacrumbs")

#: Placeholders of ``DATACRUMBS_TRACE_DIR_PATTERN`` and what each becomes.
TRACE_DIR_PLACEHOLDERS = {
    "%YY%": "year, four digits (upstream's name)",
    "%MM%": "month, 01-12",
    "%DD%": "day of the month, 01-31",
    "%HH%": "hour, 00-23",
    "%USER%": "the job user",
    "%HOST%": "this host's name",
    "%RUN_ID%": "the run-id of the daemon",
}
#: Fields that belong to one job or one node, never to the installation.
PER_RUN_FIELDS = frozenset({"user", "hostname", "job_cgroup", "job_parent_cmdline"})
#: DATACRUMBS_PROFILE_INTERVAL_MS's longest interval (an hour).
#: Room the kernel keeps for DATACRUMBS_JOB_PARENT_CMDLINE (DC_PARENT_CMDLINE, its NUL too).
PARENT_CMDLINE_BYTES = 63


def parent_cmdline_problem(cmdline: str) -> str | None:
    """Why the kernel cannot compare ``cmdline`` with step daemons' command lines (None: it
    can): the one rule of the setting and of the engine's ``parent_cmdline``."""
    if (
        not cmdline.strip()
        or not cmdline.isprintable()
        or len(cmdline.encode()) > PARENT_CMDLINE_BYTES
    ):
        return f"1 to {PARENT_CMDLINE_BYTES} printable bytes, not {cmdline!r}"
    return None


#: Fields that are the signer's policy: kept in the system configuration only.
POLICY_FIELDS = frozenset(
    {"hot_functions", "uprobe_hit_limit", "uprobe_scope", "uprobe_time_budget"}
)
_PLACEHOLDER = re.compile(r"%[A-Z_]+%")
_USER_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\$?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _default_libc() -> Path:
    """The C library this interpreter runs on, as the dynamic loader mapped it."""
    with open("/proc/self/maps", encoding="utf-8") as maps:
        for line in maps:
            path = line.rstrip("\n").split(maxsplit=5)[-1]
            if re.search(r"/libc(-[\d.]+)?\.so(\.\d+)*$", path):
                return Path(path)
    return Path("/lib/x86_64-linux-gnu/libc.so.6")


class Settings(ModeSettings):
    """The runtime settings of one datacrumbs installation (env names: ``DATACRUMBS_<FIELD>``);
    how calls become the trace: :class:`~datacrumbs.common.mode_settings.ModeSettings`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_ignore_empty=True,
        extra="ignore",
        frozen=True,
    )

    install_prefix: Path = Field(
        default_factory=lambda: running_prefix() or DEFAULT_PREFIX,
        description=(
            "Root of the shared installation laid out by datacrumbs_install (default: the "
            "installation the command runs from, else /opt/datacrumbs)."
        ),
    )
    install_user: str = Field(
        default="root", description="User owning the installation and its status databases."
    )
    user: str | None = Field(
        default=None, description="The job user whose processes are traced (set per job)."
    )
    hostname: str = Field(
        default_factory=socket.gethostname,
        description="This node's name in file names (per node: never stored or exported).",
    )
    host: str = Field(
        default_factory=lambda d: d["hostname"],
        description=(
            "The installation's name, the same on every node that runs it (upstream "
            "DataCrumbs' DATACRUMBS_HOST: the cluster; default: the name of the host it was "
            "installed on). It names the system configuration, and a probe file is signed for "
            "it: any node of the installation accepts the file."
        ),
    )
    job_cgroup: Path | None = Field(
        default=None,
        description=(
            "The job's cgroup v2 directory (absolute; per job: never stored). The daemon then "
            "traces the job user's processes in it and its descendants alone; when it does "
            "not exist yet (a scheduler creates it after the prolog), nothing is traced until "
            "it appears."
        ),
    )
    job_parent_cmdline: str | None = Field(
        default=None,
        description=(
            "For schedulers that give a job no cgroup (per job: never stored): the start of "
            "the command line of the processes that start the job's tasks, its step daemons "
            "(Slurm: 'slurmstepd: [<job id>.'; a NUL between arguments reads as a space). The "
            "daemon then traces the job user's processes those fork after its start, and their "
            "descendants, followed by fork in the kernel."
        ),
    )
    job_id_var: str = Field(
        default="SLURM_JOB_ID",
        description="Name of the environment variable holding the scheduler's job id.",
    )
    data_dir: Path = Field(
        default_factory=lambda d: d["install_prefix"] / "share/datacrumbs/data",
        description="The system configuration and the verify keys (in the prefix: read only).",
    )
    state_dir: Path = Field(
        default=Path("/var/lib/datacrumbs"),
        description=(
            "This node's own state: the runtime status databases (node-local by default; a "
            "site may share one, see docs/deploy.md)."
        ),
    )
    trace_dir_pattern: str = Field(
        default_factory=lambda d: (
            f"{d['install_prefix']}/var/datacrumbs/traces/%USER%/%YY%/%MM%/%DD%"
        ),
        description="Directory of the traces; placeholders are expanded at start.",
    )
    server_run_dir: Path = Field(
        default=Path("/run/datacrumbs"), description="Ready files, run-id file, signer socket."
    )
    server_run_id_file: Path = Field(
        default_factory=lambda d: d["server_run_dir"] / "datacrumbs.runid",
        description="File the daemon writes its run-id to.",
    )
    log_dir: Path = Field(
        default=Path("/var/log/datacrumbs"),
        description="Daemon log files (one per user, run-id and host), on the node.",
    )
    signing_key_file: Path = Field(
        default=Path("/etc/datacrumbs/probe-signing-key.pem"),
        description=(
            "Ed25519 private key that signs probe files (root, 0400): on the signer's host "
            "only, never in the shared prefix."
        ),
    )
    verify_keys_file: Path = Field(
        default_factory=lambda d: d["data_dir"] / "probe-verify-keys.json",
        description="Public keys every node verifies probe files with (0644).",
    )
    sign_probes_socket_path: Path = Field(
        default_factory=lambda d: d["server_run_dir"] / "datacrumbs_sign_probes.sock",
        description="Unix socket of the probe signer service.",
    )
    libc_so: Path = Field(
        default_factory=_default_libc, description="The C library uprobes attach to by default."
    )
    hot_functions: str = Field(
        default=HOT_FUNCTIONS,
        description=(
            "Regular expression of shared-library functions the signer refuses to uprobe: a "
            "breakpoint traps in every process of the node, not only the job's (empty: none)."
        ),
    )
    ring_buffer_mb: int = Field(
        default=0,
        ge=0,
        le=1 << 16,
        description=(
            "Memory of the kernel ring buffers together, in MiB: one per CPU (up to 64), each "
            "a power of two. 0: 1/64 of the node's memory, within 32 MiB and 1 GiB. What they "
            "hold is how long the daemon may fall behind a burst before events are lost."
        ),
    )
    daemon_memory_mb: int = Field(
        default=2048,
        ge=512,
        le=1 << 20,
        description=(
            "The tracing daemon's memory bound, in MiB: its unit's MemoryMax=, and what its "
            "ring buffers (at most a quarter), queues, file-name cache and process tables share "
            "(datacrumbs/trace/memory_budget.py); what no longer fits is counted in the "
            "trace, never a crash. The daemon runs outside the job's cgroup: this bounds it."
        ),
    )
    uprobe_hit_limit: int = Field(
        default=UPROBE_HIT_LIMIT,
        ge=0,
        description=(
            "Most hits per second one job's uprobes and kprobes may take on a node, counted in "
            "the job's processes (every process that runs the code, for kprobes and uprobes "
            "scoped to the node); over it the daemon detaches the busiest functions (0: no "
            "limit)."
        ),
    )
    uprobe_time_budget: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description=(
            "Uprobes scoped to the job: the most of the job's CPU time its uprobe hits may "
            "take (hits x one hit's cost, measured on the node at start); over it the daemon "
            "detaches the costliest functions (0: no budget)."
        ),
    )
    uprobe_scope: Literal["job", "node"] = Field(
        default="job",
        description=(
            "Where uprobes trap: 'job' writes their breakpoints only into the job's processes "
            "(each gets its links as the kernel tells of it, within milliseconds; its calls "
            "before are not traced), so other users' processes never pay for them; 'node' "
            "attaches them once for every process on the node (exact from a process's first "
            "instruction; for nodes a job has to itself)."
        ),
    )

    @field_validator("*", mode="before")
    @classmethod
    def _utf8(cls, value: Any) -> Any:
        # os.environ smuggles undecodable bytes in as lone surrogates; refuse them by name.
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("is not valid UTF-8") from None
            if "\0" in value:
                raise ValueError("contains a NUL byte")
        return value

    @field_validator(
        "install_prefix",
        "data_dir",
        "state_dir",
        "server_run_dir",
        "server_run_id_file",
        "log_dir",
        "signing_key_file",
        "verify_keys_file",
        "sign_probes_socket_path",
        "libc_so",
    )
    @classmethod
    def _absolute(cls, path: Path) -> Path:
        if not path.is_absolute():
            raise ValueError(f"must be an absolute path, got {str(path)!r}")
        if ".." in path.parts:
            raise ValueError(f"must not contain '..', got {str(path)!r}")
        return path

    @field_validator("install_user", "user")
    @classmethod
    def _user_name(cls, name: str | None) -> str | None:
        if name is not None and not _USER_NAME.match(name):
            raise ValueError(f"{name!r} is not a valid user name")
        return name

    @field_validator("hostname", "host")
    @classmethod
    def _host_name(cls, name: str) -> str:
        if not name or name in (".", "..") or any(c.isspace() or c in "/*?[" for c in name):
            raise ValueError(f"{name!r} is not a usable host name")
        return name

    @field_validator("job_cgroup")
    @classmethod
    def _cgroup_dir(cls, path: Path | None) -> Path | None:
        if path is not None and (not path.is_absolute() or ".." in path.parts):
            raise ValueError(f"{str(path)!r} is not an absolute path without ..")
        return path

    @field_validator("job_parent_cmdline")
    @classmethod
    def _parent_cmdline(cls, cmdline: str | None) -> str | None:
        if cmdline is not None and (problem := parent_cmdline_problem(cmdline)):
            raise ValueError(problem)
        return cmdline

    @field_validator("hot_functions")
    @classmethod
    def _regex(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        return pattern

    @field_validator("job_id_var")
    @classmethod
    def _env_name(cls, name: str) -> str:
        if not _ENV_NAME.match(name):
            raise ValueError(f"{name!r} is not a valid environment variable name")
        return name

    @field_validator("trace_dir_pattern")
    @classmethod
    def _pattern(cls, pattern: str) -> str:
        unknown = sorted(set(_PLACEHOLDER.findall(pattern)) - TRACE_DIR_PLACEHOLDERS.keys())
        if unknown:
            known = ", ".join(TRACE_DIR_PLACEHOLDERS)
            raise ValueError(f"unknown placeholder {', '.join(unknown)} (known: {known})")
        if not pattern.startswith("/"):
            raise ValueError(f"must be an absolute path, got {pattern!r}")
        if ".." in Path(pattern).parts:
            raise ValueError(f"must not contain '..', got {pattern!r}")
        return pattern

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        assert isinstance(init_settings, InitSettingsSource)
        system = SystemConfigSource(settings_cls, init_settings.init_kwargs)
        return init_settings, env_settings, system

    @property
    def bpf_object_file(self) -> Path:
        """The compiled BPF object the installer lays out: the daemon never runs clang."""
        return InstallLayout(self.install_prefix).bpf_object

    @classmethod
    def env_name(cls, field: str) -> str:
        """The environment variable (and system configuration key) of a field."""
        return ENV_PREFIX + field.upper()

    def as_environment(self, *, policy: bool = False) -> dict[str, str]:
        """The installation-wide settings as ``DATACRUMBS_*`` variables.

        ``user`` (per job) and ``hostname`` (per node) are left out: an installation shared by
        many nodes must not pin one job's user or one node's name. The signer's policy (``hot
        functions``) only with ``policy``: it is the system configuration's, read by the signer
        and the configurator from there, not a variable users' shells need.
        """
        return {
            self.env_name(name): str(value)
            for name, value in self.model_dump().items()
            if name not in PER_RUN_FIELDS
            and value is not None
            and (policy or name not in POLICY_FIELDS)
        }


class SystemConfigSource(PydanticBaseSettingsSource):
    """Values from the installed system configuration SQLite, found from the prefix.

    The prefix, data directory and install user that locate the file come from the explicit
    arguments, then the environment, then the defaults — the file cannot relocate itself.
    """

    def __init__(self, settings_cls: type[BaseSettings], init_kwargs: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._init_kwargs = init_kwargs
        self.path: Path | None = None

    def _locator(self, field: str) -> str | None:
        value = self._init_kwargs.get(field) or os.environ.get(Settings.env_name(field))
        return str(value) if value else None

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        raise NotImplementedError  # __call__ reads the whole table at once

    def __call__(self) -> dict[str, Any]:
        prefix = Path(self._locator("install_prefix") or running_prefix() or DEFAULT_PREFIX)
        data_dir = Path(self._locator("data_dir") or prefix / "share/datacrumbs/data")
        if not data_dir.is_absolute() or not data_dir.is_dir():
            return {}
        node = self._locator("hostname") or socket.gethostname()
        self.path = find_system_config(
            data_dir, self._locator("install_user"), self._locator("host"), node
        )
        if self.path is None:
            return {}
        table = read_table(self.path, "system_configuration")
        fields = self.settings_cls.model_fields
        return {
            name: table[key]
            for name in fields
            if (key := Settings.env_name(name)) in table and name not in PER_RUN_FIELDS
        }


def load_settings(**explicit: Any) -> Settings:
    """Resolve the settings, turning any invalid value into one :class:`DatacrumbsError` line."""
    try:
        return Settings(**{k: v for k, v in explicit.items() if v is not None})
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            if error["type"] == "default_factory_not_called":
                continue  # a consequence of another error, which is reported
            field = str(error["loc"][0]) if error["loc"] else "settings"
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{Settings.env_name(field)}: {message}")
        raise DatacrumbsError("; ".join(problems)) from None


def user_component(pattern: str) -> int | None:
    """Which component of the trace directory (0: the first below ``/``) is the job user's own:
    the first that holds ``%USER%``; None when the pattern has none."""
    parts = PurePosixPath(pattern).parts[1:]
    return next((i for i, part in enumerate(parts) if "%USER%" in part), None)


def expand_trace_dir(
    pattern: str, *, user: str, run_id: str, host: str, when: datetime | None = None
) -> Path:
    """The trace directory of one run: ``pattern`` with its placeholders filled in."""
    when = when or datetime.now()
    values = {
        "%YY%": f"{when.year:04d}",
        "%MM%": f"{when.month:02d}",
        "%DD%": f"{when.day:02d}",
        "%HH%": f"{when.hour:02d}",
        "%USER%": user,
        "%HOST%": host,
        "%RUN_ID%": run_id,
    }
    for name, value in values.items():
        if "/" in value or value in ("", ".", ".."):
            raise DatacrumbsError(f"DATACRUMBS_TRACE_DIR_PATTERN: {name} would be {value!r}")
    return Path(_PLACEHOLDER.sub(lambda m: values[m.group(0)], pattern))
