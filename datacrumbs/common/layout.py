"""Where an installation's parts live under its prefix: one map that every program reads.

The installer lays these paths out; the configurator finds its launcher here; the signer trusts
exactly that launcher; the units and the setup script name the commands here. Keeping the map in
one place is what lets a prefix be installed once and run from everywhere (login and compute
nodes, every user) without any file pointing back at the checkout it was built from.

The layout follows upstream DataCrumbs: user commands in ``bin``, root's in ``sbin``, the
program itself (a Python virtual environment) and the setgid launcher in ``libexec/datacrumbs``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "LAUNCHER_GROUP",
    "LAUNCHER_NAME",
    "ROOT_COMMANDS",
    "USER_COMMANDS",
    "InstallLayout",
    "running_prefix",
]

#: The executable the signer trusts (a compiled C program, not a script: see launcher.c).
LAUNCHER_NAME = "datacrumbs_probe_configurator_exec"
#: The system group the launcher is setgid to; the signer's socket is 0660 with this group.
LAUNCHER_GROUP = "datacrumbs"

#: Commands every user runs, in ``P/bin`` (``datacrumbs_setup`` is the script to source).
USER_COMMANDS = (
    "datacrumbs_probe_configurator",
    "datacrumbs_summary",
    "datacrumbs_report",
    "datacrumbs_sqlite_extract",
)
#: Commands only root runs (the daemon, the signer, the prolog/epilog helper), in ``P/sbin``.
ROOT_COMMANDS = ("datacrumbs", "datacrumbs_sign_probes", "datacrumbs_service")

_RUNTIME_PARTS = ("libexec", "datacrumbs", "venv")


@dataclass(frozen=True)
class InstallLayout:
    """The paths of the installation at ``prefix``."""

    prefix: Path

    @property
    def bin_dir(self) -> Path:
        return self.prefix / "bin"

    @property
    def sbin_dir(self) -> Path:
        return self.prefix / "sbin"

    @property
    def setup_file(self) -> Path:
        return self.bin_dir / "datacrumbs_setup"

    @property
    def libexec_dir(self) -> Path:
        return self.prefix / "libexec" / "datacrumbs"

    @property
    def runtime_dir(self) -> Path:
        """The virtual environment holding datacrumbs and its Python dependencies."""
        return self.prefix.joinpath(*_RUNTIME_PARTS)

    @property
    def runtime_python(self) -> Path:
        return self.runtime_dir / "bin" / "python"

    @property
    def launcher(self) -> Path:
        return self.libexec_dir / LAUNCHER_NAME

    @property
    def bpf_object(self) -> Path:
        """The compiled BPF programs: the daemon loads them, it never runs a compiler."""
        return self.prefix / "lib" / "datacrumbs" / "datacrumbs.bpf.o"

    @property
    def modulepath(self) -> Path:
        return self.prefix / "etc" / "datacrumbs" / "lmod" / "modulefiles"

    @property
    def systemd_dir(self) -> Path:
        return self.prefix / "etc" / "datacrumbs" / "systemd"

    @property
    def slurm_dir(self) -> Path:
        """The Slurm prolog and epilog (slurm.conf's Prolog= and Epilog=)."""
        return self.prefix / "etc" / "datacrumbs" / "slurm"

    def command(self, name: str) -> Path:
        """Where the installed command ``name`` is (``bin`` or ``sbin``)."""
        if name in USER_COMMANDS:
            return self.bin_dir / name
        if name in ROOT_COMMANDS:
            return self.sbin_dir / name
        raise ValueError(f"{name} is not an installed command")


def running_prefix() -> Path | None:
    """The prefix whose runtime this interpreter is, or None when run from elsewhere.

    A command started from ``P/bin`` runs ``P/libexec/datacrumbs/venv``'s Python, so it knows
    its installation without any environment: ``sys.prefix`` is the venv.
    """
    venv = Path(sys.prefix)
    if venv.parts[-len(_RUNTIME_PARTS) :] == _RUNTIME_PARTS:
        return venv.parents[len(_RUNTIME_PARTS) - 1]
    return None
