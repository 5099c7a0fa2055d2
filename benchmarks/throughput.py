"""Events per second delivered to the compressed trace with zero loss, and bytes per event.

The workload issues one-byte write()s to /dev/null at a fixed rate (paced in C); each rate
runs for ``--seconds`` with a 16 MiB ring buffer. The highest rate at which every event
reached the trace (lost == 0) is the answer; the rates above it show where loss begins.
Run as root: ``.venv/bin/python benchmarks/throughput.py [--rates 100000,200000,...]``.
"""

from __future__ import annotations

import argparse

from bench_support import USER, Traced, compile_workload, machine, run_as_user, split_cpus, workdir

DEFAULT_RATES = "100000,200000,300000,400000,500000,600000,800000,0"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default=DEFAULT_RATES, help="calls/s; 0 = unpaced")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--pin", action="store_true")
    args = parser.parse_args()
    cpu = split_cpus(args.pin)
    where = workdir()
    binary = compile_workload(where)
    print(machine())
    print(f"{args.seconds:.0f} s per rate, 16 MiB ring buffer, pinned: {cpu is not None}")
    best = 0
    for rate in (int(r) for r in args.rates.split(",")):
        calls = int(rate * args.seconds) if rate else 3_000_000
        traced = Traced(where / f"rate-{rate}.pfw.gz", USER.pw_uid)
        with traced:
            ns_per_call = float(run_as_user([str(binary), str(calls), str(rate)], cpu))
        stats = traced.stats
        assert stats is not None
        achieved = 1e9 / ns_per_call
        if stats.lost == 0:
            best = max(best, int(achieved))
        print(
            f"  asked {rate or 'max':>7} calls/s  achieved {achieved:9.0f}/s  "
            f"events {stats.events:8d}  lost {stats.lost:8d}  "
            f"{stats.trace_bytes / max(stats.events, 1):5.1f} B/event (gzip)"
        )
    print(f"highest rate with zero loss: {best} events/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
