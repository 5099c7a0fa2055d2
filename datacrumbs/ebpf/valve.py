"""Trace mode's valve, seen from user space: when and why each function switched from events to
aggregates and back.

The kernel decides call by call (``dc_call_reserve`` in ``ebpf/bpf/dc_valve.h``): a call that
would be an event is folded into its aggregate when its ring buffer is above the high-water
mark or full, when its function passed its rate on that CPU, when the trace's byte budget is
spent, or when its rule says so; it counts each fold per function, CPU and reason in
``dc_folds`` (slot 0: every function's together). The poller asks :meth:`ValveWatch.changes`
once a round: one per-CPU lookup of the totals, and of each function's counts only while some
fold. A function switches to aggregates in the round its count first grows, and back to events
once it has not grown for :data:`SETTLE_NS`; each switch is a mark in the trace, with the
reasons and the calls folded meanwhile.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from datacrumbs.ebpf.bpf_maps import map_lookup
from datacrumbs.ebpf.records import FOLD, FOLD_REASONS, FoldReason

__all__ = ["SETTLE_NS", "ValveChange", "ValveWatch"]

#: How long a function's folds must stop before it is said to be back to events.
SETTLE_NS = 200_000_000
_REASON_NAMES = tuple(r.name.lower() for r in FoldReason)


@dataclass(frozen=True)
class ValveChange:
    """A function switched: to ``aggregates`` (for ``reasons``) or back to ``events`` (after
    ``folded`` calls went to aggregates, for ``reasons``)."""

    category: str
    function: str
    state: str
    reasons: tuple[str, ...]
    folded: int

    def notice(self) -> dict[str, int | str]:
        """The mark's fields in the trace."""
        return {
            "category": self.category,
            "function": self.function,
            "state": self.state,
            "reasons": ",".join(self.reasons),
            "folded": self.folded,
        }


@dataclass
class _Episode:
    """A function folding since its counts (by reason) were ``start``; ``grew``: when they
    last grew."""

    start: tuple[int, ...]
    grew: int


class ValveWatch:
    """The fold counters of ``dc_folds`` (map ``fd``, ``slots`` function ids) on ``ncpu``
    CPUs, for the functions ``names`` names (fid → category, function)."""

    def __init__(
        self, fd: int, names: Mapping[int, tuple[str, str]], slots: int, ncpu: int
    ) -> None:
        self._fd = fd
        self._names = dict(names)
        self._fids = [fid for fid in self._names if 0 < fid < slots]
        self._ncpu = ncpu
        self._total: tuple[int, ...] = (0,) * FOLD_REASONS
        self._seen: dict[int, tuple[int, ...]] = {}
        self._folding: dict[int, _Episode] = {}

    def _counts(self, fid: int) -> tuple[int, ...]:
        """Calls of ``fid`` folded so far, by reason, summed over CPUs."""
        raw = map_lookup(self._fd, fid.to_bytes(4, "little"), FOLD.size * self._ncpu)
        sums = [0] * FOLD_REASONS
        for cpu in range(self._ncpu):
            for i, n in enumerate(FOLD.unpack_from(raw, cpu * FOLD.size)[:FOLD_REASONS]):
                sums[i] += n
        return tuple(sums)

    def changes(self, now_ns: int, final: bool = False) -> list[ValveChange]:
        """The switches since the last round (``final``: every function still folding is
        said to be back, the trace ending)."""
        total = self._counts(0)
        if total == self._total and not self._folding:
            return []
        self._total = total
        out: list[ValveChange] = []
        for fid in self._fids:
            counts = self._counts(fid)
            before = self._seen.get(fid, (0,) * FOLD_REASONS)
            self._seen[fid] = counts
            episode = self._folding.get(fid)
            if counts != before:
                if episode is None:
                    self._folding[fid] = _Episode(before, now_ns)
                    out.append(self._change(fid, "aggregates", before, counts, 0))
                else:
                    episode.grew = now_ns
            elif episode is not None and now_ns - episode.grew >= SETTLE_NS:
                out.append(self._back(fid))
        if final:
            out += [self._back(fid) for fid in list(self._folding)]
        return out

    def _back(self, fid: int) -> ValveChange:
        """``fid`` is back to events: its episode ends, with the calls folded in it."""
        start = self._folding.pop(fid).start
        last = self._seen[fid]
        return self._change(fid, "events", start, last, sum(last) - sum(start))

    def _change(
        self, fid: int, state: str, before: tuple[int, ...], after: tuple[int, ...], folded: int
    ) -> ValveChange:
        category, function = self._names[fid]
        return ValveChange(category, function, state, _grown(before, after), folded)


def _grown(before: tuple[int, ...], after: tuple[int, ...]) -> tuple[str, ...]:
    """The reasons whose counts grew."""
    return tuple(name for name, a, b in zip(_REASON_NAMES, before, after, strict=True) if b != a)
