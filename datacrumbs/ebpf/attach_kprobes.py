"""Kernel functions (kprobe targets): through BPF trampolines (fentry/fexit) where the kernel
loads them, else one perf-event kprobe and kretprobe per function, where the kernel has kprobes
at all (not on this machine kind: :func:`features.kprobe_support` says why, and every target
then fails with that reason and fentry's).

fentry first: its program is called directly from the function's first instruction, where a
kprobe goes through ftrace (or an int3). But an fentry program is bound to one function when it
is loaded, so each function costs a load of its own: the object is opened again with only
``dc_kfunc_enter``/``dc_kfunc_exit`` to load, every map shared with the session's object (so
its calls land in the same rings, filters and in-flight table) and the same ``.rodata.config``;
its links outlive it. A failure before any function of the session went through fentry (the
load: the kernel refuses fentry programs; the attach: no fentry cookies before 6.0) is taken as
the kernel's, and the session's functions go to kprobes (``kfunc_mode="auto"``).

Only values whose type in this node's own BTF cannot hold an address are recorded
(:mod:`kernel_btf`: integers of 32 bits or fewer, enums, 64-bit counts and offsets such as
``ssize_t``; not ``d_path``'s ``char *`` nor ``kallsyms_lookup_name``'s ``unsigned long``): a
kernel address in a user's trace would give away the kernel's address layout. A target whose
arguments ask for a pointer to be read (``is_pointer``) is refused, whatever the signer
signed: kernel memory is never read for a trace.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from datacrumbs.common.dftracer_names import KERNEL
from datacrumbs.common.errors import DatacrumbsError
from datacrumbs.common.probes import Probe
from datacrumbs.ebpf import kernel_btf, uprobes
from datacrumbs.ebpf.attach import AttachContext, Target, TargetOutcome
from datacrumbs.ebpf.libbpf import BpfError, BpfObject
from datacrumbs.ebpf.object_names import (
    FUNC_ENTER,
    FUNC_EXIT,
    KFUNC_ENTER,
    KFUNC_EXIT,
    MAPS,
    PROGRAMS,
)

__all__ = ["KprobeAttacher"]


class KprobeAttacher:
    """Attaches kernel functions. ``unsupported``: why this kernel has no kprobes (None: it
    has); ``mode``: ``auto``, ``fentry`` or ``kprobe`` (:data:`engine_config.KFUNC_MODES`);
    ``path`` and ``config``: the session's object file and its ``.rodata.config``."""

    def __init__(
        self,
        ctx: AttachContext,
        unsupported: str | None,
        mode: str = "auto",
        path: Path | None = None,
        config: bytes = b"",
    ) -> None:
        self.ctx = ctx
        self.unsupported = unsupported
        self.mode = mode
        self.path = path
        self.config = config
        #: why fentry cannot be used in this session (None: not tried yet, or it works)
        self.fentry_unusable: str | None = None if mode != "kprobe" else "kfunc_mode is kprobe"
        #: function -> "fentry" or "kprobe": how each attached function is traced
        self.via: dict[str, str] = {}

    def attach(self, targets: Sequence[Target]) -> list[TargetOutcome]:
        return [self._attach(probe, function) for probe, function in targets]

    def _attach(self, probe: Probe, function: str) -> TargetOutcome:
        ctx = self.ctx
        arguments = probe.function_arguments.get(function, [])
        if refused := kernel_btf.pointer_refusal(arguments):
            return ctx.failed(probe, function, refused)
        if reason := ctx.claim("kprobe", function, probe):
            return ctx.conflicting(probe, function, reason)
        try:
            signature = kernel_btf.vmlinux().signature(function)
        except DatacrumbsError:
            signature = None
        # fentry needs the function's BTF; one without (or where fentry fails) takes a kprobe
        outcome = self._fentry(probe, function, signature) if signature else None
        if outcome is not None:
            via = "fentry"
        else:
            outcome, via = self._kprobe(probe, function, signature), "kprobe"
        if outcome.attached:
            self.via[function] = via
        else:
            del ctx.claims[("kprobe", function)]
        return outcome

    def _spec(
        self, probe: Probe, function: str, signature: kernel_btf.FunctionSignature | None
    ) -> tuple[int, int]:
        """A function id for the function (what it records: the values BTF lets it), and its
        cookie. Given up again (``functions.remove``) by whatever then fails to attach."""
        values, returns = kernel_btf.kernel_values(
            signature, probe.function_arguments.get(function, [])
        )
        has_return = returns is not None
        spec = self.ctx.functions.add(
            function,
            KERNEL,
            uprobes.argument_fields(values),
            has_return=has_return,
            labels=(("category", probe.name),),
            ret_bytes=returns.num_bytes if returns else 8,
            ret_signed=returns.signed if returns else True,
        )
        return spec.fid, spec.fid | (0 if has_return else uprobes.NO_RETURN_COOKIE)

    def _fentry(
        self, probe: Probe, function: str, signature: kernel_btf.FunctionSignature
    ) -> TargetOutcome | None:
        """The function through fentry/fexit, or None when fentry is not to be used for it
        (the caller then tries a kprobe). Until one function went through fentry, a failure
        (the load: the kernel refuses fentry programs; the attach: no fentry cookies before
        6.0) is the kernel's: fentry is not tried again in this session. After one worked, it
        is this function's (notrace, say): only it takes a kprobe."""
        if self.fentry_unusable is not None or self.path is None:
            return None
        ctx = self.ctx
        proven = "fentry" in self.via.values()
        try:
            sub = BpfObject(self.path)
        except BpfError as exc:
            self.fentry_unusable = f"fentry: {exc}"
            return None
        try:
            for program in PROGRAMS:
                sub.set_autoload(program, program in (KFUNC_ENTER, KFUNC_EXIT))
            for name in MAPS:
                sub.reuse_map_fd(name, ctx.obj.map_fd(name))
            sub.set_initial_value(".rodata.config", self.config)
            sub.set_attach_target(KFUNC_ENTER, function)
            sub.set_attach_target(KFUNC_EXIT, function)
            sub.load()
        except BpfError as exc:
            if not proven:
                self.fentry_unusable = f"fentry programs do not load here ({_why(exc)})"
            sub.close()
            return None
        try:
            fid, cookie = self._spec(probe, function, signature)
            outcome = ctx.attach_pair(
                probe,
                function,
                fid,
                lambda: sub.attach_trace(KFUNC_ENTER, cookie),
                lambda: sub.attach_trace(KFUNC_EXIT, cookie),
            )
        finally:
            sub.close()  # the links hold the programs
        if not outcome.attached:
            if not proven:
                self.fentry_unusable = f"fentry programs do not attach here ({outcome.reason})"
            return None
        return outcome

    def _kprobe(
        self, probe: Probe, function: str, signature: kernel_btf.FunctionSignature | None
    ) -> TargetOutcome:
        ctx = self.ctx
        if self.mode == "fentry" or self.unsupported is not None:
            if self.mode == "fentry":
                reason = self.fentry_unusable or f"this kernel's BTF has no function {function}"
            elif self.fentry_unusable and self.mode == "auto":
                reason = f"{self.unsupported}, and {self.fentry_unusable}"
            else:
                reason = self.unsupported or ""
            return ctx.failed(probe, function, reason)
        fid, cookie = self._spec(probe, function, signature)
        obj = ctx.obj
        return ctx.attach_pair(
            probe,
            function,
            fid,
            lambda: obj.attach_kprobe(FUNC_ENTER, function, cookie, retprobe=False),
            lambda: obj.attach_kprobe(FUNC_EXIT, function, cookie, retprobe=True),
        )


def _why(exc: BpfError) -> str:
    """The error's own words (libbpf's message names the whole object)."""
    return os.strerror(exc.errno) if exc.errno else str(exc)
