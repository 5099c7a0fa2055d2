"""The text of ``<prefix>/bin/datacrumbs_setup``: the bash way into an installation.

Sourcing it must give the environment that ``module load datacrumbs/<version>`` gives (the
tests compare the two): the installation's ``DATACRUMBS_*`` settings, exported only where the
user has no value of their own; its commands on PATH; its modulefiles on MODULEPATH. Sourcing
it twice adds nothing twice.
"""

from __future__ import annotations

import shlex
from pathlib import Path

__all__ = ["setup_script"]


def setup_script(
    *, version: str, prefix: Path, env: dict[str, str], path_dirs: list[Path], modulepath: Path
) -> str:
    """Bash source for ``datacrumbs_setup``; ``path_dirs`` end up on PATH in the given order."""
    lines = [
        f"# datacrumbs {version}: source this file to use the installation at {prefix}.",
        "# Exports its DATACRUMBS_* settings (a value you already set is kept), puts its",
        "# commands on PATH and its modulefiles on MODULEPATH. Sourcing it twice is harmless.",
        "# Written by datacrumbs_install; re-run the installer rather than editing it.",
        "",
    ]
    for name, value in env.items():
        lines.append(f"[[ -n ${{{name}:-}} ]] || {name}={shlex.quote(value)}; export {name}")
    lines += [
        "",
        "_datacrumbs_prepend() {",
        '    case ":${!1:-}:" in',
        '        *":$2:"*) ;;',
        '        *) export "$1=$2${!1:+:${!1}}" ;;',
        "    esac",
        "}",
    ]
    lines += [f"_datacrumbs_prepend PATH {shlex.quote(str(d))}" for d in reversed(path_dirs)]
    lines += [
        f"_datacrumbs_prepend MODULEPATH {shlex.quote(str(modulepath))}",
        "unset -f _datacrumbs_prepend",
        "",
    ]
    return "\n".join(lines)
