"""The Python interpreter an installation's runtime is made from: one every user can run.

The runtime (a virtual environment under the prefix) links back to its base interpreter, and
the setgid launcher embeds that interpreter's libpython. If the interpreter lives behind a
private directory (a pyenv under root's 0700 home, as on these machines), no ordinary user can
start any datacrumbs command — so the installer picks an interpreter whose executable, standard
library and shared library others can reach, or refuses in one line naming the interpreter and
the directory in the way.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from datacrumbs.common.directories import closed_to_others
from datacrumbs.common.errors import DatacrumbsError

__all__ = ["MIN_VERSION", "Interpreter", "choose_interpreter", "inspect_interpreter"]

MIN_VERSION = (3, 11)
#: Where a system interpreter is looked for when the running one's base is private.
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"

# Run by the candidate itself (isolated: no user site, no PYTHON* variables).
_FACTS = """
import json, os, sys, sysconfig
v = sysconfig.get_config_var
libdir, soname = v("LIBDIR") or "", v("INSTSONAME") or ""
print(json.dumps({
    "version": list(sys.version_info[:2]),
    "stdlib": os.path.dirname(os.__file__),
    "include_dir": v("INCLUDEPY") or "",
    "lib_dir": libdir,
    "ld_version": v("LDVERSION") or "",
    "shared": bool(v("Py_ENABLE_SHARED")),
    "libpython": os.path.join(libdir, soname) if soname else "",
}))
"""


@dataclass(frozen=True)
class Interpreter:
    """A base interpreter and what the runtime and the launcher build need to know of it."""

    path: Path
    version: tuple[int, int]
    stdlib: Path
    include_dir: str
    lib_dir: str
    ld_version: str
    shared: bool
    libpython: str

    @property
    def version_text(self) -> str:
        return f"{self.version[0]}.{self.version[1]}"


def inspect_interpreter(path: Path) -> Interpreter:
    """Ask the interpreter at ``path`` for its facts; one line if it cannot answer."""
    try:
        result = subprocess.run(
            [str(path), "-I", "-c", _FACTS], capture_output=True, text=True, timeout=60
        )
    except OSError as exc:
        raise DatacrumbsError(f"cannot run {path}: {exc.strerror}") from None
    except subprocess.TimeoutExpired:
        raise DatacrumbsError(f"{path} did not answer within 60 s") from None
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or [f"exit status {result.returncode}"])[-1]
        raise DatacrumbsError(f"{path} is not a working Python: {last}")
    facts = json.loads(result.stdout)
    return Interpreter(
        path=path,
        version=(facts["version"][0], facts["version"][1]),
        stdlib=Path(facts["stdlib"]),
        include_dir=facts["include_dir"],
        lib_dir=facts["lib_dir"],
        ld_version=facts["ld_version"],
        shared=facts["shared"],
        libpython=facts["libpython"],
    )


def _unusable(interpreter: Interpreter) -> str | None:
    """Why other users could not run ``interpreter``, or None."""
    if interpreter.version < MIN_VERSION:
        return f"it is Python {interpreter.version_text}, datacrumbs needs 3.11 or newer"
    real = Path(os.path.realpath(interpreter.path))
    # What other users' processes open: the executable (as named, and resolved), the standard
    # library, and the shared libpython the launcher links.
    needed = {
        interpreter.path: interpreter.path.parent,
        real: real.parent,
        interpreter.stdlib: interpreter.stdlib,
    }
    if interpreter.shared and interpreter.libpython:
        library = Path(os.path.realpath(interpreter.libpython))
        needed[library] = library.parent
    for path, directory in needed.items():
        closed = closed_to_others(directory)
        if closed is not None:
            blocking, mode = closed
            return f"{blocking} is {mode:04o}, so other users cannot reach {path}"
    info = real.stat()
    if not info.st_mode & stat.S_IXOTH:
        return f"{real} is {stat.S_IMODE(info.st_mode):04o}, not executable by other users"
    return None


def _candidates() -> list[Path]:
    """The running environment's base interpreter first, then the system's python3."""
    found = [Path(getattr(sys, "_base_executable", sys.executable))]
    system = shutil.which("python3", path=SYSTEM_PATH)
    if system is not None and os.path.realpath(system) != os.path.realpath(found[0]):
        found.append(Path(system))
    return found


def choose_interpreter(explicit: Path | None = None) -> Interpreter:
    """The interpreter to make the runtime from: ``explicit`` if given, else the first
    candidate every user can run. Refuses in one line naming each candidate and why."""
    candidates = [explicit] if explicit is not None else _candidates()
    reasons = []
    for path in candidates:
        if not path.is_absolute():
            raise DatacrumbsError(f"--python must be an absolute path, got {str(path)!r}")
        interpreter = inspect_interpreter(path)
        reason = _unusable(interpreter)
        if reason is None:
            return interpreter
        reasons.append(f"{path}: {reason}")
    hint = "" if explicit is not None else "; pass --python with one every user can run"
    raise DatacrumbsError(f"no Python interpreter every user can run ({'; '.join(reasons)}){hint}")
