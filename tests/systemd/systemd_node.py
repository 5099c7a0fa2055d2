"""A node with datacrumbs installed the way an admin does it, inside the booted container.

``datacrumbs_install`` runs *inside*, so the rendered units name the container's paths; the
units are linked into the container's /etc/systemd/system as docs/deploy.md says. Files the
tests make (probe files, the workload) are written through the overlay from the host.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nspawn_support import CONTAINER_HOSTNAME, Container
from support import command, signed_document

from datacrumbs.common.layout import InstallLayout
from datacrumbs.common.probe_file import write_probe_file
from datacrumbs.install.runtime import default_cache_dir
from datacrumbs.service.instance_files import log_file_path
from datacrumbs.trace.reading import read_trace_lines

__all__ = ["JOB_USER", "Node"]

JOB_USER = "nobody"
PREFIX = Path("/opt/datacrumbs-systemd-test")
JOBS = Path("/srv/datacrumbs-jobs")
RUN_DIR = Path("/run/datacrumbs")
UNITS = ("datacrumbs@.service", "datacrumbs_sign_probes.service")
FILE_IO_SOURCE = Path(__file__).parents[1] / "engine" / "c" / "file_io.c"


@dataclass
class Node:
    """The container, plus where this installation's files are (container paths)."""

    container: Container
    prefix: Path = PREFIX
    jobs: Path = JOBS
    run_dir: Path = RUN_DIR

    @property
    def log_dir(self) -> Path:
        return Path("/var/log/datacrumbs")  # the default: node-local

    @property
    def units_dir(self) -> Path:
        return self.prefix / "etc/datacrumbs/systemd"

    def command(self, name: str) -> str:
        """An installed command of this node (a container path)."""
        return str(InstallLayout(self.prefix).command(name))

    @property
    def file_io(self) -> Path:
        return self.jobs / "file_io"

    # -- set-up ---------------------------------------------------------------------------

    def install(self) -> None:
        """Install, link the units, and lay out a jobs directory the job user can use.

        The container has no network: the installer takes the wheel and its dependencies from
        the caches the host's installs filled (its overlay shows the host's root)."""
        self.container.run(
            command("datacrumbs_install"),
            "--prefix",
            str(self.prefix),
            "--wheelhouse",
            str(default_cache_dir() / "wheelhouse"),
            timeout=300,
        )
        links = [str(self.units_dir / unit) for unit in UNITS]
        self.container.run("ln", "-sf", *links, "/etc/systemd/system/")
        self.container.run("systemctl", "daemon-reload")
        jobs = self.container.host_path(self.jobs)
        jobs.mkdir(mode=0o755, parents=True, exist_ok=True)
        jobs.chmod(0o755)
        subprocess.run(
            [
                "gcc",
                "-O1",
                "-Wall",
                "-o",
                str(self.container.host_path(self.file_io)),
                str(FILE_IO_SOURCE),
            ],
            check=True,
        )

    # -- commands -------------------------------------------------------------------------

    def service(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        """``datacrumbs_service ARGS`` as the prolog/epilog runs it: root, no settings."""
        return self.container.run(
            self.command("datacrumbs_service"), *args, timeout=120, check=check
        )

    def systemctl(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        return self.container.run("systemctl", *args, check=check)

    def show(self, unit: str, *properties: str) -> dict[str, str]:
        out = self.systemctl("show", "--property=" + ",".join(properties), unit, check=True).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def as_job_user(
        self, *argv: str, env: dict[str, str] | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        pw = pwd.getpwnam(JOB_USER)
        return self.container.run(
            "setpriv",
            f"--reuid={pw.pw_uid}",
            f"--regid={pw.pw_gid}",
            "--clear-groups",
            *argv,
            env=env,
            check=check,
        )

    def journal(self, *match: str) -> list[dict[str, Any]]:
        out = self.container.run("journalctl", "--no-pager", "--output=json", *match).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    # -- files ----------------------------------------------------------------------------

    def job_dir(self, name: str) -> Path:
        """A fresh directory owned by the job user (a container path)."""
        path = self.jobs / name
        host = self.container.host_path(path)
        host.mkdir(mode=0o755)
        pw = pwd.getpwnam(JOB_USER)
        os.chown(host, pw.pw_uid, pw.pw_gid)
        return path

    def make_probe_file(
        self, directory: Path, categories: list[dict[str, Any]], name: str = "posix.json.gz"
    ) -> Path:
        """A probe file signed with this installation's key (the container's own
        /etc/datacrumbs: it was installed there with the defaults), for the job user on this
        container, owned by the job user with mode 0600 (as the configurator writes it)."""
        key = self.container.host_path(Path("/etc/datacrumbs/probe-signing-key.pem"))
        document = signed_document(
            key,
            [self._with_identity(c) for c in categories],
            user=JOB_USER,
            hostname=CONTAINER_HOSTNAME,
            host=CONTAINER_HOSTNAME,  # installed in the container, without --host
        )
        path = directory / name
        self.write_probe_document(path, document)
        return path

    def _with_identity(self, category: dict[str, Any]) -> dict[str, Any]:
        """The identity of the category's binary as the container sees it (its own device
        numbers: the root is an overlay), taken there as the configurator would."""
        if "binary_path" not in category:
            return category
        script = (
            "import sys; from datacrumbs.common.binary_identity import file_identity; "
            "print(file_identity(sys.argv[1]).model_dump_json())"
        )
        out = self.container.run(sys.executable, "-c", script, category["binary_path"]).stdout
        return category | {"binary_identity": json.loads(out)}

    def write_probe_document(self, path: Path, document: dict[str, Any]) -> None:
        """Write ``document`` as the job user's 0600 probe file at ``path`` (a container path)."""
        host = self.container.host_path(path)
        write_probe_file(host, document)
        pw = pwd.getpwnam(JOB_USER)
        os.chown(host, pw.pw_uid, pw.pw_gid)
        os.chmod(host, 0o600)

    def log_file(self, run_id: str, user: str = JOB_USER) -> Path:
        return log_file_path(self.log_dir, user, run_id, CONTAINER_HOSTNAME)

    def read(self, path: Path) -> str:
        """A container file's text (also from the container's own /run)."""
        return self.container.run("cat", str(path)).stdout

    def exists(self, path: Path) -> bool:
        """Whether a container path exists (run-dir files live on the container's /run)."""
        return self.container.run("test", "-e", str(path), check=False).returncode == 0

    def trace_events(self, trace: Path) -> list[dict[str, Any]]:
        lines = read_trace_lines(self.container.host_path(trace))
        assert lines[0] == "[" and lines[-1] == "]", "the trace is not complete"
        return [json.loads(line) for line in lines[1:-1]]
