"""Settings resolve environment over system SQLite over defaults; bad values are one line."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
from datetime import datetime
from pathlib import Path

import pytest
from support import command

from datacrumbs.common.errors import DatacrumbsError
from datacrumbs.common.settings import expand_trace_dir, load_settings

HOST = socket.gethostname()


def _system_db(prefix: Path) -> Path:
    return prefix / f"share/datacrumbs/data/system-probe-root-{HOST}.sqlite"


def _store(prefix: Path, key: str, value: str) -> None:
    with sqlite3.connect(_system_db(prefix)) as db:
        db.execute("INSERT OR REPLACE INTO system_configuration VALUES (?, ?)", (key, value))


def test_defaults_follow_the_prefix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What every node reads is in the prefix; what a node writes, and the private key, are
    the node's own."""
    monkeypatch.setenv("DATACRUMBS_INSTALL_PREFIX", str(tmp_path))
    s = load_settings()
    assert s.install_prefix == tmp_path
    assert s.data_dir == tmp_path / "share/datacrumbs/data"
    assert s.verify_keys_file == tmp_path / "share/datacrumbs/data/probe-verify-keys.json"
    assert s.signing_key_file == Path("/etc/datacrumbs/probe-signing-key.pem")
    assert s.state_dir == Path("/var/lib/datacrumbs")
    assert s.trace_dir_pattern == f"{tmp_path}/var/datacrumbs/traces/%USER%/%YY%/%MM%/%DD%"
    assert s.log_dir == Path("/var/log/datacrumbs")
    assert s.server_run_dir == Path("/run/datacrumbs")
    assert s.server_run_id_file == Path("/run/datacrumbs/datacrumbs.runid")
    assert s.sign_probes_socket_path == Path("/run/datacrumbs/datacrumbs_sign_probes.sock")
    assert s.install_user == "root"
    assert s.user is None
    assert s.job_id_var == "SLURM_JOB_ID"
    assert s.hostname == HOST


def test_system_sqlite_overrides_defaults(installed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _store(installed, "DATACRUMBS_SERVER_RUN_DIR", "/run/dc-site")
    _store(installed, "DATACRUMBS_JOB_ID_VAR", "FLUX_JOB_ID")
    monkeypatch.setenv("DATACRUMBS_INSTALL_PREFIX", str(installed))
    s = load_settings()
    assert s.job_id_var == "FLUX_JOB_ID"
    assert s.server_run_dir == Path("/run/dc-site")
    # The installer stored the run-id file derived from the old run dir; stored wins.
    assert s.server_run_id_file == Path("/run/datacrumbs/datacrumbs.runid")


def test_environment_overrides_system_sqlite(
    installed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _store(installed, "DATACRUMBS_JOB_ID_VAR", "FLUX_JOB_ID")
    monkeypatch.setenv("DATACRUMBS_INSTALL_PREFIX", str(installed))
    monkeypatch.setenv("DATACRUMBS_JOB_ID_VAR", "PBS_JOBID")
    assert load_settings().job_id_var == "PBS_JOBID"


def test_derived_default_uses_the_overridden_base(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATACRUMBS_INSTALL_PREFIX", str(tmp_path))
    monkeypatch.setenv("DATACRUMBS_SERVER_RUN_DIR", "/run/other")
    s = load_settings()
    assert s.server_run_id_file == Path("/run/other/datacrumbs.runid")
    assert s.sign_probes_socket_path == Path("/run/other/datacrumbs_sign_probes.sock")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "DATACRUMBS_LOG_DIR",
            "var/log",
            "DATACRUMBS_LOG_DIR: must be an absolute path, got 'var/log'",
        ),
        (
            "DATACRUMBS_TRACE_DIR_PATTERN",
            "/t/%YEAR%/%DD%",
            "DATACRUMBS_TRACE_DIR_PATTERN: unknown placeholder %YEAR% (known: %YY%, %MM%, %DD%, "
            "%HH%, %USER%, %HOST%, %RUN_ID%)",
        ),
        (
            "DATACRUMBS_SERVER_RUN_DIR",
            "/run/../etc",
            "DATACRUMBS_SERVER_RUN_DIR: must not contain '..', got '/run/../etc'",
        ),
        (
            "DATACRUMBS_JOB_ID_VAR",
            "SLURM-JOB",
            "DATACRUMBS_JOB_ID_VAR: 'SLURM-JOB' is not a valid environment variable name",
        ),
        ("DATACRUMBS_USER", "bad user", "DATACRUMBS_USER: 'bad user' is not a valid user name"),
        ("DATACRUMBS_USER", "caf\udcff", "DATACRUMBS_USER: is not valid UTF-8"),
    ],
)
def test_bad_value_is_one_line_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(DatacrumbsError) as caught:
        load_settings()
    assert str(caught.value) == message


def test_bad_value_stored_in_system_sqlite_names_the_setting(
    installed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _store(installed, "DATACRUMBS_STATE_DIR", "state")
    monkeypatch.setenv("DATACRUMBS_INSTALL_PREFIX", str(installed))
    with pytest.raises(DatacrumbsError, match=r"^DATACRUMBS_STATE_DIR: must be an abs"):
        load_settings()


def test_non_utf8_environment_is_one_line_from_a_command(tmp_path: Path) -> None:
    env = {k.encode(): v.encode() for k, v in os.environ.items() if not k.startswith("DATACRUMBS_")}
    env[b"DATACRUMBS_TRACE_DIR_PATTERN"] = b"/traces/\xff\xfe/%YY%"
    result = subprocess.run(
        [command("datacrumbs_install"), "--prefix", str(tmp_path / "p")],
        capture_output=True,
        env=env,
    )
    assert result.returncode == 2
    assert result.stderr == (
        b"datacrumbs_install: error: DATACRUMBS_TRACE_DIR_PATTERN: is not valid UTF-8\n"
    )


def test_trace_dir_placeholders_expand() -> None:
    when = datetime(2026, 3, 7, 9, 30)
    path = expand_trace_dir(
        "/t/%USER%/%YY%/%MM%/%DD%/%HH%-%HOST%-%RUN_ID%",
        user="alice",
        run_id="job42",
        host="node1",
        when=when,
    )
    assert path == Path("/t/alice/2026/03/07/09-node1-job42")


def test_trace_dir_refuses_a_value_that_would_add_a_directory() -> None:
    with pytest.raises(DatacrumbsError, match=r"%RUN_ID% would be 'a/b'"):
        expand_trace_dir("/t/%RUN_ID%", user="alice", run_id="a/b", host="n")
