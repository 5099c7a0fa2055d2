"""Map operations on map fds, through libbpf's low-level API: the engine's reads and writes of
its maps (cookies, counters, the profile's aggregates) outside the object's lifetime calls.
Each failure is one :class:`~datacrumbs.ebpf.libbpf.BpfError` line naming the map fd."""

from __future__ import annotations

import ctypes
import errno
from ctypes import c_uint32

from datacrumbs.ebpf.libbpf import LIBBPF, call_error

__all__ = ["map_delete_batch", "map_lookup", "map_lookup_batch", "map_update"]


def map_update(fd: int, key: bytes, value: bytes, flags: int = 0) -> None:
    """``bpf_map_update_elem`` on a map fd."""
    err = LIBBPF.bpf_map_update_elem(fd, key, value, flags)
    if err:
        raise call_error(f"cannot update BPF map fd {fd}", err)


def map_lookup(fd: int, key: bytes, value_size: int) -> bytes:
    """``bpf_map_lookup_elem`` on a map fd; per-CPU maps need ``value_size`` for all CPUs
    (each value rounded up to 8 bytes)."""
    buf = ctypes.create_string_buffer(value_size)
    err = LIBBPF.bpf_map_lookup_elem(fd, key, buf)
    if err:
        raise call_error(f"cannot look up BPF map fd {fd}", err)
    return buf.raw


def map_lookup_batch(fd: int, key_size: int, value_size: int, chunk: int) -> tuple[bytes, int]:
    """Every entry of a hash map, ``chunk`` at a time (``BPF_MAP_LOOKUP_BATCH``, kernel 5.6+,
    one call per chunk instead of three per entry): the keys and values side by side, as
    ``key | value`` rows, and how many. Entries added meanwhile may or may not be seen."""
    keys = ctypes.create_string_buffer(key_size * chunk)
    values = ctypes.create_string_buffer(value_size * chunk)
    token_in = ctypes.create_string_buffer(8)  # a hash map's batch token is a bucket index
    token_out = ctypes.create_string_buffer(8)
    rows: list[bytes] = []
    first = True
    while True:
        count = c_uint32(chunk)
        err = LIBBPF.bpf_map_lookup_batch(
            fd, None if first else token_in, token_out, keys, values, ctypes.byref(count), None
        )
        if err and abs(err) != errno.ENOENT:
            raise call_error(f"cannot read BPF map fd {fd}", err)
        kraw, vraw = keys.raw, values.raw
        for i in range(count.value):
            rows.append(kraw[i * key_size : (i + 1) * key_size])
            rows.append(vraw[i * value_size : (i + 1) * value_size])
        if err:  # ENOENT: that was the last bucket
            return b"".join(rows), len(rows) // 2
        ctypes.memmove(token_in, token_out, 8)
        first = False


def map_delete_batch(fd: int, keys: bytes, count: int) -> None:
    """Delete ``count`` keys (packed one after another) from a hash map in one call."""
    if not count:
        return
    done = c_uint32(count)
    err = LIBBPF.bpf_map_delete_batch(fd, keys, ctypes.byref(done), None)
    if err:
        raise call_error(f"cannot delete from BPF map fd {fd}", err)
