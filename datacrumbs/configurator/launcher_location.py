"""Where the setgid configurator launcher is installed, and the group it runs with.

The signer and the installer must agree on both: the signer accepts a peer only if its
executable is exactly this file and it connected with this group, and the installer puts the
file there with this group and the setgid bit.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["LAUNCHER_GROUP", "LAUNCHER_NAME", "launcher_path"]

#: The executable the signer trusts (a compiled C program, not a script: see launcher.c).
LAUNCHER_NAME = "datacrumbs_probe_configurator_exec"
#: The system group the launcher is setgid to; the signer's socket is 0660 with this group.
LAUNCHER_GROUP = "datacrumbs"


def launcher_path(prefix: Path) -> Path:
    """The installed launcher of the installation at ``prefix``."""
    return prefix / "libexec" / "datacrumbs" / LAUNCHER_NAME
