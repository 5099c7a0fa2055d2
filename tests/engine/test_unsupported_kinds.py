"""Targets this engine cannot serve fail one by one, with a reason (kernel functions, which
depend on the kernel: test_kprobes.py; USDT probes that exist: test_usdt.py)."""

from __future__ import annotations

from datacrumbs.common.probes import Probe, ProbeType


def test_custom_targets_and_a_missing_usdt_probe_fail_with_the_reason(session, traced_user):
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
        ("APP", "start", False, "/bin/true has no USDT probe app:start"),
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
