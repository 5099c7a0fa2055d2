"""The kernel attachments of one session, and their teardown.

Every link an attacher makes is added here, so that one place destroys them all. Destroying a
link waits for an RCU grace period in the kernel (~0.1 s on this kind of machine, measured in
docs/design.md), so teardown runs on a few threads at once. Function probes (uprobes, kprobes)
are also indexed by function id, so that one function can be detached while the others keep
tracing (the daemon's hit limit).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["DETACH_THREADS", "FunctionLinks", "Link", "LinkSet"]

#: Threads that destroy links at once (each destruction waits for an RCU grace period, and
#: the kernel serialises part of it: 8 threads gave ~2x on this kind of machine).
DETACH_THREADS = 8


class Link(Protocol):
    """A kernel attachment (libbpf's ``bpf_link`` or a raw link fd)."""

    def destroy(self) -> None: ...


@dataclass
class FunctionLinks:
    """The links that carry function probes: one function's entry and exit links, or the
    uprobe_multi pair that several functions of one binary share (``shared``: what the
    attacher needs to attach the others again when one of them is detached)."""

    links: list[Link]
    fids: list[int]
    shared: object | None = None


@dataclass
class LinkSet:
    """Every link of a session; those of function probes indexed by function id."""

    links: list[Link] = field(default_factory=list)
    by_function: dict[int, FunctionLinks] = field(default_factory=dict)

    def add(self, *links: Link) -> None:
        self.links.extend(links)

    def add_functions(self, entry: FunctionLinks) -> None:
        """New links that belong to the functions ``entry.fids``."""
        self.links.extend(entry.links)
        for fid in entry.fids:
            self.by_function[fid] = entry

    def take_functions(self, fids: set[int]) -> list[FunctionLinks]:
        """Destroy the links that carry any of ``fids`` and return them (with every function
        they carried, so that the caller can attach the others again)."""
        taken = {id(e): e for fid in fids if (e := self.by_function.get(fid)) is not None}
        for entry in taken.values():
            for link in entry.links:
                link.destroy()
                self.links.remove(link)
            for fid in entry.fids:
                del self.by_function[fid]
        return list(taken.values())

    def destroy_all(self) -> None:
        """Destroy every link (idempotent), several at once."""
        links, self.links = self.links, []
        self.by_function.clear()
        if len(links) > 1:
            with ThreadPoolExecutor(min(DETACH_THREADS, len(links))) as pool:
                for _ in pool.map(_destroy, links):
                    pass
        elif links:
            links[0].destroy()

    def __len__(self) -> int:
        return len(self.links)


def _destroy(link: Link) -> None:
    link.destroy()
