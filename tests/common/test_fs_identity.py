"""Acting as another user is per thread, undone after the block, and the trace's writing thread
writes as users do: a real ext4 with half its blocks reserved for root is full for it at the
half, while root goes on (the blocks CAP_SYS_RESOURCE opens, as it opens quotas)."""

from __future__ import annotations

import errno
import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest

from datacrumbs.common.fs_identity import Identity, acting_as, write_as_users_do
from datacrumbs.trace.writer import TraceWriter

NOBODY = Identity(65534, 65534, (65534,), "nobody")


@pytest.fixture(autouse=True)
def _root() -> None:
    if os.geteuid() != 0:
        pytest.skip("changes this thread's credentials: needs root")


def _in_thread(work: Callable[[], object]) -> object:
    """``work``'s result (or exception) on a new thread."""
    out: list[object] = []

    def run() -> None:
        try:
            out.append(work())
        except OSError as exc:
            out.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return out[0]


def test_acting_as_changes_this_thread_only_and_is_undone(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("root's")
    secret.chmod(0o600)
    started = threading.Event()
    release = threading.Event()
    seen: list[str] = []

    def other() -> None:  # a thread that exists before the block: stays root
        started.set()
        release.wait()
        seen.append(secret.read_text())

    thread = threading.Thread(target=other)
    thread.start()
    started.wait()
    with acting_as(NOBODY):
        with pytest.raises(PermissionError):
            secret.read_text()
        release.set()
        thread.join()
        status = Path("/proc/thread-self/status").read_text()
        assert "\nGroups:\t65534 \n" in status
        assert [line.split()[1:] for line in status.splitlines() if line.startswith("Uid:")] == [
            ["0", "0", "0", "65534"]  # real, effective, saved: root; filesystem: nobody
        ]
    assert seen == ["root's"]
    assert secret.read_text() == "root's" and os.getgroups() == []


@pytest.fixture
def half_reserved(tmp_path: Path, reachable_dir: Path) -> Iterator[Path]:
    """A 32 MiB ext4 with 50% of its blocks reserved for root, mounted from a loop device."""
    image = tmp_path / "ext4.img"
    with image.open("wb") as f:
        f.truncate(32 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-m", "50", "-b", "4096", str(image)], check=True)
    mount = reachable_dir / "mnt"  # where nobody can reach it
    mount.mkdir()
    subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def _fill(path: Path) -> int:
    """Bytes written into ``path`` (which exists) until the disk is full for this thread."""
    written = 0
    with path.open("r+b", buffering=0) as f:
        while True:
            try:
                written += f.write(b"\0" * 65536)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                return written


def _reserved(mount: Path) -> int:
    stats = os.statvfs(mount)
    return (stats.f_bfree - stats.f_bavail) * stats.f_frsize


def test_the_writing_thread_leaves_root_s_reserve_alone(half_reserved: Path) -> None:
    for name in ("user", "root"):
        (half_reserved / name).touch()
        os.chown(half_reserved / name, 65534, 65534)
    reserve = _reserved(half_reserved)
    assert reserve > (10 << 20)

    def as_users_do() -> int:
        write_as_users_do(NOBODY)
        status = Path("/proc/thread-self/status").read_text()
        cap_eff = next(x for x in status.splitlines() if x.startswith("CapEff:"))
        assert not int(cap_eff.split()[1], 16) & (1 << 24)  # CAP_SYS_RESOURCE
        return _fill(half_reserved / "user")

    user = _in_thread(as_users_do)
    assert isinstance(user, int) and user > 0
    assert os.statvfs(half_reserved).f_bavail == 0  # full for users
    root = _fill(half_reserved / "root")  # this thread is root as before: into the reserve
    assert root > reserve - (1 << 20)


def test_a_trace_writer_with_it_stops_at_the_reserve(half_reserved: Path) -> None:
    reserve = _reserved(half_reserved)
    writer = TraceWriter(half_reserved / "t.pfw.gz", level=0, flush_interval=0.01,
                         thread_setup=partial(write_as_users_do, NOBODY))  # fmt: skip
    writer.start()
    lines = 0
    noise = os.urandom(1 << 15).hex()  # incompressible enough at level 0
    while writer.write_failure is None and lines < 100_000:
        writer.write_text(f'{{"id":{lines},"x":"{noise}"}}\n')
        lines += 1
    writer.close()
    assert writer.write_failure == "No space left on device"
    assert writer.unwritten.events > 0
    stats = os.statvfs(half_reserved)
    assert stats.f_bfree * stats.f_frsize > reserve - (1 << 20)  # root's half, untouched
