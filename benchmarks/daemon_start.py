"""Start-to-ready and stop-to-exit of the ``datacrumbs`` daemon (run as root).

    .venv/bin/python benchmarks/daemon_start.py [--runs 7] [--setting DATACRUMBS_X=value ...]

Installs into a temporary prefix, signs a probe file of every syscall datacrumbs knows (~35)
plus 20 libc functions as uprobes, then starts the real daemon ``--runs`` times with a
NOTIFY_SOCKET of its own: start-to-ready is the time from ``Popen`` to the ``READY=1``
datagram (interpreter start-up, settings, signature check, BPF load, every attach, ready
file); stop-to-exit is SIGTERM to exit with an idle ring buffer. Prints medians.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import time
from pathlib import Path

from bench_support import SCRIPTS, daemon_env, install_prefix, signed_probe_file, workdir

from datacrumbs.common.settings import load_settings
from datacrumbs.ebpf.syscalls import SYSCALLS

LIBC_FUNCTIONS = [
    "fopen",
    "fclose",
    "fread",
    "fwrite",
    "fseek",
    "ftell",
    "fflush",
    "fgets",
    "fputs",
    "fileno",
    "open",
    "close",
    "read",
    "write",
    "lseek",
    "pread",
    "pwrite",
    "fsync",
    "mmap",
    "munmap",
]


def _probe_file(prefix: Path, work: Path) -> tuple[Path, int]:
    libc = os.path.realpath(load_settings().libc_so)
    categories = [
        {"type": 0, "name": "POSIX", "functions": sorted(SYSCALLS)},
        {"type": 2, "name": "STDIO", "functions": LIBC_FUNCTIONS, "binary_path": libc},
    ]
    path = signed_probe_file(prefix, categories, "nobody", work / "bench-start.json.gz")
    return path, len(SYSCALLS) + len(LIBC_FUNCTIONS)


def _one_run(
    probes: Path, env: dict[str, str], notify: socket.socket, run_id: str
) -> tuple[float, float, str]:
    started = time.perf_counter()
    proc = subprocess.Popen(
        [str(SCRIPTS / "datacrumbs"), str(probes), run_id],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    while True:
        try:
            message = notify.recv(4096).decode()
        except TimeoutError:
            if proc.poll() is not None:
                raise SystemExit(f"daemon exited {proc.returncode}: {proc.stderr.read()}") from None
            continue
        if "READY=1" in message:
            break
    ready = time.perf_counter() - started
    stopping = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    stopped = time.perf_counter() - stopping
    if proc.returncode != 0:
        raise SystemExit(f"daemon failed: {err}")
    summary = next(line.split(" INFO ", 1)[1] for line in err.splitlines() if "probes: " in line)
    return ready, stopped, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument(
        "--setting", action="append", default=[], help="DATACRUMBS_X=value for the daemon"
    )
    args = parser.parse_args()
    work = workdir()  # 0755: the installation is refused where other users cannot reach it
    try:
        prefix = install_prefix(work)
        probes, functions = _probe_file(prefix, work)
        sock_path = work / "notify.sock"
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(sock_path))
        notify.settimeout(0.05)
        env = daemon_env(prefix, work, "nobody", sock_path) | dict(
            setting.split("=", 1) for setting in args.setting
        )
        _one_run(probes, env, notify, "warmup")  # BPF object cache, page cache
        ready, stop = [], []
        for i in range(args.runs):
            r, s, summary = _one_run(probes, env, notify, f"run{i}")
            ready.append(r)
            stop.append(s)
        print(
            f"probe file: {functions} functions ({len(SYSCALLS)} syscalls, "
            f"{len(LIBC_FUNCTIONS)} libc uprobes), {args.runs} runs; daemon: {summary}"
        )
        print(
            f"start-to-READY=1  median {statistics.median(ready) * 1000:7.1f} ms  "
            f"(min {min(ready) * 1000:.1f}, max {max(ready) * 1000:.1f})"
        )
        print(
            f"SIGTERM-to-exit   median {statistics.median(stop) * 1000:7.1f} ms  "
            f"(min {min(stop) * 1000:.1f}, max {max(stop) * 1000:.1f})"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
