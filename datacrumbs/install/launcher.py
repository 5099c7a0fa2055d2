"""Building and installing the setgid configurator launcher (called by ``datacrumbs_install``).

The launcher (``configurator/launcher.c``) is compiled on the node against the base interpreter
of the installation's runtime, because it must embed exactly that Python, and it starts the
runtime's ``bin/python`` (under the prefix) so that the runtime's packages are the ones used.
It is installed root-owned, group :data:`LAUNCHER_GROUP`, mode 2755: the setgid bit is what
lets it (and only it) reach the signer's 0660 socket.

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
import tempfile
from pathlib import Path

from datacrumbs.common.atomic_file import write_atomically
from datacrumbs.common.errors import DatacrumbsError
from datacrumbs.common.layout import LAUNCHER_GROUP, InstallLayout
from datacrumbs.install.files import ensure_dir
from datacrumbs.install.interpreter import Interpreter

__all__ = ["LAUNCHER_MODE", "build_launcher", "ensure_group", "install_configurator_exec"]

LAUNCHER_MODE = 0o2755
_SOURCE = Path(__file__).parents[1] / "configurator" / "launcher.c"
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9/._+-]+$")
_HARDENING = [
    "-O2",
    "-Wall",
    "-Werror",
    "-fstack-protector-strong",
    "-D_FORTIFY_SOURCE=2",
    "-fPIE",
    "-pie",
    "-Wl,-z,relro,-z,now",
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


def _checked(python: Path) -> str:
    """``python`` as a C string literal's content; refused if it would need quoting."""
    if not _SAFE_PATH.match(str(python)):
        raise DatacrumbsError(
            f"interpreter path {str(python)!r} has characters the launcher build cannot quote"
        )
    return str(python)


def _compile_command(output: Path, python: Path, base: Interpreter) -> tuple[list[str], str]:
    """The compiler command line, and the build digest it embeds.

    ``python`` is the runtime's interpreter (its pyvenv.cfg selects the runtime's packages);
    ``base`` the interpreter it was made from, whose headers and libpython are linked.
    """
    if not base.shared:
        raise DatacrumbsError(
            f"{base.path} has no shared libpython: the configurator launcher cannot embed it"
        )
    if not Path(base.include_dir, "Python.h").is_file():
        raise DatacrumbsError(
            f"{base.include_dir}/Python.h is missing: install the headers of {base.path} "
            f"(Debian: python{base.version_text}-dev)"
        )
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        raise DatacrumbsError("gcc is needed to build the configurator launcher; install gcc")
    library = f"python{base.ld_version}"
    flags = [
        *_HARDENING,
        f"-I{base.include_dir}",
        f"-L{base.lib_dir}",
        f"-Wl,-rpath,{base.lib_dir}",
    ]
    runtime = _checked(python)
    digest = hashlib.sha256()
    for part in (
        _SOURCE.read_bytes(),
        runtime.encode(),
        " ".join(flags).encode(),
        library.encode(),
    ):
        digest.update(part + b"\0")
    build_id = digest.hexdigest()[:32]
    defines = [f'-DDATACRUMBS_PYTHON="{runtime}"', f'-DDATACRUMBS_BUILD_ID="{build_id}"']
    command = [compiler, *defines, *flags, str(_SOURCE), f"-l{library}", "-o", str(output)]
    return command, build_id


def build_launcher(output: Path, python: Path, base: Interpreter) -> str:
    """Compile the launcher to ``output``; return its build digest."""
    command, build_id = _compile_command(output, python, base)
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        first = next(
            (line for line in result.stderr.splitlines() if "error" in line),
            result.stderr.strip()[:200],
        )
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


def install_configurator_exec(layout: InstallLayout, base: Interpreter) -> tuple[str, Path]:
    """Create the group if missing and install the launcher of ``layout``: one report line.

    The action is ``created``/``updated``/``kept`` (``kept (owner/mode repaired)``), followed by
    ``, group datacrumbs created`` on the run that created the group.
    """
    group_action, gid = ensure_group()
    group_note = f", group {LAUNCHER_GROUP} created" if group_action == "created" else ""
    target = layout.launcher
    ensure_dir(target.parent)
    _, build_id = _compile_command(target, layout.runtime_python, base)
    try:
        info = target.lstat()
    except FileNotFoundError:
        info = None
    if info is not None and stat.S_ISREG(info.st_mode) and _marker(build_id) in target.read_bytes():
        return _repair(target, gid) + group_note, target
    with tempfile.TemporaryDirectory(prefix="datacrumbs-launcher-") as build_dir:
        built = Path(build_dir) / target.name
        build_launcher(built, layout.runtime_python, base)
        data = built.read_bytes()
    write_atomically(target, data, LAUNCHER_MODE, owner=(0, gid))
    return ("created" if info is None else "updated") + group_note, target
