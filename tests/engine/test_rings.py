"""One ring buffer per CPU: every event of several threads delivered, each thread's events in
the order it made them, and each file's name before the first event that uses it (a thread's
records share one ring). Choosing the ring by the CPU of each record instead of the thread's
first was caught here in one run of two (threads migrate between CPUs mid-run)."""

from __future__ import annotations

import subprocess

from engine_support import as_user, user_dir

from datacrumbs.common.probes import Probe, ProbeType

THREADS, WRITES = 4, 50000


def test_threads_on_several_rings_keep_their_order(session, compile_c, public_dir, traced_user):
    binary = compile_c("threaded_writer.c", "threaded_writer", "-pthread")
    work = user_dir(public_dir, traced_user, "rings")
    probes = [Probe(type=ProbeType.SYSCALLS, name="POSIX", functions=["openat", "write"])]
    with session(probes, uid=traced_user.uid, rings=4, ringbuf_bytes=16 << 20) as s:
        subprocess.run(
            as_user(traced_user, [str(binary), str(work), str(THREADS), str(WRITES)]), check=True
        )
    trace = s.trace
    assert trace.stats.lost == 0
    files = {str(work / f"thread-{i}.out") for i in range(THREADS)}
    names = trace.file_names()
    named_at: dict[str, int] = {}  # fhash -> line number of its FH record
    per_thread: dict[int, list[int]] = {}
    for number, line in enumerate(trace.objects):
        if line.get("name") == "FH":
            named_at.setdefault(line["args"]["value"], number)
        elif line.get("ph") == "X":
            fhash = line["args"].get("fhash")
            if fhash is not None:
                assert named_at.get(fhash, number) < number, "a name after its first use"
            name = names.get(fhash)
            if line["name"] == "write" and name in files:
                per_thread.setdefault(line["tid"], []).append(line["ts"])
    assert len(per_thread) == THREADS
    for stamps in per_thread.values():
        assert len(stamps) == WRITES
        assert stamps == sorted(stamps)  # in the order the thread made them
