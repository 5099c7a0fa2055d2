"""Gzip members of about 1 MiB of whole lines each, that a failed write never tears: the framing
written here, around raw deflate streams, so that the file can be cut back to its last sync
point and continued.

Why members: DFTracer's readers, its indexer and Dask split a trace at member boundaries, so a
trace of many members is read in parallel without an index of its own; a reader that does not
care (``gzip``, ``zcat``, DuckDB) reads the members as one stream. A member ends at the first
sync point after :data:`MEMBER_TEXT` bytes of text went into it (the writer makes one there),
so each holds whole lines; ending one costs its 18 bytes of framing and a fresh window.

zlib's gzip wrapper (``wbits=31``) owns the CRC32 and the length of everything it compressed:
once a write fails, bytes that never reached the file are in them, and the trailer written at
the end would not match the member any more (a strict reader, ``gzip``, rejects it). So the
10-byte header, the CRC32 and ISIZE are written here, around a raw deflate stream
(``wbits=-15``), and the CRC32 and length kept are those of the text up to the last *sync
point*: a ``Z_SYNC_FLUSH`` whose bytes are all in the file. A sync flush ends the deflate data
on a byte boundary with an empty stored block that is not the last, so a *fresh* deflate stream
may follow it: the decoder sees more blocks of the same stream (the new compressor never refers
back into the old window). On a failed write the file is truncated back to the sync point and a
fresh compressor goes on from there; ``gzip``, ``zlib`` and DFTracer's tools read the result as
one member (``tests/engine/test_disk_full.py``).

Room for the ending: at each sync point ``fallocate(FALLOC_FL_KEEP_SIZE)`` holds some blocks
beyond the end of the file (the size is unchanged: a killed writer still leaves a file that
ends at a sync point), so that the last records, the ``]`` line and the trailer can be written
when the disk is full by then. A sync point counts only when that room was had: the writer's
own data must never eat it. ``ftruncate`` gives such blocks back, also to the same size (tmpfs
and ext4, measured), so the room is taken again right after cutting back, and given back at the
end (a killed writer's file keeps it until the file is truncated or removed). Where the
filesystem cannot do it (``EOPNOTSUPP``: NFS before 4.2, …) no room is kept and a full disk at
the end leaves the file at its last sync point, which the readers that tolerate a missing
trailer (``zlib.decompressobj``, :mod:`datacrumbs.trace.reading`) read whole.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import struct

from isal import isal_zlib as zlib

__all__ = ["DISK_ERRORS", "END_ROOM", "MEMBER_TEXT", "ROOM", "GzipStream"]

#: Write errors that mean "the disk cannot take it now" (full, over quota, failing, read only,
#: file too big): the trace goes on without what could not be written. Others are bugs.
DISK_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EFBIG})
ROOM = 64 << 10  # held beyond each sync point while writing
END_ROOM = 8 << 10  # at the least, for the summary, the ``]`` line and the trailer
MEMBER_TEXT = 1 << 20  # text per gzip member, at the least (it ends at the next sync point)
#: The header ISA-L's gzip wrapper writes (no name, no time, OS unknown): traces as before.
HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
_TRAILER = struct.Struct("<II")
_KEEP_SIZE = 1  # FALLOC_FL_KEEP_SIZE
_NO_FALLOCATE = frozenset({errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL})

_libc = ctypes.CDLL(None, use_errno=True)
_fallocate = _libc.fallocate
_fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
_fallocate.restype = ctypes.c_int


def is_disk_error(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in DISK_ERRORS


class GzipStream:
    """The gzip members in the file ``fd`` (empty, written from offset 0 with ``pwrite``).
    :meth:`add` and :meth:`sync` raise the :class:`OSError` of a failed write (or of a sync
    point that found no room for the ending); :meth:`rollback` then cuts the file back to the
    last sync point. One thread at a time."""

    def __init__(self, fd: int, level: int, head: bytes = b"") -> None:
        self._fd = fd
        self._level = level
        self._head = head  # the opening lines: written first, again if cut back to nothing
        self._z: zlib.Compress | None = None  # None: a fresh one at the next write
        self.synced = 0  # file offset of the last sync point (0: nothing kept yet)
        self.size = 0  # bytes written: the file's size
        self._crc = self._isize = 0  # of the member's text up to the last sync point
        self._crc_now = self._isize_now = 0  # and with the text compressed since
        self._new_member = True  # the next output starts a member (header first)
        self._synced_ended = True  # the last sync point ends a member (or is the file's start)
        self.members = 0  # members ended
        self.dirty = False  # text compressed since the last sync point
        self.room = ROOM  # 0: this filesystem reserves nothing (fallocate unsupported)
        self._torn = False  # a rollback could not truncate: retried before the next write

    @property
    def member_full(self) -> bool:
        """The member holds :data:`MEMBER_TEXT` of text: the next write or sync point ends it."""
        return self._isize_now >= MEMBER_TEXT

    def _compressor(self) -> tuple[zlib.Compress, bytes]:
        """The compressor, and what must precede the next output (a new member: the gzip
        header, and at offset 0 the opening lines)."""
        if self._z is not None:
            return self._z, b""
        if self._torn:
            os.ftruncate(self._fd, self.synced)
            self._torn = False
        self._z = zlib.compressobj(self._level, zlib.DEFLATED, -15)
        if not self._new_member:
            return self._z, b""  # on in the member, after a cut back to its sync point
        self._new_member = False
        head = b"" if self.size else self._head
        self._crc_now = zlib.crc32(head)
        self._isize_now = len(head)
        self.dirty = True
        return self._z, HEADER + self._z.compress(head)

    def add(self, text: bytes) -> None:
        """Whole lines: a member that reaches :data:`MEMBER_TEXT` ends at the next line's end
        (the rest goes into a new one)."""
        while text:
            z, before = self._compressor()
            room = MEMBER_TEXT - self._isize_now
            if room <= 0:
                self._end_member(before)
                continue
            end = len(text) if len(text) <= room else text.find(b"\n", room - 1) + 1
            piece, text = (text, b"") if end <= 0 else (text[:end], text[end:])
            out = before + z.compress(piece)
            self._crc_now = zlib.crc32(piece, self._crc_now)
            self._isize_now += len(piece)
            self.dirty = True
            if out:
                self._write(out)

    def _end_member(self, before: bytes = b"") -> None:
        """The end of the member's deflate stream and its trailer; the next output begins a
        new member. Not a sync point: a cut back goes to the last one, in whichever member."""
        assert self._z is not None
        trailer = _TRAILER.pack(self._crc_now, self._isize_now & 0xFFFFFFFF)
        self._write(before + self._z.flush(zlib.Z_FINISH) + trailer)
        self._z = None
        self._new_member = True
        self._crc_now = self._isize_now = 0
        self.members += 1

    def sync(self, room: int = ROOM) -> None:
        """Flush at a line boundary and make it the sync point, once ``room`` bytes beyond it
        are held (``fallocate``; 0: none asked); a full member (:attr:`member_full`) ends
        there."""
        if not (self._z is None and self._new_member and self.size):  # a member ended here
            z, before = self._compressor()
            if self.member_full:
                self._end_member(before)
            else:
                self._write(before + z.flush(zlib.Z_SYNC_FLUSH))
        self._reserve(self.size, room)
        self.synced = self.size
        self._synced_ended = self._new_member
        self._crc, self._isize = self._crc_now, self._isize_now
        self.dirty = False

    def finish(self, text: bytes) -> None:
        """``text``, the end of the deflate stream and the trailer; then the room held beyond
        the end is given back."""
        z, before = self._compressor()
        crc = zlib.crc32(text, self._crc_now)
        isize = (self._isize_now + len(text)) & 0xFFFFFFFF
        self._write(before + z.compress(text) + z.flush(zlib.Z_FINISH) + _TRAILER.pack(crc, isize))
        self.synced = self.size
        self.dirty = False
        self._z = None
        self._new_member = self._synced_ended = True
        self.members += 1
        with contextlib.suppress(OSError):  # complete as it is; else the blocks go with it
            os.ftruncate(self._fd, self.size)  # frees the blocks held beyond it (tmpfs, ext4)

    def rollback(self) -> None:
        """Cut the file back to the last sync point and hold the room beyond it again. Raises
        the error of a truncate that failed (then retried before the next write)."""
        self._z = None
        self._crc_now, self._isize_now = self._crc, self._isize
        self._new_member = self._synced_ended
        self.dirty = False
        self.size = self.synced
        self._torn = True
        os.ftruncate(self._fd, self.synced)
        self._torn = False
        for room in (self.room, END_ROOM):
            try:
                self._reserve(self.synced, room)
                return
            except OSError as exc:
                if not is_disk_error(exc):
                    raise

    def _reserve(self, at: int, room: int) -> None:
        if not room or not self.room:
            return
        if _fallocate(self._fd, _KEEP_SIZE, at, room) != 0:
            err = ctypes.get_errno()
            if err in _NO_FALLOCATE:
                self.room = 0  # the filesystem cannot: write without
                return
            raise OSError(err, os.strerror(err))

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.pwrite(self._fd, view, self.size)
            view = view[n:]
            self.size += n
