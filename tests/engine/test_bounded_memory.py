"""The daemon's memory is bounded whatever the job opens (issue 25, N4): a real process opens
200,000 distinct names and comes back to the first 5,000, traced with a file-name cache of
4,096 slots and room for 8 processes; every event still finds its file name in the trace (a
name forgotten and sent again is written again), the cache never holds more than its slots,
and what was forgotten is counted in the trace's summary."""

from __future__ import annotations

import json
import struct
import subprocess
from collections import Counter
from pathlib import Path

from engine_support import as_user, user_dir
from own_users import own_users

from datacrumbs.common.probes import Probe, ProbeType
from datacrumbs.ebpf.engine import Engine, EngineConfig
from datacrumbs.ebpf.functions import FunctionSpec
from datacrumbs.ebpf.records import CALL, NAME_HEADER
from datacrumbs.trace.format import BATCH_RECORDS, EventFormatter
from datacrumbs.trace.memory_budget import MemoryBudget
from datacrumbs.trace.reading import read_trace_lines
from datacrumbs.trace.recording import Recording
from datacrumbs.trace.writer import TraceWriter

N, K = 200_000, 5_000  # distinct names; the first K opened again at the end
SHORT = 32  # short processes after it: more than the tables hold
BUDGET = MemoryBudget(total=0, rings=0, ring=0, pending=1 << 20, name_slots=4096, task_entries=8)


def test_names_and_processes_are_bounded_and_every_event_keeps_its_name(
    bpf_object: Path,
    compile_c,  # type: ignore[no-untyped-def]
    public_dir: Path,
    tmp_path: Path,
) -> None:
    [traced_user] = own_users()  # exact counts: no other session's processes under its uid
    binary = compile_c("many_names.c", "many_names")
    names = user_dir(public_dir, traced_user, "bounded") / "absent"  # never made: ENOENT
    config = EngineConfig(bpf_object=bpf_object, uid=traced_user.uid, ringbuf_bytes=64 << 20)
    engine = Engine(config)
    try:
        engine.load()
        opens = [Probe(type=ProbeType.SYSCALLS, name="POSIX", functions=["openat"])]
        assert all(o.attached for o in engine.attach(opens))
        recording = Recording(engine, TraceWriter(tmp_path / "trace.pfw.gz"), budget=BUDGET)
        recording.start()
        try:
            run = as_user(traced_user, [str(binary), str(names), str(N), str(K), "100000"])
            pid = int(subprocess.run(run, capture_output=True, text=True, check=True).stdout)
            for i in range(SHORT):
                short = [str(binary), f"{names}-{i}", "1", "0", "0"]
                subprocess.run(as_user(traced_user, short), capture_output=True, check=True)
            # 1 + SHORT processes of one thread each
        finally:
            stats = recording.stop()
        formatter = recording.writer.formatter
        assert formatter is not None
    finally:
        engine.close()

    assert stats.lost == 0
    cache = formatter.name_cache
    assert cache.slots == 4096 and len(cache) <= cache.slots
    objects = [json.loads(line) for line in read_trace_lines(tmp_path / "trace.pfw.gz")[1:-1]]
    meta = [e for e in objects if e.get("ph") == "M"]
    written = Counter((e["args"]["value"], e["args"]["name"]) for e in meta if e["name"] == "FH")
    name_of = dict(written.keys())  # fhash -> its name: never two names for one hash
    assert len(name_of) == len(written)
    ours = [
        e for e in objects
        if e.get("ph") == "X" and e["pid"] == pid and name_of.get(e["args"]["fhash"], "")
        .startswith(f"{names}/")
    ]  # fmt: skip
    assert len(ours) == N + K
    expected = [f"{names}/f{i:07d}" for i in [*range(N), *range(K)]]
    assert [name_of[e["args"]["fhash"]] for e in sorted(ours, key=lambda e: e["id"])] == expected
    # the first K came back long after both the kernel (16,384 names) and the cache forgot
    # them: each was sent and written again
    assert [written[entry] for entry in written if entry[1] in expected[N:]] == [2] * K
    assert sum(n for (_, name), n in written.items() if name.startswith(f"{names}/")) == N + K

    # 1 + SHORT processes of one thread each, each described once: all but the last 8 of
    # the processes and of the threads forgotten
    pids = [e["pid"] for e in meta if e["name"] == "process_name"]
    tids = [e["tid"] for e in meta if e["name"] == "thread_name"]
    assert len(set(pids)) == len(pids) == len(set(tids)) == len(tids) == SHORT + 1
    summary = next(e for e in meta if e["name"] == "datacrumbs_summary")["args"]["value"]
    assert summary["name_slots"] == 4096
    assert summary["names_evicted"] == cache.evicted > N - cache.slots
    assert summary["tasks_evicted"] == 2 * (SHORT + 1 - 8)


def _framed(body: bytes) -> bytes:
    return struct.pack("<II", len(body), 0) + body + b"\0" * (-len(body) % 8)


def test_a_chunk_is_formatted_in_pieces_of_bounded_lines() -> None:
    """A chunk holds up to a ring's worth of records; its text goes to the compressing thread
    a batch of lines at a time, whether the chunk holds calls (formatted in C, here with a
    file name before each third) or file names only (profile mode's rings)."""
    spec = FunctionSpec(1, "write", "POSIX", (), has_file=True, has_return=True)
    calls = 3 * BATCH_RECORDS + 100
    mixed = b"".join(
        (_framed(NAME_HEADER.pack(2, 6, i + 1, 7, 7) + b"/f%05d\0" % i) if i % 3 == 0 else b"")
        + _framed(CALL.pack(1, 1, 7, 7, i, 1, 1, i // 3 * 3 + 1, *[0] * 6))
        for i in range(calls)
    )
    names_only = b"".join(
        _framed(NAME_HEADER.pack(2, 6, i + 1, 7, 7) + b"/g%05d\0" % i) for i in range(40_000)
    )
    for chunk, lines in ((mixed, calls + (calls + 2) // 3), (names_only, 40_000)):
        fmt = EventFormatter({1: spec}, clock_offset=0, hostname="h", pid=1, tid=1)
        pieces = [piece.count(b"\n") for piece in fmt.format_pieces(chunk)]
        assert sum(pieces) == lines and max(pieces) == BATCH_RECORDS
