"""Probe kinds this engine cannot serve fail per target, with a reason (kernel functions, which
depend on the kernel: test_kprobes.py)."""

from __future__ import annotations

from datacrumbs.common.probes import Probe, ProbeType


def test_usdt_and_custom_targets_fail_with_the_reason(session, traced_user):
    probes = [
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
    assert reasons == [
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
