"""Probe kinds this kernel or this engine cannot serve fail per target, with a reason."""

from __future__ import annotations

from datacrumbs.common.probes import Probe, ProbeType
from datacrumbs.ebpf.features import KPROBES_UNSUPPORTED, kprobe_support


def test_kprobe_targets_fail_with_the_detected_reason(session, traced_user):
    probes = [
        Probe(type=ProbeType.KPROBE, name="VFS", functions=["vfs_read", "vfs_write"]),
        Probe(
            type=ProbeType.USDT,
            name="APP",
            functions=["start"],
            binary_path="/bin/true",
            provider="app",
        ),
        Probe(type=ProbeType.CUSTOM, name="MINE", functions=["x"]),
        Probe(type=ProbeType.SYSCALLS, name="POSIX", functions=["write"]),
    ]
    with session(probes, uid=traced_user.uid) as s:
        pass
    reasons = [(o.category, o.function, o.attached, o.reason) for o in s.trace.outcomes]
    # The detection is real: on this machine kind the kernel has no CONFIG_KPROBES.
    assert kprobe_support() == KPROBES_UNSUPPORTED
    assert reasons == [
        ("VFS", "vfs_read", False, KPROBES_UNSUPPORTED),
        ("VFS", "vfs_write", False, KPROBES_UNSUPPORTED),
        ("APP", "start", False, "usdt probes are not supported yet"),
        ("MINE", "x", False, "custom probes are not supported yet"),
        ("POSIX", "write", True, None),
    ]


def test_a_syscall_asked_twice_is_attached_once(session, traced_user):
    probes = [
        Probe(type=ProbeType.SYSCALLS, name="A", functions=["write"]),
        Probe(type=ProbeType.SYSCALLS, name="B", functions=["write", "pwrite"]),
    ]
    with session(probes, uid=traced_user.uid) as s:
        pass
    assert [(o.category, o.function, o.reason) for o in s.trace.outcomes] == [
        ("A", "write", None),
        ("B", "write", "write is already traced by category A"),
        ("B", "pwrite", None),
    ]
