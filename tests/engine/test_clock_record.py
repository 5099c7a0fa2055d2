"""Every trace records its node's clock at its start and its end (``datacrumbs_clock``), checked
against what the kernel says through other calls. A pure test: no root, no BPF."""

from __future__ import annotations

import json
import time

from datacrumbs.trace.clock import STA_UNSYNC, clock_offset_ns
from datacrumbs.trace.format import EventFormatter
from datacrumbs.trace.reading import read_trace_lines
from datacrumbs.trace.writer import TraceWriter


def test_the_trace_records_the_clock_at_its_start_and_end(tmp_path):
    before = time.time_ns() - time.monotonic_ns()
    writer = TraceWriter(tmp_path / "t.pfw.gz")
    writer.start(EventFormatter({}, clock_offset=clock_offset_ns(), hostname="n1", pid=1, tid=1))
    time.sleep(0.05)
    writer.close(summary={"run_id": "clock"})
    after = time.time_ns() - time.monotonic_ns()
    lines = [json.loads(line) for line in read_trace_lines(tmp_path / "t.pfw.gz")[1:-1]]

    names = [e["name"] for e in lines]
    assert names == ["HH", "datacrumbs_mode", "datacrumbs_clock", "datacrumbs_clock",
                     "datacrumbs_summary"]  # fmt: skip
    start, end = lines[2], lines[3]
    assert (start["ph"], start["cat"], end["ph"], end["cat"]) == ("M", "datacrumbs") * 2
    assert [start["args"]["at"], end["args"]["at"]] == ["start", "end"]
    assert end["ts"] - start["ts"] >= 50_000  # microseconds, the wall clock's
    for record in (start, end):
        facts = record["args"]
        # the offset, within what a step of the clock during the test could move it
        low, high = sorted((before, after))
        assert low - 5_000_000 <= facts["realtime_minus_monotonic_ns"] <= high + 5_000_000
        # the TAI offset, as CLOCK_TAI shows it (another path to the same kernel value)
        tai = time.clock_gettime_ns(time.CLOCK_TAI) - time.clock_gettime_ns(time.CLOCK_REALTIME)
        assert abs(tai - facts["tai_offset_s"] * 1_000_000_000) < 1_000_000
        assert facts["synced"] == (not facts["status"] & STA_UNSYNC)
        assert facts["state"] in {"ok", "insert_leap", "delete_leap", "leap_in_progress",
                                  "leap_done", "error"}  # fmt: skip
        assert facts["esterror_us"] >= 0 and facts["maxerror_us"] >= 0
