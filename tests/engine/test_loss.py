"""Loss under a flood into a one-page ring buffer: counted exactly, reported in band."""

from __future__ import annotations

import subprocess

from engine_support import as_user

from datacrumbs.common.probes import Probe, ProbeType

N = 20_000


def test_every_event_is_either_in_the_trace_or_counted_lost(session, compile_c, traced_user):
    binary = compile_c("flood.c", "flood")
    probes = [Probe(type=ProbeType.SYSCALLS, name="POSIX", functions=["write"])]
    with session(probes, uid=traced_user.uid, ringbuf_bytes=4096) as s:
        subprocess.run(as_user(traced_user, [str(binary), str(N)]), check=True)
        s.summary = {"duration_s": 1.5, "run_id": "r42", "user": "alice", "events": -1}
    trace = s.trace
    stats = trace.stats

    assert stats.lost > 0
    assert stats.events + stats.lost == N
    assert len(trace.events) == stats.events
    assert stats.loss.inflight == 0

    # in band, as the tracer's own metadata: the DFTracer tools take "C" events for metrics
    counters = [e for e in trace.objects if e.get("ph") == "M" and e["name"] == "datacrumbs_loss"]
    assert not [e for e in trace.objects if e.get("ph") in ("C", 3)]
    assert counters, "no in-band loss event"
    assert counters[-1]["args"]["lost_events"] == stats.lost
    values = [c["args"]["lost_events"] for c in counters]
    assert values == sorted(values)

    summary = trace.metadata("datacrumbs_summary")
    assert not [e for e in trace.metadata("PR") if e["args"]["name"] == "datacrumbs_summary"]
    assert len(summary) == 1
    value = summary[0]["args"]["value"]
    assert value["events"] == stats.events  # the engine's own counts win a clash
    assert value["lost_events"] == stats.lost
    assert (value["duration_s"], value["run_id"], value["user"]) == (1.5, "r42", "alice")
    assert trace.lines[-1] == "]"


def test_a_buffer_that_never_fills_loses_nothing(session, compile_c, traced_user):
    """100,000 writes at 20,000/s into a 64 KiB ring buffer: the consumer keeps it nearly empty,
    and every event reaches the trace. (The consumer once stored its position one byte at a
    time: a producer reading it half-written saw the buffer full at each 64 KiB boundary the
    store crossed: 1 or 2 events of these were lost.) The buffer holds 630 records of 104 bytes,
    31 ms of these writes; the consumer, woken at a quarter full, lags at most about 6 ms here.
    At 50,000/s (12.6 ms) a stall of a 2-core CI machine once lost 170 events."""
    binary = compile_c("flood.c", "flood")
    probes = [Probe(type=ProbeType.SYSCALLS, name="POSIX", functions=["write"])]
    with session(probes, uid=traced_user.uid, ringbuf_bytes=1 << 16) as s:
        subprocess.run(as_user(traced_user, [str(binary), "100000", "20000"]), check=True)
    stats = s.trace.stats
    assert (stats.events, stats.lost) == (100_000, 0)
