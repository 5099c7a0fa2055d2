"""What user space knows about each traced function, indexed by the function id in its cookie.

The kernel sends only a function id and six raw argument values; a :class:`FunctionSpec` says
which of those values become which ``args`` keys of the trace, and how to print them. The
engine fills a :class:`FunctionTable` while attaching; the trace formatter reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

__all__ = ["MAX_FUNCTION_ID", "ArgField", "ArgKind", "FunctionSpec", "FunctionTable"]

#: Function ids occupy 24 bits of the cookie.
MAX_FUNCTION_ID = (1 << 24) - 1


class ArgKind(Enum):
    """How a raw 64-bit argument value is written."""

    INT = "int"  # signed 64-bit integer, as captured
    HASH = "hash"  # a file-name hash computed by the kernel: 16 hex digits, like fhash


@dataclass(frozen=True)
class ArgField:
    """One ``args`` entry: ``key`` ← raw argument ``index``, narrowed to ``num_bytes``."""

    key: str
    index: int
    kind: ArgKind = ArgKind.INT
    num_bytes: int = 8
    signed: bool = True


@dataclass(frozen=True)
class FunctionSpec:
    """A traced function: its trace ``name`` and ``cat`` and the arguments it reports."""

    fid: int
    name: str
    category: str
    fields: tuple[ArgField, ...] = ()
    has_file: bool = False  # whether events carry an fhash (fd or path argument)
    has_return: bool = True  # False: the return value is not an integer and is not written
    #: Constant string ``args`` of every event (``syscall``, ``category``): fixed at attach.
    labels: tuple[tuple[str, str], ...] = ()
    #: The return's C type, where narrower than the 64-bit register (kernel functions, from
    #: BTF): the ABI leaves the register's upper bits undefined, and they may hold an address.
    ret_bytes: int = 8
    ret_signed: bool = True
    #: The function as the probe file names it, where the trace names it otherwise (a 32-bit
    #: syscall of its own name, traced for the file's ``lseek``); None: ``name``, or the
    #: ``syscall`` label.
    target: str | None = None


@dataclass
class FunctionTable:
    """Function id → spec; ids are dense and start at 1 (0 is never a valid cookie)."""

    specs: dict[int, FunctionSpec] = field(default_factory=dict)
    _last_fid: int = 0

    def add(
        self,
        name: str,
        category: str,
        fields: tuple[ArgField, ...] = (),
        has_file: bool = False,
        has_return: bool = True,
        labels: tuple[tuple[str, str], ...] = (),
        ret_bytes: int = 8,
        ret_signed: bool = True,
        target: str | None = None,
    ) -> FunctionSpec:
        fid = self._last_fid + 1
        if fid > MAX_FUNCTION_ID:
            raise ValueError(f"more than {MAX_FUNCTION_ID} functions to trace")
        self._last_fid = fid
        spec = FunctionSpec(
            fid, name, category, fields, has_file, has_return, labels, ret_bytes, ret_signed, target
        )
        self.specs[fid] = spec
        return spec

    def remove(self, fid: int) -> None:
        """Forget a function whose attachment failed (its id is not reused)."""
        self.specs.pop(fid, None)
