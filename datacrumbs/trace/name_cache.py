"""What the formatter remembers having written, in bounded memory (issue 25, N4).

File names: the kernel sends a name once while its own table of names sent (an LRU of 16,384)
holds it, and again after it forgot it; the formatter writes a name unless it wrote it lately,
so that a name the job keeps coming back to is not written at every return. Remembering every
name ever written cost ~110 bytes a name for the whole run, without bound. :class:`NameCache`
keeps a fixed number of 8-byte hashes instead, four to a set, the least recently seen of a set
forgotten first; a name forgotten and sent again is written again. Every event's ``fhash`` thus
has its ``FH`` line in the trace (DFTracer's readers gather the names from the whole file), and
the cost of forgetting is a repeated line, counted in :attr:`NameCache.evicted`.

Processes and threads: the formatter writes a process's name and metadata once per pid, a
thread's name once per tid. The kernel tells user space of no exit, so :class:`RecentTable`
keeps the most recently described ones up to a bound; one that comes back after being
forgotten (a new thread of an old process) is described again.
"""

from __future__ import annotations

from array import array
from collections import OrderedDict
from typing import Generic, TypeVar

__all__ = ["NameCache", "RecentTable"]

_WAYS = 4
_K = TypeVar("_K")
_V = TypeVar("_V")


class NameCache:
    """At most ``slots`` name hashes (rounded down to a power of two, at least 4), four ways
    a set. Hashes are never 0 (the kernel's FNV-1a maps 0 to 1): 0 marks an empty slot."""

    def __init__(self, slots: int) -> None:
        sets = max(slots // _WAYS, 1)
        sets = 1 << (sets.bit_length() - 1)
        self.slots = sets * _WAYS
        self._mask = sets - 1
        self._table = array("Q", bytes(8 * self.slots))
        #: hashes forgotten to make room: each may be written again
        self.evicted = 0

    def __len__(self) -> int:
        return self.slots - self._table.count(0)

    def add(self, fhash: int) -> bool:
        """Remember ``fhash`` as the most recent of its set; True when it was not remembered
        (its name is to be written)."""
        t = self._table
        base = ((fhash ^ (fhash >> 32)) & self._mask) * _WAYS
        if t[base] == fhash:
            return False
        if t[base + 1] == fhash:
            t[base + 1] = t[base]
            t[base] = fhash
            return False
        if t[base + 2] == fhash:
            t[base + 2] = t[base + 1]
            t[base + 1] = t[base]
            t[base] = fhash
            return False
        if t[base + 3] == fhash:
            t[base + 3] = t[base + 2]
            t[base + 2] = t[base + 1]
            t[base + 1] = t[base]
            t[base] = fhash
            return False
        if t[base + 3]:
            self.evicted += 1
        t[base + 3] = t[base + 2]
        t[base + 2] = t[base + 1]
        t[base + 1] = t[base]
        t[base] = fhash
        return True


class RecentTable(Generic[_K, _V]):
    """A mapping of at most ``entries`` keys, the least recently used forgotten first."""

    def __init__(self, entries: int) -> None:
        self.entries = max(entries, 1)
        self._items: OrderedDict[_K, _V] = OrderedDict()
        #: keys forgotten to make room
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: _K) -> _V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: _K, value: _V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        if len(self._items) > self.entries:
            self._items.popitem(last=False)
            self.evicted += 1
