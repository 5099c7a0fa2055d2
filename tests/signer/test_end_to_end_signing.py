"""End to end as a normal user: configurator → signer → signed file → the daemon accepts it."""

from __future__ import annotations

import os
import pwd
import stat
from importlib.resources import files
from pathlib import Path

import pytest
from signer_support import NOBODY_UID, Node, run, write_file

from datacrumbs.common.status_db import Outcome, StatusDB, Target, status_db_path
from datacrumbs.daemon.probe_acceptance import accept_probe_file

CONFIG = """\
capture_probes:
  - name: posix_io
    probe: syscalls
    regex: "(read|write)"
    functions: [openat]
  - name: stdio
    probe: uprobe
    binary_path: "%LIBC%"
    regex: "f(open|close)"
  - name: again
    probe: syscalls
    functions: [read, close]
"""


def test_unprivileged_user_gets_a_file_the_daemon_accepts(node: Node, nobody_dir: Path) -> None:
    config = write_file(nobody_dir / "probes.yaml", CONFIG)
    output = nobody_dir / "probes.json.gz"
    result, pid = run([node.configurator, str(config), str(output)], node.env(), as_nobody=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{output}: 6 functions in 3 categories, signed for nobody")
    info = output.stat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (NOBODY_UID, 0o600)
    model = accept_probe_file(output, node.settings(), "nobody")
    assert [(c.name, c.functions) for c in model.categories] == [
        ("posix_io", ["openat", "read", "write"]),
        ("stdio", ["fclose", "fopen"]),
        ("again", ["close"]),  # read is already traced by posix_io
    ]
    assert model.summary.user == "nobody"
    assert model.summary.config_file_path == str(config)
    assert model.summary.probe_file_path == str(output)
    [line] = node.audit(pid)
    assert "PEER_UID=65534 " in line and "DECISION=signed FUNCTIONS=6 " in line
    assert f"PEER_EXE={node.launcher} " in line


def test_delivery_rules_reach_the_signed_file(node: Node, nobody_dir: Path) -> None:
    """A category's delivery and its functions' exceptions are signed with it (what the
    daemon's valve reads); an exception for a function the category does not trace is left
    out, with a note."""
    config = write_file(
        nobody_dir / "rules.yaml",
        "capture_probes:\n"
        "  - name: posix_data\n    probe: syscalls\n    regex: '(read|write)'\n"
        "    delivery: aggregate\n"
        "    function_delivery: {read: events, pwrite64: events}\n"
        "  - name: posix_meta\n    probe: syscalls\n    functions: [openat]\n",
    )
    output = nobody_dir / "rules.json.gz"
    result, _ = run([node.configurator, str(config), str(output)], node.env(), as_nobody=True)
    assert result.returncode == 0, result.stderr
    assert "probe 'posix_data' does not trace pwrite64" in result.stderr
    model = accept_probe_file(output, node.settings(), "nobody")
    data, meta = model.categories
    assert (data.delivery, data.function_delivery) == ("aggregate", {"read": "events"})
    assert (data.delivery_of("write"), data.delivery_of("read")) == ("aggregate", "events")
    assert (meta.delivery, meta.function_delivery) == ("valve", {})


@pytest.mark.parametrize("example", ["posix-io.yaml", "libc-stdio.yaml"])
def test_shipped_example_is_signed_and_accepted(node: Node, nobody_dir: Path, example: str) -> None:
    config = write_file(
        nobody_dir / example, files("datacrumbs").joinpath("examples", example).read_text()
    )
    output = nobody_dir / "example.json.gz"
    result, _ = run([node.configurator, str(config), str(output)], node.env(), as_nobody=True)
    assert result.returncode == 0, result.stderr
    model = accept_probe_file(output, node.settings(), "nobody")
    assert len(model.categories) == (5 if example == "posix-io.yaml" else 2)
    assert "read" in {f for c in model.categories for f in c.functions}


def test_daemon_refuses_the_file_for_another_user(node: Node, nobody_dir: Path) -> None:
    config = write_file(nobody_dir / "probes.yaml", CONFIG)
    output = nobody_dir / "probes.json.gz"
    result, _ = run([node.configurator, str(config), str(output)], node.env(), as_nobody=True)
    assert result.returncode == 0, result.stderr
    # Handed to root's own job, the file is refused for its owner first, then for its content.
    with pytest.raises(Exception, match=f"belongs to uid {NOBODY_UID}, not to the job user"):
        accept_probe_file(output, node.settings(), "root")
    os.chown(output, 0, 0)
    with pytest.raises(Exception, match="made for user 'nobody', this daemon runs for 'root'"):
        accept_probe_file(output, node.settings(), "root")


def _mark_failing(node: Node, output: Path, function: str, user: str) -> Path:
    settings = node.settings()
    db = status_db_path(
        settings.state_dir, settings.install_user, pwd.getpwnam(user).pw_uid, output
    )
    StatusDB(db).record([Outcome(Target("syscalls", "", function), False, "no tracepoint")])
    return db


def test_targets_known_to_fail_are_dropped(node: Node, nobody_dir: Path) -> None:
    # Run as root, who (as the install user) can read the node's status database.
    config = write_file(nobody_dir / "probes.yaml", CONFIG)
    output = nobody_dir / "root-probes.json.gz"
    db = _mark_failing(node, output, "write", "root")
    try:
        result, _ = run([str(node.launcher), str(config), str(output)], node.env())
        assert result.returncode == 0, result.stderr
        model = accept_probe_file(output, node.settings(), "root")
        assert model.categories[0].functions == ["openat", "read"]
    finally:
        db.unlink()


def test_unreadable_status_database_is_noted_and_targets_kept(node: Node, nobody_dir: Path) -> None:
    config = write_file(nobody_dir / "probes.yaml", CONFIG)
    output = nobody_dir / "probes.json.gz"
    db = _mark_failing(node, output, "write", "nobody")
    try:
        result, _ = run([node.configurator, str(config), str(output)], node.env(), as_nobody=True)
        assert result.returncode == 0, result.stderr
        assert result.stderr == (
            f"note: status database {db} is not readable by you; targets known to fail are "
            "not dropped here (the daemon still skips them)\n"
        )
        model = accept_probe_file(output, node.settings(), "nobody")
        assert model.categories[0].functions == ["openat", "read", "write"]
    finally:
        db.unlink()
