"""Discovery: what each configured probe can name on this system, and what it selects.

- syscalls: the tracefs ``syscalls`` events (``sys_enter_<name>``); tracefs is root-only on
  most systems, so for a normal user the names come from ``/proc/kallsyms`` (world-readable,
  addresses hidden) as the arch's syscall entry points (``__x64_sys_<name>``). That list holds
  a few entry points with no tracepoint (old 16-bit-uid variants); the daemon records those as
  failing once and they are dropped from the next file.
- uprobe: the defined functions of the binary, as the daemon attaches them
  (:class:`datacrumbs.ebpf.elf_symbols.ElfSymbols`: bare names, no ``@VERSION``, no IFUNC).
- usdt: the probes of one provider in the binary's ``stapsdt`` notes.
- kprobe: kernel functions from BTF (:mod:`datacrumbs.ebpf.kernel_btf`).

A regex must match a whole name (``re.fullmatch``, like C++'s ``std::regex_match`` upstream);
a regex that matches nothing, or an explicit function that does not exist, is an error naming
the probe: silently tracing less than asked is worse than failing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from datacrumbs.common.errors import DatacrumbsError
from datacrumbs.common.probes import Delivery, ProbeType
from datacrumbs.common.settings import Settings
from datacrumbs.configurator.config import LIBC_PLACEHOLDER, CaptureProbe
from datacrumbs.ebpf.arch import MACHINE, SYSCALL_SYMBOL_PREFIX
from datacrumbs.ebpf.elf_symbols import ElfSymbols, SymbolError, usdt_probes
from datacrumbs.ebpf.features import TRACEFS
from datacrumbs.ebpf.kernel_btf import btf_function_names

__all__ = ["Discovered", "discover", "select_names", "syscall_names"]

TRACEFS_SYSCALLS = (
    TRACEFS / "events/syscalls",
    Path("/sys/kernel/debug/tracing/events/syscalls"),  # where tracefs is not mounted itself
)
KALLSYMS = Path("/proc/kallsyms")
_KIND = {
    "syscalls": ProbeType.SYSCALLS,
    "kprobe": ProbeType.KPROBE,
    "uprobe": ProbeType.UPROBE,
    "usdt": ProbeType.USDT,
}


@dataclass(frozen=True)
class Discovered:
    """One configured probe resolved on this system: a category of the probe file."""

    name: str
    type: ProbeType
    functions: list[str]
    binary_path: str | None = None
    provider: str | None = None
    #: trace mode's delivery of its calls, and its functions' exceptions (probes.Delivery)
    delivery: Delivery = "valve"
    function_delivery: dict[str, Delivery] = field(default_factory=dict)


def syscall_names() -> set[str]:
    """Names of the syscalls that have tracepoints (tracefs), else of the syscall entry points."""
    for events in TRACEFS_SYSCALLS:
        try:
            entries = os.listdir(events)
        except OSError:
            continue
        names = {e.removeprefix("sys_enter_") for e in entries if e.startswith("sys_enter_")}
        if names:
            return names
    prefix = SYSCALL_SYMBOL_PREFIX.get(MACHINE)
    if prefix is None:
        raise DatacrumbsError(
            "cannot list syscalls: tracefs is not readable and this "
            f"architecture ({MACHINE}) is not known"
        )
    names = set()
    try:
        with open(KALLSYMS, encoding="ascii", errors="replace") as kallsyms:
            for line in kallsyms:
                symbol = line.split()[2]
                if symbol.startswith(prefix) and "." not in symbol:
                    names.add(symbol.removeprefix(prefix))
    except OSError as exc:
        raise DatacrumbsError(f"cannot list syscalls: {KALLSYMS}: {exc.strerror}") from None
    names.discard("ni_syscall")
    return names


def select_names(probe: CaptureProbe, available: Iterable[str], where: str) -> list[str]:
    """The names ``probe`` asks for among ``available``, sorted; errors name the probe."""
    available = set(available)
    selected: set[str] = set()
    if probe.regex is not None:
        pattern = re.compile(probe.regex)
        matched = {name for name in available if pattern.fullmatch(name)}
        if not matched:
            raise DatacrumbsError(
                f"probe {probe.name!r}: regex {probe.regex!r} matches nothing in {where}"
            )
        selected |= matched
    missing = [name for name in probe.functions if name not in available]
    if missing:
        raise DatacrumbsError(
            f"probe {probe.name!r}: {', '.join(missing[:5])} not found in {where}"
        )
    return sorted(selected | set(probe.functions))


def _functions(binary: Path) -> set[str]:
    """The functions of ``binary`` under the names the daemon attaches: the one reader the
    signer and the daemon use, read with the user's own rights (non-blocking, regular file)."""
    try:
        return set(ElfSymbols.read(str(binary)).offsets)
    except SymbolError as exc:
        raise DatacrumbsError(str(exc)) from None


def _usdt_probes(binary: Path) -> dict[str, set[str]]:
    try:
        return usdt_probes(str(binary))
    except SymbolError as exc:
        raise DatacrumbsError(str(exc)) from None


def _binary(probe: CaptureProbe, settings: Settings) -> Path:
    """The canonical path of the probe's binary (the signer refuses symlinked paths)."""
    text = probe.binary_path or ""
    path = settings.libc_so if text == LIBC_PLACEHOLDER else Path(text).expanduser()
    if not path.is_absolute():
        raise DatacrumbsError(f"probe {probe.name!r}: binary_path {text} must be absolute")
    real = Path(os.path.realpath(path))
    try:
        exists = real.is_file()
    except OSError as exc:  # a directory on the way the user cannot enter
        raise DatacrumbsError(
            f"probe {probe.name!r}: binary {path} cannot be used: {exc.strerror}"
        ) from None
    if not exists:
        raise DatacrumbsError(f"probe {probe.name!r}: binary {path} does not exist")
    return real


def discover(probes: list[CaptureProbe], settings: Settings) -> list[Discovered]:
    """Resolve every configured probe; lists are read once and shared between probes."""
    syscalls: set[str] | None = None
    kernel: set[str] | None = None
    result = []
    for probe in probes:
        kind = _KIND[probe.probe]
        binary: Path | None = None
        provider = None
        try:
            if kind == ProbeType.SYSCALLS:
                syscalls = syscall_names() if syscalls is None else syscalls
                names = select_names(probe, syscalls, "the syscalls of this kernel")
            elif kind == ProbeType.KPROBE:
                kernel = btf_function_names() if kernel is None else kernel
                names = select_names(probe, kernel, "the kernel's BTF functions")
            elif kind == ProbeType.UPROBE:
                binary = _binary(probe, settings)
                names = select_names(probe, _functions(binary), f"the functions of {binary}")
            else:
                binary = _binary(probe, settings)
                provider = probe.provider
                found = _usdt_probes(binary).get(provider or "", set())
                names = select_names(
                    probe, found, f"the USDT probes of provider {provider!r} in {binary}"
                )
        except DatacrumbsError as exc:
            message = str(exc)
            if not message.startswith("probe "):
                message = f"probe {probe.name!r}: {message}"
            raise DatacrumbsError(message) from None
        result.append(
            Discovered(
                probe.name,
                kind,
                names,
                str(binary) if binary else None,
                provider,
                probe.delivery,
                dict(probe.function_delivery),
            )
        )
    return result
