"""Read a BPF ring buffer from Python without a callback per event.

The map is mmapped the way libbpf's ringbuf.c does it: the consumer page read-write at offset
0, then the producer page and the data area read-only at offset ``pagesize``, with the data
area mapped twice in a row so that a record wrapping around the end is contiguous. A read is
one C call (``_ringwalk.take``, libbpf's ``ringbuf_process_ring`` without the callbacks): it
walks the 8-byte record headers from ``consumer_pos`` up to ``producer_pos`` or the first
record still being written (BUSY bit), copies the committed span out in one piece and advances
``consumer_pos``, with acquire loads of the producer position and the headers and a release
store of the consumer position (what the kernel's side pairs with; x86 would order them anyway,
aarch64 would not). Decoding happens later, on another thread. Records are 8-byte aligned; the
DISCARD bit marks records the producer gave up (the decoder skips them). The framing constants
are ``<linux/bpf.h>``'s, from the C module.

BPF ring buffers and their mmap interface need kernel 5.8+.
"""

from __future__ import annotations

import mmap

from datacrumbs.ebpf._ringwalk import DISCARD_BIT, HEADER_SIZE, take

__all__ = ["DISCARD_BIT", "HEADER_SIZE", "RingBufferReader"]


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
        self._page = page
        self.fd = map_fd  # readable (epoll) when the kernel forces a wakeup

    def read(self) -> bytes:
        """Take every committed record (headers included); b"" when there is none."""
        return take(self._consumer, self._producer, self._mask, self._page)

    def close(self) -> None:
        self._producer.close()
        self._consumer.close()
