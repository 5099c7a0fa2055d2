"""Rendering of the repository's templates (``systemd/``, ``modulefiles/``) for one prefix.

Templates name values as ``@DATACRUMBS_NAME@``. Rendering is strict: a placeholder without a
value is an error, so a typo in a unit or modulefile fails the install instead of shipping a
literal ``@...@`` to systemd or Lmod.
"""

from __future__ import annotations

import re
from pathlib import Path

from datacrumbs.common.errors import DatacrumbsError

__all__ = ["MODULEFILE_TEMPLATE", "SYSTEMD_TEMPLATES", "render", "template_dir"]

_PLACEHOLDER = re.compile(r"@(DATACRUMBS_[A-Z_]+)@")
_REPOSITORY = Path(__file__).resolve().parents[2]

#: Where the templates live: the top of the source tree datacrumbs is installed from.
SYSTEMD_TEMPLATES = _REPOSITORY / "systemd"
MODULEFILE_TEMPLATE = _REPOSITORY / "modulefiles" / "datacrumbs.lua.in"


def template_dir(path: Path) -> Path:
    """``path`` if it exists; the error says datacrumbs must be installed from its source tree."""
    if not path.exists():
        raise DatacrumbsError(
            f"template {path} not found: install datacrumbs from its source tree "
            "(scripts/bootstrap installs it editable)"
        )
    return path


def render(text: str, values: dict[str, str], *, source: Path) -> str:
    """``text`` with every ``@DATACRUMBS_*@`` placeholder replaced by its value."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise DatacrumbsError(f"{source}: unknown placeholder @{name}@")
        return values[name]

    return _PLACEHOLDER.sub(substitute, text)
