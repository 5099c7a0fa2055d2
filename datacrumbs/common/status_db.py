"""The runtime probe status database: which targets attached on this node, and which failed,
and in which mode each run traced (``runtime_runs``).

``<state-dir>/probes-runtime-status-<install-user>-<uid>-<config-name>.sqlite``, where uid is
the job user's and config-name the probe file's name without ``.json.gz`` (or ``.json``); in
the two free-form names ``%`` and ``-`` are escaped (``%25``, ``%2D``), so that no two users'
files share a name (user ``rt3`` with config ``eve-probes`` and user ``rt3-eve`` with
``probes`` did, when it was keyed by user name). One database per job user: upstream keys it
by the probe file's name alone, so one user's failing targets (a binary they made fail on
purpose) were skipped silently for every other user whose probe file had the same name.
Upstream DataCrumbs' table and its groups are kept (``syscalls``/``kprobes``/``binary``/
``usdt``; scope "" for kernel kinds, the binary path for uprobes, ``binary\\nprovider`` for
USDT), with three columns added: the failure ``reason``, when it was ``updated_at``, and a
``fingerprint`` of what the outcome depended on (the kernel release, or the binary's device,
inode, size and mtime). Only what the target itself did is recorded: not a detach for the hit
limit (another user's load can cause it) and not a target the document names twice. A target
marked invalid is skipped only while its fingerprint still matches — after a kernel upgrade or a
rebuilt binary it is tried again, and a success clears the mark.

Mode 0600, owned by the install user: the daemon acts on it as that user (its filesystem
identity, :mod:`fs_identity`), so a state directory on a root-squashed export works when the
install user is not root. A 5 s busy timeout, and all outcomes of one start in one transaction,
so that the daemons of one node, or of every node sharing the file, never corrupt it. WAL where
the file is local (readers never wait for a writer); a rollback journal on a network filesystem
(checked with ``statfs``), where WAL's shared-memory index cannot work across hosts.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from datacrumbs.common.errors import DatacrumbsError
from datacrumbs.common.filesystems import network_filesystem
from datacrumbs.common.fs_identity import Identity, acting_as
from datacrumbs.common.probe_file import config_name
from datacrumbs.common.probes import ProbeType

__all__ = ["Outcome", "StatusDB", "Target", "fingerprint", "status_db_path", "target_of"]

STATUS_DB_MODE = 0o600
_SCHEMA = """
CREATE TABLE IF NOT EXISTS runtime_probe_status (
    probe_group TEXT NOT NULL,
    scope_key TEXT NOT NULL,
    function_name TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('invalid', 'successful')),
    reason TEXT NOT NULL DEFAULT '',
    fingerprint TEXT NOT NULL DEFAULT '',
    updated_at TEXT NOT NULL,
    PRIMARY KEY (probe_group, scope_key, function_name, status)
);
CREATE TABLE IF NOT EXISTS runtime_runs (
    run_id TEXT NOT NULL,
    host TEXT NOT NULL,
    mode TEXT NOT NULL CHECK (mode IN ('trace', 'profile')),
    profile_interval_ms INTEGER,
    trace_file TEXT NOT NULL,
    started_at TEXT NOT NULL,
    PRIMARY KEY (run_id, host)
);
CREATE TABLE IF NOT EXISTS runtime_run_results (
    run_id TEXT NOT NULL,
    host TEXT NOT NULL,
    events INTEGER NOT NULL,
    lost_events INTEGER NOT NULL,
    unwritten_events INTEGER NOT NULL,
    write_error TEXT NOT NULL DEFAULT '',
    trace_complete INTEGER NOT NULL,
    finished_at TEXT NOT NULL,
    PRIMARY KEY (run_id, host)
);
"""


@dataclass(frozen=True, order=True)
class Target:
    """One attachable thing: a syscall, a kernel function, or a function in one binary."""

    probe_group: str
    scope_key: str
    function_name: str


_GROUPS = {
    ProbeType.SYSCALLS: "syscalls",
    ProbeType.KPROBE: "kprobes",
    ProbeType.UPROBE: "binary",
    ProbeType.USDT: "usdt",
    ProbeType.CUSTOM: "custom",
}


def target_of(
    kind: ProbeType, binary_path: str | None, provider: str | None, function: str
) -> Target:
    """The key of one function of one probe (upstream's groups and scopes): the configurator
    that skips known-bad targets and the daemon that records them use this one function."""
    if kind is ProbeType.UPROBE:
        scope = binary_path or ""
    elif kind is ProbeType.USDT:
        scope = f"{binary_path or ''}\n{provider or ''}"
    else:
        scope = ""
    return Target(_GROUPS[kind], scope, function)


@dataclass(frozen=True)
class Outcome:
    """What happened when a target was attached."""

    target: Target
    attached: bool
    reason: str = ""


def _escaped(name: str) -> str:
    return name.replace("%", "%25").replace("-", "%2D")


def status_db_path(state_dir: Path, install_user: str, uid: int, probe_file: Path) -> Path:
    """Where the status of user ``uid``'s ``probe_file`` targets is kept (owned by
    ``install_user``): a name no other user's or other config's file can have."""
    config = _escaped(config_name(probe_file))
    return state_dir / f"probes-runtime-status-{_escaped(install_user)}-{uid}-{config}.sqlite"


def fingerprint(target: Target) -> str:
    """What a target's outcome depends on: the binary as it is now, or the running kernel."""
    return _scope_fingerprint(target.probe_group, target.scope_key)


def _scope_fingerprint(probe_group: str, scope_key: str) -> str:
    if probe_group in ("binary", "usdt"):
        binary = scope_key.split("\n", 1)[0]
        try:
            st = os.stat(binary)
        except OSError:
            return "missing"
        return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"
    return os.uname().release


class _Fingerprints(dict[tuple[str, str], str]):
    """Fingerprints computed once per scope: thousands of functions share one binary."""

    def __call__(self, target: Target) -> str:
        scope = (target.probe_group, target.scope_key)
        if scope not in self:
            self[scope] = _scope_fingerprint(*scope)
        return self[scope]


#: How long the set-up waits for other daemons that open the database at the same time.
_SET_UP_SECONDS = 5.0


def _set_up(db: sqlite3.Connection, journal: str) -> None:
    """The journal mode and the tables. The daemons of one job start at the same moment on
    every node, and the first ones create the file together: changing the journal mode fails at
    once with "database is locked" while another connection holds it (no busy handler waits for
    that), so it is tried again for a while; the tables are made in a write transaction taken at
    once (``BEGIN IMMEDIATE``, which the busy timeout does wait for)."""
    deadline = time.monotonic() + _SET_UP_SECONDS
    while True:
        try:
            db.execute(f"PRAGMA journal_mode = {journal}")
            db.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute("COMMIT")
            return
        except sqlite3.OperationalError as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class StatusDB:
    """One status database, opened for the length of a ``with`` block."""

    def __init__(self, path: Path, *, identity: Identity | None = None) -> None:
        """``identity``: who the file is created and written as (None: as this process)."""
        self.path = path
        self.identity = identity

    def _create(self) -> None:
        try:
            fd = os.open(
                self.path,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                STATUS_DB_MODE,
            )
        except FileExistsError:
            return
        os.close(fd)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with acting_as(self.identity):
            try:
                self._create()
                journal = "DELETE" if network_filesystem(self.path.parent) else "WAL"
                db = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
            except (OSError, sqlite3.Error) as exc:
                raise DatacrumbsError(f"status database {self.path}: {exc}") from None
            with closing(db):
                try:
                    db.execute("PRAGMA busy_timeout = 5000")
                    _set_up(db, journal)
                    yield db
                except sqlite3.Error as exc:  # a corrupt file ("file is not a database"), ENOSPC
                    raise DatacrumbsError(f"status database {self.path}: {exc}") from None

    def known_invalid(self, targets: Iterable[Target]) -> dict[Target, str]:
        """The targets marked invalid whose fingerprint still holds, with the recorded reason."""
        wanted = set(targets)
        with self._connect() as db:
            rows = db.execute(
                "SELECT probe_group, scope_key, function_name, reason, fingerprint "
                "FROM runtime_probe_status WHERE status = 'invalid'"
            ).fetchall()
        now = _Fingerprints()
        found = {}
        for group, scope, function, reason, recorded in rows:
            target = Target(group, scope, function)
            if target in wanted and recorded == now(target):
                found[target] = reason
        return found

    def record(self, outcomes: Iterable[Outcome]) -> None:
        """Record every outcome of one start in one transaction."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        fingerprints = _Fingerprints()
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                for outcome in outcomes:
                    t = outcome.target
                    key = (t.probe_group, t.scope_key, t.function_name)
                    stale = "invalid" if outcome.attached else "successful"
                    status = "successful" if outcome.attached else "invalid"
                    db.execute(
                        "DELETE FROM runtime_probe_status WHERE probe_group = ? AND "
                        "scope_key = ? AND function_name = ? AND status = ?",
                        (*key, stale),
                    )
                    db.execute(
                        "INSERT OR REPLACE INTO runtime_probe_status VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (*key, status, outcome.reason, fingerprints(t), now),
                    )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def record_run(
        self, run_id: str, host: str, mode: str, interval_ms: int | None, trace_file: str
    ) -> None:
        """Which mode a run traced in (and profile mode's interval), and its trace: a later
        run with the same run-id on this host replaces it."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")  # the write lock first: the busy timeout applies
            db.execute(
                "INSERT OR REPLACE INTO runtime_runs VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, host, mode, interval_ms, trace_file, now),
            )
            db.execute("COMMIT")

    def record_run_result(
        self,
        run_id: str,
        host: str,
        *,
        events: int,
        lost: int,
        unwritten: int,
        write_error: str | None,
        complete: bool,
    ) -> None:
        """How a run ended: events written, lost in all (``unwritten``: of those, the ones the
        trace's disk refused), the first write error, and whether the trace is complete —
        where the journal and this database say it when the trace itself could not."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                "INSERT OR REPLACE INTO runtime_run_results VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, host, events, lost, unwritten, write_error or "", int(complete), now),
            )
            db.execute("COMMIT")

    def runs(self) -> list[dict[str, Any]]:
        """Every run recorded, oldest first, with how it ended where it did (for
        ``datacrumbs_sqlite_extract``); in a database of an older version, without the tables
        it lacks."""
        queries = [
            "SELECT r.*, e.events, e.lost_events, e.unwritten_events, e.write_error, "
            "e.trace_complete, e.finished_at FROM runtime_runs r LEFT JOIN "
            "runtime_run_results e USING (run_id, host) ORDER BY r.started_at",
            "SELECT * FROM runtime_runs ORDER BY started_at",
        ]
        for query in queries:
            try:
                return self._read("runtime_runs", query)
            except DatacrumbsError as exc:
                if "no such table" not in str(exc):
                    raise
        return []

    def rows(self, status: str) -> list[dict[str, Any]]:
        """Every row of one status, as dicts (for ``datacrumbs_sqlite_extract``)."""
        return self._read(
            "runtime_probe_status",
            "SELECT probe_group, scope_key, function_name, reason, fingerprint, updated_at "
            "FROM runtime_probe_status WHERE status = ? "
            "ORDER BY probe_group, scope_key, function_name",
            (status,),
        )

    def _read(self, table: str, query: str, args: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        """A query's rows, the database opened read-only (a reader never creates it)."""
        if not self.path.is_file():
            raise DatacrumbsError(f"{self.path}: no such file")
        try:
            with closing(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)) as db:
                db.row_factory = sqlite3.Row
                return [dict(row) for row in db.execute(query, args)]
        except sqlite3.DatabaseError as exc:
            raise DatacrumbsError(f"{self.path}: cannot read {table}: {exc}") from None
