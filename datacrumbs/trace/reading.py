"""Reading a trace back: every complete line, also of a trace whose writer was killed.

A trace is a series of gzip members (trace/gzip_stream.py), read one after the other. A killed
writer leaves its last member without its trailer, possibly with a cut deflate block;
``zlib.decompressobj`` (wbits 31: gzip) yields every line up to the last flush and no error for
the missing end. ``datacrumbs_summary`` streams (:func:`iter_trace_lines`); tests and small
tools take the whole list (:func:`read_trace_lines`).
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from pathlib import Path

from datacrumbs.common.errors import DatacrumbsError

__all__ = ["iter_trace_lines", "read_trace_lines"]

_CHUNK = 1 << 20


def iter_trace_lines(path: Path) -> Iterator[bytes]:
    """Every complete line of a trace (without its newline), streamed: a cut trace yields the
    lines up to its last flush. Raises :class:`DatacrumbsError` for a file that is missing or
    not a gzip stream."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below, generator
    except FileNotFoundError:
        raise DatacrumbsError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DatacrumbsError(f"{path}: is a directory, not a trace") from None
    except PermissionError:
        raise DatacrumbsError(f"{path}: permission denied") from None
    with handle:
        inflate = zlib.decompressobj(31)
        rest = b""
        while chunk := handle.read(_CHUNK):
            while chunk:
                try:
                    text = inflate.decompress(chunk)
                except zlib.error:
                    raise DatacrumbsError(
                        f"{path}: not a datacrumbs trace (not gzip data, or corrupt)"
                    ) from None
                lines = (rest + text).split(b"\n")
                rest = lines.pop()
                yield from lines
                chunk = b""
                if inflate.eof:  # the next member, if any, begins in what is left
                    chunk = inflate.unused_data
                    inflate = zlib.decompressobj(31)


def read_trace_lines(path: str | os.PathLike[str]) -> list[str]:
    """Every complete line of a trace, decoded (see :func:`iter_trace_lines`)."""
    return [line.decode() for line in iter_trace_lines(Path(path))]
