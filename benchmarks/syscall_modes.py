"""Per-syscall cost of the syscall attachment designs, side by side.

    .venv/bin/python benchmarks/syscall_modes.py [--calls 200000] [--rounds 15] [--bpf-stats]

Workload: one-byte write()s to /dev/null (``benchmarks/c/wloop.c``) as uid 45990. For each
design (``EngineConfig.syscall_mode``: ``raw_tp`` = two raw tracepoint links and a syscall
number → cookie map; ``raw_tp+valve``, the same with trace mode's valve on, as the daemon
runs it by default; ``tracepoint`` = one syscalls:sys_enter_X/sys_exit_X link pair per
syscall; and, where the kernel loads fentry programs, ``fentry`` = the syscall's kernel entry
point ``__x64_sys_X`` traced as a kernel function through fentry/fexit, which puts no task on
the syscall slow path: the question being whether that costs the node's *untraced* processes
less), three configurations, all interleaved round by round with an untraced baseline:
  untraced-call  the engine traces uid 45990's ``read`` only: write is an untraced syscall of
                 the traced user (what every syscall outside the probe file costs)
  other-uid      the engine traces ``write`` of uid 45991: the workload is filtered out
  traced         ``write`` of uid 45990 traced into the compressed trace
Prints the median and range over the rounds in ns per call, and the median's added cost over
the untraced baseline's median. (``fentry`` records the call as a kernel function: its record
lacks the syscall's file names, so only its cost for untraced processes compares.)
With ``--bpf-stats`` (``kernel.bpf_stats_enabled=1`` during the run, which itself adds ~20 ns
per program run), also the in-kernel ns per run of the engine's syscall programs, read from the
program fds' ``/proc/self/fdinfo``. Run as root.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from bench_support import (
    OTHER_USER,
    USER,
    compile_workload,
    machine,
    program_stats,
    run_as_user,
    workdir,
)

from datacrumbs.common.probes import Probe, ProbeType
from datacrumbs.ebpf.engine import Engine, EngineConfig
from datacrumbs.trace.recording import Recording
from datacrumbs.trace.writer import TraceWriter

MODES = ("raw_tp", "raw_tp+valve", "tracepoint", "fentry")
CONFIGS = {  # name: (traced uid, syscalls)
    "untraced-call": (USER.pw_uid, ["read"]),
    "other-uid": (OTHER_USER.pw_uid, ["write"]),
    "traced": (USER.pw_uid, ["write"]),
}


PROGRAMS = {
    "raw_tp": ("dc_raw_sys_enter", "dc_raw_sys_exit"),
    "raw_tp+valve": ("dc_raw_sys_enter", "dc_raw_sys_exit"),
    "tracepoint": ("dc_sys_enter", "dc_sys_exit"),
    "fentry": (),
}  # fmt: skip  (loaded per function, in objects closed after attach)
STATS = Path("/proc/sys/kernel/bpf_stats_enabled")


def measure(
    argv: list[str], trace: Path, mode: str, uid: int, calls: list[str]
) -> tuple[float, dict[str, float]]:
    """(ns per call seen by the workload, in-kernel ns per run of each syscall program)."""
    if mode == "fentry":
        engine = Engine(EngineConfig(uid=uid, kfunc_mode="fentry"))
        probe = Probe(type=ProbeType.KPROBE, name="POSIX", functions=[_entry(c) for c in calls])
    elif mode == "raw_tp+valve":  # the daemon's default: trace mode's valve on
        engine = Engine(EngineConfig(uid=uid, valve_interval_ns=1_000_000_000))
        probe = Probe(type=ProbeType.SYSCALLS, name="POSIX", functions=calls)
    else:
        engine = Engine(EngineConfig(uid=uid, syscall_mode=mode))
        probe = Probe(type=ProbeType.SYSCALLS, name="POSIX", functions=calls)
    try:
        engine.load()
        outcomes = engine.attach([probe])
        if not all(o.attached for o in outcomes):
            raise Unavailable("; ".join(sorted({o.reason or "" for o in outcomes})))
        trace.unlink(missing_ok=True)
        recording = Recording(engine, TraceWriter(trace))
        recording.start()
        fds = {p: engine._context.obj.program_fd(p) for p in PROGRAMS[mode]}
        before = {p: program_stats(fd) for p, fd in fds.items()}
        try:
            ns = float(run_as_user(argv))
            after = {p: program_stats(fd) for p, fd in fds.items()}
        finally:
            recording.stop()
    finally:
        engine.close()
    per_run = {}
    for p in fds:
        runs = after[p][1] - before[p][1]
        per_run[p] = (after[p][0] - before[p][0]) / runs if runs else 0.0
    return ns, per_run


class Unavailable(Exception):
    """This kernel cannot run a design (fentry here: EPERM)."""


def _entry(syscall: str) -> str:
    """The kernel function a syscall enters through on this machine (x86-64)."""
    return f"__x64_sys_{syscall}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--bpf-stats", action="store_true")
    args = parser.parse_args()
    old_stats = STATS.read_text()
    if args.bpf_stats:
        STATS.write_text("1\n")
    try:
        return _run(args)
    finally:
        STATS.write_text(old_stats)


def _run(args: argparse.Namespace) -> int:
    where = workdir()
    argv = [str(compile_workload(where)), str(args.calls)]
    results: dict[str, list[float]] = {"untraced (no engine)": []}
    in_kernel: dict[str, list[dict[str, float]]] = {}
    unavailable: dict[str, str] = {}
    for _ in range(args.rounds):
        results["untraced (no engine)"].append(float(run_as_user(argv)))
        for mode in MODES:
            if mode in unavailable:
                continue
            for name, (uid, calls) in CONFIGS.items():
                try:
                    ns, per_run = measure(argv, where / "t.pfw.gz", mode, uid, calls)
                except Unavailable as exc:
                    unavailable[mode] = str(exc)
                    break
                results.setdefault(f"{mode:10s} {name}", []).append(ns)
                in_kernel.setdefault(f"{mode:10s} {name}", []).append(per_run)
    base_med = statistics.median(results["untraced (no engine)"])
    print(machine())
    print(f"{args.calls} write()s per run, {args.rounds} rounds interleaved; ns per call:")
    for mode, why in unavailable.items():
        print(f"  {mode}: not measured, this kernel cannot run it ({why})")
    for name, values in results.items():
        if name.split()[0] in unavailable:
            continue
        med = statistics.median(values)
        line = (
            f"  {name:26s} median {med:7.0f} (+{med - base_med:6.0f})   "
            f"range {min(values):.0f}-{max(values):.0f}"
        )
        if args.bpf_stats and name in in_kernel:
            progs = in_kernel[name][0].keys()
            line += "   in-kernel ns/run: " + ", ".join(
                f"{p} {statistics.median(r[p] for r in in_kernel[name]):.0f}" for p in progs
            )
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
