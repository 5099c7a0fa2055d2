"""From discovered probes to the unsigned probe document the signer is asked to sign.

Targets are deduplicated across categories (the first category naming a target keeps it: a
function attached twice would be traced twice), targets the node's runtime status database
knows to fail are dropped, and the 16,384-function cap is enforced here, with a message that
says which probes to narrow, rather than as a refusal from the signer.
"""

from __future__ import annotations

import os
import pwd
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from datacrumbs.common.binary_identity import file_identity
from datacrumbs.common.errors import DatacrumbsError
from datacrumbs.common.hot_functions import is_shared_library
from datacrumbs.common.probes import MAX_FUNCTIONS
from datacrumbs.common.settings import Settings
from datacrumbs.common.signing import ALGORITHM
from datacrumbs.common.status_db import StatusDB, Target, status_db_path
from datacrumbs.common.status_db import target_of as status_target
from datacrumbs.configurator.discovery import Discovered

__all__ = ["build_document", "target_of"]


def target_of(probe: Discovered, function: str) -> Target:
    """The status database's name for one function of one probe."""
    return status_target(probe.type, probe.binary_path, probe.provider, function)


def _known_invalid(path: Path, targets: list[Target]) -> set[Target]:
    if not path.exists():
        return set()
    if not os.access(path, os.R_OK):
        print(
            f"note: status database {path} is not readable by you; targets known to fail "
            "are not dropped here (the daemon still skips them)",
            file=sys.stderr,
        )
        return set()
    try:
        return set(StatusDB(path).known_invalid(targets))
    except DatacrumbsError as exc:  # corrupt, or locked for longer than the busy timeout
        print(
            f"note: {exc}; targets known to fail are not dropped here (the daemon still "
            "skips them)",
            file=sys.stderr,
        )
        return set()


def _without_hot(probe: Discovered, hot: re.Pattern[str] | None) -> list[str]:
    """The probe's functions without the hot ones of a shared library (the signer would
    refuse them: see common/hot_functions.py), with a note naming what was left out."""
    if hot is None or probe.binary_path is None or not is_shared_library(probe.binary_path):
        return probe.functions
    left_out = [f for f in probe.functions if hot.match(f.partition(":")[0])]
    if left_out:
        shown = ", ".join(left_out[:5]) + (
            f", +{len(left_out) - 5} more" if len(left_out) > 5 else ""
        )
        print(
            f"note: probe {probe.name!r}: left out {len(left_out)} hot shared-library "
            f"functions ({shown}): a uprobe on them slows every process of the node "
            "(DATACRUMBS_HOT_FUNCTIONS)",
            file=sys.stderr,
        )
    return [f for f in probe.functions if f not in left_out]


def build_document(
    discovered: list[Discovered],
    settings: Settings,
    *,
    user: str,
    config_path: Path,
    output_path: Path,
    expires_in_days: int,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The document (summary, categories, algorithm) ready to be signed."""
    seen: set[Target] = set()
    kept: list[tuple[Discovered, list[str]]] = []
    hot = re.compile(settings.hot_functions) if settings.hot_functions else None
    for probe in discovered:
        functions = []
        for function in _without_hot(probe, hot):
            target = target_of(probe, function)
            if target not in seen:
                seen.add(target)
                functions.append(function)
        kept.append((probe, functions))
    identities: dict[str, dict[str, Any]] = {}
    uid = pwd.getpwnam(user).pw_uid  # the user running this (the launcher's real uid)
    db = status_db_path(settings.state_dir, settings.install_user, uid, output_path)
    invalid = _known_invalid(db, sorted(seen))
    categories = []
    for probe, functions in kept:
        alive = [f for f in functions if target_of(probe, f) not in invalid]
        if not alive:
            print(
                f"note: probe {probe.name!r} has nothing left after dropping duplicates and "
                "targets known to fail; left out",
                file=sys.stderr,
            )
            continue
        category: dict[str, Any] = {"type": int(probe.type), "name": probe.name, "functions": alive}
        if probe.binary_path is not None:
            category["binary_path"] = probe.binary_path
            if probe.binary_path not in identities:  # read once; the signer re-reads it
                identities[probe.binary_path] = file_identity(probe.binary_path).model_dump()
            category["binary_identity"] = identities[probe.binary_path]
        if probe.provider is not None:
            category["provider"] = probe.provider
        if probe.delivery != "valve":
            category["delivery"] = probe.delivery
        exceptions = {f: d for f, d in probe.function_delivery.items() if f in alive}
        if untraced := sorted(set(probe.function_delivery) - set(exceptions)):
            print(
                f"note: probe {probe.name!r} does not trace {', '.join(untraced)}: their "
                "function_delivery is left out",
                file=sys.stderr,
            )
        if exceptions:
            category["function_delivery"] = exceptions
        categories.append(category)
    if not categories:
        raise DatacrumbsError(
            "nothing left to trace: every target is a duplicate or known to fail on this node"
        )
    total = sum(len(c["functions"]) for c in categories)
    if total > MAX_FUNCTIONS:
        largest = sorted(categories, key=lambda c: -len(c["functions"]))[:3]
        sizes = ", ".join(f"{c['name']!r} {len(c['functions'])}" for c in largest)
        raise DatacrumbsError(
            f"{total} functions exceed the maximum of {MAX_FUNCTIONS}; "
            f"narrow the largest probes ({sizes})"
        )
    now = now or datetime.now(UTC)
    summary = {
        "config_file_path": str(config_path),
        "probe_file_path": str(output_path),
        "hostname": settings.hostname,
        "host": settings.host,
        "user": user,
        "install_user": settings.install_user,
        "created_at": now.isoformat(timespec="seconds"),
        "expires_at": (now + timedelta(days=expires_in_days)).isoformat(timespec="seconds"),
    }
    return {"summary": summary, "categories": categories, "checksum_algorithm": ALGORITHM}
