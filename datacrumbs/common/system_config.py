"""The installed system configuration SQLite: ``system-probe-<install-user>-<host>.sqlite``.

The installer writes it once per host; the daemon and the other commands open it read-only and
let it override built-in defaults (the environment overrides it in turn). Two key/value tables,
as upstream DataCrumbs has them: ``system_configuration`` (settings, keyed by their
``DATACRUMBS_*`` names) and ``summary`` (facts about the installation).
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from datacrumbs.common.errors import DatacrumbsError

__all__ = [
    "find_system_config",
    "read_table",
    "system_config_path",
    "write_system_config",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS system_configuration (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS summary (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def system_config_path(data_dir: Path, install_user: str, host: str) -> Path:
    """Where the installer puts the system configuration of ``install_user`` for the
    installation ``host`` (``DATACRUMBS_HOST``)."""
    return data_dir / f"system-probe-{install_user}-{host}.sqlite"


def find_system_config(
    data_dir: Path, install_user: str | None, host: str | None, node: str
) -> Path | None:
    """The system configuration that applies here, or None when the prefix has none.

    With the install user and the installation's name (``host``) known the name is exact.
    Otherwise the one file of the data directory that fits what is known is taken: a prefix
    shared by the nodes of a cluster holds one, whatever the node's own name. Where several
    fit, the one named for this ``node`` (a prefix installed per node), else an error rather
    than a guess.
    """
    if install_user and host:
        path = system_config_path(data_dir, install_user, host)
        return path if path.is_file() else None
    head = f"system-probe-{install_user}-" if install_user else "system-probe-"
    tail = f"-{host}.sqlite" if host else ".sqlite"
    candidates = sorted(
        p for p in data_dir.glob("system-probe-*.sqlite")
        if p.name.startswith(head) and p.name.endswith(tail)
    )  # fmt: skip
    if len(candidates) > 1:
        candidates = [p for p in candidates if p.name.endswith(f"-{node}.sqlite")] or candidates
    if len(candidates) > 1:
        names = ", ".join(p.name for p in candidates)
        raise DatacrumbsError(
            f"{data_dir} holds several system configurations ({names}); set DATACRUMBS_HOST "
            "and DATACRUMBS_INSTALL_USER to choose one"
        )
    return candidates[0] if candidates else None


def read_table(path: Path, table: str) -> dict[str, str]:
    """Read one key/value table, opening the database read-only (it may be root's, 0644)."""
    if not path.is_file():
        raise DatacrumbsError(f"{path}: no such file")
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            rows = db.execute(f"SELECT key, value FROM {table} ORDER BY key").fetchall()
    except sqlite3.DatabaseError as exc:
        raise DatacrumbsError(f"{path}: cannot read table {table}: {exc}") from None
    return dict(rows)


def write_system_config(path: Path, config: dict[str, str], summary: dict[str, str]) -> bool:
    """Make the file hold exactly ``config``, and ``summary`` over its existing rows.

    Returns whether anything was written. The file is left untouched (same bytes, same mtime)
    when it already says the same, so re-running the installer changes nothing.
    """
    if path.is_file():
        current_summary = read_table(path, "summary")
        same_summary = all(current_summary.get(k) == v for k, v in summary.items())
        if same_summary and read_table(path, "system_configuration") == config:
            return False
    # closing() closes; the inner ``with`` commits the transaction (or rolls it back).
    with closing(sqlite3.connect(path)) as db, db:
        db.executescript(_SCHEMA)
        db.execute("DELETE FROM system_configuration")
        db.executemany("INSERT INTO system_configuration VALUES (?, ?)", sorted(config.items()))
        db.executemany("INSERT OR REPLACE INTO summary VALUES (?, ?)", sorted(summary.items()))
    return True
