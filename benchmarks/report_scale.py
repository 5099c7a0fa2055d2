"""How ``datacrumbs_report`` scales: the report of a synthetic job of N events over M node
traces, its wall time, rate and peak memory, beside ``datacrumbs_summary`` (the one-pass Python
reader) on the same traces, in one run.

    .venv/bin/python benchmarks/report_scale.py [--events 100000000] [--nodes 4]
                                                [--memory-mb 1024] [--rounds 1]

The traces are made with DuckDB (``COPY ... (FORMAT json, COMPRESSION gzip)``, one gzip stream
each, as fast as DuckDB writes them), in the daemon's line form: per node an ``HH`` record,
1,000 ``FH`` file names, 32 processes with ``PR`` ranks, and ``--events / --nodes`` complete
events (write, pread, read, lseek of 4 KiB at sequential offsets over the files). Each round
runs ``datacrumbs_report <dir> --json … -o page.html --memory-mb M`` and
``datacrumbs_summary`` on one node's trace (it reads one trace: its rate is per trace), each
under ``/usr/bin/time`` for its wall time and peak RSS; the report's total calls are checked
against N. Medians and ranges are over this run's rounds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from pathlib import Path

import duckdb
from bench_support import machine, workdir

ROOT = Path(__file__).resolve().parents[1]
GENERATE = """
COPY (
  SELECT 1 AS id, 'HH' AS name, 'dftracer' AS cat, 1 AS pid, 1 AS tid, NULL::BIGINT AS ts,
         NULL::BIGINT AS dur, 'M' AS ph,
         json_object('hhash', 'aa', 'name', 'node{node}', 'value', 'aa') AS args
  UNION ALL
  SELECT 2 + i, 'FH', 'dftracer', 100, 100, NULL, NULL, 'M',
         json_object('hhash', 'aa', 'name', '/scratch/job/file-' || i || '.dat',
                     'value', printf('%016x', i + 1))
  FROM range(1000) t(i)
  UNION ALL
  SELECT 2000 + i, 'PR', 'dftracer', 100 + i, 100 + i, NULL, NULL, 'M',
         json_object('hhash', 'aa', 'name', 'rank', 'value', ({node} * 32 + i)::VARCHAR)
  FROM range(32) t(i)
  UNION ALL
  SELECT 10000 + i, CASE i % 4 WHEN 0 THEN 'write' WHEN 1 THEN 'pread' WHEN 2 THEN 'read'
                    ELSE 'lseek' END,
         'POSIX', 100 + i % 32, 100 + i % 32, 1796529425630879 + i // 10, 3 + i % 7, 'X',
         json_object('hhash', 'aa', 'ret', CASE WHEN i % 4 = 3 THEN 0 ELSE 4096 END, 'fd', 3,
                     'size', 4096, 'offset', (i // 32) * 4096, 'syscall', 'write',
                     'category', 'posix', 'fhash', printf('%016x', (i % 1000) + 1))
  FROM range({events}) t(i)
) TO '{path}' (FORMAT json, COMPRESSION gzip)
"""


def timed(argv: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MiB) and stdout of ``argv``, which must succeed."""
    started = time.monotonic()
    done = subprocess.run(["/usr/bin/time", "-f", "%M", *argv], capture_output=True, text=True)
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"{argv[0]} failed: {done.stderr[-2000:]}")
    return wall, int(done.stderr.strip().splitlines()[-1]) / 1024, done.stdout


def summary(name: str, values: list[float], unit: str, digits: int = 1) -> str:
    return f"{name}: median {statistics.median(values):,.{digits}f} {unit} " \
           f"({min(values):,.{digits}f} to {max(values):,.{digits}f})"  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=100_000_000)
    p.add_argument("--nodes", type=int, default=4)
    p.add_argument("--memory-mb", type=int, default=1024)
    p.add_argument("--rounds", type=int, default=1)
    args = p.parse_args()
    work = workdir()
    traces = work / "traces"
    traces.mkdir()
    per_node = args.events // args.nodes
    started = time.monotonic()
    for node in range(args.nodes):
        path = traces / f"trace-node{node}.pfw.gz"
        duckdb.connect().execute(GENERATE.format(node=node, events=per_node, path=path))
    size = sum(t.stat().st_size for t in traces.iterdir())
    print(f"machine: {machine()}")
    print(f"traces: {args.nodes} x {per_node:,} events, {size / 2**30:.2f} GiB gzip, made in "
          f"{time.monotonic() - started:.0f} s")  # fmt: skip
    bin_dir = ROOT / ".venv" / "bin"
    report: dict[str, list[float]] = {"s": [], "rss": [], "rate": []}
    single: dict[str, list[float]] = {"s": [], "rss": [], "rate": []}
    for _ in range(args.rounds):
        out = work / "numbers.json"
        wall, rss, _ = timed([str(bin_dir / "datacrumbs_report"), str(traces), "--quiet",
                              "--json", str(out), "-o", str(work / "page.html"),
                              "--memory-mb", str(args.memory_mb)])  # fmt: skip
        calls = sum(t["calls"] for t in json.loads(out.read_text())["sections"]["traces"])
        assert calls == per_node * args.nodes, (calls, per_node * args.nodes)
        report["s"].append(wall)
        report["rss"].append(rss)
        report["rate"].append(calls / wall / 1e6)
        first = next(iter(sorted(traces.iterdir())))
        wall, rss, _ = timed([str(bin_dir / "datacrumbs_summary"), str(first), "--json"])
        single["s"].append(wall)
        single["rss"].append(rss)
        single["rate"].append(per_node / wall / 1e6)
    print(f"command: benchmarks/report_scale.py --events {args.events} --nodes {args.nodes} "
          f"--memory-mb {args.memory_mb} --rounds {args.rounds}")  # fmt: skip
    print(f"datacrumbs_report over {args.nodes} traces ({args.events:,} events):")
    print("  " + summary("wall", report["s"], "s"))
    print("  " + summary("rate", report["rate"], "M events/s", 2))
    print("  " + summary("peak RSS", report["rss"], "MiB"))
    print(f"datacrumbs_summary over one trace ({per_node:,} events):")
    print("  " + summary("wall", single["s"], "s"))
    print("  " + summary("rate", single["rate"], "M events/s", 2))
    print("  " + summary("peak RSS", single["rss"], "MiB"))


if __name__ == "__main__":
    main()
