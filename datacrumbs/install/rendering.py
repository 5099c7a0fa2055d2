"""Rendering of the unit and modulefile templates (package data) for one prefix.

The templates travel inside the package (``datacrumbs/install/templates/``), so an installer
run from a wheel renders the same files as one run from the source tree. They name values as
``@DATACRUMBS_NAME@``. Rendering is strict: a placeholder without a value is an error, so a typo
in a unit or modulefile fails the install instead of shipping a literal ``@...@`` to systemd or
Lmod.
"""

from __future__ import annotations

import re
from pathlib import Path

from datacrumbs.common.errors import DatacrumbsError

__all__ = [
    "MODULEFILE_TEMPLATE",
    "SLURM_TEMPLATES",
    "SYSTEMD_TEMPLATES",
    "render",
    "slurm_templates",
    "systemd_templates",
]

_PLACEHOLDER = re.compile(r"@(DATACRUMBS_[A-Z_]+)@")
_TEMPLATES = Path(__file__).with_name("templates")  # package data, beside this module

#: The unit templates (``*.in``) and the modulefile template.
SYSTEMD_TEMPLATES = _TEMPLATES / "systemd"
#: The scheduler hooks: Slurm's prolog and epilog.
SLURM_TEMPLATES = _TEMPLATES / "slurm"
MODULEFILE_TEMPLATE = _TEMPLATES / "modulefiles" / "datacrumbs.lua.in"


def systemd_templates() -> list[Path]:
    """The unit templates, sorted by name."""
    return sorted(SYSTEMD_TEMPLATES.glob("*.in"))


def slurm_templates() -> list[Path]:
    """The Slurm hook templates, sorted by name."""
    return sorted(SLURM_TEMPLATES.glob("*.in"))


def render(text: str, values: dict[str, str], *, source: Path) -> str:
    """``text`` with every ``@DATACRUMBS_*@`` placeholder replaced by its value."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise DatacrumbsError(f"{source.name}: unknown placeholder @{name}@")
        return values[name]

    return _PLACEHOLDER.sub(substitute, text)
