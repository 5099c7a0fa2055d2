"""The poller: one thread that only moves bytes from the ring buffers to a :class:`RecordSink`.

It waits on the ring buffers (one epoll over all, ``poll_interval`` timeout, or a kernel wakeup
once a buffer is ``wakeup_fraction`` full), copies each one's committed records out and hands
them to the sink, buffer by buffer: a thread's records are all in one buffer, so they reach the
sink in order. Once per round it also reads the kernel's loss counters and, when they changed,
tells the sink. In profile mode it also harvests the aggregates of the intervals that are over
(:mod:`profile_map`), after the ring buffers, so that the names they use reach the sink first;
with trace mode's valve, the same aggregates, and the marks of the functions that switched to
them and back (:mod:`valve`), and it tells the kernel when the sink's byte budget is spent.
"""

from __future__ import annotations

import functools
import os
import select
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from datacrumbs.ebpf.bpf_maps import map_lookup
from datacrumbs.ebpf.profile_map import ProfileMap
from datacrumbs.ebpf.records import LOST_SLOTS
from datacrumbs.ebpf.ringbuf import RingBufferReader
from datacrumbs.ebpf.sink import LossCounts, RecordSink
from datacrumbs.ebpf.valve import ValveWatch

__all__ = ["Poller", "ValvePolling", "possible_cpus", "read_loss", "sum_per_cpu"]


@functools.cache
def possible_cpus() -> int:
    """Number of possible CPUs (per-CPU map values are sized by it); fixed at boot, so read once
    (the poller asks every round)."""
    try:
        text = Path("/sys/devices/system/cpu/possible").read_text().strip()
    except OSError:
        return os.cpu_count() or 1
    total = 0
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        total += (int(hi) if hi else int(lo)) - int(lo) + 1
    return total


def sum_per_cpu(map_fd: int, key: int, ncpu: int) -> int:
    """The sum over CPUs of one 64-bit slot of a per-CPU array."""
    raw = map_lookup(map_fd, key.to_bytes(4, "little"), 8 * ncpu)
    return sum(struct.unpack(f"<{ncpu}Q", raw))


def read_loss(lost_map_fd: int) -> LossCounts:
    """The kernel's loss counters, summed over CPUs (read with bpf_map_lookup_elem: the .bss
    view of libbpf 1.1 would stay 0)."""
    ncpu = possible_cpus()
    return LossCounts(*(sum_per_cpu(lost_map_fd, slot, ncpu) for slot in range(LOST_SLOTS)))


@dataclass
class ValvePolling:
    """What the poller does for trace mode's valve: ``watch`` its fold counters and mark each
    switch in the sink; once the sink's ``bytes_out`` reaches ``budget_bytes`` (0: no budget),
    call ``spend`` (the kernel then folds every call) once. ``drain_bytes_per_s``: a consumer
    slowed on purpose (0: not)."""

    watch: ValveWatch | None = None
    budget_bytes: int = 0
    spend: Callable[[], None] = lambda: None
    drain_bytes_per_s: int = 0


class Poller:
    """Drains the ring buffers ``ring_fds`` into ``sink`` on its own thread until :meth:`stop`."""

    def __init__(
        self,
        ring_fds: list[int],
        ringbuf_bytes: int,
        lost_fd: int,
        sink: RecordSink,
        interval: float,
        profile: ProfileMap | None = None,
        valve: ValvePolling | None = None,
    ) -> None:
        self._readers = [RingBufferReader(fd, ringbuf_bytes) for fd in ring_fds]
        self._epoll = select.epoll()
        for reader in self._readers:
            self._epoll.register(reader.fd, select.EPOLLIN)
        self._lost_fd = lost_fd
        self._sink = sink
        self._interval = interval
        self._profile = profile
        # harvest twice an interval, at most every 50 ms and at least every second
        self._harvest_every = (
            min(max(profile.interval_ns // 2, 50_000_000), 1_000_000_000) if profile else 0
        )
        self._next_harvest = 0
        self._valve = valve or ValvePolling()
        self._budget_spent = False
        self._started = time.monotonic()
        self._stopping = threading.Event()
        self.ring_bytes = 0
        self.last_loss = LossCounts()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="datacrumbs-ringbuf", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        try:
            while not self._stopping.is_set():
                self._drain_once()
                self._epoll.poll(self._interval)
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def _drain_once(self, final: bool = False) -> None:
        # one read per ring per pass, until a pass finds nothing: a ring that keeps filling
        # must not starve the others
        busy = True
        while busy:
            busy = False
            for reader in self._readers:
                if chunk := reader.read():
                    busy = True
                    self.ring_bytes += len(chunk)
                    self._sink.submit(chunk)
                    self._slow_down()
        if self._profile is not None:
            now = time.monotonic_ns()
            if final or now >= self._next_harvest:
                self._next_harvest = now + self._harvest_every
                if rows := self._profile.harvest(None if final else now):
                    self._sink.submit_profile(rows)
        self._mark_valve(final)
        loss = read_loss(self._lost_fd)
        if loss != self.last_loss:
            self.last_loss = loss
            self._sink.write_loss(loss)

    def _slow_down(self) -> None:
        """A consumer slowed on purpose: wait until the bytes moved so far are within the
        rate (the valve's tests and benchmarks)."""
        rate = self._valve.drain_bytes_per_s
        if rate and not self._stopping.is_set():
            ahead = self.ring_bytes / rate - (time.monotonic() - self._started)
            if ahead > 0:
                time.sleep(ahead)

    def _mark_valve(self, final: bool) -> None:
        """The valve's switches as marks in the sink; the budget spent, said to the kernel."""
        valve = self._valve
        if valve.budget_bytes and not self._budget_spent:
            written = self._sink.bytes_out
            if written >= valve.budget_bytes:
                self._budget_spent = True
                valve.spend()
                self._sink.write_notice(
                    "datacrumbs_budget",
                    {"trace_bytes": written, "budget_bytes": valve.budget_bytes},
                )
        if valve.watch is None:
            return
        for change in valve.watch.changes(time.monotonic_ns(), final):
            self._sink.write_notice("datacrumbs_valve", change.notice())

    def stop(self) -> None:
        """Stop the thread, then drain what is left (unless the thread failed)."""
        self._stopping.set()
        self._thread.join()
        try:
            if self.error is None:
                self._drain_once(final=True)
        finally:
            for reader in self._readers:
                reader.close()
            self._epoll.close()
            if self._profile is not None:
                self._profile.close()
