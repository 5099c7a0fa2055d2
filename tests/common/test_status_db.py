"""The runtime status DB records outcomes, skips known-bad targets, and clears them on success."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import sqlite3
import stat
import subprocess
import time
from pathlib import Path

import pytest
from support import command

from datacrumbs.common.errors import DatacrumbsError
from datacrumbs.common.fs_identity import Identity
from datacrumbs.common.status_db import Outcome, StatusDB, Target, status_db_path

OPENAT = Target("syscalls", "", "openat")
NOPE = Target("syscalls", "", "no_such_syscall")


def test_path_follows_the_probe_file_name(tmp_path: Path) -> None:
    assert status_db_path(tmp_path, "dc", 1000, Path("/x/posix-io.json.gz")) == (
        tmp_path / "probes-runtime-status-dc-1000-posix%2Dio.sqlite"
    )


def test_no_two_users_or_configs_share_a_file(tmp_path: Path) -> None:
    """Keyed by uid, the free-form names escaped (issue 25, N3): user rt3 (uid 1001) with
    config eve-probes and user rt3-eve (uid 1002) with config probes no longer meet, nor do two
    install users and configs that join into the same text."""
    rt3 = status_db_path(tmp_path, "root", 1001, Path("eve-probes.json.gz"))
    rt3_eve = status_db_path(tmp_path, "root", 1002, Path("probes.json.gz"))
    assert rt3 != rt3_eve
    joined = {
        status_db_path(tmp_path, "a-1", 2, Path("c.json.gz")),
        status_db_path(tmp_path, "a", 1, Path("2-c.json.gz")),
        status_db_path(tmp_path, "a%2D1", 2, Path("c.json.gz")),
    }
    assert len(joined) == 3


def test_outcomes_are_recorded_and_failures_skipped(reachable_dir: Path) -> None:
    """Created and written as its identity (the install user): owner and mode are theirs,
    in a directory only they can write (root acting as them, not as root)."""
    if os.geteuid() != 0:
        pytest.skip("acting as another user needs root")
    state = reachable_dir / "state"
    state.mkdir(mode=0o700)
    os.chown(state, 65534, 65534)
    nobody = Identity(65534, 65534, (65534,), "nobody")
    db = StatusDB(state / "status.sqlite", identity=nobody)
    db.record([Outcome(OPENAT, True), Outcome(NOPE, False, "no tracepoint")])
    info = db.path.stat()
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert (info.st_uid, info.st_gid) == (65534, 65534)
    assert {p.stat().st_uid for p in state.iterdir()} == {65534}
    assert db.known_invalid([OPENAT, NOPE]) == {NOPE: "no tracepoint"}
    with sqlite3.connect(db.path) as conn:  # a local filesystem: WAL
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    state.chmod(0o500)  # no longer writable by its owner: root acting as them cannot either
    (state / "status.sqlite").unlink()
    with pytest.raises(DatacrumbsError, match="Permission denied"):
        db.record([Outcome(OPENAT, True)])


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


def _open_at(path: Path, start: float, host: str) -> str | None:
    """In its own process: wait for ``start``, then what a starting daemon does to the status
    database; the error, if any."""
    while time.time() < start:
        pass
    try:
        db = StatusDB(path)
        db.known_invalid([OPENAT])
        db.record([Outcome(OPENAT, True)])
        db.record_run("job1", host, "trace", None, "trace.pfw.gz")
    except DatacrumbsError as exc:
        return str(exc)
    return None


def test_daemons_that_open_a_new_database_at_once_all_succeed(tmp_path: Path) -> None:
    """A job's daemons start at the same moment on every node of a shared installation and
    create its status database together: switching a new file to WAL used to fail at once with
    "database is locked" (13 of 40 rounds of 12 failed one daemon or more)."""
    errors = []
    with multiprocessing.get_context("spawn").Pool(12) as pool:
        for round_ in range(10):
            path = tmp_path / f"status-{round_}.sqlite"
            start = time.time() + 1.0
            results = pool.starmap(_open_at, [(path, start, f"node{i}") for i in range(12)])
            errors += [r for r in results if r]
            assert len(StatusDB(path).runs()) == 12
    assert errors == []
