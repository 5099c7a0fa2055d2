"""The attach interface every probe kind implements, and what the attachers share.

An attacher takes the functions of its kind, in probe-file order, and returns one
:class:`TargetOutcome` for each, in the same order: how it attaches them (one link per function,
one shared link per binary, a cookie map) is its own business. What they share is an
:class:`AttachContext`: the loaded object, the function table the trace is written from, the
session's links, the claims that keep one target from being traced twice, and the pinned
binaries the kernel must resolve.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from datacrumbs.common.probes import Probe, ProbeType
from datacrumbs.ebpf.functions import FunctionTable
from datacrumbs.ebpf.libbpf import BpfError, BpfLink, BpfObject
from datacrumbs.ebpf.link_set import FunctionLinks, LinkSet

__all__ = ["AttachContext", "Attacher", "Target", "TargetOutcome"]

#: One function of one probe category, as the probe file names it.
Target = tuple[Probe, str]


@dataclass(frozen=True)
class TargetOutcome:
    """The result of attaching one function of one probe category."""

    category: str
    kind: ProbeType
    function: str
    attached: bool
    reason: str | None = None
    binary: str | None = None
    #: Not attached because the document names the target twice (another category has it):
    #: nothing about the target itself, never to be remembered as a failure.
    conflict: bool = False


class Attacher(Protocol):
    """Attaches the functions of one probe kind."""

    def attach(self, targets: Sequence[Target]) -> list[TargetOutcome]:
        """One outcome per target, in order, then one per target they imply."""
        ...


@dataclass
class AttachContext:
    """What every attacher of one session works on."""

    obj: BpfObject
    functions: FunctionTable = field(default_factory=FunctionTable)
    links: LinkSet = field(default_factory=LinkSet)
    #: (kind or binary, target) -> the category that traces it
    claims: dict[tuple[str, str], str] = field(default_factory=dict)
    #: binary path -> the path the kernel is to resolve (``/proc/self/fd/N`` of a pinned file)
    pinned: dict[str, str] = field(default_factory=dict)
    #: function id of an attached function probe -> its outcome (names it when detached)
    function_outcomes: dict[int, TargetOutcome] = field(default_factory=dict)

    def kernel_binary(self, binary: str) -> str:
        """The path through which the kernel and the symbol reader reach ``binary``."""
        return self.pinned.get(binary, binary)

    @staticmethod
    def failed(probe: Probe, function: str, reason: str) -> TargetOutcome:
        return TargetOutcome(probe.name, probe.type, function, False, reason, probe.binary_path)

    @staticmethod
    def conflicting(probe: Probe, function: str, reason: str) -> TargetOutcome:
        """Not attached: another category of the same document has the target."""
        return TargetOutcome(
            probe.name, probe.type, function, False, reason, probe.binary_path, conflict=True
        )

    @staticmethod
    def succeeded(probe: Probe, function: str) -> TargetOutcome:
        return TargetOutcome(probe.name, probe.type, function, True, None, probe.binary_path)

    def claim(self, scope: str, target: str, probe: Probe) -> str | None:
        """Claim ``target`` for ``probe``'s category; why not, if another has it."""
        owner = self.claims.get((scope, target))
        if owner is not None:
            return f"{target} is already traced by category {owner}"
        self.claims[(scope, target)] = probe.name
        return None

    def attach_pair(
        self,
        probe: Probe,
        function: str,
        fid: int,
        enter: Callable[[], BpfLink],
        exit_: Callable[[], BpfLink],
        *,
        function_probe: bool = True,
    ) -> TargetOutcome:
        """One function's entry and exit links: the exit first, so that no entry is ever
        recorded without its exit. A function probe's (uprobe's, kprobe's) links are indexed
        by its id, so that it can be detached alone."""
        try:
            exit_link = exit_()
        except BpfError as exc:
            self.functions.remove(fid)
            return self.failed(probe, function, str(exc))
        try:
            enter_link = enter()
        except BpfError as exc:
            exit_link.destroy()
            self.functions.remove(fid)
            return self.failed(probe, function, str(exc))
        outcome = self.succeeded(probe, function)
        if function_probe:
            self.links.add_functions(FunctionLinks([exit_link, enter_link], [fid]))
            self.function_outcomes[fid] = outcome
        else:
            self.links.add(exit_link, enter_link)
        return outcome
