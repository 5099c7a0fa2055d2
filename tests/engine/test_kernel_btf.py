"""Kernel addresses never reach a trace (issue 11, finding 6; issue 25, N9): a kprobe records a
kernel function's return value and arguments only where the running kernel's BTF types them as
integers that cannot hold an address, narrowed to their width; and a kprobe target that asks
for a pointer to be read is refused by the engine itself, whatever the signer signed (N10).
(kprobes cannot attach on these machines; the decision is checked on the real kernel's BTF,
and what the trace writes for it.)"""

from __future__ import annotations

import json
import struct

from datacrumbs.common.probes import FunctionArgument, Probe, ProbeType
from datacrumbs.ebpf.functions import ArgField, FunctionSpec
from datacrumbs.ebpf.kernel_btf import (
    FunctionSignature,
    Integer,
    kernel_values,
    pointer_refusal,
    vmlinux,
)
from datacrumbs.ebpf.records import CALL
from datacrumbs.ebpf.uprobes import argument_fields
from datacrumbs.trace.format import EventFormatter

I32, I64, U64 = Integer(4, True), Integer(8, True), Integer(8, False)
#: A kernel address in the upper half, as the registers of a narrow value may carry it.
KERNEL_ADDRESS = 0xFFFF_8880_1234_5678


def _arg(index: int, label: str, pointer: bool = False) -> FunctionArgument:
    return FunctionArgument(
        index=index, label=label, num_bytes=8, c_type="long", is_pointer=pointer
    )


def test_the_running_kernel_s_btf_types_returns_and_parameters() -> None:
    btf = vmlinux()
    # ssize_t vfs_read(struct file *, char __user *, size_t, loff_t *)
    assert btf.signature("vfs_read") == FunctionSignature(I64, (None, None, U64, None))
    # char *d_path(const struct path *, char *, int): a pointer return, through const/typedef
    assert btf.signature("d_path") == FunctionSignature(None, (None, None, I32))
    assert btf.signature("kfree") == FunctionSignature(None, (None,))  # void
    assert btf.signature("no_such_kernel_function") is None


def test_integers_that_hold_addresses_are_not_recorded() -> None:
    btf = vmlinux()
    # unsigned long kallsyms_lookup_name(const char *): a kernel address as a plain integer
    # phys_addr_t slow_virt_to_phys(void *): a physical address, a u64 through its typedef
    # u64 bpf_get_current_task(u64, u64, u64, u64, u64): a struct task_struct * as a u64
    present = {
        f: s
        for f in ("kallsyms_lookup_name", "slow_virt_to_phys", "bpf_get_current_task")
        if (s := btf.signature(f)) is not None
    }
    assert present, "none of the address-returning functions is in this kernel's BTF"
    for function, signature in present.items():
        assert signature.returns is None, function
        assert set(signature.parameters) == {None}, function


def test_counts_offsets_and_narrow_integers_are_recorded_with_their_width() -> None:
    btf = vmlinux()
    # int vfs_fsync(struct file *, int datasync)
    assert btf.signature("vfs_fsync") == FunctionSignature(I32, (None, I32))
    # loff_t vfs_llseek(struct file *, loff_t offset, int whence)
    assert btf.signature("vfs_llseek") == FunctionSignature(I64, (None, I64, I32))
    # bool capable(int): one unsigned byte; the register above it is not the value
    assert btf.signature("capable") == FunctionSignature(Integer(1, False), (I32,))


def test_only_recordable_values_are_recorded_whatever_the_probe_file_declares() -> None:
    # The probe file calls vfs_read's struct file * a plain long: BTF says otherwise.
    declared = [_arg(0, "file"), _arg(1, "buf"), _arg(2, "count")]
    values, returns = kernel_values(vmlinux().signature("vfs_read"), declared)
    assert ([a.label for a in values], returns) == (["count"], I64)
    values, returns = kernel_values(vmlinux().signature("d_path"), [_arg(2, "buflen")])
    assert ([a.label for a in values], returns) == (["buflen"], None)
    assert kernel_values(None, declared) == ([], None)
    # bpf_get_current_task's five u64 parameters could be anything: none is recorded
    if (signature := vmlinux().signature("bpf_get_current_task")) is not None:
        assert kernel_values(signature, [_arg(i, f"a{i}") for i in range(5)]) == ([], None)


def test_a_narrow_argument_is_written_at_its_width_not_the_register_s() -> None:
    # vfs_fsync's int datasync declared as an 8-byte long: the trace keeps its 32 bits only
    values, _ = kernel_values(vmlinux().signature("vfs_fsync"), [_arg(1, "datasync")])
    [field] = argument_fields(values)
    assert (field.num_bytes, field.signed) == (4, True)
    spec = FunctionSpec(1, "vfs_fsync", "kernel", (field,), has_return=False)
    formatter = EventFormatter({1: spec}, clock_offset=0, hostname="node", pid=1, tid=1)
    register = (KERNEL_ADDRESS & ~0xFFFF_FFFF) | 1  # an int 1 whose upper bits are garbage
    raw = struct.pack("<II", CALL.size, 0) + CALL.pack(
        1, 1, 42, 43, 5000, 2000, 0, 0, 0, register - (1 << 64), 0, 0, 0, 0
    )
    [line] = formatter.format(raw).decode().splitlines()
    assert json.loads(line)["args"] == {"hhash": formatter.hhash, "datasync": 1}


def test_a_function_without_a_recordable_return_is_written_without_ret() -> None:
    specs = {
        1: FunctionSpec(1, "d_path", "kernel", (ArgField("buflen", 2),), has_return=False),
        2: FunctionSpec(2, "vfs_read", "kernel", ()),
    }
    formatter = EventFormatter(specs, clock_offset=0, hostname="node", pid=1, tid=1)
    pointer = KERNEL_ADDRESS - (1 << 64)

    def record(fid: int) -> bytes:
        return struct.pack("<II", CALL.size, 0) + CALL.pack(
            1, fid, 42, 43, 5000, 2000, pointer, 0, 0, 0, 256, 0, 0, 0
        )

    lines = formatter.format(record(1) + record(2)).decode().splitlines()
    d_path, vfs_read = (json.loads(line) for line in lines)
    assert d_path["args"] == {"hhash": formatter.hhash, "buflen": 256}
    assert vfs_read["args"] == {"hhash": formatter.hhash, "ret": pointer}


def test_a_kprobe_that_asks_to_read_a_pointer_is_refused_by_the_engine(session, traced_user):
    """The engine's own rule, not the signer's: kernel memory is never read for a trace. The
    other function of the category is attached or fails for this kernel's own reasons."""
    buf = FunctionArgument(index=1, label="buf", is_pointer=True)
    probe = Probe(
        type=ProbeType.KPROBE,
        name="VFS",
        functions=["vfs_read", "vfs_fsync"],
        function_arguments={"vfs_read": [buf], "vfs_fsync": [_arg(1, "datasync")]},
    )
    with session([probe], uid=traced_user.uid) as s:
        outcomes = {o.function: o for o in s.outcomes}
    reason = pointer_refusal([buf])
    assert reason == (
        "argument 1 ('buf') is_pointer: a kernel function's pointer points to kernel memory, "
        "which is never read"
    )
    assert (outcomes["vfs_read"].attached, outcomes["vfs_read"].reason) == (False, reason)
    assert outcomes["vfs_fsync"].reason != reason
    assert s.engine.kernel_functions_via.get("vfs_read") is None
