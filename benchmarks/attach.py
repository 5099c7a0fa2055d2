"""Attach and detach times: N uprobes on one generated shared library, and ~46 syscalls.

    .venv/bin/python benchmarks/attach.py [--uprobes 1000 8000] [--syscalls 46] [--rounds 3]
                                          [--syscall-modes raw_tp tracepoint]

The library has as many trivial functions as the largest count asks for (compiled once by
gcc); its symbols are resolved once, before any timing (``ElfSymbols.read``, timed apart).
Each round loads a fresh engine (tracing a uid no process uses), attaches the functions
(uprobe and uretprobe on each), then times ``Engine.detach()``. Syscall rounds attach the
engine's known syscalls (plus generic ones up to ``--syscalls``) in each syscall mode the
engine supports, interleaved round by round. Prints medians. Run as root.
"""

from __future__ import annotations

import argparse
import inspect
import statistics
import subprocess
import time
from pathlib import Path

from bench_support import OTHER_USER, machine, workdir

from datacrumbs.common.probes import Probe, ProbeType
from datacrumbs.ebpf import uprobes
from datacrumbs.ebpf.engine import Engine, EngineConfig
from datacrumbs.ebpf.syscalls import SYSCALLS

#: Generic syscalls (argument names from tracefs) that fill the list up to ``--syscalls``.
EXTRA_SYSCALLS = [
    "dup", "dup2", "dup3", "fcntl", "ioctl", "chdir", "fchdir", "chmod", "fchmod", "fchown",
    "symlink", "readlink", "link", "sync", "syncfs", "fallocate", "sendfile64", "splice",
]  # fmt: skip


def syscall_names(count: int) -> list[str]:
    """Distinct syscalls (one name per tracepoint), the engine's own layouts first."""
    names: list[str] = []
    seen: set[str] = set()
    for name, layout in SYSCALLS.items():
        if layout.tracepoint not in seen:
            seen.add(layout.tracepoint)
            names.append(name)
    return (names + EXTRA_SYSCALLS)[:count]


def generate_library(where: Path, count: int) -> Path:
    """lib<count>.so with functions dc_f0 .. dc_f<count-1>, each a distinct body."""
    source = where / f"lib{count}.c"
    body = "".join(
        f"int dc_f{i}(int x) {{ return x * {i % 97 + 1} + {i}; }}\n" for i in range(count)
    )
    source.write_text(body)
    lib = where / f"lib{count}.so"
    subprocess.run(["gcc", "-O1", "-shared", "-fPIC", "-o", str(lib), str(source)], check=True)
    return lib


def _config(**extra: object) -> EngineConfig:
    fields = inspect.signature(EngineConfig).parameters
    return EngineConfig(uid=OTHER_USER.pw_uid, **{k: v for k, v in extra.items() if k in fields})


def time_attach(probes: list[Probe], **config: object) -> tuple[float, float, int, int]:
    """(attach s, detach s, targets attached, targets failed) for one fresh engine."""
    engine = Engine(_config(**config))
    try:
        engine.load()
        t0 = time.perf_counter()
        outcomes = engine.attach(probes)
        t1 = time.perf_counter()
        engine.detach()
        t2 = time.perf_counter()
    finally:
        engine.close()
    ok = sum(o.attached for o in outcomes)
    return t1 - t0, t2 - t1, ok, len(outcomes) - ok


def _line(label: str, results: list[tuple[float, float, int, int]]) -> str:
    attach = statistics.median(r[0] for r in results)
    detach = statistics.median(r[1] for r in results)
    ok, failed = results[-1][2], results[-1][3]
    return (
        f"  {label:34s} attach {attach * 1000:8.1f} ms   detach {detach * 1000:8.1f} ms   "
        f"({ok} attached, {failed} failed; {len(results)} rounds, medians)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uprobes", type=int, nargs="*", default=[1000, 8000])
    parser.add_argument("--syscalls", type=int, default=46)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--syscall-modes",
        nargs="*",
        default=["raw_tp", "tracepoint"],
        help="EngineConfig.syscall_mode values to compare (ignored by engines without it)",
    )
    parser.add_argument(
        "--uprobe-modes",
        nargs="*",
        default=["multi"],
        help="EngineConfig.uprobe_mode values to compare ('multi', 'single')",
    )
    args = parser.parse_args()
    print(machine())
    where = workdir()
    if args.uprobes:
        lib = generate_library(where, max(args.uprobes))
        t0 = time.perf_counter()
        symbols = uprobes.ElfSymbols.read(str(lib))
        print(
            f"{lib.name}: {len(symbols.offsets)} symbols resolved in "
            f"{(time.perf_counter() - t0) * 1000:.0f} ms (once, not timed below)"
        )
        for count in args.uprobes:
            # name:0xOFFSET targets: the engine does not read the ELF again
            functions = [f"dc_f{i}:{symbols.offsets[f'dc_f{i}']:#x}" for i in range(count)]
            probes = [
                Probe(type=ProbeType.UPROBE, name="LIB", binary_path=str(lib), functions=functions)
            ]
            results: dict[str, list[tuple[float, float, int, int]]] = {
                m: [] for m in args.uprobe_modes
            }
            for _ in range(args.rounds):
                for mode in args.uprobe_modes:
                    results[mode].append(time_attach(probes, uprobe_mode=mode))
            for mode, res in results.items():
                print(_line(f"{count} uprobes+uretprobes [{mode}]", res))
    if args.syscalls:
        names = syscall_names(args.syscalls)
        probes = [Probe(type=ProbeType.SYSCALLS, name="POSIX", functions=names)]
        results = {m: [] for m in args.syscall_modes}
        for _ in range(args.rounds):
            for mode in args.syscall_modes:
                results[mode].append(time_attach(probes, syscall_mode=mode))
        for mode, res in results.items():
            print(_line(f"{len(names)} syscalls [{mode}]", res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
