"""The ring buffer's consumer step (``_ringwalk.take``), on memory laid out as the kernel lays
out a BPF ring: the consumer page, then the producer page and the data area twice in a row.
The real rings are read in test_rings.py; here each framing case is set up byte by byte."""

from __future__ import annotations

import struct

import pytest

from datacrumbs.ebpf._ringwalk import BUSY_BIT, DISCARD_BIT, HEADER_SIZE, take

PAGE, SIZE = 4096, 4096


def _ring(records: list[tuple[int, int, bytes]], start: int) -> tuple[bytearray, bytearray]:
    """(consumer page, producer area) with consumer_pos = start and the records (position,
    header flags, body) written from there on; producer_pos after the last one."""
    data = bytearray(SIZE)
    pos = start
    for at, flags, body in records:
        assert at == pos
        header = struct.pack("<II", len(body) | flags, 0)
        for i, byte in enumerate(header + body):
            data[(at + i) % SIZE] = byte
        pos += (len(body) + HEADER_SIZE + 7) & ~7
    consumer = bytearray(PAGE)
    struct.pack_into("<Q", consumer, 0, start)
    producer = bytearray(PAGE) + data + data  # the data area mapped twice
    struct.pack_into("<Q", producer, 0, pos)
    return consumer, producer


def _consumer_pos(page: bytearray) -> int:
    return int(struct.unpack_from("<Q", page)[0])


def test_committed_records_are_taken_and_the_walk_stops_at_one_being_written() -> None:
    records = [(0, 0, b"first"), (16, DISCARD_BIT, b"given up"), (32, 0, b"x" * 12),
               (56, BUSY_BIT, b"busy"), (72, 0, b"after")]  # fmt: skip
    consumer, producer = _ring(records, 0)
    chunk = take(consumer, producer, SIZE - 1, PAGE)
    assert len(chunk) == 56 and chunk[HEADER_SIZE : HEADER_SIZE + 5] == b"first"
    assert struct.unpack_from("<I", chunk, 16)[0] == 8 | DISCARD_BIT  # the decoder skips it
    assert _consumer_pos(consumer) == 56
    assert take(consumer, producer, SIZE - 1, PAGE) == b""  # still busy: nothing more
    assert _consumer_pos(consumer) == 56


def test_a_record_wrapping_around_the_end_is_taken_whole() -> None:
    start = 2 * SIZE - 8  # positions grow forever; the ring's offset is pos & mask
    consumer, producer = _ring([(start, 0, b"wrapped!")], start)
    chunk = take(consumer, producer, SIZE - 1, PAGE)
    assert chunk == struct.pack("<II", 8, 0) + b"wrapped!"
    assert _consumer_pos(consumer) == start + 16


def test_nothing_committed_is_an_empty_take() -> None:
    consumer, producer = _ring([], 64)
    assert take(consumer, producer, SIZE - 1, PAGE) == b""
    assert _consumer_pos(consumer) == 64


def test_a_mapping_too_small_for_the_ring_is_refused() -> None:
    consumer, producer = _ring([], 0)
    with pytest.raises(ValueError, match="mapped twice"):
        take(consumer, producer[: PAGE + SIZE], SIZE - 1, PAGE)
    with pytest.raises(ValueError, match="mapped twice"):
        take(consumer, producer, SIZE - 2, PAGE)  # not a power of two
    with pytest.raises(TypeError):
        take(bytes(consumer), producer, SIZE - 1, PAGE)  # consumer_pos must be writable
