"""A site as real ones are: the prefix read-only and root-squashed, the users' scratch
root-squashed, the state on the node, several daemons sharing one status database.

NFS's ``root_squash`` is emulated with tests/rootsquash.py (this kernel has no NFS client): a
FUSE passthrough that performs every request as its caller, except root, who is ``nobody``.
Each test first shows the emulation bites (root cannot do there what the daemon needs), then
that the daemon does it anyway, as the right user, with exact results.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from daemon_support import Daemon, run_daemon, trace_events
from rootsquash import rootsquash_mount
from support import install, signed_document, signing_key_path

from datacrumbs.common.probe_file import write_probe_file
from datacrumbs.common.status_db import status_db_path

#: The job user here: not ``nobody``, whom root becomes on a squashed mount.
USER = "daemon"
K, S = 20, 4096
SYSCALLS = [{"type": 0, "name": "posix", "functions": ["openat", "write", "pread64", "close"]}]


@dataclass
class Site:
    prefix: Path  # mounted read-only, root-squashed
    scratch: Path  # the users' scratch, root-squashed
    scratch_source: Path  # what the scratch mount shows (the server's side)
    env: dict[str, str]

    def probe_file(self, **summary: Any) -> Path:
        """A probe file signed for USER, the user's own 0600 file in their scratch (root
        cannot read it through the mount)."""
        source = self.scratch_source / USER / "probes.json.gz"
        document = signed_document(signing_key_path(self.prefix), SYSCALLS, user=USER, **summary)
        write_probe_file(source, document)
        user = pwd.getpwnam(USER)
        os.chown(source, user.pw_uid, user.pw_gid)
        return self.scratch / USER / "probes.json.gz"


def _as_user(*argv: str) -> list[str]:
    user = pwd.getpwnam(USER)
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups", *argv]


@pytest.fixture
def site(prefix: Path, reachable_dir: Path) -> Iterator[Site]:
    if os.geteuid() != 0:
        pytest.skip("mounts filesystems and runs the daemon: needs root")
    install(prefix)
    exported = prefix.with_name(prefix.name + ".export")
    os.rename(prefix, exported)  # the installation's paths stay valid: it is mounted back
    scratch_source = reachable_dir / "scratch.export"
    home = scratch_source / USER
    home.mkdir(parents=True)
    scratch_source.chmod(0o755)
    user = pwd.getpwnam(USER)
    os.chown(home, user.pw_uid, user.pw_gid)
    home.chmod(0o700)
    try:
        with (
            rootsquash_mount(exported, prefix, read_only=True),
            rootsquash_mount(scratch_source, reachable_dir / "scratch") as scratch,
        ):
            base = {k: v for k, v in os.environ.items() if not k.startswith("DATACRUMBS_")}
            env = base | {
                "DATACRUMBS_INSTALL_PREFIX": str(prefix),
                "DATACRUMBS_USER": USER,
                # the node's own: what the installation recorded is in the read-only prefix
                "DATACRUMBS_STATE_DIR": str(reachable_dir / "node/var/lib/datacrumbs"),
                "DATACRUMBS_SERVER_RUN_DIR": str(reachable_dir / "node/run"),
                "DATACRUMBS_SERVER_RUN_ID_FILE": str(reachable_dir / "node/run/runid"),
                "DATACRUMBS_TRACE_DIR_PATTERN": f"{scratch}/%USER%/traces/%YY%",
            }
            yield Site(prefix, scratch, scratch_source, env)
    finally:
        prefix.rmdir()
        os.rename(exported, prefix)


def _refused_here(action: Any) -> None:
    with pytest.raises(PermissionError):
        action()


def test_the_daemon_traces_from_a_read_only_squashed_prefix_into_squashed_scratch(
    site: Site, file_io: Path
) -> None:
    # the emulation bites: root is nobody on both mounts
    _refused_here(lambda: (site.scratch / USER / "x").write_text("root"))
    _refused_here(lambda: list((site.scratch / USER).iterdir()))
    with pytest.raises(OSError, match="Read-only file system"):
        (site.prefix / "share/datacrumbs/data/x").write_text("root")
    probes = site.probe_file()
    _refused_here(probes.read_bytes)

    daemon = Daemon(probes, "site1", env=site.env)
    daemon.wait_ready("site1")
    data = site.scratch / USER / "data.bin"
    out = subprocess.run(_as_user(str(file_io), str(data), str(K), str(S)),
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    pid, fd = map(int, out.split())
    assert daemon.stop() == 0, daemon.stderr

    year = datetime.now().strftime("%Y")
    name = f"trace-{USER}-site1-{socket.gethostname()}-probes.pfw.gz"
    on_server = site.scratch_source / USER / "traces" / year / name
    info = on_server.stat()
    user = pwd.getpwnam(USER)
    assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (user.pw_uid, user.pw_gid, 0o600)
    traces_dir = (site.scratch_source / USER / "traces").stat()
    assert (traces_dir.st_uid, traces_dir.st_mode & 0o777) == (user.pw_uid, 0o700)
    events = trace_events(on_server)
    names = {e["args"]["value"]: e["args"]["name"] for e in events
             if e.get("ph") == "M" and e["name"] == "FH"}  # fmt: skip
    mine = [e for e in events if e.get("ph") == "X" and e["pid"] == pid
            and names.get(e["args"].get("fhash")) == str(data)]  # fmt: skip
    counts: dict[str, int] = {}
    for e in mine:
        counts[e["name"]] = counts.get(e["name"], 0) + 1
    assert counts == {"open": 1, "write": K, "pread": K, "close": 1}
    assert all(e["args"]["size"] == S and e["args"]["fd"] == fd
               for e in mine if e["name"] in ("write", "pread"))  # fmt: skip
    # the node's state is on the node, the install user's (root here)
    state = Path(site.env["DATACRUMBS_STATE_DIR"])
    db = status_db_path(state, "root", user.pw_uid, Path("probes.json.gz"))
    assert db.stat().st_mode & 0o777 == 0o600


def test_a_trace_directory_the_user_cannot_write_is_refused_before_ready(
    site: Site,
) -> None:
    locked = site.scratch_source / USER / "locked"
    locked.mkdir(mode=0o500)
    user = pwd.getpwnam(USER)
    os.chown(locked, user.pw_uid, user.pw_gid)
    env = site.env | {"DATACRUMBS_TRACE_DIR_PATTERN": f"{site.scratch}/%USER%/locked"}
    result = run_daemon(site.probe_file(), "site2", env=env)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert errors == [
        f"datacrumbs: error: trace directory {site.scratch}/{USER}/locked: {USER} cannot "
        "write it (Permission denied)"
    ]
    assert list(locked.iterdir()) == []
    assert not (Path(env["DATACRUMBS_SERVER_RUN_DIR"]) / "datacrumbs-site2.ready").exists()
    # and a directory above the user's that squashed root cannot enter
    closed = site.scratch_source / "closed"
    closed.mkdir(mode=0o700)
    env = site.env | {"DATACRUMBS_TRACE_DIR_PATTERN": f"{site.scratch}/closed/%USER%"}
    result = run_daemon(site.probe_file(), "site3", env=env)
    assert result.returncode == 2
    assert (
        f"datacrumbs: error: trace directory {site.scratch}/closed/{USER}: "
        f"{site.scratch}/closed: Permission denied"
    ) in result.stderr.splitlines()


def test_daemons_of_several_nodes_share_one_status_database_on_a_squashed_mount(
    site: Site,
) -> None:
    """One state directory on the squashed scratch, for every node: the daemons write it as
    the install user (not root: root is nobody there), with a rollback journal (no WAL on a
    network filesystem), all at once."""
    shared_source = site.scratch_source / "state"
    shared_source.mkdir(mode=0o755)
    user = pwd.getpwnam(USER)
    os.chown(shared_source, user.pw_uid, user.pw_gid)
    env = site.env | {
        "DATACRUMBS_STATE_DIR": str(site.scratch / "state"),
        "DATACRUMBS_INSTALL_USER": USER,
        # the installation's name (the nodes' own names differ): it was installed here
        "DATACRUMBS_HOST": socket.gethostname(),
    }
    probes = site.probe_file(install_user=USER)
    nodes = ["n1", "n2", "n3", "n4"]
    daemons = [Daemon(probes, node, env=env | {"DATACRUMBS_HOSTNAME": node}) for node in nodes]
    try:
        for node, daemon in zip(nodes, daemons, strict=True):
            daemon.wait_ready(node)
    finally:
        assert [d.stop() for d in daemons] == [0] * len(nodes), [d.stderr for d in daemons]
    (db,) = shared_source.glob("*.sqlite*")
    assert db == status_db_path(shared_source, USER, user.pw_uid, Path("probes.json.gz"))
    assert db.stat().st_uid == user.pw_uid
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        hosts = conn.execute("SELECT host FROM runtime_runs ORDER BY host").fetchall()
        functions = conn.execute(
            "SELECT function_name FROM runtime_probe_status WHERE status = 'successful' "
            "ORDER BY function_name"
        ).fetchall()
    assert hosts == [(node,) for node in nodes]
    assert functions == [("close",), ("openat",), ("pread64",), ("write",)]
    shutil.rmtree(shared_source)
