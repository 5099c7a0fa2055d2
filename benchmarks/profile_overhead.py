"""Profile mode's cost beside trace mode, the floor and DFTracer's aggregation, side by side.

Workloads (benchmarks/c/peers_io.c, run as a bare uid; only the loop is timed, inside the
program):
  write   1,000,000 16-byte write()s to a file
  ior     2 GiB in 1 MiB write()s through the page cache (IOR-like)
Configurations, each with openat/write/pread64/close asked for:
  untraced    no tracer
  floor       datacrumbs' probes attached for another uid: what they cost a call they filter out
  trace       datacrumbs, trace mode (an event per call, compressed DFTracer trace)
  profile     datacrumbs, profile mode (1 s intervals, aggregated in the kernel)
  dftracer    DFTracer 2.2.0's aggregation (LD_PRELOAD, DFTRACER_ENABLE_AGGREGATION=1)
Configurations alternate within each round (a different one first each round, after an
untimed warm-up run), and each traced run is paired with an untraced run just before it: the
added time per call is the median of the pairs' differences (this VM's speed drifts by a third
between minutes, more than the differences measured). Printed: the medians, the added time per
call, its ratio to the floor's, the calls each tracer accounted for (a profile's dft_cnt
summed) and its trace bytes. Run as root:
  .venv/bin/python benchmarks/profile_overhead.py [--rounds 5] [--only write]
"""

from __future__ import annotations

import argparse
import glob
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from bench_support import OTHER_USER, USER, machine, workdir
from peers_overhead import (
    C_SOURCE,
    Results,
    Sample,
    run_workload,
    traced_by_datacrumbs,
    traced_by_dftracer,
)

CONFIGS = ["untraced", "floor", "trace", "profile", "dftracer"]
INTERVAL_NS = 1_000_000_000


def dftracer_calls(where: Path) -> tuple[int, int]:
    """(calls, bytes) of the DFTracer traces the last run wrote: the POSIX calls its
    aggregated records count (``dft_cnt``), and the files' size."""
    calls = size = 0
    for path in glob.glob(str(where / "dftracer" / "run*.pfw.gz")):
        data = Path(path).read_bytes()
        size += len(data)
        for line in gzip.decompress(data).splitlines():  # several gzip members
            if b'"cat":"POSIX"' in line:
                calls += json.loads(line.rstrip(b",")).get("args", {}).get("dft_cnt", 1)
    return calls, size


def run_config(config: str, argv: list[str], where: Path) -> Sample:
    """One run of ``argv`` under ``config``, paired with an untraced run just before it (its
    ns/call in ``sample.base``)."""
    base = run_workload(argv).ns_per_call
    sample = _run_config(config, argv, where)
    sample.base = base
    return sample


def _run_config(config: str, argv: list[str], where: Path) -> Sample:
    if config == "untraced":
        return run_workload(argv)
    if config == "dftracer":
        with traced_by_dftracer(where) as prefix:
            sample = run_workload(argv, [*prefix, "DFTRACER_ENABLE_AGGREGATION=1"])
        sample.events, sample.trace_bytes = dftracer_calls(where)
        return sample
    uid = OTHER_USER.pw_uid if config == "floor" else USER.pw_uid
    interval = INTERVAL_NS if config == "profile" else 0
    with traced_by_datacrumbs(where / "datacrumbs.pfw.gz", uid, interval) as record:
        sample = run_workload(argv)
        record(sample)
    return sample


def added_ns(samples: list[Sample]) -> float:
    """The median over runs of the time per call added over the paired untraced run."""
    return statistics.median(s.ns_per_call - s.base for s in samples)


def report(results: Results, workloads: dict[str, list[str]], rounds: int, where: str) -> None:
    print(where)
    print(
        f"{rounds} rounds, configurations interleaved; medians (range); ratio to untraced; "
        "added time per call over untraced; its ratio to the floor's"
    )
    for name in workloads:
        base = statistics.median(s.ns_per_call for s in results.samples[(name, "untraced")])
        floor = added_ns(results.samples[(name, "floor")])
        calls = results.samples[(name, "untraced")][0].calls
        print(f"\n{name}: {calls:,} calls per run")
        print(
            f"  {'config':9s} {'ns/call':>10s} {'range':>15s} {'ratio':>6s} {'+ns/call':>9s} "
            f"{'/floor':>7s} {'calls seen':>11s} {'lost':>6s} {'trace B':>10s}"
        )
        for config in CONFIGS:
            samples = results.samples[(name, config)]
            values = [s.ns_per_call for s in samples]
            med = statistics.median(values)
            added = added_ns(samples)
            of_floor = added / floor if floor > 0 else float("nan")
            span = f"{min(values):.0f}-{max(values):.0f}"
            print(
                f"  {config:9s} {med:10.1f} {span:>15s} {1 + added / base:6.3f} {added:9.1f} "
                f"{of_floor:7.2f} {statistics.median(s.events for s in samples):11,.0f} "
                f"{statistics.median(s.lost for s in samples):6,.0f} "
                f"{statistics.median(s.trace_bytes for s in samples):10,.0f}"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--ior-bytes", type=int, default=2 << 30)
    parser.add_argument("--only", choices=["write", "ior"], action="append")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("profile_overhead: run as root")
    where = workdir()
    data = where / "data"
    data.mkdir()
    os.chown(data, USER.pw_uid, USER.pw_gid)
    binary = where / "peers_io"
    subprocess.run(["gcc", "-O2", "-o", str(binary), str(C_SOURCE)], check=True)
    workloads = {
        "write": [str(binary), "write", str(data / "w.bin"), str(args.calls), "16"],
        "ior": [str(binary), "ior", str(data / "ior.bin"), str(args.ior_bytes), str(1 << 20)],
    }
    workloads = {k: v for k, v in workloads.items() if not args.only or k in args.only}
    results = Results()
    here = machine()  # before any engine: one closing at the end is not another's
    try:
        for number in range(args.rounds):
            print(
                f"round {number + 1}/{args.rounds} (load {os.getloadavg()[0]:.2f})", file=sys.stderr
            )
            order = CONFIGS[number % len(CONFIGS) :] + CONFIGS[: number % len(CONFIGS)]
            for name, argv in workloads.items():
                run_workload(argv)  # untimed warm-up
                for config in order:
                    results.add(name, config, run_config(config, argv, where))
        report(results, workloads, args.rounds, here)
    finally:
        shutil.rmtree(where, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
