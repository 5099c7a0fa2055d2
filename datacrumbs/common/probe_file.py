"""Reading and writing probe files: gzip or plain JSON on disk, a checked model in memory.

Every way a file can be wrong — missing, unreadable, neither gzip nor JSON, a truncated gzip,
JSON of the wrong shape — ends in one :class:`DatacrumbsError` line that names the file.
Reading returns the raw document too: the signature covers the file's own JSON, not the
model's re-serialisation (which would add defaults).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import zlib
from collections.abc import Collection
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from datacrumbs.common.atomic_file import write_atomically
from datacrumbs.common.errors import DatacrumbsError
from datacrumbs.common.fs_identity import Identity
from datacrumbs.common.input_file import read_input
from datacrumbs.common.probes import ProbeFile

__all__ = [
    "MAX_PROBE_FILE_BYTES",
    "PROBE_FILE_MODE",
    "config_name",
    "read_probe_file",
    "write_probe_file",
]

PROBE_FILE_MODE = 0o600
#: Far above 16,384 functions with arguments; a cap so a hostile file cannot exhaust memory.
MAX_PROBE_FILE_BYTES = 64 << 20
_GZIP_MAGIC = b"\x1f\x8b"
#: The longest config name put into file names (traces, status databases): with the user,
#: run-id and host around it, a name must stay under NAME_MAX (255 bytes).
MAX_CONFIG_NAME = 64


def config_name(path: Path) -> str:
    """The probe file's name without ``.json[.gz]``, as the trace and status database names
    carry it; a longer name is cut and given a digest of the whole, so it stays distinct."""
    name = path.name.removesuffix(".gz").removesuffix(".json")
    if len(name.encode()) <= MAX_CONFIG_NAME:
        return name
    digest = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    cut = name.encode("utf-8", "surrogateescape")[: MAX_CONFIG_NAME - 13]
    return cut.decode("utf-8", "ignore") + "~" + digest


def _decompress(path: Path, raw: bytes) -> bytes:
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as stream:
            data = stream.read(MAX_PROBE_FILE_BYTES + 1)
    except EOFError:
        raise DatacrumbsError(f"probe file {path}: truncated gzip data") from None
    except (OSError, zlib.error) as exc:
        raise DatacrumbsError(f"probe file {path}: corrupt gzip data ({exc})") from None
    if len(data) > MAX_PROBE_FILE_BYTES:
        raise DatacrumbsError(f"probe file {path}: larger than {MAX_PROBE_FILE_BYTES} bytes")
    return data


def _validation_line(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:3]:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        parts.append(f"{where.lstrip('.') or 'file'}: {message}")
    more = len(exc.errors()) - 3
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def read_probe_file(
    path: Path,
    owners: Collection[int] | None = None,
    identity: Identity | None = None,
) -> tuple[dict[str, Any], ProbeFile]:
    """Load ``path`` (gzip detected by its magic bytes): the raw document and its model.
    ``owners``: the uids the file may belong to (no final symlink followed then);
    ``identity``: who opens and reads it."""
    raw = read_input(path, "probe file", MAX_PROBE_FILE_BYTES, owners, identity)
    data = _decompress(path, raw) if raw.startswith(_GZIP_MAGIC) else raw
    try:
        document = json.loads(data)
    except UnicodeDecodeError:
        raise DatacrumbsError(f"probe file {path}: neither gzip nor UTF-8 JSON") from None
    except json.JSONDecodeError as exc:
        raise DatacrumbsError(f"probe file {path}: neither gzip nor JSON ({exc})") from None
    except RecursionError:
        raise DatacrumbsError(f"probe file {path}: JSON nested too deeply") from None
    except ValueError as exc:  # an integer of more digits than Python converts (4,300)
        raise DatacrumbsError(f"probe file {path}: unusable JSON ({exc})") from None
    try:  # "\ud800" parses into a lone surrogate, which nothing downstream can encode
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise DatacrumbsError(
            f"probe file {path}: a string is not valid Unicode (a lone surrogate escape)"
        ) from None
    if not isinstance(document, dict):
        kind = type(document).__name__
        raise DatacrumbsError(f"probe file {path}: expected a JSON object, found a {kind}")
    try:
        model = ProbeFile.model_validate(document)
    except ValidationError as exc:
        raise DatacrumbsError(f"probe file {path}: {_validation_line(exc)}") from None
    return document, model


def write_probe_file(path: Path, document: dict[str, Any]) -> None:
    """Write ``document`` as gzip JSON, mode 0600, atomically (a reader never sees half)."""
    data = gzip.compress(json.dumps(document, ensure_ascii=False).encode("utf-8"), mtime=0)
    write_atomically(path, data, PROBE_FILE_MODE)
