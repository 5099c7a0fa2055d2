"""The trace file: one gzip member of JSON lines, formatted and compressed off the poller.

Why two threads: the thread that drains the ring buffer must never wait for formatting or
compression, or the kernel starts dropping events. Raw chunks go to a formatting thread (the
compiled formatter, ``_format.c``, which fills its lines in without the GIL; the metadata
around them is Python's), whose text goes to a compressing thread (ISA-L releases the GIL, so
compression overlaps formatting on another core). Compression is ISA-L's deflate (``isal``):
at level 1 it is about six times faster than zlib's level 1 and its output is smaller (71 against
449 ns and 4.8 against 5.3 bytes per write event, measured here), and it releases the GIL as
well. The stream is ordinary gzip: every reader inflates it with zlib. Both queues are
bounded, in items and in bytes (``pending_bytes`` each: a chunk is up to a ring's worth, so a
count alone bounded nothing; a chunk's text is handed over a batch of lines at a time): if the
machine cannot keep up, the poller blocks, the ring buffer fills and the kernel counts the
loss — which is then reported — instead of memory growing without bound.

Why it survives ``kill -9``: compressed bytes are written straight to the file descriptor (no
user-space buffer), and the deflate stream is sync-flushed (``Z_SYNC_FLUSH``) at least every
``flush_interval`` seconds and always right after the opening line, at a line boundary. A
killed writer leaves a gzip stream without trailer whose every flushed line decompresses; a
reader that tolerates the missing trailer (``zlib.decompressobj``) gets every complete line.
On :meth:`TraceWriter.close` the closing ``]`` line and the gzip trailer are written.

Why it survives a full disk (``ENOSPC``, ``EDQUOT``, ``EIO``, ``EROFS``, ``EFBIG``): the job
goes on when the disk under its trace fills, and so does the trace. A failed write cuts the
file back to its last sync point (:mod:`datacrumbs.trace.gzip_stream`: the gzip framing is
written there, so the member stays whole) and from then on the compressing thread drops the
formatted chunks instead of blocking the producers, counting what they held (the formatter
counts call events per chunk, so this costs nothing per event). Every ``flush_interval`` it
tries the chunk in hand: a sync point counts only with room held beyond it for the ending, so
writing resumes once the disk has that room again, with an in-band loss record that adds what
was not written to ``lost_events``. What could not be written is in :attr:`TraceWriter.unwritten`
and :attr:`TraceWriter.write_failure`; the summary at :meth:`close` counts it as lost and, in
the room held for it, is written even when the disk is still full. Dropping whole chunks keeps
the lines whole; their ``id`` numbers are gone with them.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from datacrumbs.ebpf.sink import LossCounts
from datacrumbs.trace.format import Unwritten
from datacrumbs.trace.gzip_stream import END_ROOM, ROOM, GzipStream, is_disk_error

if TYPE_CHECKING:
    from datacrumbs.trace.format import EventFormatter

__all__ = ["PENDING_BYTES", "TRACE_MODE", "TraceWriter"]

#: The trace's mode: the job user's alone, whatever group they share with others (a trace
#: shows every file the job touched). The daemon creates it so, as the job user.
TRACE_MODE = 0o600

#: bytes waiting at each hand-over by default (the daemon's: its memory budget's share)
PENDING_BYTES = 128 << 20

_RECORDS, _TEXT, _LOSS, _SUMMARY, _NOTICE, _PROFILE, _WAKE = range(7)
#: what a text holds: an :class:`Unwritten`'s fields
_Counts = tuple[int, int, int, int, int]
_NOTHING: _Counts = (0, 0, 0, 0, 0)
#: formatted text, what it holds (an :class:`Unwritten`'s fields), and whether it must be
#: tried even while writes fail (the summary); a ``threading.Event``: settle what is pending,
#: then set it
_Text = tuple[bytes, _Counts, bool] | threading.Event


def _counts(fmt: EventFormatter) -> _Counts:
    return fmt.events, fmt.names, fmt.tasks, fmt.aggregates, fmt.aggregated_calls


def _minus(a: _Counts, b: _Counts) -> _Counts:
    return a[0] - b[0], a[1] - b[1], a[2] - b[2], a[3] - b[3], a[4] - b[4]


class _ByteGate:
    """Bytes handed from one thread to the next and not yet taken: :meth:`enter` waits while
    ``limit`` would be passed (except when nothing is held: a chunk larger than the limit
    alone still goes through, or the producer would wait forever)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self._cond = threading.Condition()

    def enter(self, size: int) -> None:
        with self._cond:
            while self.held and self.held + size > self.limit:
                self._cond.wait()
            self.held += size

    def leave(self, size: int) -> None:
        with self._cond:
            self.held -= size
            self._cond.notify_all()


class TraceWriter:
    """Writes ``path`` (``*.pfw.gz``), which must not exist yet (``O_CREAT | O_EXCL |
    O_NOFOLLOW``: :class:`FileExistsError` otherwise); with ``dir_fd``, the file named
    ``path.name`` in that open directory. Use :meth:`start` with a formatter to accept raw
    records, or without one for plain lines; end with :meth:`close`.

    Writes that fail for the disk (``gzip_stream.DISK_ERRORS``) never raise: see
    :attr:`write_failure`, :attr:`failing`, :attr:`unwritten` and :attr:`complete`."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        dir_fd: int | None = None,
        level: int = 1,  # ISA-L's 0 (fastest) to 3
        flush_interval: float = 0.5,
        max_pending: int = 64,
        mode: int = TRACE_MODE,
        opener: Callable[[int], int] | None = None,
        thread_setup: Callable[[], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.flush_interval = flush_interval
        # A new file only: never follow a symlink planted at the path (the daemon runs as
        # root) and never truncate an existing trace (the daemon moves an older one aside).
        # FileExistsError when the path exists (also as a dangling symlink). ``opener`` opens
        # it with these flags when the file is to be created by someone else (the daemon:
        # as the job user). ``thread_setup`` runs first on the thread that writes the file
        # (the daemon's: write as users do, within their quota).
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        where = self.path.name if dir_fd is not None else self.path
        if opener is not None:
            self._fd = opener(flags)
        else:
            self._fd = os.open(where, flags, mode, dir_fd=dir_fd)
        self._level = level
        self._thread_setup = thread_setup
        self._stream = GzipStream(self._fd, level)
        self._raw: queue.Queue[tuple[int, object] | None] = queue.Queue(max_pending)
        self._text: queue.Queue[_Text | None] = queue.Queue(max_pending)
        self.pending_bytes = PENDING_BYTES
        self._raw_gate = self._text_gate = _ByteGate(PENDING_BYTES)
        self._formatter: EventFormatter | None = None
        self._threads: list[threading.Thread] = []
        self._error: BaseException | None = None
        self._closed = False
        # the compressing thread's (read anywhere)
        self._unwritten = [0, 0, 0, 0, 0]  # an Unwritten's fields, cumulative
        self._pending = [0, 0, 0, 0, 0]  # what the text since the last sync point holds
        self._retry_at = 0.0
        self._recoveries = 0  # times writing resumed (each gets a loss record)
        #: The first write that failed, as one line (``"No space left on device"``); stays
        #: set once set. None: every write went through.
        self.write_failure: str | None = None
        #: True while writes fail: chunks are dropped (and counted) until there is room again.
        self.failing = False
        #: After :meth:`close`: True when the trace ends with ``]`` and the gzip trailer;
        #: False when it ends at its last sync point (or is empty: nothing could be written).
        self.complete = False

    @property
    def bytes_out(self) -> int:
        """Compressed bytes in the file."""
        return self._stream.size

    @property
    def unwritten(self) -> Unwritten:
        """What was formatted but is not in the file, counted as lost: call events (without a
        formatter: lines of :meth:`write_text`), file-name records, process/thread-name
        records, profile aggregates. Cumulative; final after :meth:`close`."""
        return Unwritten(*self._unwritten)

    def fileno(self) -> int:
        """The trace file's descriptor."""
        return self._fd

    # -- producer side -------------------------------------------------------------------
    def start(
        self, formatter: EventFormatter | None = None, pending_bytes: int = PENDING_BYTES
    ) -> None:
        """Write the opening lines and start the formatting and compressing threads; at most
        ``pending_bytes`` wait to be formatted, and as many to be compressed (one chunk more
        when it is larger alone)."""
        self._formatter = formatter
        self.pending_bytes = pending_bytes
        self._raw_gate = _ByteGate(pending_bytes)
        self._text_gate = _ByteGate(pending_bytes)
        head = "[\n" + (formatter.header() if formatter is not None else "")
        self._stream = GzipStream(self._fd, self._level, head.encode())
        self._attempt(b"", _NOTHING, ROOM)
        self._threads = [
            threading.Thread(target=self._format_loop, name="datacrumbs-format", daemon=True),
            threading.Thread(target=self._compress_loop, name="datacrumbs-gzip", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, chunk: bytes) -> None:
        """Raw ring-buffer records, formatted on the formatting thread (waits while
        :attr:`pending_bytes` are not formatted yet)."""
        self._raw_gate.enter(len(chunk))
        self._raw.put((_RECORDS, chunk))

    def submit_profile(self, rows: bytes) -> None:
        """Profile mode: harvested aggregates, formatted on the formatting thread."""
        self._raw_gate.enter(len(rows))
        self._raw.put((_PROFILE, rows))

    def write_text(self, text: str) -> None:
        """Complete lines (each ending in a newline), written as they are."""
        self._raw.put((_TEXT, text))

    def write_loss(self, loss: LossCounts) -> None:
        """An in-band loss counter event (needs a formatter)."""
        self._raw.put((_LOSS, loss))

    def write_notice(self, name: str, args: Mapping[str, int | str]) -> None:
        """An in-band instant event of the tracer itself (needs a formatter)."""
        self._raw.put((_NOTICE, (name, dict(args))))

    def close(self, summary: Mapping[str, int | float | str] | None = None) -> None:
        """Drain the queues, write ``summary`` (if any, as a metadata event, with what was not
        written counted as lost), the closing ``]`` line and the gzip trailer. A full disk
        does not raise (:attr:`complete` says whether the end was written); the error a
        worker thread met otherwise (a bug) is raised."""
        if self._closed:
            return
        self._closed = True
        if self._threads:
            if summary is not None and self._formatter is not None:
                self._raw.put((_SUMMARY, summary))
            self._raw.put(None)
            for thread in self._threads:
                thread.join()
        try:
            if self._error is None:
                self._finish()
        finally:
            os.close(self._fd)
        if self._error is not None:
            raise self._error

    @property
    def formatter(self) -> EventFormatter | None:
        return self._formatter

    # -- formatting thread ---------------------------------------------------------------
    def _format_loop(self) -> None:
        fmt = self._formatter
        last_loss: LossCounts | None = None
        recoveries = 0
        while (item := self._raw.get()) is not None:
            kind, payload = item
            # the chunk counts until its text is handed over, so that what waits, is formatted
            # and is handed over stays within pending_bytes (and one chunk)
            size = len(payload) if kind in (_RECORDS, _PROFILE) else 0  # type: ignore[arg-type]
            try:
                if self._error is not None:
                    continue  # keep draining so that producers never block forever
                counts = _NOTHING
                try:
                    if fmt is None:
                        data = str(payload).encode() if kind == _TEXT else b""
                        counts = (data.count(b"\n"), 0, 0, 0, 0)  # each line counts as an event
                    elif kind in (_RECORDS, _PROFILE):
                        pieces = (
                            fmt.format_pieces(payload)  # type: ignore[arg-type]
                            if kind == _RECORDS
                            else iter((fmt.profile_lines(payload),))  # type: ignore[arg-type]
                        )
                        before = _counts(fmt)
                        for piece in pieces:  # each handed over as made: a chunk's text is large
                            after = _counts(fmt)
                            self._hand_over(piece, _minus(after, before))
                            before = after
                        data = b""
                    elif kind == _LOSS:
                        last_loss = payload  # type: ignore[assignment]
                        data = self._loss_text(last_loss)
                    elif kind == _NOTICE:
                        data = fmt.notice_line(*payload).encode()  # type: ignore[misc]
                    elif kind == _SUMMARY:
                        self._settle()  # what it counts is final once everything before is
                        data = fmt.summary_line(
                            payload,  # type: ignore[arg-type]
                            self.unwritten,
                            self.write_failure,
                        ).encode()
                        self._hand_over(data, _NOTHING, force=True)
                        continue
                    elif kind == _TEXT:
                        data = str(payload).encode()
                    else:
                        data = b""
                    if recoveries != self._recoveries:  # writing resumed: say what was lost
                        recoveries = self._recoveries
                        data += self._loss_text(last_loss)
                except BaseException as exc:
                    self._error = exc
                    continue
                if data:
                    self._hand_over(data, counts)
            finally:
                self._raw_gate.leave(size)
        self._text.put(None)

    def _hand_over(self, data: bytes, counts: _Counts, force: bool = False) -> None:
        """Formatted text to the compressing thread, waiting while too much is pending."""
        if data:
            self._text_gate.enter(len(data))
            self._text.put((data, counts, force))

    def _loss_text(self, loss: LossCounts | None) -> bytes:
        fmt = self._formatter
        unwritten, error = self.unwritten, self.write_failure
        if fmt is not None:
            return fmt.loss_line(loss or LossCounts(), unwritten, error).encode()
        return (  # plain lines: a loss record without id
            '{"name":"datacrumbs_loss","cat":"datacrumbs","ph":"M","args":'
            f'{{"lost_events":{unwritten.events},"unwritten_events":{unwritten.events}}}}}\n'
        ).encode()

    def _settle(self) -> None:
        """Wait until the compressing thread has written, or counted as unwritten,
        everything queued before."""
        done = threading.Event()
        self._text.put(done)
        done.wait()

    # -- compressing thread --------------------------------------------------------------
    def _compress_loop(self) -> None:
        if self._thread_setup is not None:
            try:
                self._thread_setup()
            except BaseException as exc:
                self._error = exc
        stream = self._stream
        last_sync = time.monotonic()
        idle: _Text = (b"", _NOTHING, False)
        while (item := self._take(idle)) is not None:
            if isinstance(item, threading.Event):
                try:
                    if self._error is None and stream.dirty and not self.failing:
                        self._sync(END_ROOM)
                        last_sync = time.monotonic()
                except BaseException as exc:
                    self._error = exc
                finally:
                    item.set()
                continue
            if self._error is not None:
                continue
            data, counts, force = item
            now = time.monotonic()
            try:
                if self.failing:
                    if force or (data and now >= self._retry_at):
                        self._attempt(data, counts, 0 if force else ROOM)
                        last_sync = now
                    else:
                        self._drop(counts)
                    continue
                if data:
                    self._add(data, counts)
                if stream.dirty and (
                    force or stream.member_full or now - last_sync >= self.flush_interval
                ):  # a full member ends at this sync point
                    self._sync(0 if force else ROOM)
                    last_sync = now
            except BaseException as exc:
                self._error = exc

    def _take(self, idle: _Text) -> _Text | None:
        try:
            item = self._text.get(timeout=self.flush_interval)
        except queue.Empty:
            return idle
        if isinstance(item, tuple):
            self._text_gate.leave(len(item[0]))
        return item

    def _add(self, data: bytes, counts: _Counts) -> bool:
        try:
            self._stream.add(data)
        except OSError as exc:
            if not is_disk_error(exc):
                raise
            self._fail(exc, counts)
            return False
        pending = self._pending
        for i, n in enumerate(counts):
            pending[i] += n
        return True

    def _sync(self, room: int) -> bool:
        try:
            self._stream.sync(room)
        except OSError as exc:
            if not is_disk_error(exc):
                raise
            self._fail(exc, _NOTHING)
            return False
        self._pending = [0, 0, 0, 0, 0]
        return True

    def _attempt(self, data: bytes, counts: _Counts, room: int) -> None:
        """At the start, and while writes fail: ``data`` and a sync point right away, which
        counts once ``room`` is held beyond it. Writing resumes when it does."""
        was_failing = self.failing
        if data and not self._add(data, counts):
            return
        if not self._sync(room) or not room:
            return  # with no room asked (the summary, at the end), the disk may still be full
        self.failing = False
        if was_failing:
            self._recoveries += 1
            # wake the formatting thread for the loss record (busy: with its next chunk)
            with contextlib.suppress(queue.Full):
                self._raw.put_nowait((_WAKE, None))

    def _drop(self, counts: tuple[int, ...] | list[int]) -> None:
        unwritten = self._unwritten
        for i, n in enumerate(counts):
            unwritten[i] += n

    def _fail(self, exc: OSError, counts: _Counts) -> None:
        """A write failed: what the text since the last sync point held is lost, and the file
        is cut back to that point (the room beyond it held again)."""
        self._drop(counts)
        self._drop(self._pending)
        self._pending = [0, 0, 0, 0, 0]
        if self.write_failure is None:
            self.write_failure = exc.strerror or str(exc)
        self.failing = True
        self._retry_at = time.monotonic() + self.flush_interval
        try:
            self._stream.rollback()
        except OSError as again:
            if not is_disk_error(again):
                raise  # a disk error: the truncate is retried before the next write

    def _finish(self) -> None:
        """The ``]`` line, the end of the stream and the trailer, in the room held for them
        when the disk is full: after what is pending, or alone if that does not fit; if not
        even that, the file ends at its last sync point."""
        for _ in range(2):
            try:
                self._stream.finish(b"]\n")
            except OSError as exc:
                if not is_disk_error(exc):
                    raise
                self._fail(exc, _NOTHING)
                continue
            self.complete = True
            return
