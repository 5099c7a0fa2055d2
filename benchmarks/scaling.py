"""Delivery as threads grow: the real daemon tracing T threads of small write()s (run as root).

    .venv/bin/python benchmarks/scaling.py [--threads 1,2] [--calls 750000] [--size 16]
                                           [--rate 0] [--rounds 3] [--ring-mb 0,256,0:novalve]
                                           [--engine [--bpf-object PATH]]

Installs into a temporary prefix and signs a probe file tracing ``write`` for ``nobody``. For
each thread count, side by side in each round: the workload untraced, then under the daemon
(started and READY=1 before the workload, SIGTERM right after it), its rings ``--ring-mb``
together (0: the daemon's default) and its valve on, as by default: "aggregated" counts the
calls of the events it folded into aggregated records. With ``--engine``, the
engine and trace writer the daemon runs, in this process, without an installation (a machine
with only the package, libbpf and a prebuilt BPF object: the 16-core device); "daemon CPU"
is then this process's. The workload
(``c/threads_write.c``) is T threads each making ``--calls`` ``write()``s of ``--size`` bytes
to /dev/null, paced to ``--rate`` per thread per second (0: as fast as they can).

Per thread count, the median over the rounds of this one run and their range: ns per call
untraced and traced (the workload's own
wall time x threads / calls: the cost as the job sees it), the events in the trace and lost,
the drain (workload end to daemon exit), the end-to-end rate: the workload's calls over the
time from its start to the daemon's exit, which is what a job's epilog waits for, the
daemon's CPU time (start-up included) per event, and its resident memory at READY=1.
"""

from __future__ import annotations

import argparse
import os
import pwd
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import time
from dataclasses import dataclass
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

USER = "nobody"  # the daemon needs an account; nobody runs nothing else on these machines
_FINISHED = re.compile(r"finished: (\d+) events, (\d+) lost.*; (\d+) of the events are calls in")


@dataclass
class Sample:
    ns_per_call: float
    events: int = 0
    lost: int = 0
    aggregated: int = 0  # of the events, the calls the valve folded into aggregated records
    drain_s: float = 0.0
    end_to_end_per_s: float = 0.0
    daemon_cpu_s: float = 0.0  # the daemon's user + system time, start to exit
    rss_ready_mib: float = 0.0  # the daemon's resident memory at READY=1 (rings mapped twice)


def _workload(binary: Path, threads: int, calls: int, size: int, rate: float) -> list[str]:
    argv = [str(binary), str(threads), str(calls), str(size), str(rate)]
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", *argv]


def _run(argv: list[str]) -> tuple[int, int]:
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout.split()
    return int(out[0]), int(out[1])


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Daemon:
    """The installed daemon for one traced run: started and ready, then stopped."""

    def __init__(
        self, prefix: Path, probes: Path, work: Path, ring_mb: int = 0, valve: bool = True
    ) -> None:
        self.probes = probes
        self.sock_path = work / "notify.sock"
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(self.sock_path))
        self.notify.settimeout(0.05)
        self.env = daemon_env(prefix, work, USER, self.sock_path)
        if ring_mb:
            self.env["DATACRUMBS_RING_BUFFER_MB"] = str(ring_mb)
        self.env["DATACRUMBS_VALVE"] = "true" if valve else "false"
        self.runs = 0

    def traced(self, argv: list[str], threads: int) -> Sample:
        self.runs += 1
        proc = subprocess.Popen(
            [str(SCRIPTS / "datacrumbs"), str(self.probes), f"scale{self.runs}"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        while True:
            try:
                if "READY=1" in self.notify.recv(4096).decode():
                    break
            except TimeoutError:
                if proc.poll() is not None:
                    raise SystemExit(f"daemon exited: {proc.stderr.read()}") from None  # type: ignore[union-attr]
        rss = _rss_mib(proc.pid)
        started = time.perf_counter()
        wall_ns, calls = _run(argv)
        ended = time.perf_counter()
        before = _children_cpu()  # the workload reaped, the daemon not yet
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=600)
        exited = time.perf_counter()
        daemon_cpu = _children_cpu() - before
        found = _FINISHED.search(err)
        if proc.returncode != 0 or found is None:
            raise SystemExit(f"daemon failed ({proc.returncode}): {err[-2000:]}")
        return Sample(
            ns_per_call=wall_ns * threads / calls,
            events=int(found[1]),
            lost=int(found[2]),
            aggregated=int(found[3]),
            drain_s=exited - ended,
            end_to_end_per_s=calls / (exited - started),
            daemon_cpu_s=daemon_cpu,
            rss_ready_mib=rss,
        )


def _rss_mib(pid: int) -> float:
    """A process's resident memory (VmRSS), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class InProcess:
    """The daemon's engine and trace writer, in this process, for one traced run."""

    def __init__(self, work: Path, bpf_object: Path | None) -> None:
        from datacrumbs.ebpf.ring_sizing import ring_layout

        self.work = work
        self.bpf_object = bpf_object
        self.layout = ring_layout()
        self.runs = 0

    def traced(self, argv: list[str], threads: int) -> Sample:
        from bench_support import WRITE_PROBE

        from datacrumbs.ebpf.engine import Engine, EngineConfig
        from datacrumbs.trace.recording import Recording
        from datacrumbs.trace.writer import TraceWriter

        self.runs += 1
        config = EngineConfig(
            uid=pwd.getpwnam(USER).pw_uid,
            rings=self.layout.rings,
            ringbuf_bytes=self.layout.ring_bytes,
            bpf_object=self.bpf_object,
        )
        with Engine(config) as engine:
            engine.load()
            assert all(o.attached for o in engine.attach(WRITE_PROBE))
            recording = Recording(engine, TraceWriter(self.work / f"scale{self.runs}.pfw.gz"))
            cpu0 = _own_cpu()
            recording.start()
            started = time.perf_counter()
            wall_ns, calls = _run(argv)
            ended = time.perf_counter()
            stats = recording.stop()
            exited = time.perf_counter()
            cpu = _own_cpu() - cpu0
        return Sample(
            ns_per_call=wall_ns * threads / calls,
            events=stats.events,
            lost=stats.lost,
            aggregated=stats.aggregated_calls,
            drain_s=exited - ended,
            end_to_end_per_s=calls / (exited - started),
            daemon_cpu_s=cpu,
        )


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _spread(values: list[float], fmt: str = ",.0f", sign: bool = False) -> str:
    """The median of one run's rounds and their range: "median (min to max)"."""
    plus = "+" if sign else ""
    mid, low, high = statistics.median(values), min(values), max(values)
    return f"{mid:{plus}{fmt}} ({low:{plus}{fmt}} to {high:{plus}{fmt}})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default=f"1,2,{os.cpu_count()}")
    parser.add_argument("--calls", type=int, default=750_000, help="write()s per thread")
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--rate", type=float, default=0, help="per thread per second, 0: free")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--ring-mb", default="0", help="the rings together, MiB, comma separated: each a "
        "configuration of its own, side by side in each round (0: the daemon's default; "
        "N:novalve: with DATACRUMBS_VALVE=false)"
    )  # fmt: skip
    parser.add_argument("--engine", action="store_true", help="in this process, no daemon")
    parser.add_argument("--bpf-object", type=Path, help="with --engine: a prebuilt object")
    args = parser.parse_args()
    counts = sorted({int(t) for t in args.threads.split(",")})
    work = workdir()
    try:
        binary = work / "threads_write"
        subprocess.run(["gcc", "-O2", "-pthread", "-o", str(binary),
                        str(C_DIR / "threads_write.c")], check=True)  # fmt: skip
        rings = args.ring_mb.split(",")
        tracers: dict[str, Daemon | InProcess] = {}
        if args.engine:
            tracers["0"] = InProcess(work, args.bpf_object)
        else:
            prefix = install_prefix(work)
            categories = [{"type": 0, "name": "POSIX", "functions": ["write"]}]
            probes = signed_probe_file(prefix, categories, USER, work / "write.json.gz")
            for variant in rings:
                size, _, valve = variant.partition(":")
                where = work / f"rings-{size}-{valve or 'valve'}"
                where.mkdir()
                tracers[variant] = Daemon(prefix, probes, where, int(size), valve != "novalve")
        print(machine())
        print(f"{args.calls:,} write()s of {args.size} B per thread, rate "
              f"{args.rate or 'free'}, {args.rounds} rounds: median (range)")  # fmt: skip
        untraced: dict[int, list[float]] = {t: [] for t in counts}
        traced: dict[tuple[int, str], list[Sample]] = {(t, r): [] for t in counts for r in tracers}
        for _ in range(args.rounds):
            for t in counts:
                argv = _workload(binary, t, args.calls, args.size, args.rate)
                wall_ns, calls = _run(argv)
                untraced[t].append(wall_ns * t / calls)
                for ring_mb, tracer in tracers.items():
                    traced[(t, ring_mb)].append(tracer.traced(argv, t))
        print(
            "| threads | rings MiB | ns/call untraced | ns/call traced | added | events "
            "| of them aggregated, each round | lost, each round | drain s | end-to-end events/s "
            "| daemon CPU ns/event | RSS at ready MiB |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for (t, ring_mb), samples in traced.items():
            added = [s.ns_per_call - u for s, u in zip(samples, untraced[t], strict=True)]
            label = "default" + ring_mb[1:] if ring_mb.startswith("0") else ring_mb
            print(
                f"| {t} | {label} "
                f"| {_spread(untraced[t])} "
                f"| {_spread([s.ns_per_call for s in samples])} "
                f"| {_spread(added, sign=True)} "
                f"| {statistics.median(s.events for s in samples):,.0f} "
                f"| {', '.join(f'{s.aggregated:,}' for s in samples)} "
                f"| {', '.join(f'{s.lost:,}' for s in samples)} "
                f"| {_spread([s.drain_s for s in samples], '.2f')} "
                f"| {_spread([s.end_to_end_per_s for s in samples])} "
                f"| {_spread([s.daemon_cpu_s * 1e9 / max(1, s.events) for s in samples])} "
                f"| {_spread([s.rss_ready_mib for s in samples])} |"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
