"""Per-syscall cost of tracing: 1 M one-byte write()s to /dev/null, side by side.

Three configurations, interleaved round by round so that drift hits all of them alike:
  untraced   no BPF program attached
  filtered   the write tracepoints traced for another uid: the cost of the filter alone
  traced     every write traced into the compressed trace
With ``--pin`` the workload runs on CPU 0 and the engine's threads on the last CPU, which
separates the in-kernel cost from competition for CPU with the consumer.
Run as root: ``.venv/bin/python benchmarks/syscall_overhead.py [--calls N] [--rounds R] [--pin]``.
"""

from __future__ import annotations

import argparse
import statistics

from bench_support import (
    OTHER_USER,
    USER,
    Traced,
    compile_workload,
    machine,
    run_as_user,
    split_cpus,
    workdir,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pin", action="store_true")
    args = parser.parse_args()
    cpu = split_cpus(args.pin)
    where = workdir()
    binary = compile_workload(where)
    argv = [str(binary), str(args.calls)]
    results: dict[str, list[float]] = {"untraced": [], "filtered": [], "traced": []}
    lost = events = trace_bytes = 0
    for _ in range(args.rounds):
        results["untraced"].append(float(run_as_user(argv, cpu)))
        with Traced(where / "filtered.pfw.gz", OTHER_USER.pw_uid):
            results["filtered"].append(float(run_as_user(argv, cpu)))
        traced = Traced(where / "traced.pfw.gz", USER.pw_uid)
        with traced:
            results["traced"].append(float(run_as_user(argv, cpu)))
        assert traced.stats is not None
        lost += traced.stats.lost
        events += traced.stats.events
        trace_bytes += traced.stats.trace_bytes
    base = statistics.median(results["untraced"])
    print(machine())
    pinned = f"workload on CPU {cpu}, engine on another" if cpu is not None else "no pinning"
    print(f"{args.calls} write()s per run, {args.rounds} rounds, {pinned}, medians:")
    for name, values in results.items():
        med = statistics.median(values)
        spread = f"{min(values):.0f}-{max(values):.0f}"
        print(f"  {name:9s} {med:7.0f} ns/call  (range {spread})  ratio {med / base:5.2f}")
    print(
        f"  traced runs: {events} events written, {lost} lost, "
        f"{trace_bytes / max(events, 1):.1f} trace bytes/event"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
