"""The runtime status DB records outcomes, skips known-bad targets, and clears them on success."""

from __future__ import annotations

import json
import shutil
import sqlite3
import stat
import subprocess
from pathlib import Path

from support import command

from datacrumbs.common.status_db import Outcome, StatusDB, Target, status_db_path

OPENAT = Target("syscalls", "", "openat")
NOPE = Target("syscalls", "", "no_such_syscall")


def test_path_follows_the_probe_file_name(tmp_path: Path) -> None:
    assert status_db_path(tmp_path, "dc", "alice", Path("/x/posix-io.json.gz")) == (
        tmp_path / "probes-runtime-status-dc-alice-posix-io.sqlite"
    )


def test_outcomes_are_recorded_and_failures_skipped(tmp_path: Path) -> None:
    db = StatusDB(tmp_path / "status.sqlite", owner_uid=65534, owner_gid=65534)
    db.record([Outcome(OPENAT, True), Outcome(NOPE, False, "no tracepoint")])
    info = db.path.stat()
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert (info.st_uid, info.st_gid) == (65534, 65534)
    assert db.known_invalid([OPENAT, NOPE]) == {NOPE: "no tracepoint"}
    with sqlite3.connect(db.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_success_clears_a_stale_failure(tmp_path: Path) -> None:
    db = StatusDB(tmp_path / "status.sqlite")
    db.record([Outcome(NOPE, False, "no tracepoint")])
    db.record([Outcome(NOPE, True)])
    assert db.known_invalid([NOPE]) == {}
    assert [r["function_name"] for r in db.rows("successful")] == ["no_such_syscall"]
    assert db.rows("invalid") == []


def test_failure_is_retried_once_the_binary_changes(tmp_path: Path) -> None:
    binary = tmp_path / "libx.so"
    target = Target("binary", str(binary), "x_init")
    db = StatusDB(tmp_path / "status.sqlite")
    db.record([Outcome(target, False, f"{binary}: no such file")])
    assert target in db.known_invalid([target])  # still missing: skip
    shutil.copy("/bin/true", binary)
    assert db.known_invalid([target]) == {}  # it exists now: try again


def test_extract_lists_valid_and_invalid_probes(tmp_path: Path) -> None:
    db = StatusDB(tmp_path / "status.sqlite")
    db.record([Outcome(OPENAT, True), Outcome(NOPE, False, "no tracepoint")])
    for section, name, reason in (
        ("valid-probes", "openat", ""),
        ("invalid-probes", "no_such_syscall", "no tracepoint"),
    ):
        result = subprocess.run(
            [command("datacrumbs_sqlite_extract"), str(db.path), "--section", section],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr
        rows = json.loads(result.stdout)
        assert [(r["probe_group"], r["function_name"], r["reason"]) for r in rows] == [
            ("syscalls", name, reason)
        ]
