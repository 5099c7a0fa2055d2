"""Where the demo puts things, all under its prefix, and the environment its commands run in.

Why everything lives under the prefix (run directory and signer socket included): the demo
must not touch a real installation's ``/run/datacrumbs`` or a running signer service, and a
second run must find and reuse exactly what the first made.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from datacrumbs.common.directories import closed_to_others
from datacrumbs.common.errors import DatacrumbsError
from datacrumbs.common.layout import InstallLayout

__all__ = ["RUN_ID", "DemoLayout", "installer"]

RUN_ID = "demo"


def installer() -> str:
    """``datacrumbs_install`` of the environment the demo runs from (``.venv/bin``)."""
    return str(Path(sys.executable).parent / "datacrumbs_install")


@dataclass(frozen=True)
class DemoLayout:
    """The demo's paths for ``prefix`` and the job user ``user``."""

    prefix: Path
    user: str

    @property
    def job_user(self) -> pwd.struct_passwd:
        try:
            return pwd.getpwnam(self.user)
        except KeyError:
            raise DatacrumbsError(f"user {self.user!r} does not exist") from None

    def command(self, name: str) -> str:
        """An installed command (``P/bin`` or ``P/sbin``): the demo runs what users run."""
        return str(InstallLayout(self.prefix).command(name))

    @property
    def run_dir(self) -> Path:
        return self.prefix / "var/run/datacrumbs"

    @property
    def socket(self) -> Path:
        return self.run_dir / "datacrumbs_sign_probes.sock"

    @property
    def log_dir(self) -> Path:
        return self.prefix / "var/log/datacrumbs"

    @property
    def state_dir(self) -> Path:
        """The node's state (status databases), kept in the demo's own tree."""
        return self.prefix / "var/lib/datacrumbs"

    @property
    def signing_key(self) -> Path:
        """The demo's private key: next to the prefix, as the installer wants it outside."""
        return self.prefix.parent / f"{self.prefix.name}.signing-key" / "probe-signing-key.pem"

    @property
    def signer_log(self) -> Path:
        return self.log_dir / "datacrumbs_sign_probes-demo.log"

    @property
    def daemon_log(self) -> Path:
        return self.log_dir / f"datacrumbs_{self.user}_{RUN_ID}_{socket.gethostname()}.log"

    @property
    def demo_dir(self) -> Path:
        return self.prefix / "var/demo"

    @property
    def bin_dir(self) -> Path:
        return self.demo_dir / "bin"

    @property
    def home(self) -> Path:
        """The job user's directory: the probe config, the signed probe file, the data."""
        return self.demo_dir / self.user

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of every command: this installation and its own run directory,
        nothing inherited from another installation's ``DATACRUMBS_*`` settings."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("DATACRUMBS_")}
        return (
            base
            | {
                "DATACRUMBS_INSTALL_PREFIX": str(self.prefix),
                "DATACRUMBS_SERVER_RUN_DIR": str(self.run_dir),
                "DATACRUMBS_SIGN_PROBES_SOCKET_PATH": str(self.socket),
                "DATACRUMBS_LOG_DIR": str(self.log_dir),
                "DATACRUMBS_STATE_DIR": str(self.state_dir),
                "DATACRUMBS_SIGNING_KEY_FILE": str(self.signing_key),
            }
            | extra
        )

    def as_job_user(self, argv: list[str]) -> list[str]:
        """``argv`` run as the job user, without root's groups (``setpriv`` execs it: same
        pid, so the trace's pid is the one the demo started)."""
        pw = self.job_user
        return ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups", *argv]

    def check_reachable(self) -> None:
        """The job user must reach the prefix (its workload and files live under it)."""
        if not self.prefix.is_absolute():
            raise DatacrumbsError(f"--prefix must be an absolute path, got {self.prefix}")
        closed = closed_to_others(self.prefix)
        if closed is not None:
            directory, mode = closed
            raise DatacrumbsError(
                f"{self.user} cannot reach {self.prefix}: {directory} is {mode:04o}; "
                "choose a prefix under /opt or /tmp"
            )

    def public_dir(self, path: Path) -> None:
        """Make ``path`` and its parents below the prefix 0755 whatever the umask: the job user
        reaches the workload, the data and the signer socket through them."""
        for below in [*reversed(path.relative_to(self.prefix).parents)][1:]:  # not "."
            full = self.prefix / below
            full.mkdir(mode=0o755, exist_ok=True)
            full.chmod(0o755)
        path.mkdir(mode=0o755, exist_ok=True)
        path.chmod(0o755)

    def prepare_home(self) -> None:
        """(Re)create the job user's directory; old data of an earlier run is removed."""
        pw = self.job_user
        self.public_dir(self.run_dir)
        self.public_dir(self.demo_dir)
        self.home.mkdir(mode=0o755, exist_ok=True)
        os.chown(self.home, pw.pw_uid, pw.pw_gid)
        self.home.chmod(0o755)
        shutil.rmtree(self.data_dir, ignore_errors=True)  # fd-based: follows no symlink
        self.data_dir.mkdir(mode=0o755)
        os.chown(self.data_dir, pw.pw_uid, pw.pw_gid)
