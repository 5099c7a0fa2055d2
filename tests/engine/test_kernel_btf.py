"""Kernel pointers never reach a trace (issue 11, finding 6): a kprobe records a kernel
function's return value and arguments only where the running kernel's BTF types them as
integers. (kprobes cannot attach on these machines; the decision is checked on the real
kernel's BTF, and what the trace writes for a function without an integer return.)"""

from __future__ import annotations

import json
import struct

from datacrumbs.common.probes import FunctionArgument
from datacrumbs.ebpf.functions import ArgField, FunctionSpec
from datacrumbs.ebpf.kernel_btf import FunctionSignature, kernel_values, vmlinux
from datacrumbs.ebpf.records import CALL
from datacrumbs.trace.format import EventFormatter


def _arg(index: int, label: str, pointer: bool = False) -> FunctionArgument:
    return FunctionArgument(
        index=index, label=label, num_bytes=8, c_type="long", is_pointer=pointer
    )


def test_the_running_kernel_s_btf_types_returns_and_parameters() -> None:
    btf = vmlinux()
    # ssize_t vfs_read(struct file *, char __user *, size_t, loff_t *)
    assert btf.signature("vfs_read") == FunctionSignature(True, (False, False, True, False))
    # char *d_path(const struct path *, char *, int): a pointer return, through const/typedef
    assert btf.signature("d_path") == FunctionSignature(False, (False, False, True))
    assert btf.signature("kfree") == FunctionSignature(False, (False,))  # void
    assert btf.signature("no_such_kernel_function") is None


def test_only_integer_values_are_recorded_whatever_the_probe_file_declares() -> None:
    # The probe file calls vfs_read's struct file * a plain long: BTF says otherwise.
    declared = [_arg(0, "file"), _arg(1, "buf", pointer=True), _arg(2, "count")]
    values, has_return = kernel_values(vmlinux().signature("vfs_read"), declared)
    assert ([a.label for a in values], has_return) == (["count"], True)
    values, has_return = kernel_values(vmlinux().signature("d_path"), [_arg(2, "buflen")])
    assert ([a.label for a in values], has_return) == (["buflen"], False)
    assert kernel_values(None, declared) == ([], False)


def test_a_function_without_an_integer_return_is_written_without_ret() -> None:
    specs = {
        1: FunctionSpec(1, "d_path", "kernel", (ArgField("buflen", 2),), has_return=False),
        2: FunctionSpec(2, "vfs_read", "kernel", ()),
    }
    formatter = EventFormatter(specs, clock_offset=0, hostname="node", pid=1, tid=1)
    pointer = 0xFFFF_8880_1234_5678 - (1 << 64)

    def record(fid: int) -> bytes:
        return struct.pack("<II", CALL.size, 0) + CALL.pack(
            1, fid, 42, 43, 5000, 2000, pointer, 0, 0, 0, 256, 0, 0, 0
        )

    lines = formatter.format(record(1) + record(2)).decode().splitlines()
    d_path, vfs_read = (json.loads(line) for line in lines)
    assert d_path["args"] == {"hhash": formatter.hhash, "buflen": 256}
    assert vfs_read["args"] == {"hhash": formatter.hhash, "ret": pointer}
