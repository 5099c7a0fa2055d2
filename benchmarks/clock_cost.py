"""What one precise clock read adds to a traced syscall, measured in place.

Profile mode times every call: ``bpf_ktime_get_ns()`` at entry and at exit. This measures
that read alone: four ``tp_btf/sys_enter`` programs (``bpf/clock_cost.bpf.c``) that differ
only in how many reads they make (0, 1, 2, 4) for the benchmark's uid, attached one at a
time while 1 M one-byte ``write()``s run. Each attached run is paired with an untraced run
just before it (this VM drifts from minute to minute); the added ns per call is the median of
the pairs' differences. With ``--bpf-stats`` (``kernel.bpf_stats_enabled=1``, which itself
adds about 20 ns per run to every variant alike) also the program's own ns per run.
Run as root: ``.venv/bin/python benchmarks/clock_cost.py [--calls N] [--rounds R]``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
from pathlib import Path

from bench_support import USER, compile_workload, machine, program_stats, run_as_user, workdir

from datacrumbs.ebpf.build import CFLAGS, LIBBPF_INCLUDE, default_cache_dir, vmlinux_header
from datacrumbs.ebpf.libbpf import BpfObject

SOURCE = Path(__file__).parent / "bpf" / "clock_cost.bpf.c"
VARIANTS = {"clock0": 0, "clock1": 1, "clock2": 2, "clock4": 4}
STATS = Path("/proc/sys/kernel/bpf_stats_enabled")


def build(where: Path) -> Path:
    obj = where / "clock_cost.bpf.o"
    header = vmlinux_header(default_cache_dir())
    subprocess.run(
        ["clang", *CFLAGS, f"-DTARGET_UID={USER.pw_uid}", "-I", str(header.parent),
         "-I", str(LIBBPF_INCLUDE), "-c", str(SOURCE), "-o", str(obj)],
        check=True,
    )  # fmt: skip
    return obj


def measure(obj_path: Path, program: str, argv: list[str]) -> tuple[float, float]:
    """(ns per call of the workload, program ns per run) with ``program`` attached."""
    with BpfObject(obj_path) as obj:
        for name in VARIANTS:
            obj.set_autoload(name, name == program)
        obj.load()
        link = obj.attach_trace(program)
        try:
            ns = float(run_as_user(argv))
            total, count = program_stats(obj.program_fd(program))
        finally:
            link.destroy()
    return ns, total / count if count else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--bpf-stats", action="store_true")
    args = parser.parse_args()
    where = workdir()
    obj = build(where)
    argv = [str(compile_workload(where)), str(args.calls)]
    old_stats = STATS.read_text()
    if args.bpf_stats:
        STATS.write_text("1\n")
    added: dict[str, list[float]] = {name: [] for name in VARIANTS}
    in_kernel: dict[str, list[float]] = {name: [] for name in VARIANTS}
    untraced: list[float] = []
    try:
        for _ in range(args.rounds):
            for name in VARIANTS:
                base = float(run_as_user(argv))
                ns, per_run = measure(obj, name, argv)
                untraced.append(base)
                added[name].append(ns - base)
                in_kernel[name].append(per_run)
    finally:
        STATS.write_text(old_stats)
    print(machine())
    print(
        f"{args.calls} write()s per run, {args.rounds} rounds, each attached run paired with an "
        f"untraced one (untraced median {statistics.median(untraced):.0f} ns/call):"
    )
    zero = statistics.median(added["clock0"])
    for name, reads in VARIANTS.items():
        med = statistics.median(added[name])
        per_read = (
            f"{(med - zero) / reads:5.1f} ns per read" if reads else "(the filter and a map add)"
        )
        line = f"  {reads} reads: +{med:5.0f} ns/call  {per_read}"
        if args.bpf_stats:
            line += f"   program {statistics.median(in_kernel[name]):5.0f} ns/run"
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
