"""Read a BPF ring buffer from Python without a callback per event.

The map is mmapped the way libbpf's ringbuf.c does it: the consumer page read-write at offset
0, then the producer page and the data area read-only at offset ``pagesize``, with the data
area mapped twice in a row so that a record wrapping around the end is contiguous. A read walks
the 8-byte record headers from ``consumer_pos`` up to ``producer_pos`` or the first record
still being written (BUSY bit), in C (``_ringwalk.c``), copies the committed span out in one
slice, and advances ``consumer_pos``. Decoding happens later, on another thread. Records are
8-byte aligned; the DISCARD bit marks records the producer gave up (the decoder skips them).

The two positions are read and written as whole aligned 8-byte words (native ``Q`` through a
memoryview: one load or store), never through ``struct``'s little-endian codes, which move one
byte at a time. A byte-wise store of ``consumer_pos`` let a producer on another CPU read a
half-written position, up to 16 MiB behind the real one when the store crossed a 16 MiB
boundary; it then found the buffer "full" and dropped the record: the few events lost per run
with the buffer nearly empty. A byte-wise load of ``producer_pos`` could likewise see it ahead
of where it is.

BPF ring buffers and their mmap interface need kernel 5.8+.
"""

from __future__ import annotations

import mmap

from datacrumbs.ebpf._ringwalk import committed_end

__all__ = ["DISCARD_BIT", "HEADER_SIZE", "RingBufferReader"]

DISCARD_BIT = 1 << 30
HEADER_SIZE = 8


class RingBufferReader:
    """Consumer side of one ``BPF_MAP_TYPE_RINGBUF`` map of ``size`` bytes (a power of 2)."""

    def __init__(self, map_fd: int, size: int) -> None:
        page = mmap.PAGESIZE
        self.size = size
        self._mask = size - 1
        self._consumer = mmap.mmap(
            map_fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0
        )
        self._producer = mmap.mmap(
            map_fd, page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page
        )
        self._consumer_pos = memoryview(self._consumer).cast("Q")  # [0]: one aligned word
        self._view = view = memoryview(self._producer)
        self._producer_pos = view.cast("Q")
        self._data = view[page:]
        self.fd = map_fd  # readable (epoll) when the kernel forces a wakeup

    def read(self) -> bytes:
        """Take every committed record (headers included); b"" when there is none."""
        consumer = self._consumer_pos[0]
        producer = self._producer_pos[0]
        if consumer == producer:
            return b""
        pos = committed_end(self._data, consumer, producer, self._mask)
        if pos == consumer:
            return b""
        start = consumer & self._mask
        chunk = bytes(self._data[start : start + (pos - consumer)])
        self._consumer_pos[0] = pos
        return chunk

    def close(self) -> None:
        self._producer_pos.release()
        self._consumer_pos.release()
        self._data.release()
        self._view.release()
        self._producer.close()
        self._consumer.close()
