"""USDT probes as the engine traces them: what a probe's events carry, from its ELF notes.

A USDT probe (``sys/sdt.h``'s ``DTRACE_PROBE``, Python's ``function__entry``, ...) is a ``nop``
at a known address with a note that says how to find each argument (``-4@%eax``: a signed
4-byte value in a register; ``8@-16(%rbp)``: in memory; ``-4@$7``: a constant) and, maybe, a
semaphore the program checks before computing them. libbpf does the rest: it parses the notes
again, fills the argument specs the kernel side reads with ``bpf_usdt_arg``, and has the
kernel count each tracer in the semaphore (``ref_ctr_offset``). Here only the event's fields
are decided: one per argument (up to the record's six), sized and signed as the note says, so
the trace writes each as the C value it is.

A hit is an instant, not a call: the event's ``dur`` is 0 and it has no ``ret``.
"""

from __future__ import annotations

import re

from datacrumbs.ebpf.elf_symbols import usdt_notes
from datacrumbs.ebpf.functions import ArgField
from datacrumbs.ebpf.records import MAX_ARGS

__all__ = ["UsdtError", "usdt_fields"]

_ARG = re.compile(r"^(?P<sign>-?)(?P<size>[1248])@")


class UsdtError(LookupError):
    """The binary has no such probe; the message says where it looked."""


def usdt_fields(
    path: str, provider: str, name: str, shown: str | None = None
) -> tuple[ArgField, ...]:
    """The fields of probe ``provider:name`` of the ELF file at ``path``: ``arg0``... as its
    first note describes them (every note of one probe has the same arguments; the compiler
    may place a probe several times). Raises :class:`UsdtError` when there is no such probe and
    :class:`~datacrumbs.ebpf.elf_symbols.SymbolError` when the file is unreadable."""
    for note in usdt_notes(path, shown):
        if note.provider == provider and note.name == name:
            fields = []
            for index, spec in enumerate(note.arguments.split()[:MAX_ARGS]):
                m = _ARG.match(spec)
                size = int(m["size"]) if m else 8
                fields.append(
                    ArgField(f"arg{index}", index, num_bytes=size, signed=bool(m and m["sign"]))
                )
            return tuple(fields)
    raise UsdtError(f"{shown or path} has no USDT probe {provider}:{name}")
