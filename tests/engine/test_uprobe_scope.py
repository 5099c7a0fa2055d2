"""Uprobes scoped to the job (issue 25, N2): breakpoints only in the job's processes.

Another user's process that runs a probed function must not trap: the kernel must not write the
breakpoint into its memory at all. The probe shows it from the inside: each process prints the
first byte of ``dc_add``'s code as it sees it (0xcc, int3, where the kernel wrote a breakpoint).
"""

from __future__ import annotations

import subprocess
import time

import pytest
from engine_support import as_user

from datacrumbs.common.probes import Probe, ProbeType

INT3 = "cc"


@pytest.fixture
def scope_probe(compile_c, public_dir):  # type: ignore[no-untyped-def]
    lib = compile_c("dcdemo.c", "libdcdemo.so", "-shared", "-fPIC")
    main = compile_c(
        "scope_probe.c", "scope_probe", f"-L{public_dir}", "-ldcdemo", f"-Wl,-rpath,{public_dir}"
    )
    return lib, main


def _first_byte(argv: list[str]) -> tuple[int, str]:
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout.split()
    return int(out[0]), out[1]


@pytest.mark.parametrize("uprobe_mode", ["auto", "single"])  # uprobe_multi, perf-event uprobes
def test_another_user_s_process_never_takes_the_job_s_breakpoints(
    session, scope_probe, traced_user, intruder_user, uprobe_mode
):
    lib, main = scope_probe
    probe = Probe(type=ProbeType.UPROBE, name="DEMO", binary_path=str(lib), functions=["dc_add"])
    with session([probe], uid=traced_user.uid, uprobe_mode=uprobe_mode) as s:
        out = s.run(traced_user, [str(main), "50"]).stdout.split()
        job_pid, job_byte = int(out[0]), out[1]
        other_pid, other_byte = _first_byte(as_user(intruder_user, [str(main), "70"]))
        root_pid, root_byte = _first_byte([str(main), "30"])
        hits = s.engine.function_hits()
    # the job's process has the breakpoint; the other user's and root's have their own code
    assert job_byte == INT3 and other_byte == root_byte != INT3
    assert list(hits.values()) == [50]  # only the job's process trapped
    trace = s.trace
    assert len(trace.events_of(job_pid, "dc_add")) == 50
    assert trace.events_of(other_pid) == [] and trace.events_of(root_pid) == []


def test_scoped_to_the_node_every_process_traps(session, scope_probe, traced_user, intruder_user):
    lib, main = scope_probe
    probe = Probe(type=ProbeType.UPROBE, name="DEMO", binary_path=str(lib), functions=["dc_add"])
    with session([probe], uid=traced_user.uid, uprobe_scope="node") as s:
        job_pid, job_byte = _first_byte(as_user(traced_user, [str(main), "50"]))
        other_pid, other_byte = _first_byte(as_user(intruder_user, [str(main), "70"]))
        hits = s.engine.function_hits()
        assert s.engine.following is None
    assert (job_byte, other_byte) == (INT3, INT3)
    assert list(hits.values()) == [120]  # a breakpoint costs whoever runs the code
    assert len(s.trace.events_of(job_pid, "dc_add")) == 50
    assert s.trace.events_of(other_pid) == []


@pytest.mark.parametrize("uprobe_mode", ["auto", "single"])
def test_a_forked_child_gets_its_own_links_and_an_exited_process_lets_go(
    session, scope_probe, traced_user, uprobe_mode
):
    lib, main = scope_probe
    probe = Probe(type=ProbeType.UPROBE, name="DEMO", binary_path=str(lib), functions=["dc_add"])
    with session([probe], uid=traced_user.uid, uprobe_mode=uprobe_mode) as s:
        engine = s.engine
        parent = subprocess.Popen(
            as_user(traced_user, [str(main), "40", "fork"]),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert parent.stdout is not None and parent.stdin is not None
        child = int(parent.stdout.readline())
        deadline = time.monotonic() + 10
        while not engine.follows(child):  # the kernel told of the fork; links are being made
            assert time.monotonic() < deadline, "the forked child was not followed"
            time.sleep(0.002)
        parent.stdin.write("go\n")
        parent.stdin.close()
        assert parent.wait(timeout=60) == 0
        deadline = time.monotonic() + 10
        while engine.follows(child) or engine.follows(parent.pid):
            assert time.monotonic() < deadline, "an exited process kept its links"
            time.sleep(0.01)
        stats = engine.following
        assert stats is not None and stats.followed >= 2 and stats.failed == 0
    assert len(s.trace.events_of(child, "dc_add")) == 40
    assert s.trace.events_of(parent.pid, "dc_add") == []


@pytest.mark.parametrize("uprobe_mode", ["auto", "single"])
def test_every_thread_of_a_followed_process_is_traced(
    session, scope_probe, traced_user, uprobe_mode
):
    # the links are the process's (its memory), not its first thread's: OpenMP and pthreads
    # workers are traced too, with either kind of link
    lib, main = scope_probe
    probe = Probe(type=ProbeType.UPROBE, name="DEMO", binary_path=str(lib), functions=["dc_add"])
    with session([probe], uid=traced_user.uid, uprobe_mode=uprobe_mode) as s:
        pid = int(s.run(traced_user, [str(main), "25", "threads"]).stdout.split()[0])
    calls = s.trace.events_of(pid, "dc_add")
    tids = {e["tid"] for e in calls}
    assert len(calls) == 100 and len(tids) == 4 and pid not in tids


@pytest.mark.parametrize("uprobe_mode", ["auto", "single"])
def test_an_exec_from_a_thread_other_than_the_leader_is_followed(
    session, scope_probe, traced_user, uprobe_mode
):
    # the exec replaces the leader task the links hold: the kernel says so and the process is
    # given links again (its new program waits for them, as it would for its first ones)
    lib, main = scope_probe
    probe = Probe(type=ProbeType.UPROBE, name="DEMO", binary_path=str(lib), functions=["dc_add"])
    with session([probe], uid=traced_user.uid, uprobe_mode=uprobe_mode) as s:
        out = s.run(traced_user, [str(main), "30", "thread-exec"]).stdout.split()
    pid, byte = int(out[0]), out[1]
    assert byte == INT3
    assert len(s.trace.events_of(pid, "dc_add")) == 30
