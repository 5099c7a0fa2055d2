"""The run's trace location step on its own: the directory walked and made as the job user,
handed over by root only in root's own tree, refused in one line where the user cannot write,
and an earlier trace moved aside as the user."""

from __future__ import annotations

import os
import pwd
import stat
from datetime import datetime
from pathlib import Path

import pytest
from rootsquash import rootsquash_mount

from datacrumbs.common.errors import DatacrumbsError
from datacrumbs.common.fd_paths import _make
from datacrumbs.common.fs_identity import Identity, acting_as
from datacrumbs.common.settings import load_settings
from datacrumbs.daemon.trace_location import open_trace_location

NOBODY = pwd.getpwnam("nobody")
OTHER = pwd.getpwnam("daemon")
PROBES = Path("/x/probes.json.gz")


@pytest.fixture(autouse=True)
def _root() -> None:
    if os.geteuid() != 0:
        pytest.skip("acts as another user: needs root")


def _open(pattern: str, run_id: str = "r1") -> tuple[int, Path]:
    settings = load_settings(trace_dir_pattern=pattern, hostname="node7")
    location = open_trace_location(settings, Identity.of(NOBODY), run_id, PROBES)
    location.close()
    return location.dir_fd, location.path


def _owner(path: Path) -> tuple[int, int]:
    info = path.lstat()
    return info.st_uid, stat.S_IMODE(info.st_mode)


def test_root_hands_over_the_user_s_directory_only_in_its_own_tree(reachable_dir: Path) -> None:
    traces = reachable_dir / "traces"  # root's, 0755: the user cannot create in it
    traces.mkdir(mode=0o755)
    _, path = _open(f"{traces}/%USER%/%YY%")
    year = datetime.now().strftime("%Y")
    assert path == traces / "nobody" / year / "trace-nobody-r1-node7-probes.pfw.gz"
    assert _owner(traces / "nobody") == (NOBODY.pw_uid, 0o700)  # made by root, handed over
    assert _owner(traces / "nobody" / year) == (NOBODY.pw_uid, 0o700)  # made by the user


def test_the_user_makes_their_own_directory_where_they_may(reachable_dir: Path) -> None:
    shared = reachable_dir / "scratch"
    shared.mkdir()
    shared.chmod(0o1777)  # as /tmp or a site's scratch root
    _, path = _open(f"{shared}/%USER%/dc")
    assert path.parent == shared / "nobody" / "dc"
    assert _owner(shared / "nobody") == (NOBODY.pw_uid, 0o700)


def test_a_directory_squatted_by_another_user_is_refused(reachable_dir: Path) -> None:
    """Another user made ``scratch/nobody`` first: nobody's trace directory is not made in
    it — not as nobody (who may not), and not by root for them."""
    shared = reachable_dir / "scratch"
    shared.mkdir()
    shared.chmod(0o1777)
    squat = shared / "nobody"
    squat.mkdir(mode=0o755)
    os.chown(squat, OTHER.pw_uid, OTHER.pw_gid)
    with pytest.raises(DatacrumbsError) as refused:
        _open(f"{shared}/%USER%/dc")
    assert str(refused.value) == (
        f"trace directory {squat}/dc: cannot create {squat}/dc: Permission denied"
    )
    assert list(squat.iterdir()) == []


def test_a_directory_the_user_cannot_write_is_refused(reachable_dir: Path) -> None:
    home = reachable_dir / "home"
    home.mkdir(mode=0o500)
    os.chown(home, NOBODY.pw_uid, NOBODY.pw_gid)
    with pytest.raises(DatacrumbsError) as refused:
        _open(str(home))
    assert str(refused.value) == (
        f"trace directory {home}: nobody cannot write it (Permission denied)"
    )


def test_an_earlier_trace_is_moved_aside_and_a_planted_entry_is_one_line(
    reachable_dir: Path,
) -> None:
    shared = reachable_dir / "scratch"
    shared.mkdir()
    shared.chmod(0o1777)
    _, path = _open(f"{shared}/%USER%")
    path.write_text("earlier run")
    os.chown(path, NOBODY.pw_uid, NOBODY.pw_gid)
    os.utime(path, (0, 86400))  # 1970-01-02: the name it is moved to
    _open(f"{shared}/%USER%")
    stamp = datetime.fromtimestamp(86400).strftime("%Y%m%dT%H%M%S")
    aside = path.with_name(path.name.replace(".pfw.gz", f".{stamp}.pfw.gz"))
    assert aside.read_text() == "earlier run" and not path.exists()
    # the user plants a directory at the name the next old trace would be moved to
    path.write_text("second run")
    os.utime(path, (0, 86400))
    aside.unlink()
    aside.mkdir()
    with pytest.raises(DatacrumbsError, match=r"^trace directory .*: Is a directory$"):
        _open(f"{shared}/%USER%")


def test_a_link_planted_at_the_trace_s_name_is_one_line(reachable_dir: Path) -> None:
    """The user re-plants a link at the trace's name after the old trace was moved aside
    (issue 25, N7): the trace is not created through it, and the run ends in one line."""
    shared = reachable_dir / "scratch"
    shared.mkdir()
    shared.chmod(0o1777)
    settings = load_settings(trace_dir_pattern=f"{shared}/%USER%", hostname="node7")
    location = open_trace_location(settings, Identity.of(NOBODY), "r1", PROBES)
    try:
        target = reachable_dir / "elsewhere"
        location.path.symlink_to(target)
        with pytest.raises(DatacrumbsError) as refused:
            location.create_writer()
        assert str(refused.value) == f"cannot create the trace {location.path}: File exists"
        assert not target.exists()
    finally:
        location.close()


def test_a_directory_another_node_made_meanwhile_is_taken_as_the_user(
    reachable_dir: Path,
) -> None:
    """Two nodes' daemons make the same user's tree on a shared, root-squashed scratch at
    once: the one that finds the directory made between its look and its mkdir takes it as the
    user (root, squashed, may not even look in the user's directory). Played here by making the
    directory before the walk's mkdir, through the emulated export."""
    source = reachable_dir / "scratch.export"
    home = source / "daemon"
    home.mkdir(parents=True)
    source.chmod(0o755)
    daemon = pwd.getpwnam("daemon")
    os.chown(home, daemon.pw_uid, daemon.pw_gid)
    home.chmod(0o700)
    with rootsquash_mount(source, reachable_dir / "scratch") as scratch:
        parent = os.open(scratch, os.O_RDONLY | os.O_DIRECTORY)
        try:
            user = Identity.of(daemon)
            (home / "dc").mkdir(mode=0o700)  # the other node's daemon won the race
            os.chown(home / "dc", daemon.pw_uid, daemon.pw_gid)
            with acting_as(user):
                child = os.open("daemon", os.O_RDONLY | os.O_DIRECTORY, dir_fd=parent)
            try:
                info = _make(child, "dc", 0o700, scratch / "daemon/dc", user)
            finally:
                os.close(child)
        finally:
            os.close(parent)
    assert info.st_uid == daemon.pw_uid and stat.S_ISDIR(info.st_mode)
