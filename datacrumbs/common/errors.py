"""The one exception type a user can cause, and the CLI wrapper that turns it into one line.

Every command of datacrumbs ends a user error the same way: ``<prog>: error: <one line>`` on
stderr and a non-zero exit, never a traceback. Code raises :class:`DatacrumbsError` with the
message written once, where the error is detected.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

__all__ = ["EXIT_USAGE", "DatacrumbsError", "run_cli"]

#: Exit status for bad input or a refused request (argparse uses the same).
EXIT_USAGE = 2


class DatacrumbsError(Exception):
    """An error the user can fix; its message is one complete line."""


def run_cli(prog: str, main: Callable[[], int]) -> int:
    """Run ``main`` and turn a :class:`DatacrumbsError` into one stderr line and exit 2."""
    try:
        return main()
    except DatacrumbsError as exc:
        message = " ".join(str(exc).split())
        print(f"{prog}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
