"""Uprobes: the functions of one binary share one uprobe_multi link per direction (kernel 6.6+),
or get one perf-event uprobe and uretprobe each (older kernels, ``uprobe_mode="single"``).

Scoped to the job (``per_process``, the default), the links are made per job process by
:mod:`process_uprobes`; here each binary's functions are checked, claimed and numbered, and the
kernel's consent is asked once, with links on the daemon's own process that are destroyed at
once (an offset the kernel refuses fails here, named, not in every process later). Scoped to
the node, the links are made here, for every process.

Every target is checked against the binary's ELF symbols, names and explicit offsets alike: a
``name:0xOFFSET`` must start one of its functions (a breakpoint elsewhere would corrupt the code
others run). Targets are claimed by address, so an alias (glibc's fopen and fopen64) is not
traced twice. The binary is reached through the pinned path the daemon checked.

USDT probes (``usdt`` categories) go the same way, by name instead of offset: libbpf attaches
each (``bpf_program__attach_usdt``: a perf-event uprobe at each of its places, its semaphore
counted by the kernel), in each job process or, scoped to the node, in every process.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from dataclasses import dataclass

from datacrumbs.common.dftracer_names import (
    LIBC_FILES,
    LIBC_ITEM_RETURNS,
    LIBC_POINTER_RETURNS,
    POSIX,
    STDIO,
    layer_of,
)
from datacrumbs.common.probes import FunctionArgument, Probe, ProbeType
from datacrumbs.ebpf import uprobes
from datacrumbs.ebpf.attach import AttachContext, Target, TargetOutcome
from datacrumbs.ebpf.functions import FunctionSpec
from datacrumbs.ebpf.libbpf import BpfError
from datacrumbs.ebpf.link_set import FunctionLinks, Link, LinkSet
from datacrumbs.ebpf.object_names import FUNC_ENTER, FUNC_EXIT, UMULTI_ENTER, UMULTI_EXIT, USDT
from datacrumbs.ebpf.process_uprobes import BinaryPlan, ProcessUprobes, Site
from datacrumbs.ebpf.records import FUNC_RET_ITEMS
from datacrumbs.ebpf.usdt_targets import UsdtError, usdt_fields

__all__ = ["UprobeAttacher"]

#: Errors of a uprobe_multi link that concern the whole binary, not one offset: not bisected.
_WHOLE_BINARY_ERRORS = frozenset(
    {errno.EBADF, errno.ENOENT, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.ELOOP}
)

_Symbols = dict[str, "uprobes.ElfSymbols | uprobes.SymbolError"]


@dataclass
class _Planned:
    """A resolved function waiting for its binary's uprobe_multi links."""

    probe: Probe
    function: str
    claim: str
    offset: int
    fid: int
    cookie: int
    usdt: tuple[str, str] | None = None  # a USDT probe's (provider, name); offset unused


@dataclass
class _Group:
    """The functions of one binary that share a uprobe_multi link pair."""

    binary: str
    targets: list[_Planned]


def _add(
    ctx: AttachContext, probe: Probe, name: str, arguments: list[FunctionArgument]
) -> tuple[FunctionSpec, int]:
    """The function's trace identity — its layer by library (STDIO for the C library's buffered
    I/O, MPI, HDF5, ..., APP for the program's own code), its symbol name, the probe file's
    category kept in ``args`` — and its cookie. A C-library function with a file (a FILE *,
    path or fd argument) names it in its events, like a syscall does."""
    layer = layer_of(probe.binary_path, name)
    libc = layer in (POSIX, STDIO)
    where = LIBC_FILES.get(name) if libc else None
    pointer = libc and name in LIBC_POINTER_RETURNS
    bits = uprobes.file_bits(where)
    if pointer:
        bits |= uprobes.NO_RETURN_COOKIE
    if libc and name in LIBC_ITEM_RETURNS:
        bits |= FUNC_RET_ITEMS
    spec = ctx.functions.add(
        name, layer, uprobes.argument_fields(arguments), has_file=where is not None,
        has_return=not pointer, labels=(("category", probe.name),),
    )  # fmt: skip
    return spec, uprobes.function_cookie(spec.fid, arguments, bits)


class UprobeAttacher:
    """Attaches uprobes with uprobe_multi links (``multi``) or perf-event uprobes, in every
    process or (``per_process``) planned for :attr:`per_process`, which attaches them in each
    job process."""

    def __init__(self, ctx: AttachContext, multi: bool, per_process: bool = False) -> None:
        self.ctx = ctx
        self.multi = multi
        self.scoped = per_process
        #: The plan of the job's processes' uprobes (``per_process``), once attach() ran.
        self.per_process: ProcessUprobes | None = None
        self._checks: list[Link] = []  # links on the daemon's own process, destroyed at once

    def attach(self, targets: Sequence[Target]) -> list[TargetOutcome]:
        symbols: _Symbols = {}  # each binary's symbols are read once per attach
        outcomes: list[TargetOutcome | None] = []
        by_binary: dict[str, list[tuple[int, _Planned]]] = {}
        for probe, function in targets:
            resolved = (
                self._plan_usdt(probe, function)
                if probe.type is ProbeType.USDT
                else self._resolve(probe, function, symbols)
            )
            if isinstance(resolved, _Planned):  # a USDT probe
                if self.scoped:
                    by_binary.setdefault(probe.binary_path or "", []).append(
                        (len(outcomes), resolved)
                    )
                    outcomes.append(None)
                else:
                    outcomes.append(self._attach_usdt(resolved, -1))
            elif isinstance(resolved, TargetOutcome):
                outcomes.append(resolved)
            elif self.multi or self.scoped:
                planned = self._plan(probe, function, *resolved)
                if isinstance(planned, TargetOutcome):
                    outcomes.append(planned)
                else:
                    by_binary.setdefault(probe.binary_path or "", []).append(
                        (len(outcomes), planned)
                    )
                    outcomes.append(None)
            else:
                outcomes.append(self._attach_single(probe, function, *resolved))
        check = os.getpid() if self.scoped else 0
        plans: list[BinaryPlan] = []
        for binary, slotted in by_binary.items():
            slots = dict((id(p), slot) for slot, p in slotted)
            group = [p for _, p in slotted if p.usdt is None]
            if self.multi and group:
                results = self._attach_group(binary, group, check)
            else:
                results = [(p, self._check_single(binary, p, check)) for p in group]
            results += [(p, self._check_usdt(p, check)) for _, p in slotted if p.usdt]
            sites = []
            for target, reason in results:
                outcomes[slots[id(target)]] = self._outcome(target, reason)
                if reason is None:
                    sites.append(Site(target.offset, target.cookie, target.fid, target.usdt))
            if sites:
                plans.append(BinaryPlan(self.ctx.kernel_binary(binary), sites))
        if self.scoped:
            checks, self._checks = self._checks, []
            LinkSet(checks).destroy_all()
            self.per_process = ProcessUprobes(self.ctx.obj, self.multi, plans)
        final = [o for o in outcomes if o is not None]
        assert len(final) == len(outcomes)
        return final

    def _check_single(self, binary: str, target: _Planned, pid: int) -> str | None:
        """Whether the kernel takes one function's perf-event uprobe pair (on process ``pid``:
        the links are destroyed at once); the reason when it does not."""
        path = self.ctx.kernel_binary(binary)
        obj = self.ctx.obj
        try:
            for program, ret in ((FUNC_EXIT, True), (FUNC_ENTER, False)):
                self._checks.append(
                    obj.attach_uprobe(program, path, target.offset, target.cookie, ret, pid)
                )
        except BpfError as exc:
            return str(exc)
        return None

    def _plan_usdt(self, probe: Probe, function: str) -> _Planned | TargetOutcome:
        """Check, claim and number USDT probe ``function`` of the category's provider: its
        events carry its arguments as the binary's note describes them."""
        ctx = self.ctx
        binary, provider = probe.binary_path, probe.provider
        if not binary or not provider:
            return ctx.failed(probe, function, "usdt category has no binary_path or provider")
        try:
            fields = usdt_fields(ctx.kernel_binary(binary), provider, function, shown=binary)
        except (UsdtError, uprobes.SymbolError) as exc:
            return ctx.failed(probe, function, str(exc))
        claim = f"usdt:{provider}:{function}"
        if reason := ctx.claim(binary, claim, probe):
            return ctx.conflicting(probe, function, reason)
        spec = ctx.functions.add(
            function, layer_of(binary, function), fields, has_return=False,
            labels=(("category", probe.name), ("provider", provider)),
        )  # fmt: skip
        return _Planned(probe, function, claim, 0, spec.fid, spec.fid, (provider, function))

    def _attach_usdt(self, target: _Planned, pid: int) -> TargetOutcome:
        """A USDT probe in every process (``pid`` -1): the session keeps its link."""
        reason = self._check_usdt(target, pid)
        return self._outcome(target, reason)

    def _check_usdt(self, target: _Planned, pid: int) -> str | None:
        """Attach a USDT probe for every process (``pid`` -1: the session keeps the link) or on
        process ``pid`` only, to ask the kernel (destroyed after the attach); the reason when
        libbpf or the kernel refuses it."""
        assert target.usdt is not None and target.probe.binary_path
        path = self.ctx.kernel_binary(target.probe.binary_path)
        try:
            link = self.ctx.obj.attach_usdt(USDT, path, *target.usdt, target.cookie, pid)
        except BpfError as exc:
            return str(exc)
        if pid == -1:
            self.ctx.links.add_functions(FunctionLinks([link], [target.fid]))
        else:
            self._checks.append(link)
        return None

    def _resolve(
        self, probe: Probe, function: str, cache: _Symbols
    ) -> tuple[str, int] | TargetOutcome:
        """(name, file offset) of a target, or its failed outcome."""
        ctx = self.ctx
        binary = probe.binary_path
        if not binary:
            return ctx.failed(probe, function, "uprobe category has no binary_path")
        try:
            name, offset = uprobes.parse_target(function)
        except uprobes.SymbolError as exc:
            return ctx.failed(probe, function, str(exc))
        symbols = cache.get(binary)
        if symbols is None:
            try:
                symbols = uprobes.ElfSymbols.read(ctx.kernel_binary(binary), shown=binary)
            except uprobes.SymbolError as exc:
                symbols = exc
            cache[binary] = symbols
        if isinstance(symbols, uprobes.SymbolError):
            return ctx.failed(probe, function, str(symbols))
        try:
            if offset is None:
                offset = symbols.offset(name)
            symbols.check_offset(offset)
        except uprobes.SymbolError as exc:
            return ctx.failed(probe, function, str(exc))
        return name, offset

    def _claim_address(self, binary: str, name: str, address: str, probe: Probe) -> str | None:
        """Uprobes are claimed by address: aliases (glibc's fopen and fopen64 are one function)
        would otherwise put two probes on one instruction and every call twice in the trace."""
        owner = self.ctx.claims.get((binary, address))
        if owner is not None:
            return (
                f"{name} is at the same address as a function already traced by category "
                f"{owner} (an alias)"
            )
        self.ctx.claims[(binary, address)] = probe.name
        return None

    def _attach_single(self, probe: Probe, function: str, name: str, offset: int) -> TargetOutcome:
        """One perf-event uprobe and uretprobe (kernels without uprobe_multi)."""
        ctx = self.ctx
        binary = probe.binary_path
        assert binary
        path = ctx.kernel_binary(binary)
        if reason := self._claim_address(binary, name, f"{offset:#x}", probe):
            return ctx.conflicting(probe, function, reason)
        arguments = probe.function_arguments.get(function, [])
        spec, cookie = _add(ctx, probe, name, arguments)
        obj = ctx.obj
        outcome = ctx.attach_pair(
            probe,
            function,
            spec.fid,
            lambda: obj.attach_uprobe(FUNC_ENTER, path, offset, cookie, retprobe=False),
            lambda: obj.attach_uprobe(FUNC_EXIT, path, offset, cookie, retprobe=True),
        )
        if not outcome.attached:
            del ctx.claims[(binary, f"{offset:#x}")]
        return outcome

    def _plan(
        self, probe: Probe, function: str, name: str, offset: int
    ) -> _Planned | TargetOutcome:
        """Claim and number a target for its binary's uprobe_multi links."""
        assert probe.binary_path
        claim = f"{offset:#x}"
        if reason := self._claim_address(probe.binary_path, name, claim, probe):
            return self.ctx.conflicting(probe, function, reason)
        arguments = probe.function_arguments.get(function, [])
        spec, cookie = _add(self.ctx, probe, name, arguments)
        return _Planned(probe, function, claim, offset, spec.fid, cookie)

    def _attach_group(
        self, binary: str, targets: list[_Planned], pid: int = 0
    ) -> list[tuple[_Planned, str | None]]:
        """One uprobe_multi link per direction for ``targets`` (exit first, so that no entry is
        recorded without its exit): in every process (``pid`` 0: the session keeps them), or
        on process ``pid`` only to ask the kernel (destroyed after the attach). When the kernel
        refuses the group for one offset, the group is halved until the bad targets stand
        alone: a bad function never fails its neighbours. Returns (target, None or the reason
        it failed)."""
        obj = self.ctx.obj
        offsets = [t.offset for t in targets]
        cookies = [t.cookie for t in targets]
        path = self.ctx.kernel_binary(binary)
        try:
            exit_link = obj.attach_uprobe_multi(UMULTI_EXIT, path, offsets, cookies, True, pid)
        except BpfError as exc:
            return self._split_group(binary, targets, exc, pid)
        try:
            enter_link = obj.attach_uprobe_multi(UMULTI_ENTER, path, offsets, cookies, False, pid)
        except BpfError as exc:
            exit_link.destroy()
            return self._split_group(binary, targets, exc, pid)
        if pid:
            self._checks += [exit_link, enter_link]
        else:
            self.ctx.links.add_functions(
                FunctionLinks(
                    [exit_link, enter_link], [t.fid for t in targets], _Group(binary, targets)
                )
            )
        return [(t, None) for t in targets]

    def _split_group(
        self, binary: str, targets: list[_Planned], exc: BpfError, pid: int
    ) -> list[tuple[_Planned, str | None]]:
        if len(targets) == 1 or exc.errno in _WHOLE_BINARY_ERRORS:
            return [(t, str(exc)) for t in targets]
        half = len(targets) // 2
        return self._attach_group(binary, targets[:half], pid) + self._attach_group(
            binary, targets[half:], pid
        )

    def _outcome(self, target: _Planned, reason: str | None) -> TargetOutcome:
        probe = target.probe
        if reason is not None:
            self.ctx.functions.remove(target.fid)
            del self.ctx.claims[(probe.binary_path or "", target.claim)]
            return self.ctx.failed(probe, target.function, reason)
        outcome = self.ctx.succeeded(probe, target.function)
        self.ctx.function_outcomes[target.fid] = outcome
        return outcome

    def reattach(self, taken: FunctionLinks, detached: set[int]) -> list[TargetOutcome]:
        """After ``taken`` (a shared link pair) was destroyed to detach ``detached``: attach
        its other functions again. Returns a failed outcome for any the kernel refuses."""
        if not isinstance(taken.shared, _Group):
            return []
        keep = [t for t in taken.shared.targets if t.fid not in detached]
        lost = []
        for target, why in self._attach_group(taken.shared.binary, keep) if keep else []:
            if why is not None:
                self.ctx.function_outcomes.pop(target.fid, None)
                lost.append(
                    self.ctx.failed(
                        target.probe, target.function, f"lost while a neighbour was detached: {why}"
                    )
                )
        return lost
