"""A full disk (or quota, or a failing one) under the trace: the job is traced on, what could not
be written is counted as lost, and the trace stays one whole gzip member that every reader opens.

The disks are real: a 2 MiB tmpfs, mounted for the test and unmounted after it, filled by a
file until the kernel says ENOSPC. Quota and a torn write (half written, then the error) are
played by a ``pwrite`` that fails on cue.
"""

from __future__ import annotations

import errno
import gzip
import json
import os
import random
import subprocess
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dftracer_support import dftracer_tool
from engine_support import Session, as_user
from support import small_tmpfs

from datacrumbs.common.probes import Probe, ProbeType
from datacrumbs.ebpf.engine import EngineConfig
from datacrumbs.trace import gzip_stream
from datacrumbs.trace.reading import read_trace_lines
from datacrumbs.trace.summary import summarize
from datacrumbs.trace.writer import TraceWriter

INTERVAL = 0.05  # the writers' flush interval here: tries again this often


@pytest.fixture
def small_fs(root: None, reachable_dir: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs that anyone may reach and write to, unmounted afterwards."""
    with small_tmpfs(reachable_dir / "small") as mount:
        yield mount


def fill(directory: Path) -> Path:
    """A file that takes every free block of ``directory``'s filesystem."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        for size in (1 << 16, 1 << 12, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    assert os.statvfs(directory).f_bavail == 0
    return filler


def until(condition: Callable[[], bool], what: str, step: Callable[[], None]) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"waited 30 s for {what}"
        step()


class Feeder:
    """Numbered JSON lines into a plain writer (each line one event), hard to compress (about
    60 bytes a line), so that 2 MiB fill up in seconds."""

    def __init__(self, writer: TraceWriter) -> None:
        self.writer = writer
        self.sent = 0
        self._random = random.Random(1)

    def send(self, n: int = 200) -> None:
        lines = []
        for _ in range(n):
            self.sent += 1
            lines.append(f'{{"id":{self.sent},"pad":"{self._random.getrandbits(128):032x}"}}\n')
        self.writer.write_text("".join(lines))
        time.sleep(0.002)

    def in_file(self, path: Path) -> int:
        """Lines of the feed in the file now (a reader that tolerates a missing end)."""
        return sum('"pad"' in line for line in read_trace_lines(path))


def gunzip(path: Path) -> str:
    """The file as a strict reader sees it: gzip checks the trailer's CRC32 and length."""
    with gzip.open(path) as f:
        return f.read().decode()


def read_whole(path: Path, feeder: Feeder) -> list[dict]:
    """The closed trace as a strict reader sees it (:func:`gunzip`): whole JSON lines, the
    feed's in order and none twice, each either in the file or counted as not written."""
    lines = gunzip(path).split("\n")
    assert lines[0] == "[" and lines[-2:] == ["]", ""]
    assert read_trace_lines(path) == lines[:-1]  # the tolerant reader reads the same
    objects = [json.loads(line) for line in lines[1:-2]]
    ids = [o["id"] for o in objects if "pad" in o]
    assert ids == sorted(set(ids)) and set(ids) <= set(range(1, feeder.sent + 1))
    assert len(ids) + feeder.writer.unwritten.events == feeder.sent
    return objects


def losses(objects: list[dict]) -> list[dict]:
    return [o["args"] for o in objects if o.get("name") == "datacrumbs_loss"]


def test_a_full_disk_costs_lines_not_the_trace(small_fs: Path) -> None:
    path = small_fs / "t.pfw.gz"
    writer = TraceWriter(path, flush_interval=INTERVAL)
    writer.start()
    feed = Feeder(writer)
    feed.send(1000)
    filler = fill(small_fs)
    until(lambda: writer.failing, "the first failed write", feed.send)
    assert writer.write_failure == "No space left on device"

    # full: every chunk is dropped and counted (the producers never wait), each try fails
    dropped = writer.unwritten.events
    until(lambda: writer.unwritten.events > dropped + 5000, "dropped lines", feed.send)
    assert writer.failing

    # space returns: writing resumes, with a loss record
    filler.unlink()
    until(lambda: not writer.failing, "writing to resume", feed.send)
    feed.send(1000)
    writer.close()

    assert writer.complete and not writer.failing
    objects = read_whole(path, feed)
    assert objects[-1]["id"] == feed.sent  # all after the gap is there
    (loss,) = losses(objects)
    assert loss["lost_events"] == loss["unwritten_events"] == writer.unwritten.events
    assert loss["unwritten_events"] >= dropped + 5000
    # the room held beyond the end for the ending is given back at the end
    size = path.stat().st_size
    assert writer.bytes_out == size
    assert path.stat().st_blocks * 512 <= -(-size // 4096) * 4096


def test_a_disk_full_to_the_end_still_gets_the_end(small_fs: Path) -> None:
    path = small_fs / "t.pfw.gz"
    writer = TraceWriter(path, flush_interval=INTERVAL)
    writer.start()
    feed = Feeder(writer)
    feed.send(1000)
    fill(small_fs)
    until(lambda: writer.failing, "the first failed write", feed.send)
    for _ in range(20):
        feed.send()

    # meanwhile the file ends at its last sync point: a killed writer would leave all of it
    # readable, with nothing after its last whole line
    def settled() -> bool:
        return feed.in_file(path) + writer.unwritten.events == feed.sent

    until(settled, "the dropped chunks to be counted", lambda: time.sleep(INTERVAL))
    tail = zlib.decompressobj(31)
    assert tail.decompress(path.read_bytes()).endswith(b"\n") and not tail.eof

    assert os.statvfs(small_fs).f_bavail == 0  # still full
    writer.close()  # the end goes into the room held for it, and the rest is given back
    assert writer.failing and writer.complete
    assert os.statvfs(small_fs).f_bavail > 0
    read_whole(path, feed)


def test_a_trace_that_could_not_start_begins_when_space_returns(small_fs: Path) -> None:
    filler = fill(small_fs)
    path = small_fs / "t.pfw.gz"
    writer = TraceWriter(path, flush_interval=INTERVAL)
    writer.start()
    assert writer.failing and path.stat().st_size == 0
    feed = Feeder(writer)
    for _ in range(10):
        feed.send()
    filler.unlink()
    until(lambda: not writer.failing, "writing to resume", feed.send)
    writer.close()

    assert writer.complete
    objects = read_whole(path, feed)  # "[" first: the opening lines come before the rest
    assert writer.unwritten.events >= 2000
    assert losses(objects)[0]["lost_events"] >= 2000


def test_a_trace_that_never_had_room_is_empty_and_says_so(small_fs: Path) -> None:
    fill(small_fs)
    path = small_fs / "t.pfw.gz"
    writer = TraceWriter(path, flush_interval=INTERVAL)
    writer.start()
    feed = Feeder(writer)
    for _ in range(5):
        feed.send()
    writer.close()
    assert not writer.complete
    assert writer.unwritten.events == feed.sent == 1000
    assert writer.write_failure == "No space left on device"
    assert path.stat().st_size == 0


@pytest.fixture
def failing_pwrite(monkeypatch: pytest.MonkeyPatch) -> Callable[[int, int], threading.Event]:
    """``failing_pwrite(fd, err)``: while the returned event is set, writes to ``fd`` write half
    of what they are given and then fail with ``err``."""

    def install(fd: int, err: int) -> threading.Event:
        real = os.pwrite
        on = threading.Event()
        torn = [False]

        def pwrite(to: int, data: bytes, offset: int) -> int:
            if to != fd or not on.is_set():
                return real(to, data, offset)
            if not torn[0] and len(data) > 1:
                torn[0] = True
                return real(to, memoryview(data)[: len(data) // 2], offset)
            torn[0] = False
            raise OSError(err, os.strerror(err))

        monkeypatch.setattr(gzip_stream.os, "pwrite", pwrite)
        return on

    return install


def test_over_quota_and_a_torn_write(tmp_path: Path, failing_pwrite) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "t.pfw.gz"
    writer = TraceWriter(path, flush_interval=INTERVAL)
    writer.start()
    over = failing_pwrite(writer.fileno(), errno.EDQUOT)
    feed = Feeder(writer)
    feed.send(1000)
    over.set()
    until(lambda: writer.failing, "the first failed write", feed.send)
    assert writer.write_failure == "Disk quota exceeded"
    for _ in range(10):
        feed.send()
    over.clear()
    until(lambda: not writer.failing, "writing to resume", feed.send)
    feed.send(1000)
    writer.close()
    assert writer.complete
    objects = read_whole(path, feed)
    assert losses(objects)[-1]["lost_events"] == writer.unwritten.events > 0


def test_other_write_errors_are_bugs_and_surface(tmp_path: Path, failing_pwrite) -> None:  # type: ignore[no-untyped-def]
    writer = TraceWriter(tmp_path / "t.pfw.gz", flush_interval=INTERVAL)
    writer.start()
    failing_pwrite(writer.fileno(), errno.EINVAL).set()
    writer.write_text('{"id":1}\n')
    with pytest.raises(OSError) as raised:
        writer.close()
    assert raised.value.errno == errno.EINVAL
    assert writer.write_failure is None


# -- a traced job fills the disk under its trace -----------------------------------------------

FILL_DISK = r"""
/* One-byte write()s to /dev/null (100 every 5 ms) for SECONDS; then fills DIR's filesystem
 * with DIR/filler; writes on for SECONDS; with "free", removes the filler and writes on for
 * SECONDS more. Prints the write() calls it made (that of the printing one too).
 * Usage: fill_disk DIR SECONDS free|keep */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long calls;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void nulls(int fd, double seconds)
{
	for (double end = now() + seconds; now() < end; usleep(5000))
		for (int i = 0; i < 100; i++, calls++)
			if (write(fd, "x", 1) != 1)
				exit(4);
}

int main(int argc, char **argv)
{
	static char block[1 << 16];
	char path[4096];

	if (argc != 4)
		return 2;
	double seconds = atof(argv[2]);
	int null = open("/dev/null", O_WRONLY);
	snprintf(path, sizeof(path), "%s/filler", argv[1]);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
	if (null < 0 || fd < 0)
		return 3;
	nulls(null, seconds);
	for (size_t size = sizeof(block); size >= 1; size /= 16)
		for (;;) {
			calls++;
			if (write(fd, block, size) < 0) {
				if (errno != ENOSPC)
					return 5;
				break;
			}
		}
	close(fd);
	nulls(null, seconds);
	if (strcmp(argv[3], "free") == 0) {
		unlink(path);
		nulls(null, seconds);
	}
	printf("%ld\n", calls + 1); /* and the write() that prints it */
	return 0;
}
"""


@pytest.mark.parametrize("space", ["returns", "never returns"])
def test_a_job_that_fills_the_disk_under_its_trace(
    space: str, small_fs: Path, bpf_object: Path, public_dir: Path, traced_user, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    source = public_dir / "fill_disk.c"
    source.write_text(FILL_DISK)
    binary = public_dir / "fill_disk"
    subprocess.run(["gcc", "-O1", "-Wall", "-o", str(binary), str(source)], check=True)
    probes = [Probe(type=ProbeType.SYSCALLS, name="POSIX", functions=["write"])]
    config = EngineConfig(bpf_object=bpf_object, uid=traced_user.uid)
    path = small_fs / "trace.pfw.gz"
    how = "free" if space == "returns" else "keep"
    with Session(config, probes, path) as s:
        run = subprocess.run(
            as_user(traced_user, [str(binary), str(small_fs), "1.5", how]),
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        writes = int(run.stdout)
    trace = s.trace
    assert trace is not None
    stats = trace.stats
    writer = s.recording.writer

    assert stats.write_failure == "No space left on device"
    assert stats.unwritten > 0 and writer.complete
    assert len(trace.events) + stats.lost == writes
    assert len(trace.events) == stats.events
    assert gunzip(path).split("\n")[:-1] == trace.lines

    (summary,) = trace.metadata("datacrumbs_summary")
    value = summary["args"]["value"]
    assert value["events"] == stats.events
    assert value["lost_events"] == stats.lost == stats.loss.total_events + stats.unwritten
    assert value["unwritten_events"] == stats.unwritten
    assert value["write_error"] == "No space left on device"
    unwritten = writer.unwritten
    assert value["lost_names"] == stats.loss.names + unwritten.names
    named = set(trace.file_names())
    unnamed = {e["args"]["fhash"] for e in trace.events if "fhash" in e["args"]} - named
    assert len(unnamed) <= value["lost_names"]  # a name dropped with its chunk is counted
    loss = [e["args"] for e in trace.metadata("datacrumbs_loss")]
    if space == "returns":
        assert loss and loss[-1]["unwritten_events"] == stats.unwritten
        assert loss[-1]["lost_events"] == stats.lost
    assert all(record["lost_events"] <= stats.lost for record in loss)

    read = summarize(path)
    assert read.complete and read.lost["lost_events"] == stats.lost
    assert read.events == stats.events
    validated = dftracer_tool("dftracer_validate", "--files", str(path))
    assert f"1 passed, 0 failed, {len(trace.lines) - 2} lines" in validated
    # DFTracer's indexed reader (checkpoints inside the deflate stream) counts the same
    index = tmp_path / "index"
    counted = dftracer_tool("dftracer_event_count", "-d", str(small_fs), "--index-dir", str(index))
    assert int(counted.split()[-1]) == len(trace.events)
