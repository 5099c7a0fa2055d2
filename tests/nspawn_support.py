"""A real systemd for the unit tests: ``systemd-nspawn -b`` over an overlay of ``/``.

The machine's PID 1 is not systemd, so the units are tested in a container that boots one. Its
root is an overlay whose lower layer is the host's ``/`` and whose upper layer is a private
tmpfs: the container sees every installed package, the checkout and its venv, and whatever it
writes (the installation, /etc/systemd/system, traces) vanishes with the tmpfs. It boots
``basic.target`` only, so none of the host's enabled services start.

Never boot systemd as PID 1 of a mere ``unshare`` on the host's root: its boot-time cleanup
empties the host's /tmp and it starts the host's services. nspawn over the overlay is the only
way used here.

Commands run inside through ``nsenter -t <container PID 1> -a``, each bounded by ``timeout``
running *inside*: killing an nsenter instead would leave a zombie that delays power-off.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType

import pytest

import datacrumbs

__all__ = ["CONTAINER_HOSTNAME", "Container", "HostFixups", "machines_allowed", "visible_roots"]

#: The container's host name: not the host's, so a test proves names are taken at run time.
CONTAINER_HOSTNAME = "dc-node1"
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BOOT_SECONDS = 60


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # unwinds through the fixtures' finally


@contextlib.contextmanager
def machines_allowed(what: str) -> Iterator[None]:
    """Around a fixture that boots machines: skipped without root (CI runs as root), failed
    without nspawn; while inside, a SIGTERM to pytest unwinds like Ctrl-C, so the machines are
    powered off and removed."""
    if os.geteuid() != 0:
        pytest.skip(f"{what}: needs root (CI runs as root)")
    if shutil.which("systemd-nspawn") is None:
        pytest.fail("systemd-nspawn is missing: install systemd-container (scripts/bootstrap)")
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _is_mountpoint(path: Path) -> bool:
    return subprocess.run(["mountpoint", "-q", str(path)]).returncode == 0


class HostFixups:
    """What nspawn needs from a host whose PID 1 is not systemd; undone by :meth:`undo`.

    Only what this object made is removed again, so a fix-up that was already there stays.
    """

    NSPAWN_DIR = Path("/run/systemd/nspawn")
    INACCESSIBLE = Path("/run/systemd/inaccessible")
    MARKER = NSPAWN_DIR / ".made-by-datacrumbs-tests"

    def __init__(self) -> None:
        self._mounted = False
        self._made: list[Path] = []

    def apply(self) -> None:
        atexit.register(self.undo)  # a backstop; undo is idempotent
        if not self.NSPAWN_DIR.exists():
            self.NSPAWN_DIR.mkdir(parents=True)
            self._made.append(self.NSPAWN_DIR)
        if not _is_mountpoint(self.NSPAWN_DIR):
            subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(self.NSPAWN_DIR)], check=True)
            self.MARKER.touch()
        # A mount another test session made is shared: whoever ends last can unmount it.
        self._mounted = self.MARKER.exists()
        if not self.INACCESSIBLE.exists():
            self.INACCESSIBLE.mkdir(mode=0o000, parents=True)
            self._made.append(self.INACCESSIBLE)
        nodes = {
            "reg": stat.S_IFREG,
            "dir": 0,
            "chr": stat.S_IFCHR,
            "blk": stat.S_IFBLK,
            "fifo": stat.S_IFIFO,
        }
        for name, kind in nodes.items():
            node = self.INACCESSIBLE / name
            if node.exists():
                continue
            if kind == 0:
                node.mkdir(mode=0o000)
            else:
                os.mknod(node, kind | 0o000, os.makedev(0, 0))
            os.chmod(node, 0o000)
            self._made.append(node)
        self.INACCESSIBLE.chmod(0o000)

    def undo(self) -> None:
        if self._mounted:
            # Busy while another session's container runs: that session unmounts it.
            unmounted = (
                subprocess.run(
                    ["umount", str(self.NSPAWN_DIR)], stderr=subprocess.DEVNULL
                ).returncode
                == 0
            )
            if unmounted and self.NSPAWN_DIR not in self._made:
                with contextlib.suppress(OSError):
                    self.NSPAWN_DIR.rmdir()  # made by the other session, which has ended
            self._mounted = False
        for path in reversed(self._made):
            with contextlib.suppress(OSError):
                if path.is_dir() and not path.is_symlink():
                    path.rmdir()
                else:
                    path.unlink()
        self._made.clear()


def _cgroup_roots() -> list[Path]:
    """The cgroup v2 mount and the v1 name=systemd one (hybrid hosts), from /proc/mounts."""
    roots = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if fields[2] == "cgroup2" or (fields[2] == "cgroup" and "name=systemd" in fields[3]):
            roots.append(Path(fields[1]))
    return roots


def visible_roots() -> list[Path]:
    """Directories the container must see that the overlay of ``/`` would not show.

    The overlay shows only the root file system, and nspawn puts a fresh tmpfs on the
    container's /tmp: the checkout, its venv and the interpreter are bound in (read-only, at
    the same path) when they live on another mount or under /tmp, as in a CI clone.
    """
    root_dev = os.stat("/").st_dev
    wanted = {
        Path(datacrumbs.__file__).resolve().parents[1],
        Path(sys.prefix).resolve(),
        Path(sys.base_prefix).resolve(),
    }
    binds = []
    for path in sorted(wanted):
        if path.is_relative_to("/tmp") or os.stat(path).st_dev != root_dev:
            binds.append(path)
    # A path inside another bound path needs no bind of its own.
    return [p for p in binds if not any(p != q and p.is_relative_to(q) for q in binds)]


class Container:
    """One booted container: its overlay root, nspawn process and PID 1."""

    def __init__(
        self,
        binds: Sequence[Path] = (),
        hostname: str = CONTAINER_HOSTNAME,
        lower: Sequence[Path] = (),
        network_namespace: Path | None = None,
        own_cgroup: bool = False,
    ) -> None:
        """``lower``: layers stacked over the host's ``/`` (a package layer); ``binds`` are
        seen at the same path (read-write unless under the host's prefix trees, see
        :func:`visible_roots`); ``network_namespace``: join that one (a cluster's machines
        share it) instead of a private loopback-only network."""
        self.base = Path(tempfile.mkdtemp(prefix="datacrumbs-nspawn-", dir="/var/tmp"))
        self.layers = self.base / "layers"
        self.root = self.base / "root"
        self.console_log = self.base / "console.log"
        self.binds = list(binds)
        self.hostname = hostname
        self.lower = list(lower)
        self.network_namespace = network_namespace
        self.rw_binds: list[Path] = []
        #: (host source, path inside) pairs bound read-write at another path than their own
        #: (``--bind=SRC:DST``): a host mount shown where the machine expects it
        self.rw_binds_at: list[tuple[Path, Path]] = []
        # own_cgroup: started from a cgroup of its own (v2 and name=systemd), removed at close,
        # and booted seeing pure cgroup v2 (SYSTEMD_NSPAWN_UNIFIED_HIERARCHY): machines started
        # from one cgroup would share it (two nodes' slurmd.service would be one cgroup)
        self.own_cgroups: list[Path] = []
        if own_cgroup:
            name = f"datacrumbs-test-{os.getpid()}-{hostname}"
            self.own_cgroups = [root / name for root in _cgroup_roots()]
        self.nspawn: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None
        self._mounts: list[Path] = []
        self._closed = False
        atexit.register(self.close)  # a backstop for an interpreter that exits past the fixture

    # -- life cycle ---------------------------------------------------------------------------

    def boot(self) -> None:
        """Mount the overlay, start nspawn and wait until systemd reports the boot done."""
        self.mount()
        self.start()

    def mount(self) -> None:
        """Mount the overlay root (files written under :meth:`host_path` now are there at
        boot)."""
        self.layers.mkdir()
        self.root.mkdir()
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "mode=0700", "tmpfs", str(self.layers)], check=True
        )
        self._mounts.append(self.layers)
        (self.layers / "upper").mkdir()
        (self.layers / "work").mkdir()
        lower = ":".join([*(str(p) for p in self.lower), "/"])
        work = self.layers / "work"
        options = f"lowerdir={lower},upperdir={self.layers / 'upper'},workdir={work}"
        subprocess.run(
            ["mount", "-t", "overlay", "overlay", "-o", options, str(self.root)], check=True
        )
        self._mounts.append(self.root)
        (self.root / "etc/hostname").write_text(f"{self.hostname}\n")

    def start(self) -> None:
        """Boot systemd in the mounted root and wait until it reports the boot done."""
        network = (
            [f"--network-namespace-path={self.network_namespace}"]
            if self.network_namespace is not None
            else ["--private-network"]
        )
        argv = [
            "systemd-nspawn",
            "-b",
            "-D",
            str(self.root),
            f"--machine=datacrumbs-test-{os.getpid()}-{self.hostname}",
            f"--hostname={self.hostname}",
            "--register=no",
            "--keep-unit",
            *network,
            "--link-journal=no",
            "--console=read-only",
            "--capability=all",
            "--system-call-filter=bpf perf_event_open",
            *(f"--bind-ro={path}" for path in self.binds),
            *(f"--bind={path}" for path in self.rw_binds),
            *(f"--bind={source}:{target}" for source, target in self.rw_binds_at),
            "--",
            "--unit=basic.target",
        ]
        for cgroup in self.own_cgroups:
            cgroup.mkdir()
        procs = [str(cgroup / "cgroup.procs") for cgroup in self.own_cgroups]

        def join_own_cgroups() -> None:  # in the child, before nspawn runs
            for path in procs:
                with open(path, "w") as f:
                    f.write(str(os.getpid()))

        env = dict(os.environ)
        if self.own_cgroups:
            env["SYSTEMD_NSPAWN_UNIFIED_HIERARCHY"] = "1"
        with open(self.console_log, "wb") as console:
            self.nspawn = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
                preexec_fn=join_own_cgroups if procs else None,
            )
        self.pid = self._find_pid1()
        state = self._wait_for_boot()
        if state not in ("running", "degraded"):
            raise RuntimeError(f"container boot ended {state!r}: {self.console_text()}")

    def _find_pid1(self) -> int:
        assert self.nspawn is not None
        deadline = time.monotonic() + BOOT_SECONDS
        children = Path(f"/proc/{self.nspawn.pid}/task/{self.nspawn.pid}/children")
        while time.monotonic() < deadline:
            if self.nspawn.poll() is not None:
                raise RuntimeError(
                    f"systemd-nspawn exited {self.nspawn.returncode}: {self.console_text()}"
                )
            with contextlib.suppress(OSError):
                for pid in children.read_text().split():
                    comm = Path(f"/proc/{pid}/comm").read_text().strip()
                    # nspawn's child execs systemd; until then it is a copy of nspawn.
                    if comm == "systemd":
                        return int(pid)
            time.sleep(0.02)
        raise RuntimeError(f"no container PID 1 after {BOOT_SECONDS} s: {self.console_text()}")

    def _wait_for_boot(self) -> str:
        deadline = time.monotonic() + BOOT_SECONDS
        while True:
            result = self.run(
                "systemctl", "is-system-running", "--wait", timeout=BOOT_SECONDS, check=False
            )
            state = result.stdout.strip()
            if (state and state not in ("offline", "unknown")) or time.monotonic() > deadline:
                return state or result.stderr.strip()
            time.sleep(0.1)  # the bus is not up yet

    def close(self) -> None:
        """Power off, then unmount and remove everything; safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        try:
            self._poweroff()
        finally:
            for mount in reversed(self._mounts):
                if subprocess.run(["umount", str(mount)]).returncode != 0:
                    subprocess.run(["umount", "-l", str(mount)], check=False)
            self._mounts.clear()
            shutil.rmtree(self.base, ignore_errors=True)
            for cgroup in self.own_cgroups:  # what nspawn left inside (payload/...) first
                if cgroup.is_dir():
                    for sub in sorted(cgroup.rglob("*"), key=lambda p: -len(p.parts)):
                        if sub.is_dir():
                            with contextlib.suppress(OSError):
                                sub.rmdir()
                    with contextlib.suppress(OSError):
                        cgroup.rmdir()

    def _poweroff(self) -> None:
        if self.nspawn is None or self.nspawn.poll() is not None:
            return
        if self.pid is not None:
            self.run("systemctl", "poweroff", "--no-block", timeout=10, check=False)
        try:
            self.nspawn.wait(timeout=30)
            return
        except subprocess.TimeoutExpired:
            pass
        self.nspawn.terminate()  # nspawn turns SIGTERM into an orderly shutdown request
        try:
            self.nspawn.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.nspawn.kill()
            self.nspawn.wait()

    # -- use ----------------------------------------------------------------------------------

    def run(
        self,
        *argv: str,
        timeout: float = 60,
        check: bool = True,
        env: dict[str, str] | None = None,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` in the container (all its namespaces), bounded by ``timeout`` inside."""
        assert self.pid is not None, "container not booted"
        environment = {
            "PATH": CONTAINER_PATH,
            "LANG": "C.UTF-8",
            "SYSTEMD_PAGER": "",
            "SYSTEMD_COLORS": "0",
            "TERM": "dumb",
        } | (env or {})
        full = [
            "nsenter",
            "-t",
            str(self.pid),
            "-a",
            "timeout",
            "--kill-after=5",
            str(timeout),
            *argv,
        ]
        stdin = {"input": input} if input is not None else {"stdin": subprocess.DEVNULL}
        result = subprocess.run(full, env=environment, capture_output=True, text=True, **stdin)
        if check and result.returncode != 0:
            raise AssertionError(
                f"in container: {' '.join(argv)} exited {result.returncode}\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}"
            )
        return result

    def host_path(self, inside: str | Path) -> Path:
        """Where a container path is seen from the host (files the container wrote included).

        Paths under /tmp, /run and bound directories are the container's own mounts and are
        not reachable this way.
        """
        return self.root / Path(inside).relative_to("/")

    def console_text(self) -> str:
        try:
            return self.console_log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""
