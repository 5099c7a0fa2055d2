"""What the signer checks in a document before it signs it: it trusts nothing the client says.

The launcher is the signer's own code, but it runs as the user, on the user's input; so the
document is re-validated here: the schema (strict pydantic), that it is made for the user who
asked, on this host, for this installation, that every binary it names is a real ELF file that
no one else can swap, that it expires soon, and that it stays within the limits.

Captured arguments (``function_arguments``): a uprobe's ``is_pointer`` is signed, since it
reads user memory of the traced process, which the daemon traces only where the job user could
ptrace it (issue 25, N1); a kprobe's is refused, since it would read kernel memory
(:func:`kernel_btf.pointer_refusal`, which the daemon applies again). Which kernel values are
integers that cannot hold an address is not checked here: the signer's host may run another
kernel than the nodes, and each node's daemon decides from its own BTF (N9).
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from datacrumbs.common.binary_identity import (
    BinaryIdentity,
    identity_of,
    kernel_path,
    open_binary,
)
from datacrumbs.common.errors import DatacrumbsError
from datacrumbs.common.hot_functions import is_shared_library
from datacrumbs.common.probes import ProbeFile, ProbeType
from datacrumbs.common.settings import Settings
from datacrumbs.common.signing import ALGORITHM, MAX_EXPIRY
from datacrumbs.ebpf.elf_symbols import ElfSymbols, SymbolError
from datacrumbs.ebpf.kernel_btf import pointer_refusal
from datacrumbs.ebpf.uprobes import parse_target

__all__ = ["ContentRefused", "check_document"]

_DOCUMENT_KEYS = {"summary", "categories", "checksum_algorithm"}
_SIGNABLE_KINDS = {ProbeType.SYSCALLS, ProbeType.KPROBE, ProbeType.UPROBE, ProbeType.USDT}
_FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_.$@:]{1,512}$")
_CATEGORY_NAME = re.compile(r"^[A-Za-z0-9_.:+-]{1,128}$")
_ELF_MAGIC = b"\x7fELF"


class ContentRefused(Exception):
    """The document may not be signed; the message is the reason, in one line."""


def _schema(document: dict[str, Any]) -> ProbeFile:
    extra = set(document) - _DOCUMENT_KEYS
    if extra:
        raise ContentRefused(f"unexpected document keys: {', '.join(sorted(extra))}")
    if document.get("checksum_algorithm") != ALGORITHM:
        raise ContentRefused(f"checksum_algorithm must be {ALGORITHM!r}")
    try:
        return ProbeFile.model_validate_json(json.dumps(document), strict=True)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"]) or "document"
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ContentRefused(
            f"schema: {where}: {error['msg'].removeprefix('Value error, ')}{more}"
        ) from None


def _parse_time(model: ProbeFile, field: str) -> datetime:
    try:
        return model.summary.time(field)
    except ValueError as exc:
        raise ContentRefused(str(exc)) from None


def _check_expiry(model: ProbeFile, now: datetime) -> None:
    expires = _parse_time(model, "expires_at")
    if expires <= now:
        raise ContentRefused(f"summary.expires_at {model.summary.expires_at} is in the past")
    if expires > now + MAX_EXPIRY:
        raise ContentRefused(
            f"summary.expires_at {model.summary.expires_at} is more than "
            f"{MAX_EXPIRY.days} days away"
        )
    if model.summary.created_at is not None:
        _parse_time(model, "created_at")


def _not_writable_by_others(path: Path, info: os.stat_result, what: str) -> None:
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        sticky_dir = stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_ISVTX
        if not sticky_dir:
            raise ContentRefused(f"{what} {path} is writable by group or others")


def check_binary(
    text: str,
    identity: BinaryIdentity | None,
    functions: Sequence[str] = (),
    hot: re.Pattern[str] | None = None,
) -> None:
    """A uprobe/USDT target must be a canonical path to an ELF file no one else can replace,
    and the very file the configurator read: the document's ``binary_identity`` is compared
    with the identity of the file examined here (see common/binary_identity.py). Targets given
    as ``name:0xOFFSET`` must start a function of that file, and no target of a shared
    library may match ``hot``."""
    path = Path(text)
    if not path.is_absolute() or os.path.realpath(text) != text:
        raise ContentRefused(f"binary path {text} is not absolute and canonical (no symlinks)")
    if identity is None:
        raise ContentRefused(f"binary path {text}: binary_identity is missing")
    try:
        info = os.lstat(path)
        parents = [(directory, os.lstat(directory)) for directory in path.parents]
    except FileNotFoundError:
        raise ContentRefused(f"binary path {text} does not exist") from None
    except OSError as exc:
        raise ContentRefused(f"binary path {text} cannot be examined: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ContentRefused(f"binary path {text} is not a regular file")
    _not_writable_by_others(path, info, "binary path")
    for directory, directory_info in parents:
        _not_writable_by_others(directory, directory_info, "directory of binary path")
    # One non-blocking descriptor, no link, the very file examined above: a FIFO swapped in
    # after the lstat must not hold this signer thread, nor another file pass as this one.
    try:
        fd = open_binary(text)
    except DatacrumbsError as exc:
        raise ContentRefused(str(exc)) from None
    try:
        opened = os.fstat(fd)
        if (opened.st_dev, opened.st_ino) != (info.st_dev, info.st_ino):
            raise ContentRefused(f"binary path {text} changed while it was examined")
        if os.pread(fd, 4, 0) != _ELF_MAGIC:
            raise ContentRefused(f"binary path {text} is not an ELF file")
        differs = identity.differences(identity_of(fd))
        if differs:
            raise ContentRefused(
                f"binary path {text} is not the file the configurator read "
                f"({', '.join(differs)} differ)"
            )
        _check_functions(text, kernel_path(fd), functions, hot)
    except OSError as exc:
        raise ContentRefused(f"binary path {text} cannot be read: {exc.strerror}") from None
    finally:
        os.close(fd)


def _check_functions(
    text: str, readable: str, functions: Sequence[str], hot: re.Pattern[str] | None
) -> None:
    """Every target must be a function of the file — a name it defines, or ``name:0xOFFSET``
    at the start of one — and, in a shared library, none of the hot functions: a breakpoint
    traps in every process that maps the library, whoever it belongs to, before any filter."""
    try:
        symbols = ElfSymbols.read(readable, shown=text)
    except SymbolError as exc:
        raise ContentRefused(f"binary path {text}: {exc}") from None
    shared = is_shared_library(text)
    names_at: dict[int, set[str]] = {}
    for symbol, address in symbols.offsets.items():
        names_at.setdefault(address, set()).add(symbol)
    for function in functions:
        try:
            name, offset = parse_target(function)
            if offset is None:
                offset = symbols.offset(name)
            symbols.check_offset(offset)
        except SymbolError as exc:
            raise ContentRefused(f"binary path {text}: {exc}") from None
        if hot is None or not shared:
            continue
        for alias in sorted(names_at.get(offset, set()) | {name}):
            if hot.match(alias):
                raise ContentRefused(
                    f"binary path {text}: {function} is a hot shared-library function "
                    f"({alias}): a uprobe on it slows every process of the node; refused by "
                    "the site's DATACRUMBS_HOT_FUNCTIONS"
                )


def _check_categories(model: ProbeFile, hot: re.Pattern[str] | None) -> None:
    for index, probe in enumerate(model.categories):
        label = f"categories[{index}] ({probe.name!r})"
        if probe.type not in _SIGNABLE_KINDS:
            raise ContentRefused(f"{label}: probe kind {probe.type.name.lower()} is not signed")
        if not _CATEGORY_NAME.match(probe.name):
            raise ContentRefused(
                f"{label}: category name has characters outside letters, digits and _ . : + -"
            )
        for name in probe.functions:
            if not _FUNCTION_NAME.match(name):
                raise ContentRefused(f"{label}: function name {name[:64]!r} is not a symbol")
        needs_binary = probe.type in (ProbeType.UPROBE, ProbeType.USDT)
        if needs_binary != (probe.binary_path is not None):
            which = "needs" if needs_binary else "must not have"
            raise ContentRefused(
                f"{label}: a {probe.type.name.lower()} probe {which} a binary_path"
            )
        if (probe.type == ProbeType.USDT) != (probe.provider is not None):
            raise ContentRefused(f"{label}: provider is required for usdt probes and only them")
        if probe.type == ProbeType.KPROBE:
            for function, arguments in probe.function_arguments.items():
                if refused := pointer_refusal(arguments):
                    where = f"function_arguments[{function[:64]!r}]"
                    raise ContentRefused(f"{label}: {where}: {refused}")
        if probe.binary_path is not None:
            # USDT categories list probe names, not functions: only uprobes are symbol-checked.
            functions = probe.functions if probe.type == ProbeType.UPROBE else ()
            check_binary(probe.binary_path, probe.binary_identity, functions, hot)


def check_document(
    document: dict[str, Any], peer_user: str, settings: Settings, now: datetime | None = None
) -> ProbeFile:
    """The validated model of ``document``, or :class:`ContentRefused` with the reason."""
    model = _schema(document)
    summary = model.summary
    wrong = summary.mismatch(
        user=peer_user,
        host=settings.host,
        install_user=settings.install_user,
        hostname=settings.hostname,
    )
    if wrong is not None:
        what, claimed, actual = wrong
        raise ContentRefused(f"summary.{what} is {claimed!r}, but must be {actual!r}")
    _check_expiry(model, now or datetime.now(UTC))
    _check_categories(model, re.compile(settings.hot_functions) if settings.hot_functions else None)
    return model
