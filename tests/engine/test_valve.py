"""Trace mode's valve: overload turns into aggregates, never into loss. A call is an event or
inside an aggregated record, exactly, per thread and function; the trace marks when and why
each function switched to aggregates and back; the probe file's delivery rules hold."""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path

from engine_support import Trace, as_user, user_dir

from datacrumbs.common.probes import Probe, ProbeType
from datacrumbs.trace.summary import summarize

VALVE_NS = 100_000_000  # the aggregates' intervals
WRITE = [Probe(type=ProbeType.SYSCALLS, name="POSIX", functions=["write"])]


def _calls_by_file(trace: Trace, name: str) -> tuple[Counter[str], Counter[str]]:
    """Per file name: the calls of function ``name`` that are events, and those inside
    aggregated records."""
    names = trace.file_names()
    events: Counter[str] = Counter()
    folded: Counter[str] = Counter()
    for e in trace.objects:
        if e.get("name") != name:
            continue
        file = names.get(e["args"].get("fhash", ""), "?")
        if e.get("ph") == "X":
            events[file] += 1
        elif e.get("ph") == 3:
            folded[file] += e["args"]["dft_cnt"]
    return events, folded


def _marks(trace: Trace) -> list[dict]:
    return [e["args"] for e in trace.metadata("datacrumbs_valve")]


def test_a_slow_consumer_folds_calls_into_aggregates_and_loses_none(
    session, compile_c, traced_user, public_dir: Path
) -> None:
    """4 threads x 250,000 writes as fast as they go, into one 256 KiB ring drained at 4 MB/s
    (~40,000 records a second: a tenth of what they make): every write is an event or inside
    an aggregate of its thread's file, exactly; none lost. The ring's high-water mark (half of
    it) turned write to aggregates, and the trace says so and when it switched back."""
    binary = compile_c("threaded_writer.c", "threaded_writer")
    out = user_dir(public_dir, traced_user, "valve-slow")
    threads, writes = 4, 250_000
    with session(
        WRITE, uid=traced_user.uid, rings=1, ringbuf_bytes=1 << 18, valve_interval_ns=VALVE_NS,
        drain_bytes_per_s=4_000_000,
    ) as s:  # fmt: skip
        subprocess.run(
            as_user(traced_user, [str(binary), str(out), str(threads), str(writes)]), check=True
        )
    trace = s.trace
    assert trace is not None
    events, folded = _calls_by_file(trace, "write")
    for i in range(threads):
        file = str(out / f"thread-{i}.out")
        assert events[file] + folded[file] == writes, (events, folded, trace.stats)
    assert sum(folded.values()) > sum(events.values()) > 0
    assert trace.stats.lost == 0
    # the trace's count of calls: its events and the aggregates' calls; the summary tool's too
    assert trace.stats.events == sum(events.values()) + sum(folded.values())
    summary = summarize(trace.path)
    assert (summary.events, summary.aggregated) == (threads * writes, sum(folded.values()))
    marks = _marks(trace)
    assert marks[0] == {"category": "POSIX", "function": "write", "state": "aggregates",
                        "reasons": "ring", "folded": 0}  # fmt: skip
    assert marks[-1]["state"] == "events"
    back = [m for m in marks if m["state"] == "events"]
    assert sum(m["folded"] for m in back) == sum(folded.values())
    assert trace.metadata("datacrumbs_mode")[0]["args"] == {
        "mode": "trace",
        "interval_ms": VALVE_NS / 1e6,
    }


def test_a_probe_past_its_rate_is_aggregated(session, compile_c, traced_user) -> None:
    """write limited to 2,000 calls per 100 ms on a CPU: 100,000 writes as fast as they go
    (well past 20,000 a second) are mostly aggregated, for reason "rate"; each is counted
    once."""
    binary = compile_c("flood.c", "flood")
    n = 100_000
    with session(
        WRITE, uid=traced_user.uid, valve_interval_ns=VALVE_NS, rate_limit=2_000,
        rate_window_ns=100_000_000,
    ) as s:  # fmt: skip
        subprocess.run(as_user(traced_user, [str(binary), str(n)]), check=True)
    trace = s.trace
    assert trace is not None
    events, folded = _calls_by_file(trace, "write")
    assert (events["/dev/null"] + folded["/dev/null"], trace.stats.lost) == (n, 0)
    assert folded["/dev/null"] > events["/dev/null"] >= 2_000
    assert {m["reasons"] for m in _marks(trace) if m["state"] == "aggregates"} == {"rate"}


def test_the_probe_file_rules_keep_events_or_aggregate(
    session, compile_c, traced_user, public_dir: Path
) -> None:
    """A category whose calls are always events, but for write, always aggregated: every
    open and close is an event, every write inside an aggregate (reason "rule"), exactly."""
    binary = compile_c("threaded_writer.c", "threaded_writer")
    out = user_dir(public_dir, traced_user, "valve-rules")
    probes = [
        Probe(
            type=ProbeType.SYSCALLS, name="POSIX", functions=["openat", "write", "close"],
            delivery="events", function_delivery={"write": "aggregate"},
        )
    ]  # fmt: skip
    with session(probes, uid=traced_user.uid, valve_interval_ns=VALVE_NS) as s:
        subprocess.run(as_user(traced_user, [str(binary), str(out), "2", "3000"]), check=True)
    trace = s.trace
    assert trace is not None
    files = [str(out / f"thread-{i}.out") for i in range(2)]
    events, folded = _calls_by_file(trace, "write")
    assert [(events[f], folded[f]) for f in files] == [(0, 3000), (0, 3000)]
    opens, opens_folded = _calls_by_file(trace, "open")
    closes, closes_folded = _calls_by_file(trace, "close")
    assert [opens[f] for f in files] == [closes[f] for f in files] == [1, 1]
    assert not opens_folded and not closes_folded
    assert [m["reasons"] for m in _marks(trace)] == ["rule", "rule"]
    assert trace.stats.lost == 0


def test_a_spent_budget_folds_every_call(session, compile_c, traced_user) -> None:
    """A trace budget of 1 byte is spent at once (the header is written): from then on every
    write is aggregated (reason "budget"), and the trace says when the budget was spent."""
    binary = compile_c("flood.c", "flood")
    n = 20_000
    with session(WRITE, uid=traced_user.uid, valve_interval_ns=VALVE_NS, trace_max_bytes=1) as s:
        subprocess.run(as_user(traced_user, [str(binary), str(n)]), check=True)
    trace = s.trace
    assert trace is not None
    events, folded = _calls_by_file(trace, "write")
    assert (events["/dev/null"], folded["/dev/null"], trace.stats.lost) == (0, n, 0)
    [spent] = trace.metadata("datacrumbs_budget")
    assert spent["args"]["budget_bytes"] == 1
    assert {m["reasons"] for m in _marks(trace)} == {"budget"}


def test_a_full_ring_loses_what_must_stay_events(session, compile_c, traced_user) -> None:
    """Calls whose rule is "always events" are never folded: a one-page ring that fills loses
    them, counted exactly, as without the valve."""
    binary = compile_c("flood.c", "flood")
    probes = [Probe(type=ProbeType.SYSCALLS, name="POSIX", functions=["write"],
                    delivery="events")]  # fmt: skip
    n = 20_000
    with session(probes, uid=traced_user.uid, ringbuf_bytes=4096, valve_interval_ns=VALVE_NS) as s:
        subprocess.run(as_user(traced_user, [str(binary), str(n)]), check=True)
    trace = s.trace
    assert trace is not None
    events, folded = _calls_by_file(trace, "write")
    assert not folded and trace.stats.lost > 0
    assert events["/dev/null"] + trace.stats.lost == n
    assert not _marks(trace)
