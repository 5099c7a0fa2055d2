"""The uprobe binaries of a run, opened and checked against what was signed before anything is
attached (see common/binary_identity.py for why).

Each binary is opened once, without following a final symlink and without blocking; its
identity (device, inode, size, modification time, SHA-256) must equal the one in the signed
probe file, else every function of that binary is refused with one line naming what differs,
while the rest of the probes run. The engine then attaches through ``/proc/self/fd/N``, so the
kernel resolves the inode that was checked. The descriptors stay open until the run ends: a
binary's uprobe group is attached again when a runaway function of it is detached
(daemon/hit_limit.py), and ``/proc/self/fd/N`` must still name the checked file then, never a
descriptor number reused by something else.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

from datacrumbs.common.binary_identity import (
    identity_of,
    kernel_path,
    open_binary,
)
from datacrumbs.common.errors import DatacrumbsError
from datacrumbs.common.probes import Probe
from datacrumbs.ebpf.engine import TargetOutcome

__all__ = ["PinnedBinaries"]

_log = logging.getLogger("datacrumbs")


class PinnedBinaries:
    """The checked binaries (open), the probes that may be attached, and those refused:
    ``unusable`` (no such file, not a regular file, a symlink: a target that fails, recorded in
    the status database like any other) and ``unsigned`` (a file other than the one signed:
    not recorded, so a re-made probe file is tried at once)."""

    def __init__(self, probes: Iterable[Probe]) -> None:
        self._fds: dict[str, int] = {}
        self.probes: list[Probe] = []
        self.unusable: list[TargetOutcome] = []
        self.unsigned: list[TargetOutcome] = []
        reasons: dict[str, tuple[str, bool] | None] = {}
        for probe in probes:
            binary = probe.binary_path
            if binary is None:
                self.probes.append(probe)
                continue
            if binary not in reasons:
                reasons[binary] = self._pin(probe)
            refusal = reasons[binary]
            if refusal is None:
                self.probes.append(probe)
                continue
            reason, signed_other = refusal
            for function in probe.functions:
                _log.warning(
                    "cannot trace %s:%s: %s",
                    probe.name,
                    function,
                    reason,
                    extra={"CATEGORY": probe.name, "FUNCTION": function},
                )
                outcome = TargetOutcome(probe.name, probe.type, function, False, reason, binary)
                (self.unsigned if signed_other else self.unusable).append(outcome)

    def _pin(self, probe: Probe) -> tuple[str, bool] | None:
        """Open and check ``probe``'s binary: None when it is the signed file (kept open),
        else the reason and whether the file is usable but not the one signed."""
        binary = probe.binary_path
        assert binary is not None
        try:
            fd = open_binary(binary)
        except DatacrumbsError as exc:
            return str(exc), False
        refusal = self._check(probe, fd)
        if refusal is None:
            self._fds[binary] = fd
        else:
            os.close(fd)
        return refusal

    @staticmethod
    def _check(probe: Probe, fd: int) -> tuple[str, bool] | None:
        binary = probe.binary_path
        if probe.binary_identity is None:
            return f"binary {binary} has no signed identity (re-make the probe file)", True
        try:
            differs = probe.binary_identity.differences(identity_of(fd))
        except OSError as exc:
            return f"binary {binary} cannot be read: {exc.strerror}", False
        if differs:
            return (
                f"binary {binary} is not the file that was signed ({', '.join(differs)} differ)",
                True,
            )
        return None

    @property
    def kernel_paths(self) -> dict[str, str]:
        """Binary path → the path that reaches exactly the checked file."""
        return {binary: kernel_path(fd) for binary, fd in self._fds.items()}

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
