"""``datacrumbs_sqlite_extract``: print one section of a datacrumbs SQLite file as JSON.

For admins and scripts that want to see what an installation or a run decided without writing
SQL. Sections of the system configuration: ``system-configuration`` and ``summary`` (objects of
key → value); of a runtime status database: ``valid-probes`` and ``invalid-probes`` (lists of
targets, with the failure reason and when it was recorded) and ``runs`` (each run's mode,
profile interval and trace).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from datacrumbs.common.errors import run_cli
from datacrumbs.common.status_db import StatusDB
from datacrumbs.common.system_config import read_table

__all__ = ["SECTIONS", "main"]

SECTIONS: dict[str, Callable[[Path], Any]] = {
    "system-configuration": lambda path: read_table(path, "system_configuration"),
    "summary": lambda path: read_table(path, "summary"),
    "valid-probes": lambda path: StatusDB(path).rows("successful"),
    "invalid-probes": lambda path: StatusDB(path).rows("invalid"),
    "runs": lambda path: StatusDB(path).runs(),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="datacrumbs_sqlite_extract",
        description="Print one section of a datacrumbs SQLite file as JSON on stdout.",
    )
    parser.add_argument("sqlite", type=Path, help="the SQLite file (opened read-only)")
    parser.add_argument("--section", required=True, choices=sorted(SECTIONS))
    args = parser.parse_args(argv)

    def run() -> int:
        section = SECTIONS[args.section](args.sqlite)
        json.dump(section, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
        return 0

    return run_cli("datacrumbs_sqlite_extract", run)
