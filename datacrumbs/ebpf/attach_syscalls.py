"""Syscalls: two raw tracepoint links in all and a syscall-number -> cookie map (``raw_tp``, the
default), or one ``syscalls:sys_enter_X``/``sys_exit_X`` link pair per syscall
(``tracepoint``). Few links is what keeps teardown short (docs/design.md)."""

from __future__ import annotations

from collections.abc import Sequence

from datacrumbs.common.dftracer_names import IO_URING, POSIX, syscall_call_name, uring_call_name
from datacrumbs.common.probes import Probe
from datacrumbs.ebpf import arch, features, kernel_btf, syscalls
from datacrumbs.ebpf.attach import AttachContext, Target, TargetOutcome
from datacrumbs.ebpf.bpf_maps import map_update
from datacrumbs.ebpf.functions import ArgField, FunctionSpec
from datacrumbs.ebpf.libbpf import BpfError, BpfLink
from datacrumbs.ebpf.object_names import (
    COMPAT_COOKIES_MAP,
    RAW_SYS_ENTER,
    RAW_SYS_EXIT,
    SYS_ENTER,
    SYS_EXIT,
    SYSCALL_COOKIES_MAP,
    URING_COMPLETE,
    URING_SUBMIT,
)
from datacrumbs.ebpf.records import SYS_COMPAT_UNTRACED

__all__ = ["URING_OPS", "SyscallAttacher"]

#: Asking for this syscall traces the io_uring requests it submits too, one event each.
URING_SYSCALL = "io_uring_enter"
#: Opcodes the kernel side reads a size and offset of (struct io_rw), by their uapi names.
_URING_RW = {"READV": "iovcnt", "WRITEV": "iovcnt", "READ_FIXED": "size",
             "WRITE_FIXED": "size", "READ": "size", "WRITE": "size"}  # fmt: skip
#: Opcode slots the kernel side maps into function ids (DC_URING_OPS): asking for io_uring_enter
#: takes up to this many function ids more than the probe file names.
URING_OPS = 256


class SyscallAttacher:
    """Attaches syscalls in ``mode`` (one of :data:`SYSCALL_MODES`)."""

    def __init__(self, ctx: AttachContext, mode: str) -> None:
        self.ctx = ctx
        self.mode = mode
        self._raw_links: list[BpfLink] | None = None  # None: not attached yet
        self._raw_error: str | None = None
        self._numbers: set[int] = set()  # cookie-map slots written
        self._compat_numbers: set[int] = set()  # the same for 32-bit syscalls

    def attach(self, targets: Sequence[Target]) -> list[TargetOutcome]:
        outcomes = [self._attach(probe, function) for probe, function in targets]
        for (probe, function), outcome in zip(targets, outcomes, strict=True):
            if outcome.attached and function == URING_SYSCALL:
                outcomes.append(self._attach_uring_requests(probe))
                break
        return outcomes

    def _attach_uring_requests(self, probe: Probe) -> TargetOutcome:
        """The requests io_uring_enter submits, from the io_uring tracepoints (6.0+): one
        event per request at its completion, with its fd and file, size and offset (reads and
        writes), result and latency. Reported as the target ``io_uring_requests`` of the probe
        that asked for io_uring_enter.

        A request is written as the POSIX call it does (``read`` for READ and READ_FIXED,
        ``open`` for OPENAT, ...: :func:`uring_call_name`), with ``args.syscall`` "io_uring"
        and ``args.opcode`` its opcode: dftracer-analyzer counts the I/O of POSIX and STDIO
        events only, and classes them by name, so a layer of their own left the requests'
        bytes out of every analysis."""
        ctx, target = self.ctx, "io_uring_requests"
        ops = kernel_btf.vmlinux().enum_values("io_uring_op")
        by_value = {v: n.removeprefix("IORING_OP_") for n, v in ops.items()}
        by_value = {v: n for v, n in by_value.items() if n != "LAST"}
        if not by_value or max(by_value) >= URING_OPS:
            return ctx.failed(probe, target, "this kernel's BTF has no usable enum io_uring_op")
        specs = []
        for value in range(max(by_value) + 1):
            op = by_value.get(value, f"OP_{value}")
            fields: tuple[ArgField, ...] = (
                ArgField("fd", 0, num_bytes=4),
                ArgField("fixed_file", 3),
            )
            if op in _URING_RW:
                fields += (ArgField(_URING_RW[op], 1), ArgField("offset", 2))
            labels = (("opcode", op), ("syscall", IO_URING), ("category", probe.name))
            name = uring_call_name(op)
            specs.append(ctx.functions.add(name, POSIX, fields, True, labels=labels))
        base = specs[0].fid  # opcode 0's id: the kernel adds the opcode to it
        assert [s.fid for s in specs] == list(range(base, base + len(specs)))
        obj = ctx.obj
        try:
            complete = obj.attach_tracepoint(URING_COMPLETE, "io_uring", "io_uring_complete", base)
        except BpfError as exc:
            return self._uring_failed(probe, target, specs, str(exc))
        try:
            event = features.uring_submit_event()
            submit = obj.attach_tracepoint(URING_SUBMIT, "io_uring", event, base)
        except BpfError as exc:
            complete.destroy()
            return self._uring_failed(probe, target, specs, str(exc))
        ctx.links.add(complete, submit)
        return ctx.succeeded(probe, target)

    def _uring_failed(
        self, probe: Probe, target: str, specs: list[FunctionSpec], reason: str
    ) -> TargetOutcome:
        for spec in specs:
            self.ctx.functions.remove(spec.fid)
        return self.ctx.failed(probe, target, reason)

    def _attach(self, probe: Probe, function: str) -> TargetOutcome:
        ctx = self.ctx
        try:
            layout = syscalls.resolve_syscall(function)
            if self.mode == "raw_tp":
                nr = syscalls.syscall_number(layout.tracepoint)
                return self._attach_raw(probe, function, layout, nr)
        except LookupError as exc:
            return ctx.failed(probe, function, str(exc.args[0]))
        if reason := ctx.claim("syscall", layout.tracepoint, probe):
            return ctx.conflicting(probe, function, reason)
        spec = self._add(probe, function, layout)
        cookie = syscalls.syscall_cookie(spec.fid, layout)
        tp = layout.tracepoint
        obj = ctx.obj
        outcome = ctx.attach_pair(
            probe,
            function,
            spec.fid,
            lambda: obj.attach_tracepoint(SYS_ENTER, "syscalls", f"sys_enter_{tp}", cookie),
            lambda: obj.attach_tracepoint(SYS_EXIT, "syscalls", f"sys_exit_{tp}", cookie),
            function_probe=False,
        )
        if not outcome.attached:
            del ctx.claims[("syscall", tp)]
        return outcome

    def _raw_syscall_links(self) -> str | None:
        """Attach the two raw syscall programs once (exit first); None, or why they cannot be."""
        if self._raw_links is None and self._raw_error is None:
            obj = self.ctx.obj
            try:
                exit_link = obj.attach_trace(RAW_SYS_EXIT)
            except BpfError as exc:
                self._raw_error = str(exc)
                return self._raw_error
            try:
                enter_link = obj.attach_trace(RAW_SYS_ENTER)
            except BpfError as exc:
                exit_link.destroy()
                self._raw_error = str(exc)
                return self._raw_error
            self._raw_links = [exit_link, enter_link]
            self.ctx.links.add(exit_link, enter_link)
        return self._raw_error

    def _attach_raw(
        self, probe: Probe, function: str, layout: syscalls.SyscallLayout, nr: int
    ) -> TargetOutcome:
        ctx = self.ctx
        if nr >= syscalls.MAX_SYSCALL_NR:
            return ctx.failed(probe, function, f"syscall number {nr} is out of range")
        if reason := ctx.claim("syscall", layout.tracepoint, probe):
            return ctx.conflicting(probe, function, reason)
        if reason := self._raw_syscall_links():
            del ctx.claims[("syscall", layout.tracepoint)]
            return ctx.failed(probe, function, reason)
        spec = self._add(probe, function, layout)
        cookie = syscalls.syscall_cookie(spec.fid, layout)
        try:
            map_update(
                ctx.obj.map_fd(SYSCALL_COOKIES_MAP),
                nr.to_bytes(4, "little"),
                cookie.to_bytes(8, "little"),
            )
        except BpfError as exc:
            ctx.functions.remove(spec.fid)
            del ctx.claims[("syscall", layout.tracepoint)]
            return ctx.failed(probe, function, str(exc))
        self._numbers.add(nr)
        self._map_compat(probe, function, layout, cookie)
        return ctx.succeeded(probe, function)

    def _map_compat(
        self, probe: Probe, function: str, layout: syscalls.SyscallLayout, cookie: int
    ) -> None:
        """The same syscall of 32-bit processes, every ia32 syscall that does it: traced with
        its own layout (the kernel side reads the registers' low halves and joins split 64-bit
        values), counted as lost where its arguments are not read. One whose return value
        means something else (``_llseek``) is a function of its own, named after it."""
        fd = self.ctx.obj.map_fd(COMPAT_COOKIES_MAP)
        for call in arch.compat_syscalls(layout.tracepoint):
            if call.layout is None:
                value = cookie | SYS_COMPAT_UNTRACED
            elif call.own_name:
                spec = self._add(probe, function, layout, syscall=call.name)
                value = syscalls.syscall_cookie(spec.fid, layout)
            else:
                value = cookie
            value |= (call.layout or 0) << arch.IA32_LAYOUT_SHIFT
            map_update(fd, call.number.to_bytes(4, "little"), value.to_bytes(8, "little"))
            self._compat_numbers.add(call.number)

    def _add(
        self,
        probe: Probe,
        function: str,
        layout: syscalls.SyscallLayout,
        syscall: str | None = None,
    ) -> FunctionSpec:
        """The function's trace identity: the POSIX layer, the libc-level name the DFTracer
        tools class by, the syscall (``syscall``, else ``function``) and the probe file's
        category kept in ``args``."""
        labels = (("syscall", syscall or function), ("category", probe.name))
        name = syscall_call_name(function)
        return self.ctx.functions.add(
            name, POSIX, layout.fields, layout.has_file, labels=labels, target=function
        )

    def release(self) -> None:
        """After the links are gone: clear the cookie map, so that a later attach starts clean."""
        for name, numbers in (
            (SYSCALL_COOKIES_MAP, self._numbers),
            (COMPAT_COOKIES_MAP, self._compat_numbers),
        ):
            if numbers:
                fd = self.ctx.obj.map_fd(name)
                for nr in numbers:
                    map_update(fd, nr.to_bytes(4, "little"), bytes(8))
            numbers.clear()
        self._raw_links = None
        self._raw_error = None
