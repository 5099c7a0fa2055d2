"""Type stub of the compiled ring-buffer consumer step (``_ringwalk.c``)."""

from mmap import mmap

#: <linux/bpf.h>'s framing: a record the producer gave up, one still being written, the header.
DISCARD_BIT: int
BUSY_BIT: int
HEADER_SIZE: int

def take(consumer_page: mmap, producer_area: mmap, mask: int, page: int) -> bytes: ...
