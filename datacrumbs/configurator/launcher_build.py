"""Building and installing the setgid configurator launcher (called by ``datacrumbs_install``).

The launcher (launcher.c) is compiled on the node against the interpreter the installation's
venv is based on, because it must embed exactly that Python. It is installed root-owned,
group :data:`LAUNCHER_GROUP`, mode 2755: the setgid bit is what lets it (and only it) reach the
signer's 0660 socket.

Idempotent like the rest of the installer: the binary carries a digest of everything it was
built from (source, interpreter, flags); when the installed file carries the same digest it is
kept without compiling, and only a wrong owner or mode is repaired.
"""

from __future__ import annotations

import grp
import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from datacrumbs.common.atomic_file import write_atomically
from datacrumbs.common.errors import DatacrumbsError
from datacrumbs.configurator.launcher_location import LAUNCHER_GROUP, launcher_path
from datacrumbs.install.files import ensure_dir

__all__ = ["LAUNCHER_MODE", "build_launcher", "ensure_group", "install_configurator_exec"]

LAUNCHER_MODE = 0o2755
_SOURCE = Path(__file__).with_name("launcher.c")
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9/._+-]+$")
_HARDENING = [
    "-O2", "-Wall", "-Werror", "-fstack-protector-strong", "-D_FORTIFY_SOURCE=2", "-fPIE",
    "-pie", "-Wl,-z,relro,-z,now",
]


def ensure_group(name: str = LAUNCHER_GROUP) -> tuple[str, int]:
    """The gid of system group ``name``, created with ``groupadd --system`` when missing."""
    try:
        return "kept", grp.getgrnam(name).gr_gid
    except KeyError:
        pass
    result = subprocess.run(["groupadd", "--system", name], capture_output=True, text=True)
    if result.returncode != 0:
        reason = " ".join(result.stderr.split()) or f"exit status {result.returncode}"
        raise DatacrumbsError(f"cannot create group {name!r}: {reason}")
    return "created", grp.getgrnam(name).gr_gid


def _python() -> str:
    """The venv interpreter the launcher embeds (its pyvenv.cfg selects the site-packages)."""
    python = os.path.abspath(sys.executable)
    if not _SAFE_PATH.match(python):
        raise DatacrumbsError(
            f"interpreter path {python!r} has characters the launcher build cannot quote"
        )
    return python


def _compile_command(output: Path, python: str) -> tuple[list[str], str]:
    """The compiler command line, and the build digest it embeds."""
    if not sysconfig.get_config_var("Py_ENABLE_SHARED"):
        raise DatacrumbsError(
            f"{python} has no shared libpython: the configurator launcher cannot embed it"
        )
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        raise DatacrumbsError("gcc is needed to build the configurator launcher; install gcc")
    include = sysconfig.get_config_var("INCLUDEPY")
    libdir = sysconfig.get_config_var("LIBDIR")
    library = f"python{sysconfig.get_config_var('LDVERSION')}"
    flags = [*_HARDENING, f"-I{include}", f"-L{libdir}", f"-Wl,-rpath,{libdir}"]
    digest = hashlib.sha256()
    for part in (_SOURCE.read_bytes(), python.encode(), " ".join(flags).encode(),
                 library.encode()):
        digest.update(part + b"\0")
    build_id = digest.hexdigest()[:32]
    defines = [f'-DDATACRUMBS_PYTHON="{python}"', f'-DDATACRUMBS_BUILD_ID="{build_id}"']
    command = [compiler, *defines, *flags, str(_SOURCE), f"-l{library}", "-o", str(output)]
    return command, build_id


def build_launcher(output: Path) -> str:
    """Compile the launcher to ``output``; return its build digest."""
    command, build_id = _compile_command(output, _python())
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        first = next((line for line in result.stderr.splitlines() if "error" in line),
                     result.stderr.strip()[:200])
        raise DatacrumbsError(f"building the configurator launcher failed: {first}")
    return build_id


def _marker(build_id: str) -> bytes:
    return f"datacrumbs-launcher-build:{build_id}".encode()


def _repair(path: Path, gid: int) -> str:
    info = path.lstat()
    if (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (0, gid, LAUNCHER_MODE):
        return "kept"
    os.chown(path, 0, gid)  # chown clears the setgid bit: chmod after it
    os.chmod(path, LAUNCHER_MODE)
    return "kept (owner/mode repaired)"


def install_configurator_exec(prefix: Path) -> tuple[str, Path]:
    """Create the group if missing and install the launcher under ``prefix``: one report line.

    The action is ``created``/``updated``/``kept`` (``kept (owner/mode repaired)``), followed by
    ``, group datacrumbs created`` on the run that created the group.
    """
    group_action, gid = ensure_group()
    group_note = f", group {LAUNCHER_GROUP} created" if group_action == "created" else ""
    target = launcher_path(prefix)
    ensure_dir(target.parent)
    _, build_id = _compile_command(target, _python())
    try:
        info = target.lstat()
    except FileNotFoundError:
        info = None
    if info is not None and stat.S_ISREG(info.st_mode) and _marker(build_id) in target.read_bytes():
        return _repair(target, gid) + group_note, target
    with tempfile.TemporaryDirectory(prefix="datacrumbs-launcher-") as build_dir:
        built = Path(build_dir) / target.name
        build_launcher(built)
        data = built.read_bytes()
    write_atomically(target, data, LAUNCHER_MODE, owner=(0, gid))
    return ("created" if info is None else "updated") + group_note, target
