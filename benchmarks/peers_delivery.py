"""The daemon's memory while it delivers events: peak RSS of the real ``datacrumbs`` process.

For each rate, a fresh daemon (a temporary installation, a probe file tracing ``write`` signed
with its secret, as the signer would) traces benchmarks/c/wloop.c — N one-byte write()s to
/dev/null, paced to the rate or unpaced — run as the job user. A sampler reads the daemon's
VmRSS and VmHWM from /proc every 20 ms until it exits (the stop's drain included). Printed per
rate, medians of the rounds: events/s delivered, events lost, RSS when ready, peak RSS, trace
bytes per event. The job user must have an account (the daemon resolves it): default
``nobody``; other processes of that user on the machine add a few events. Run as root:
  .venv/bin/python benchmarks/peers_delivery.py [--rounds 3] [--calls 2000000] [--user nobody]
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench_support import compile_workload, install_prefix, machine, signed_probe_file, workdir

from datacrumbs.common.run_files import wait_ready
from datacrumbs.trace.summary import summarize

VENV_BIN = Path(sys.executable).parent
RATES = [100_000, 300_000, 0]  # calls per second; 0: as fast as the workload goes


@dataclass
class Run:
    rate: int
    events: int
    lost: int
    seconds: float
    ready_rss: int  # KiB
    peak_rss: int  # KiB
    trace_bytes: int


class RssSampler:
    """VmRSS/VmHWM of ``pid`` every ``interval`` s, until it exits."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.path = Path(f"/proc/{pid}/status")
        self.peak = 0
        self.first = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self.path.read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                kib = int(line.split()[1])
                self.peak = max(self.peak, kib)
                if line.startswith("VmRSS:") and not self.first:
                    self.first = kib

    def _run(self, interval: float) -> None:
        while not self._stop.is_set():
            try:
                self._read()
            except (FileNotFoundError, ProcessLookupError, ValueError):
                return
            time.sleep(interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def probe_file(prefix: Path, user: str, where: Path) -> Path:
    categories = [{"type": 0, "name": "POSIX", "functions": ["write"]}]
    return signed_probe_file(prefix, categories, user, where / "bench.json.gz")


def one_run(
    rate: int,
    calls: int,
    probes: Path,
    env: dict[str, str],
    wloop: Path,
    user: pwd.struct_passwd,
    run_dir: Path,
) -> Run:
    run_id = f"bench{rate}"
    ready = run_dir / f"datacrumbs-{run_id}.ready"
    daemon = subprocess.Popen(
        [str(VENV_BIN / "datacrumbs"), str(probes), run_id],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    trace = wait_ready(daemon, ready, 60)
    sampler = RssSampler(daemon.pid)
    time.sleep(0.1)
    ready_rss = sampler.first
    workload = subprocess.Popen(
        [
            "setpriv",
            f"--reuid={user.pw_uid}",
            f"--regid={user.pw_gid}",
            "--clear-groups",
            str(wloop),
            str(calls),
            str(rate),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    out, _ = workload.communicate()
    seconds = float(out) * calls / 1e9
    daemon.send_signal(signal.SIGTERM)
    _, err = daemon.communicate(timeout=600)
    sampler.stop()
    assert daemon.returncode == 0, err
    summary = summarize(trace, [workload.pid])
    size = trace.stat().st_size
    trace.unlink()
    return Run(
        rate, summary.events, summary.lost["lost_events"], seconds, ready_rss, sampler.peak, size
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=2_000_000)
    parser.add_argument("--user", default="nobody")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("peers_delivery: run as root")
    user = pwd.getpwnam(args.user)
    where = workdir()
    run_dir = where / "run"
    traces = where / "traces"  # the user's: the daemon writes the trace as the user
    traces.mkdir()
    os.chown(traces, user.pw_uid, user.pw_gid)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATACRUMBS_")} | {
        "DATACRUMBS_INSTALL_PREFIX": str(where / "prefix"),
        "DATACRUMBS_SERVER_RUN_DIR": str(run_dir),
        "DATACRUMBS_SERVER_RUN_ID_FILE": str(run_dir / "runid"),  # not /run's
        "DATACRUMBS_TRACE_DIR_PATTERN": str(where / "traces"),
        "DATACRUMBS_USER": args.user,
    }
    try:
        prefix = install_prefix(where)
        probes = probe_file(prefix, args.user, where)
        wloop = compile_workload(where)
        runs: dict[int, list[Run]] = {rate: [] for rate in RATES}
        for number in range(args.rounds):
            print(
                f"round {number + 1}/{args.rounds} (load {os.getloadavg()[0]:.2f})", file=sys.stderr
            )
            for rate in RATES:
                runs[rate].append(one_run(rate, args.calls, probes, env, wloop, user, run_dir))
        print(machine())
        print(
            f"{args.calls:,} write()s per run, {args.rounds} rounds: median (range); the real "
            "daemon (its default rings, ISA-L level 1)"
        )
        print(
            f"  {'asked/s':>9s} {'events/s (range)':>28s} {'events':>10s} "
            f"{'lost, each round':>18s} {'RSS ready':>10s} {'peak RSS (range)':>26s} "
            f"{'B/event':>8s}"
        )
        for rate, samples in runs.items():
            rates = [s.events / s.seconds for s in samples]
            peaks = [s.peak_rss / 1024 for s in samples]
            events = statistics.median(s.events for s in samples)
            lost = ", ".join(f"{s.lost:,}" for s in samples)
            ready = statistics.median(s.ready_rss for s in samples) / 1024
            per_event = statistics.median(s.trace_bytes / max(s.events, 1) for s in samples)
            spread = f"{statistics.median(rates):,.0f} ({min(rates):,.0f} to {max(rates):,.0f})"
            peak = f"{statistics.median(peaks):.1f} ({min(peaks):.1f} to {max(peaks):.1f}) MiB"
            print(
                f"  {rate or 'unpaced':>9} {spread:>28s} {events:10,.0f} {lost:>18s} "
                f"{ready:6.1f} MiB {peak:>26s} {per_event:8.1f}"
            )
    finally:
        shutil.rmtree(where, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
