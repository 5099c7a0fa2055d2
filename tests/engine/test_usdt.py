"""USDT probes (issue 26, item 5): each hit of a job process is one event with the probe's
arguments, exact against the program's own count, in trace and profile mode, scoped to the job
(the default: only the job's processes get the breakpoints and their semaphores set) or to the
node; and a real program's probes: Python's ``function__entry``, where the interpreter has it.
"""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from engine_support import User, user_dir

from datacrumbs.common.probes import Probe, ProbeType
from datacrumbs.ebpf.elf_symbols import usdt_probes

N = 2500
NEVER_OVER_NS = 10**15  # profile intervals none of which ends during a test
PYTHON = os.path.realpath("/usr/bin/python3")


def _probes(binary: Path) -> list[Probe]:
    return [
        Probe(type=ProbeType.USDT, name="DC", functions=["tick", "guarded"],
              binary_path=str(binary), provider="dc")
    ]  # fmt: skip


@pytest.mark.parametrize("scope", ["job", "node"])
def test_every_hit_is_an_event_with_its_arguments(session, compile_c, traced_user, scope):
    binary = compile_c("usdt_probes.c", "usdt_probes")
    with session(_probes(binary), uid=traced_user.uid, uprobe_scope=scope) as s:
        assert [(o.function, o.attached) for o in s.outcomes] == [("tick", True), ("guarded", True)]
        out = s.run(traced_user, [str(binary), str(N), "await"]).stdout
        other = subprocess.run([str(binary), str(N)], capture_output=True, text=True, check=True)
    pid, enabled = map(int, out.split())
    assert enabled == N  # the kernel set the semaphore for the job's process
    trace = s.trace
    assert trace is not None and trace.stats.lost == 0
    ticks = [e for e in trace.events_of(pid, "tick")]
    guarded = [e for e in trace.events_of(pid, "guarded")]
    assert [(e["args"]["arg0"], e["args"]["arg1"]) for e in ticks] == [
        (i, i << 33) for i in range(N)
    ]
    assert [(e["args"]["arg0"], e["args"]["arg1"], e["args"]["arg2"]) for e in guarded] == [
        (i, -i, 7) for i in range(N)
    ]
    assert {(e["cat"], e["dur"], e["args"]["provider"], e["args"]["category"]) for e in ticks} == {
        ("APP", 0, "dc", "DC")
    }
    assert "ret" not in ticks[0]["args"]
    # root's run of the same binary is not the job's: no events, and in the job's scope not
    # even a breakpoint (its semaphore stayed 0: the guarded probe never fired)
    root_pid, root_enabled = map(int, other.stdout.split())
    assert not trace.events_of(root_pid)
    assert root_enabled == (0 if scope == "job" else N)


def test_profile_mode_counts_every_hit(session, compile_c, traced_user):
    binary = compile_c("usdt_probes.c", "usdt_probes")
    with session(_probes(binary), uid=traced_user.uid, profile_interval_ns=NEVER_OVER_NS) as s:
        out = s.run(traced_user, [str(binary), str(N), "await"]).stdout
    pid, enabled = map(int, out.split())
    trace = s.trace
    assert trace is not None
    counts: Counter[str] = Counter()
    for e in trace.objects:
        if e.get("ph") == 3 and e["pid"] == pid:
            counts[e["name"]] += e["args"]["dft_cnt"]
    assert counts == {"tick": N, "guarded": enabled} and enabled == N


@pytest.mark.skipif(
    "function__entry" not in usdt_probes(PYTHON).get("python", set()),
    reason=f"{PYTHON} has no USDT probes (built without --with-dtrace)",
)
def test_python_function_entry_hits_equal_the_calls(session, public_dir, traced_user: User):
    """Debian's python3 has USDT probes: function__entry(file, function, line) fires for each
    call of a Python function while traced — in 3.11 only while the interpreter traces too
    (a profile function set: its probes sit on the tracing path). A function at a line no
    other has, called M times, is M events with its line, all with the same file and function
    name pointers."""
    work = user_dir(public_dir, traced_user, "usdt-python")
    script = work / "calls.py"
    line, calls = 4321, 3210
    body = ["def marker(_):", "    pass", "import sys", "sys.setprofile(lambda *a: None)",
            f"for i in range({calls}):", "    marker(i)"]  # fmt: skip
    script.write_text("\n" * (line - 1) + "\n".join(body) + "\n")
    script.chmod(0o644)
    probes = [Probe(type=ProbeType.USDT, name="PY", functions=["function__entry"],
                    binary_path=PYTHON, provider="python")]  # fmt: skip
    with session(
        probes,
        uid=traced_user.uid,
    ) as s:
        proc = s.popen(traced_user, [PYTHON, "-S", str(script)])
        assert proc.wait(timeout=120) == 0
    trace = s.trace
    assert trace is not None and trace.stats.lost == 0
    events = trace.events_of(proc.pid, "function__entry")
    sites = Counter((e["args"]["arg0"], e["args"]["arg1"], e["args"]["arg2"]) for e in events)
    marker = [site for site, count in sites.items() if site[2] in (line, line + 1)]
    assert len(marker) == 1 and sites[marker[0]] == calls
