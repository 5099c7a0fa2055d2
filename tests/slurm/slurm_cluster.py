"""A real Slurm cluster for the tests: a login machine (slurmctld) and compute nodes (slurmd),
each a systemd-nspawn machine booted over an overlay of ``/``.

What makes it work on this machine kind (measured; ``../shared/reference/slurm-cluster.md``):

- The packages (Debian's slurmd, slurmctld, slurm-client, munge) are installed once per
  session into a layer of their own, from an nspawn over an overlay, with a ``policy-rc.d``
  that refuses every start: their postinst would otherwise start the daemons on the host. The
  layer lives on a tmpfs of its own: overlayfs refuses a lower layer that sits inside another
  (``/``). The same layer gives every machine the same munge key (owned by its munge user).
- The machines share one network namespace made here, with a veth pair holding one
  non-loopback address (glibc's ``getaddrinfo(AI_ADDRCONFIG)`` ignores loopback-only hosts, and
  slurmd and slurmctld then cannot bind): every daemon listens on that address, each slurmd on
  its own port. The host's network is never touched.
- Jobs get cgroups (``proctrack/cgroup``, ``cgroup/v2``): each machine is started from a cgroup
  of its own and boots seeing pure v2; slurmd is shown only the v2 line of
  ``/proc/*/cgroup`` (``c/cgroup_v2_view.c``: Slurm 22.05 refuses this kind's hybrid layout).
  A task runs in ``/system.slice/<node>_slurmstepd.scope/job_<id>/step_<n>/user/...``.
- Users are the host's (the same uid on every machine). A directory bound read-write into
  every machine stands in for a shared file system. Other host directories (a site's
  root-squashed exports, mounted on the host) can be bound at a path of their own into the
  login machine, the compute nodes or both (:class:`Bind`), and host paths hidden from every
  machine (a state of the host's own that a fresh node would not have).

Everything is undone by :meth:`SlurmCluster.close`: machines powered off, mounts and the
namespace removed.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nspawn_support import Container, HostFixups, visible_roots

__all__ = ["ADDRESS", "Bind", "SlurmCluster"]

PACKAGES = ("slurmd", "slurmctld", "slurm-client", "munge")
ADDRESS = "10.77.0.1"
CONTROLLER = "login"
FIRST_SLURMD_PORT = 6818
READY_SECONDS = 60


#: No cgroup v2 controller is enabled on this machine kind: nothing can be constrained.
CGROUP_CONF = """CgroupPlugin=cgroup/v2
ConstrainCores=no
ConstrainRAMSpace=no
ConstrainSwapSpace=no
ConstrainDevices=no
"""
SHIM_SOURCE = Path(__file__).with_name("c") / "cgroup_v2_view.c"


def _slurm_conf(nodes: Sequence[str], extra: Sequence[str], job_cgroups: bool) -> str:
    proctrack = "cgroup" if job_cgroups else "linuxproc"
    lines = [
        "ClusterName=datacrumbs-test",
        f"SlurmctldHost={CONTROLLER}({ADDRESS})",
        "AuthType=auth/munge",
        # proctrack/cgroup: a cgroup per job, job_<id>/step_<n>/...; linuxproc: none, the
        # job's processes are known by their parentage alone
        f"ProctrackType=proctrack/{proctrack}",
        "TaskPlugin=task/none",
        "PrologFlags=Contain",
        "SelectType=select/cons_tres",
        "MpiDefault=none",
        "ReturnToService=2",
        "StateSaveLocation=/var/spool/slurmctld",
        "SlurmdSpoolDir=/var/spool/slurmd",
        "SlurmctldLogFile=/var/log/slurm/slurmctld.log",
        "SlurmdLogFile=/var/log/slurm/slurmd.log",
    ]
    for i, node in enumerate(nodes):
        port = FIRST_SLURMD_PORT + i
        lines.append(f"NodeName={node} NodeAddr={ADDRESS} Port={port} CPUs=2 State=UNKNOWN")
    lines.append(f"PartitionName=debug Nodes={','.join(nodes)} Default=YES State=UP")
    return "\n".join([*lines, *extra]) + "\n"


@dataclass(frozen=True)
class Bind:
    """A host directory bound read-write into some machines: ``source`` on the host is seen at
    ``target`` inside the login machine (``login``), each compute node (``nodes``) or both."""

    source: Path
    target: Path
    login: bool = True
    nodes: bool = True

    def on(self, machine: str) -> bool:
        return self.login if machine == CONTROLLER else self.nodes


class SlurmCluster:
    """A login machine and ``nodes`` compute nodes, booted and idle after :meth:`start`."""

    def __init__(
        self,
        nodes: Sequence[str] = ("node1", "node2"),
        conf: Sequence[str] = (),
        shared: Sequence[Path] = (),
        job_cgroups: bool = True,
        binds: Sequence[Bind] = (),
        hidden: Sequence[Path] = (),
    ) -> None:
        """``conf``: more slurm.conf lines (Prolog=, ...); ``shared``: directories every machine
        sees read-write at the same path (an installation prefix); ``job_cgroups``: whether
        Slurm makes a cgroup per job (else a cluster whose jobs have none); ``binds``: host
        directories bound into some machines at a path of their own (a site's mounts: bound at
        boot, so mounted on the host before :meth:`start`); ``hidden``: host paths no machine
        sees (removed from each machine's overlay before it boots)."""
        self.job_cgroups = job_cgroups
        self.nodes = list(nodes)
        self.conf = list(conf)
        self.extra_shared = list(shared)
        self.binds = list(binds)
        self.hidden = list(hidden)
        self.base = Path(tempfile.mkdtemp(prefix="datacrumbs-slurm-", dir="/var/tmp"))
        self.base.chmod(0o755)  # the shared directory below is the users' too
        # the same path in every machine, a site's shared file system; not under /tmp or
        # /var/tmp, which the daemon's and the signer's units make private
        self.shared = Path(tempfile.mkdtemp(prefix="datacrumbs-slurm-", dir="/srv"))
        self.machines: dict[str, Container] = {}
        self._fixups = HostFixups()
        self._layer_fs = self.base / "layer-fs"
        self._netns = self.base / "netns"
        self._mounts: list[Path] = []

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._fixups.apply()
        self.shared.chmod(0o1777)
        layer = self._package_layer()
        self._network()
        conf = _slurm_conf(self.nodes, self.conf, self.job_cgroups)
        shim = self.base / "cgroup_v2_view.so"
        subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-Wall", "-o", str(shim),
                        str(SHIM_SOURCE), "-ldl"], check=True)  # fmt: skip
        for name in (CONTROLLER, *self.nodes):
            machine = Container(visible_roots(), hostname=name, lower=[layer],
                                network_namespace=self._netns, own_cgroup=True)  # fmt: skip
            machine.rw_binds = [self.shared, *self.extra_shared]
            machine.rw_binds_at = [(b.source, b.target) for b in self.binds if b.on(name)]
            self.machines[name] = machine
            machine.mount()
            for path in self.hidden:  # whiteouts in the machine's upper layer
                inside = machine.host_path(path)
                if inside.is_dir() and not inside.is_symlink():
                    shutil.rmtree(inside)
                elif inside.exists() or inside.is_symlink():
                    inside.unlink()
            (machine.root / "etc/slurm/slurm.conf").write_text(conf)
            (machine.root / "etc/slurm/cgroup.conf").write_text(CGROUP_CONF)
            dropin = machine.root / "etc/systemd/system/slurmd.service.d"
            dropin.mkdir(parents=True)
            (dropin / "cgroup-v2-view.conf").write_text(
                f"[Service]\nEnvironment=LD_PRELOAD={shim}\n"
            )
            hosts = machine.root / "etc/hosts"
            hosts.write_text(hosts.read_text() + f"{ADDRESS} {CONTROLLER} {' '.join(self.nodes)}\n")
            machine.start()
        for name, machine in self.machines.items():
            machine.run("systemctl", "start", "munge")
            daemon, spool = (
                ("slurmctld", "/var/spool/slurmctld")
                if name == CONTROLLER
                else ("slurmd", "/var/spool/slurmd")
            )
            machine.run("mkdir", "-p", spool, "/var/log/slurm")
            machine.run("systemctl", "start", daemon)
        self._wait_idle()

    def _package_layer(self) -> Path:
        """The packages installed into a layer on its own tmpfs; returns the layer."""
        self._layer_fs.mkdir()
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", str(self._layer_fs)], check=True
        )
        self._mounts.append(self._layer_fs)
        layer, work, root = (self._layer_fs / d for d in ("layer", "work", "root"))
        for d in (layer, work, root):
            d.mkdir()
        options = f"lowerdir=/,upperdir={layer},workdir={work}"
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(root)], check=True)
        try:
            deny = root / "usr/sbin/policy-rc.d"
            deny.write_text("#!/bin/sh\nexit 101\n")  # no daemon may start during the install
            deny.chmod(0o755)
            result = subprocess.run(
                ["systemd-nspawn", "-q", "-D", str(root), "--register=no", "--keep-unit",
                 "--link-journal=no", "--pipe", "-E", "DEBIAN_FRONTEND=noninteractive",
                 "apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES],
                capture_output=True, text=True, timeout=600,
            )  # fmt: skip
            if result.returncode != 0:
                raise RuntimeError(f"installing {' '.join(PACKAGES)}: {result.stderr[-2000:]}")
            deny.unlink()
        finally:
            subprocess.run(["umount", str(root)], check=True)
        return layer

    def _network(self) -> None:
        self._netns.touch()
        subprocess.run(["unshare", f"--net={self._netns}", "true"], check=True)
        self._mounts.append(self._netns)
        for argv in (
            ["ip", "link", "set", "lo", "up"],
            ["ip", "link", "add", "dc0", "type", "veth", "peer", "name", "dc1"],
            ["ip", "addr", "add", f"{ADDRESS}/24", "dev", "dc0"],
            ["ip", "link", "set", "dc0", "up"],
            ["ip", "link", "set", "dc1", "up"],
        ):
            subprocess.run(["nsenter", f"--net={self._netns}", *argv], check=True)

    def _wait_idle(self) -> None:
        deadline = time.monotonic() + READY_SECONDS
        while True:
            out = self.login.run("sinfo", "-h", "-N", "-o", "%N %t", check=False).stdout
            states = dict(line.split() for line in out.splitlines() if line.strip())
            if all(states.get(node) == "idle" for node in self.nodes):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"nodes not idle after {READY_SECONDS} s: {states}")
            time.sleep(0.1)

    def close(self) -> None:
        """Cancel jobs, power the machines off, remove the namespace and the layer."""
        try:
            if CONTROLLER in self.machines and self.machines[CONTROLLER].pid is not None:
                # a node with a running job waits ~90 s on poweroff
                self.login.run("scancel", "--full", "--user=*", check=False, timeout=20)
            for machine in reversed(self.machines.values()):
                machine.close()
        finally:
            for mount in reversed(self._mounts):
                if subprocess.run(["umount", str(mount)]).returncode != 0:
                    subprocess.run(["umount", "-l", str(mount)], check=False)
            self._mounts.clear()
            self._fixups.undo()
            for directory in (self.base, self.shared):
                with contextlib.suppress(OSError):
                    shutil.rmtree(directory)

    # -- use ----------------------------------------------------------------------------------

    @property
    def login(self) -> Container:
        return self.machines[CONTROLLER]

    def run_as(
        self, machine: str, uid: int, gid: int, *argv: str, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """``argv`` as user ``uid`` (no other groups) on ``machine``; not checked."""
        return self.machines[machine].run(
            "setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", *argv,
            timeout=timeout, check=False,
        )  # fmt: skip
