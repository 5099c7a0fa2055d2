"""Tracing overhead beside real peers: untraced, datacrumbs, bpftrace and DFTracer, side by side.

Workloads (benchmarks/c/peers_io.c, run as a bare uid that nothing else on the machine uses,
only the loop is timed inside the program):
  write   1,000,000 16-byte write()s to a file
  pread   1,000,000 4 KiB pread()s of a cached 64 MiB file
  ior     2 GiB in 1 MiB write()s through the page cache (IOR-like)
Tracers, each recording per call the name, pid, tid, entry time, duration, fd, size/offset and
return value of openat/write/pread64/close of that uid:
  datacrumbs  the engine (syscall tracepoints, ring buffer, compressed DFTracer trace)
  bpftrace    Debian's bpftrace 0.17 with the equivalent script below, output to a file
              (installed with apt-get when missing)
  dftracer    DFTracer 2.2.0 (PyPI wheel), LD_PRELOAD of libdftracer_preload.so, gzip traces
Configurations alternate within each round (a different one first each round, after an
untimed warm-up run) so that drift hits all alike; medians and ratios
to the untraced run are printed, with the events each tracer recorded and its trace bytes per
event. Run as root:
  .venv/bin/python benchmarks/peers_overhead.py [--rounds 5] [--calls 1000000] [--only write]
"""

from __future__ import annotations

import argparse
import glob
import gzip
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench_support import USER, machine, workdir

from datacrumbs.common.probes import Probe, ProbeType
from datacrumbs.ebpf.engine import Engine, EngineConfig
from datacrumbs.trace.recording import Recording
from datacrumbs.trace.writer import TraceWriter

C_SOURCE = Path(__file__).parent / "c" / "peers_io.c"
TRACED = ["openat", "write", "pread64", "close"]
PROBES = [Probe(type=ProbeType.SYSCALLS, name="POSIX", functions=TRACED)]
CONFIGS = ["untraced", "datacrumbs", "bpftrace", "dftracer"]

# bpftrace's equivalent of what datacrumbs records (see the module docstring); $1 is the uid.
BPFTRACE_SCRIPT = r"""
tracepoint:syscalls:sys_enter_openat /uid == $1/ { @path[tid] = args->filename; @t0[tid] = nsecs; }
tracepoint:syscalls:sys_exit_openat /@t0[tid]/ {
  printf("openat %d %d %llu %llu %d %s\n", pid, tid, @t0[tid], nsecs - @t0[tid], args->ret,
         str(@path[tid]));
  delete(@t0[tid]); delete(@path[tid]); }
tracepoint:syscalls:sys_enter_write /uid == $1/ {
  @t0[tid] = nsecs; @fd[tid] = args->fd; @size[tid] = args->count; }
tracepoint:syscalls:sys_exit_write /@t0[tid]/ {
  printf("write %d %d %llu %llu %d %llu %d\n", pid, tid, @t0[tid], nsecs - @t0[tid], @fd[tid],
         @size[tid], args->ret);
  delete(@t0[tid]); delete(@fd[tid]); delete(@size[tid]); }
tracepoint:syscalls:sys_enter_pread64 /uid == $1/ {
  @t0[tid] = nsecs; @fd[tid] = args->fd; @size[tid] = args->count; @pos[tid] = args->pos; }
tracepoint:syscalls:sys_exit_pread64 /@t0[tid]/ {
  printf("pread64 %d %d %llu %llu %d %llu %lld %d\n", pid, tid, @t0[tid], nsecs - @t0[tid],
         @fd[tid], @size[tid], @pos[tid], args->ret);
  delete(@t0[tid]); delete(@fd[tid]); delete(@size[tid]); delete(@pos[tid]); }
tracepoint:syscalls:sys_enter_close /uid == $1/ { @t0[tid] = nsecs; @fd[tid] = args->fd; }
tracepoint:syscalls:sys_exit_close /@t0[tid]/ {
  printf("close %d %d %llu %llu %d %d\n", pid, tid, @t0[tid], nsecs - @t0[tid], @fd[tid],
         args->ret);
  delete(@t0[tid]); delete(@fd[tid]); }
END { clear(@t0); clear(@path); clear(@fd); clear(@size); clear(@pos); }
"""
BPFTRACE_TRACEPOINTS = 8  # entry and exit of the 4 syscalls
BPFTRACE_RING_PAGES = "4096"  # 16 MiB per CPU, like datacrumbs' ring buffer


@dataclass
class Sample:
    """One run of one workload under one configuration."""

    ns_per_call: float
    calls: int
    events: int = 0  # calls the tracer recorded (all four syscalls)
    lost: int = 0
    trace_bytes: int = 0
    base: float = 0.0  # ns/call of an untraced run paired with this one (profile_overhead.py)


@dataclass
class Results:
    samples: dict[tuple[str, str], list[Sample]] = field(default_factory=dict)

    def add(self, workload: str, config: str, sample: Sample) -> None:
        self.samples.setdefault((workload, config), []).append(sample)


def ensure_bpftrace() -> str:
    """bpftrace from Debian, installed with apt-get the first time."""
    found = shutil.which("bpftrace")
    if found:
        return found
    print("installing Debian's bpftrace (apt-get)", file=sys.stderr)
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    apt = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "bpftrace"]
    if subprocess.run(apt, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=True)
        subprocess.run(apt, env=env, check=True, capture_output=True)
    found = shutil.which("bpftrace")
    assert found, "bpftrace did not install"
    return found


def dftracer_dir() -> Path:
    import dftracer  # the PyPI wheel dftracer==2.2.0 (a test extra of the project)

    return Path(dftracer.__file__).parent


def as_user(argv: list[str]) -> list[str]:
    return [
        "setpriv",
        f"--reuid={USER.pw_uid}",
        f"--regid={USER.pw_gid}",
        "--clear-groups",
        "--",
        *argv,
    ]


def run_workload(argv: list[str], env_prefix: list[str] | None = None) -> Sample:
    out = subprocess.run(
        as_user([*(env_prefix or []), *argv]), capture_output=True, text=True, check=True
    ).stdout.split()
    return Sample(ns_per_call=float(out[0]), calls=int(out[1]))


@contextmanager
def traced_by_datacrumbs(
    trace: Path, uid: int = USER.pw_uid, interval_ns: int = 0
) -> Iterator[Callable[[Sample], None]]:
    """The engine tracing :data:`PROBES` of ``uid`` into ``trace`` (profile mode with
    ``interval_ns``); the samples recorded get its counts."""
    engine = Engine(EngineConfig(uid=uid, profile_interval_ns=interval_ns))
    engine.load()
    outcomes = engine.attach(PROBES)
    assert all(o.attached for o in outcomes), outcomes
    trace.unlink(missing_ok=True)
    recording = Recording(engine, TraceWriter(trace))
    recording.start()
    samples: list[Sample] = []
    try:
        yield samples.append
    finally:
        stats = recording.stop()
        engine.close()
    for sample in samples:
        sample.events, sample.lost = stats.events, stats.lost
        sample.trace_bytes = trace.stat().st_size


def _bpftrace_attached(pid: int) -> int:
    out = subprocess.run(["bpftool", "perf", "show"], capture_output=True, text=True).stdout
    return sum(1 for line in out.splitlines() if line.startswith(f"pid {pid} "))


@contextmanager
def traced_by_bpftrace(bpftrace: str, where: Path) -> Iterator[Callable[[Sample], None]]:
    script, out = where / "peers.bt", where / "bpftrace.out"
    script.write_text(BPFTRACE_SCRIPT)
    out.unlink(missing_ok=True)
    env = os.environ | {"BPFTRACE_PERF_RB_PAGES": BPFTRACE_RING_PAGES}
    process = subprocess.Popen(
        [bpftrace, "-o", str(out), str(script), str(USER.pw_uid)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    # its output is buffered until exit: readiness is its tracepoints showing up as attached
    while _bpftrace_attached(process.pid) < BPFTRACE_TRACEPOINTS:
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, "bpftrace did not attach in 120 s"
        time.sleep(0.1)
    samples: list[Sample] = []
    try:
        yield samples.append
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=600)
    events = lost = 0
    with open(out, "rb") as lines:
        for line in lines:
            if line.startswith((b"openat ", b"write ", b"pread64 ", b"close ")):
                events += 1
            elif line.startswith(b"Lost "):
                lost += int(line.split()[1])
    for sample in samples:
        sample.events, sample.lost, sample.trace_bytes = events, lost, out.stat().st_size


@contextmanager
def traced_by_dftracer(where: Path) -> Iterator[list[str]]:
    """The env prefix that makes the workload run under DFTracer's LD_PRELOAD."""
    package = dftracer_dir()
    logs = where / "dftracer"
    logs.mkdir(mode=0o777, exist_ok=True)
    logs.chmod(0o777)
    for old in logs.iterdir():
        old.unlink()
    yield [
        "env",
        f"LD_PRELOAD={package / 'lib64/libdftracer_preload.so'}",
        f"LD_LIBRARY_PATH={package / 'lib64'}:{package / 'lib'}",
        "DFTRACER_ENABLE=1",
        "DFTRACER_INIT=PRELOAD",
        "DFTRACER_DATA_DIR=all",
        "DFTRACER_TRACE_COMPRESSION=1",
        f"DFTRACER_LOG_FILE={logs / 'run'}",
    ]


def dftracer_trace(where: Path) -> tuple[int, int]:
    """(events, bytes) of the DFTracer traces the last run wrote: its complete events
    (``"ph":1`` in DFTracer 2.2) of category POSIX."""
    events = size = 0
    for path in glob.glob(str(where / "dftracer" / "run*.pfw.gz")):
        data = Path(path).read_bytes()
        size += len(data)
        events += gzip.decompress(data).count(b'"cat":"POSIX"')  # several gzip members
    return events, size


def one_round(
    results: Results, workloads: dict[str, list[str]], where: Path, bpftrace: str, number: int
) -> None:
    """Every configuration once per workload, starting with a different one each round (the
    first run after another workload pays for the page cache's changes)."""
    order = CONFIGS[number % len(CONFIGS) :] + CONFIGS[: number % len(CONFIGS)]
    for name, argv in workloads.items():
        run_workload(argv)  # untimed warm-up: the same cache state for the first config
        for config in order:
            results.add(name, config, run_config(config, argv, where, bpftrace))


def run_config(config: str, argv: list[str], where: Path, bpftrace: str) -> Sample:
    if config == "untraced":
        return run_workload(argv)
    if config == "datacrumbs":
        with traced_by_datacrumbs(where / "datacrumbs.pfw.gz") as record:
            sample = run_workload(argv)
            record(sample)
        return sample
    if config == "bpftrace":
        with traced_by_bpftrace(bpftrace, where) as record:
            sample = run_workload(argv)
            record(sample)
        return sample
    with traced_by_dftracer(where) as prefix:
        sample = run_workload(argv, prefix)
    sample.events, sample.trace_bytes = dftracer_trace(where)
    return sample


def report(results: Results, workloads: dict[str, list[str]], rounds: int) -> None:
    print(machine())
    print(
        f"{rounds} rounds, configurations interleaved; medians (range); ratio to untraced; "
        "added time per call over untraced"
    )
    for name in workloads:
        base = statistics.median(s.ns_per_call for s in results.samples[(name, "untraced")])
        calls = results.samples[(name, "untraced")][0].calls
        print(f"\n{name}: {calls:,} calls per run")
        print(
            f"  {'config':11s} {'ns/call':>10s} {'range':>15s} {'ratio':>6s} "
            f"{'+ns/call':>9s} {'events':>11s} {'lost':>7s} {'B/event':>8s}"
        )
        for config in CONFIGS:
            samples = results.samples[(name, config)]
            values = [s.ns_per_call for s in samples]
            med = statistics.median(values)
            events = statistics.median(s.events for s in samples)
            lost = statistics.median(s.lost for s in samples)
            per_event = (
                statistics.median(s.trace_bytes / s.events for s in samples if s.events)
                if events
                else 0
            )
            span = f"{min(values):.0f}-{max(values):.0f}"
            # DFTracer reports no loss of its own: its events against the calls say it
            lost_text = "-" if config == "dftracer" else f"{lost:,.0f}"
            print(
                f"  {config:11s} {med:10.1f} {span:>15s} {med / base:6.2f} "
                f"{med - base:9.1f} {events:11,.0f} {lost_text:>7s} {per_event:8.1f}"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--ior-bytes", type=int, default=2 << 30)
    parser.add_argument("--only", choices=["write", "pread", "ior"], action="append")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("peers_overhead: run as root")
    bpftrace = ensure_bpftrace()
    where = workdir()
    data = where / "data"
    data.mkdir()
    os.chown(data, USER.pw_uid, USER.pw_gid)
    binary = where / "peers_io"
    subprocess.run(["gcc", "-O2", "-o", str(binary), str(C_SOURCE)], check=True)
    workloads = {
        "write": [str(binary), "write", str(data / "w.bin"), str(args.calls), "16"],
        "pread": [str(binary), "pread", str(data / "p.bin"), str(args.calls), str(64 << 20)],
        "ior": [str(binary), "ior", str(data / "ior.bin"), str(args.ior_bytes), str(1 << 20)],
    }
    workloads = {k: v for k, v in workloads.items() if not args.only or k in args.only}
    if "pread" in workloads:  # written here, not by the traced workload: cached pages
        (data / "p.bin").write_bytes(os.urandom(64 << 20))
    results = Results()
    try:
        for number in range(args.rounds):
            print(
                f"round {number + 1}/{args.rounds} (load {os.getloadavg()[0]:.2f})", file=sys.stderr
            )
            one_round(results, workloads, where, bpftrace, number)
        report(results, workloads, args.rounds)
    finally:
        shutil.rmtree(where, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
