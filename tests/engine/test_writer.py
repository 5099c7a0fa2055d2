"""The trace writer: gzip JSON lines that stay readable when the writer is killed."""

from __future__ import annotations

import gzip
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import zlib

import pytest
from isal import isal_zlib

from datacrumbs.ebpf.sink import LossCounts
from datacrumbs.trace.format import EventFormatter, Unwritten
from datacrumbs.trace.gzip_stream import HEADER, MEMBER_TEXT, GzipStream
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


def _members(data: bytes) -> list[bytes]:
    """The text of each gzip member of ``data``, one member at a time (each must be whole)."""
    texts = []
    while data:
        inflate = zlib.decompressobj(31)
        texts.append(inflate.decompress(data))
        assert inflate.eof, "a member without its trailer"
        data = inflate.unused_data
    return texts


def test_a_trace_is_members_of_about_a_mebibyte_of_whole_lines(tmp_path):
    """Each member ends at the first sync point after MEMBER_TEXT bytes of text, on a line's
    end: each decompresses alone to whole lines, and ``gzip`` reads them all as one text."""
    path = tmp_path / "members.pfw.gz"
    writer = TraceWriter(path, flush_interval=3600)  # no timed sync: only full members end
    writer.start()
    rnd = random.Random(7)
    sent = [_lines(rnd, i * 1000 + 1, 1000) for i in range(200)]  # ~5.2 MiB
    for text in sent:
        writer.write_text(text.decode())
    writer.close()
    data = path.read_bytes()
    members = _members(data)
    assert b"".join(members) == b"[\n" + b"".join(sent) + b"]\n" == gzip.decompress(data)
    assert len(members) == len(b"".join(sent)) // MEMBER_TEXT + 1
    for text in members[:-1]:
        assert text.endswith(b"\n") and MEMBER_TEXT <= len(text) < MEMBER_TEXT + (1 << 16)
    assert read_trace_lines(path)[-1] == "]"


@pytest.mark.parametrize("across", [False, True], ids=["sync-ends-member", "add-ends-member"])
def test_a_cut_back_goes_to_its_sync_point_in_whichever_member(tmp_path, across):
    """A member ends at a sync point (the text reached MEMBER_TEXT with its last line) or
    inside one write (the rest of it starts the next member); a cut back to the sync point
    then continues that member, or starts the next one."""
    path = tmp_path / "t.gz"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    rnd = random.Random(9)
    stream = GzipStream(fd, 1, b"[\n")
    full = b""
    while len(full) + 2 < MEMBER_TEXT:
        full += _lines(rnd, len(full), 1)
    more = _lines(rnd, 10**5, 300) if across else b""
    stream.add(full + more)
    assert stream.members == int(across) and stream.member_full is not across
    stream.sync()
    assert stream.members == 1
    stream.add(_lines(rnd, 10**6, 5000))  # lost to a failed write, say
    stream.rollback()
    later = _lines(rnd, 2 * 10**6, 100)
    stream.add(later)
    stream.finish(b"]\n")
    os.close(fd)
    assert _members(path.read_bytes()) == [b"[\n" + full, more + later + b"]\n"]


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


def _lines(rnd: random.Random, first: int, n: int) -> bytes:
    return b"".join(
        b'{"id":%d,"v":%d}\n' % (i, rnd.getrandbits(40)) for i in range(first, first + n)
    )


@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_a_sync_flushed_stream_goes_on_with_a_fresh_compressor(level):
    """What a cut back to a sync point relies on: after ``Z_SYNC_FLUSH`` (a byte boundary, an
    empty stored block that is not the last) a new raw deflate stream may follow, and the whole
    is one deflate stream to zlib and gzip, framed by our own header and trailer."""
    rnd = random.Random(level)
    kept, dropped, after = _lines(rnd, 1, 3000), _lines(rnd, 3001, 3000), _lines(rnd, 6001, 10)
    first = isal_zlib.compressobj(level, isal_zlib.DEFLATED, -15)
    body = first.compress(kept) + first.flush(isal_zlib.Z_SYNC_FLUSH)
    assert body.endswith(b"\x00\x00\xff\xff")
    first.compress(dropped)  # what was in the old compressor's window is never referred to
    second = isal_zlib.compressobj(level, isal_zlib.DEFLATED, -15)
    body += second.compress(after) + second.flush(isal_zlib.Z_FINISH)
    text = kept + after
    member = (
        HEADER + body + zlib.crc32(text).to_bytes(4, "little") + len(text).to_bytes(4, "little")
    )
    assert gzip.decompress(member) == zlib.decompress(member, 31) == text


def test_a_stream_cut_back_to_its_sync_point_stays_one_member(tmp_path):
    path = tmp_path / "t.gz"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    rnd = random.Random(5)
    stream = GzipStream(fd, 1, b"[\n")
    kept, lost, later = _lines(rnd, 1, 500), _lines(rnd, 501, 20000), _lines(rnd, 20501, 500)
    stream.add(kept)
    stream.sync()
    synced = stream.synced
    stream.add(lost)  # written in part before the write failed, say
    assert stream.size > synced and stream.dirty
    stream.rollback()
    assert path.stat().st_size == stream.size == synced
    inflate = zlib.decompressobj(31)  # what a killed writer would leave now
    assert inflate.decompress(path.read_bytes()) == b"[\n" + kept and not inflate.eof
    stream.add(later)
    stream.finish(b"]\n")
    os.close(fd)
    assert gzip.decompress(path.read_bytes()) == b"[\n" + kept + later + b"]\n"
    assert path.stat().st_size == stream.size


def test_a_stream_cut_back_to_nothing_starts_again_with_its_opening_lines(tmp_path):
    path = tmp_path / "t.gz"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    stream = GzipStream(fd, 1, b"[\n")
    stream.add(b'{"id":1}\n')
    stream.rollback()  # no sync point yet: the file is empty again
    assert path.stat().st_size == 0
    stream.add(b'{"id":2}\n')
    stream.finish(b"]\n")
    os.close(fd)
    assert gzip.decompress(path.read_bytes()) == b'[\n{"id":2}\n]\n'


def test_what_was_not_written_is_counted_lost_in_the_loss_and_summary_records():
    fmt = EventFormatter({}, clock_offset=0, hostname="h", pid=1, tid=1)
    loss = LossCounts(events=5, names=1, tasks=2, inflight=3)
    plain = json.loads(fmt.loss_line(loss))["args"]
    assert plain == {"lost_events": 8, "lost_names": 1, "lost_tasks": 2}
    unwritten = Unwritten(events=100, names=4, tasks=1)
    record = json.loads(fmt.loss_line(loss, unwritten, "No space left on device"))["args"]
    assert record == {
        "lost_events": 108,
        "lost_names": 5,
        "lost_tasks": 3,
        "unwritten_events": 100,
        "unwritten_names": 4,
        "unwritten_tasks": 1,
        "write_error": "No space left on device",
    }
    fmt.events = 1000  # formatted; 100 of them not written
    summary_lines = fmt.summary_line(
        {"lost_events": 8, "lost_names": 1, "lost_tasks": 2, "run_id": "r"},
        unwritten,
        "No space left on device",
    ).splitlines()
    value = json.loads(summary_lines[-1])["args"]["value"]
    assert value["events"] == 900
    assert (value["lost_events"], value["lost_names"], value["lost_tasks"]) == (108, 5, 3)
    assert (value["unwritten_events"], value["write_error"]) == (100, "No space left on device")
