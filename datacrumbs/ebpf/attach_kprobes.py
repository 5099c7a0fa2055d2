"""Kprobes: one perf-event kprobe and kretprobe per kernel function, where the kernel allows
them at all (not on this machine kind: :func:`features.kprobe_support` says why, and every
kprobe target then fails with that reason).

Only integers by the kernel's own BTF are recorded: a kernel pointer (an argument, or a return
such as ``d_path``'s) in a user's trace would give away the kernel's address layout.
"""

from __future__ import annotations

from collections.abc import Sequence

from datacrumbs.common.dftracer_names import KERNEL
from datacrumbs.common.errors import DatacrumbsError
from datacrumbs.common.probes import Probe
from datacrumbs.ebpf import kernel_btf, uprobes
from datacrumbs.ebpf.attach import AttachContext, Target, TargetOutcome
from datacrumbs.ebpf.object_names import FUNC_ENTER, FUNC_EXIT

__all__ = ["KprobeAttacher"]


class KprobeAttacher:
    """Attaches kprobes; ``unsupported``: why this kernel cannot (None: it can)."""

    def __init__(self, ctx: AttachContext, unsupported: str | None) -> None:
        self.ctx = ctx
        self.unsupported = unsupported

    def attach(self, targets: Sequence[Target]) -> list[TargetOutcome]:
        return [self._attach(probe, function) for probe, function in targets]

    def _attach(self, probe: Probe, function: str) -> TargetOutcome:
        ctx = self.ctx
        if self.unsupported is not None:
            return ctx.failed(probe, function, self.unsupported)
        if reason := ctx.claim("kprobe", function, probe):
            return ctx.failed(probe, function, reason)
        try:
            signature = kernel_btf.vmlinux().signature(function)
        except DatacrumbsError:
            signature = None
        values, has_return = kernel_btf.kernel_values(
            signature, probe.function_arguments.get(function, [])
        )
        spec = ctx.functions.add(
            function,
            KERNEL,
            uprobes.argument_fields(values),
            has_return=has_return,
            labels=(("category", probe.name),),
        )
        cookie = spec.fid | (0 if has_return else uprobes.NO_RETURN_COOKIE)
        obj = ctx.obj
        outcome = ctx.attach_pair(
            probe,
            function,
            spec.fid,
            lambda: obj.attach_kprobe(FUNC_ENTER, function, cookie, retprobe=False),
            lambda: obj.attach_kprobe(FUNC_EXIT, function, cookie, retprobe=True),
        )
        if not outcome.attached:
            del ctx.claims[("kprobe", function)]
        return outcome
