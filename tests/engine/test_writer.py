"""The trace writer: gzip JSON lines that stay readable when the writer is killed."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from datacrumbs.trace.reading import read_trace_lines
from datacrumbs.trace.writer import TraceWriter

WRITER = textwrap.dedent(
    """
    import sys, time
    from datacrumbs.trace.reading import read_trace_lines
    from datacrumbs.trace.writer import TraceWriter

    writer = TraceWriter(sys.argv[1], flush_interval=0.05)
    writer.start()
    i = 0
    while True:
        i += 1
        writer.write_text('{"id":%d,"name":"line","ph":"X","ts":%d,"dur":1}\\n' % (i, i))
        if i == 2000:
            # the writer's own timer flushes lines 1..2000 (no fixed wait: a loaded machine
            # runs it late)
            deadline = time.monotonic() + 30
            while len(read_trace_lines(sys.argv[1])) < 2001 and time.monotonic() < deadline:
                time.sleep(0.05)
            print("flushed", flush=True)
        if i % 100 == 0:
            time.sleep(0.001)
    """
)


def test_killed_writer_leaves_every_flushed_line_readable(tmp_path):
    path = tmp_path / "killed.pfw.gz"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "flushed\n"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    lines = read_trace_lines(path)
    assert lines[0] == "["
    ids = [json.loads(line)["id"] for line in lines[1:]]
    assert len(ids) >= 2000
    assert ids == list(range(1, len(ids) + 1))


def test_closed_trace_is_one_complete_gzip_member(tmp_path):
    path = tmp_path / "closed.pfw.gz"
    writer = TraceWriter(path)
    writer.start()
    writer.write_text('{"id":1}\n{"id":2}\n')
    writer.close()
    with gzip.open(path, "rt") as f:
        assert f.read() == '[\n{"id":1}\n{"id":2}\n]\n'
    assert writer.bytes_out == path.stat().st_size


def test_an_existing_trace_is_never_truncated(tmp_path):
    path = tmp_path / "old.pfw.gz"
    path.write_bytes(b"an older trace")
    with pytest.raises(FileExistsError):
        TraceWriter(path)
    assert path.read_bytes() == b"an older trace"


def test_a_planted_symlink_is_never_followed(tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    for target in (victim, tmp_path / "not-yet"):  # to a file, and dangling
        link = tmp_path / f"trace-{target.name}.pfw.gz"
        link.symlink_to(target)
        with pytest.raises(FileExistsError):
            TraceWriter(link)
    assert victim.read_bytes() == b"precious"
    assert not (tmp_path / "not-yet").exists()
