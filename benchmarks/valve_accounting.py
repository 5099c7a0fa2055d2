"""Every call accounted under overload: the real daemon, its consumer slowed on purpose, tracing
T threads of write()s as fast as they go (run as root).

    .venv/bin/python benchmarks/valve_accounting.py [--threads 4] [--calls 1000000]
                                                    [--consume-mb-s 8] [--rounds 3]

Installs into a temporary prefix and signs a probe file tracing ``write`` for ``nobody``; the
daemon runs with ``DATACRUMBS_CONSUME_LIMIT_MB_S`` (its consumer moves at most that many MiB a
second out of the rings: a fraction of what the threads make) and the valve on, as by default.
The workload (``c/threads_write.c``) is T threads each making ``--calls`` ``write()``s of 16
bytes to /dev/null. Each round reads the whole trace back and counts, per thread, the calls
that are events and those inside aggregated records: ``unaccounted`` is the largest difference
from ``--calls`` over the threads (0: every call is one or the other), beside the kernel's
``lost_events``, the calls folded by each reason (the ``datacrumbs_valve`` marks), and the
workload's ns per call untraced and traced. Medians and ranges are over this run's rounds.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import signal
import socket
import statistics
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench_support import (
    C_DIR,
    SCRIPTS,
    daemon_env,
    install_prefix,
    machine,
    signed_probe_file,
    workdir,
)

USER = "nobody"


@dataclass
class Round:
    ns_untraced: float
    ns_traced: float
    events: int
    aggregated: int
    lost: int
    unaccounted: int
    reasons: Counter[str] = field(default_factory=Counter)


def _workload(binary: Path, threads: int, calls: int) -> list[str]:
    argv = [str(binary), str(threads), str(calls), "16", "0"]
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", *argv]


def _run(argv: list[str]) -> tuple[int, int]:
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout.split()
    return int(out[0]), int(out[1])


def _count(trace: Path, calls: int) -> tuple[int, int, int, int, Counter[str]]:
    """Events, aggregated calls, lost, the largest per-thread miss, folds by reason."""
    per_tid: Counter[int] = Counter()
    events = aggregated = lost = 0
    reasons: Counter[str] = Counter()
    with gzip.open(trace, "rt") as f:
        for line in f:
            if not line.startswith("{"):
                continue
            e = json.loads(line)
            ph, name = e.get("ph"), e.get("name")
            if name == "write" and ph == "X" and e["args"].get("size") == 16:
                events += 1
                per_tid[e["tid"]] += 1
            elif (
                name == "write"
                and ph in ("C", 3)
                and e["args"].get("ret_sum") == 16 * e["args"]["dft_cnt"]
            ):
                aggregated += e["args"]["dft_cnt"]
                per_tid[e["tid"]] += e["args"]["dft_cnt"]
            elif name == "datacrumbs_valve" and e["args"]["state"] == "events":
                for reason in e["args"]["reasons"].split(","):
                    reasons[reason] += e["args"]["folded"]
            elif name == "datacrumbs_summary":
                lost = e["args"]["value"]["lost_events"]
    unaccounted = max((abs(n - calls) for n in per_tid.values()), default=calls)
    return events, aggregated, lost, unaccounted, reasons


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--calls", type=int, default=1_000_000, help="write()s per thread")
    parser.add_argument("--consume-mb-s", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = workdir()
    try:
        binary = work / "threads_write"
        subprocess.run(["gcc", "-O2", "-pthread", "-o", str(binary),
                        str(C_DIR / "threads_write.c")], check=True)  # fmt: skip
        prefix = install_prefix(work)
        categories = [{"type": 0, "name": "POSIX", "functions": ["write"]}]
        probes = signed_probe_file(prefix, categories, USER, work / "write.json.gz")
        sock_path = work / "notify.sock"
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(sock_path))
        notify.settimeout(0.05)
        env = daemon_env(prefix, work, USER, sock_path) | {
            "DATACRUMBS_CONSUME_LIMIT_MB_S": str(args.consume_mb_s),
            "DATACRUMBS_PROFILE_INTERVAL_MS": "100",
        }
        argv = _workload(binary, args.threads, args.calls)
        print(machine())
        print(f"{args.threads} threads x {args.calls:,} write()s of 16 B, consumer capped at "
              f"{args.consume_mb_s} MiB/s, {args.rounds} rounds: median (range)")  # fmt: skip
        rounds: list[Round] = []
        for i in range(args.rounds):
            wall_ns, calls = _run(argv)
            untraced = wall_ns * args.threads / calls
            proc = subprocess.Popen(
                [str(SCRIPTS / "datacrumbs"), str(probes), f"valve{i}"],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            while True:
                try:
                    if "READY=1" in notify.recv(4096).decode():
                        break
                except TimeoutError:
                    if proc.poll() is not None:
                        raise SystemExit(f"daemon exited: {proc.stderr.read()}") from None  # type: ignore[union-attr]
            wall_ns, calls = _run(argv)
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=900)
            if proc.returncode != 0:
                raise SystemExit(f"daemon failed ({proc.returncode}): {err[-2000:]}")
            [trace] = (work / "traces").glob(f"**/trace-{USER}-valve{i}-*.pfw.gz")
            events, aggregated, lost, unaccounted, reasons = _count(trace, args.calls)
            rounds.append(Round(untraced, wall_ns * args.threads / calls, events, aggregated,
                                lost, unaccounted, reasons))  # fmt: skip
            trace.unlink()
            time.sleep(1)
        print("| round | ns/call untraced | ns/call traced | events | aggregated calls | lost "
              "| unaccounted (worst thread) | folded by reason |")  # fmt: skip
        print("|---:|---:|---:|---:|---:|---:|---:|---|")
        for i, r in enumerate(rounds):
            why = ", ".join(f"{k} {v:,}" for k, v in sorted(r.reasons.items()))
            print(f"| {i + 1} | {r.ns_untraced:,.0f} | {r.ns_traced:,.0f} | {r.events:,} "
                  f"| {r.aggregated:,} | {r.lost:,} | {r.unaccounted:,} | {why} |")  # fmt: skip

        def spread(values: list[float]) -> str:
            return f"{statistics.median(values):,.0f} ({min(values):,.0f} to {max(values):,.0f})"

        print(f"events: {spread([r.events for r in rounds])}; aggregated calls: "
              f"{spread([r.aggregated for r in rounds])}; added ns/call: "
              f"{spread([r.ns_traced - r.ns_untraced for r in rounds])}")  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
