"""The daemon's memory against the distinct file names a job opens (issue 25, N4): the real
``datacrumbs`` process, in a memory cgroup limited to its bound, as its unit runs it.

Installs into a temporary prefix (the real installer, a signing key beside it), signs a probe
file tracing ``openat`` for the job user, starts the daemon with
``DATACRUMBS_DAEMON_MEMORY_MB=<bound>`` inside a memory cgroup whose limit is that bound (what
the unit's ``MemoryMax=`` does; cgroup v2, or v1 on a hybrid host), waits for ``READY=1``, runs
benchmarks/c/many_names.c as the job user — N opens of distinct names that do not exist
(ENOENT: one event and one new file name each), paced to ``--rate`` — then stops the daemon.
A sampler reads the daemon's /proc status and the cgroup's memory.stat every 50 ms. Printed:
the command, the bound, names opened, events and names in the trace, events lost, the names
the daemon forgot (and wrote again where they came back), RSS at ready and at its peak (VmHWM:
it counts the ring buffers' pages twice, as they are mapped twice), the most anonymous memory
(the daemon's own), the cgroup's peak (what MemoryMax= limits: rings and BPF maps included, as
kernel memory is charged to it, and the trace's page cache) and whether it hit the limit. Run
as root:

  .venv/bin/python benchmarks/daemon_memory.py [--names 5000000] [--memory-mb 1024]
      [--rate 100000] [--user nobody]

``--memory-mb 0``: no limit and the setting unset (the daemon's default), for a before/after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from datacrumbs.common.probe_file import write_probe_file
from datacrumbs.common.signing import read_signing_key, sign
from datacrumbs.trace.reading import read_trace_lines

C_DIR = Path(__file__).parent / "c"
SCRIPTS = Path(sys.executable).parent


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown CPU",
    )
    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    return (
        f"{platform.node()}: {cpu}, {os.cpu_count()} CPUs, {memory:.0f} GiB, "
        f"Linux {platform.release()}, load {os.getloadavg()[0]:.2f}"
    )


def _clean_env(**extra: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("DATACRUMBS_")} | extra


def _install(work: Path) -> tuple[Path, Path]:
    prefix, key = work / "prefix", work / "signing-key" / "key.pem"
    subprocess.run(
        [
            str(SCRIPTS / "datacrumbs_install"),
            "--prefix",
            str(prefix),
            "--signing-key",
            str(key),
            "--state-dir",
            str(work / "state"),
        ],
        check=True,
        capture_output=True,
        env=_clean_env(DATACRUMBS_LOG_DIR=str(work / "log")),
    )
    return prefix, key


def _probe_file(key_path: Path, user: str, path: Path) -> Path:
    key = read_signing_key(key_path)
    document: dict[str, Any] = {
        "summary": {
            "hostname": socket.gethostname(),
            "host": socket.gethostname(),
            "user": user,
            "install_user": "root",
            "expires_at": (datetime.now(UTC) + timedelta(days=1)).isoformat(timespec="seconds"),
        },
        "categories": [{"name": "POSIX", "type": 0, "functions": ["openat"]}],
        "checksum_algorithm": "ed25519",
    }
    document["checksum"] = sign(key, document)
    document["signing_key"] = key.key_id
    write_probe_file(path, document)
    owner = pwd.getpwnam(user)
    os.chown(path, owner.pw_uid, owner.pw_gid)
    return path


class MemoryCgroup:
    """A child of this process's memory cgroup, limited to ``limit`` bytes (0: unlimited)."""

    def __init__(self, name: str, limit: int) -> None:
        own = Path("/proc/self/cgroup").read_text().splitlines()
        v1 = [line.split(":", 2)[2] for line in own if line.split(":")[1] == "memory"]
        if v1:
            self.v2, base = False, Path("/sys/fs/cgroup/memory") / v1[0].lstrip("/")
        else:
            v2 = next(line.split(":", 2)[2] for line in own if line.startswith("0::"))
            self.v2, base = True, Path("/sys/fs/cgroup") / v2.lstrip("/")
        self.path = base / name
        self.path.mkdir()
        if limit:
            limit_file = "memory.max" if self.v2 else "memory.limit_in_bytes"
            (self.path / limit_file).write_text(str(limit))

    def peak(self) -> int:
        return int(
            (self.path / ("memory.peak" if self.v2 else "memory.max_usage_in_bytes")).read_text()
        )

    def hit_limit(self) -> int:
        """Times the limit was reached (v1: failcnt) or the OOM killer ran (v2)."""
        if self.v2:
            events = dict(
                line.split() for line in (self.path / "memory.events").read_text().splitlines()
            )
            return int(events["max"]) + int(events["oom_kill"])
        return int((self.path / "memory.failcnt").read_text())

    def stat(self) -> dict[str, int]:
        """memory.stat's anonymous, file (page cache), dirty and kernel bytes."""
        raw = dict(line.split() for line in (self.path / "memory.stat").read_text().splitlines())
        names = (
            ("anon", "file", "file_dirty", "kernel") if self.v2 else ("rss", "cache", "dirty", None)
        )
        return {
            key: int(raw[name]) if name in raw else 0
            for key, name in zip(("anon", "file", "dirty", "kernel"), names, strict=True)
        }

    def remove(self) -> None:
        self.path.rmdir()


class RssSampler:
    """VmRSS of ``pid`` every ``interval`` s until it exits: the first reading, VmHWM, and the
    most RssAnon (its own memory: VmRSS also counts the ring buffers' pages, mapped twice
    over, as libbpf maps them, so that a record may wrap around the end)."""

    def __init__(self, pid: int, cgroup: MemoryCgroup, interval: float = 0.05) -> None:
        self.status = Path(f"/proc/{pid}/status")
        self.cgroup = cgroup
        self.most: dict[str, int] = {}
        self.first = self.hwm = self.anon = 0
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        self._thread.start()

    def _run(self, interval: float) -> None:
        while True:
            try:
                fields = dict(line.split(":", 1) for line in self.status.read_text().splitlines())
            except (OSError, ValueError):
                return
            if "VmHWM" not in fields:
                return  # a zombie
            self.hwm = int(fields["VmHWM"].split()[0])
            self.anon = max(self.anon, int(fields["RssAnon"].split()[0]))
            for key, value in self.cgroup.stat().items():
                self.most[key] = max(self.most.get(key, 0), value)
            self.first = self.first or int(fields["VmRSS"].split()[0])
            time.sleep(interval)

    def join(self) -> None:
        self._thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", type=int, default=5_000_000)
    parser.add_argument("--memory-mb", type=int, default=1024)
    parser.add_argument("--rate", type=int, default=100_000, help="opens/s (0: unpaced)")
    parser.add_argument("--user", default="nobody")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dc-bench-"))
    work.chmod(0o755)  # the installation is refused where other users cannot reach it
    user = pwd.getpwnam(args.user)
    cgroup = MemoryCgroup(f"dc-bench-memory-{os.getpid()}", args.memory_mb << 20)
    try:
        prefix, key = _install(work)
        probes = _probe_file(key, args.user, work / "probes.json.gz")
        workload = work / "many_names"
        subprocess.run(["gcc", "-O2", "-o", str(workload), str(C_DIR / "many_names.c")], check=True)
        sock_path = work / "notify.sock"
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(sock_path))
        notify.settimeout(0.05)
        env = _clean_env(
            DATACRUMBS_INSTALL_PREFIX=str(prefix),
            DATACRUMBS_USER=args.user,
            DATACRUMBS_SERVER_RUN_DIR=str(work / "run"),
            DATACRUMBS_SERVER_RUN_ID_FILE=str(work / "run/runid"),
            DATACRUMBS_TRACE_DIR_PATTERN=str(work / "traces/%USER%"),
            DATACRUMBS_STATE_DIR=str(work / "state"),
            DATACRUMBS_LOG_DIR=str(work / "log"),
            NOTIFY_SOCKET=str(sock_path),
        )
        if args.memory_mb:
            env["DATACRUMBS_DAEMON_MEMORY_MB"] = str(args.memory_mb)
        daemon = [str(SCRIPTS / "datacrumbs"), str(probes), "memory"]
        enter = f'echo $$ > {cgroup.path}/cgroup.procs && exec "$@"'
        proc = subprocess.Popen(
            ["sh", "-c", enter, "sh", *daemon],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        while b"READY=1" not in _recv(notify, proc):
            pass
        sampler = RssSampler(proc.pid, cgroup)
        names_dir = work / "names"  # never made: every open fails with ENOENT
        started = time.monotonic()
        subprocess.run(
            [
                "setpriv",
                f"--reuid={user.pw_uid}",
                f"--regid={user.pw_gid}",
                "--clear-groups",
                str(workload),
                str(names_dir),
                str(args.names),
                str(args.rate),
            ],
            check=True,
            capture_output=True,
        )
        ran = time.monotonic() - started
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=1800)
        sampler.join()
        if proc.returncode != 0:
            raise SystemExit(f"daemon failed ({proc.returncode}): {err[-2000:]}")
        trace = next((work / "traces" / args.user).glob("*.pfw.gz"))
        summary, names = _read(trace, str(names_dir))
        print(machine())
        print("command: " + " ".join(sys.argv))
        bound = f"{args.memory_mb} MiB" if args.memory_mb else "no limit, the setting unset"
        print(f"bound: {bound}; {args.names} names opened in {ran:.1f} s")
        print(
            f"trace: {summary.get('events')} events, {names} FH lines of the job's names, "
            f"{summary.get('lost_events')} events lost, names forgotten "
            f"{summary.get('names_evicted', '-')} (cache of {summary.get('name_slots', '-')})"
        )
        print(
            f"daemon RSS: {sampler.first / 1024:.0f} MiB at ready, {sampler.hwm / 1024:.0f} MiB "
            f"peak (VmHWM), {sampler.anon / 1024:.0f} MiB anonymous at most; cgroup peak "
            f"{cgroup.peak() / 2**20:.0f} MiB (rings and maps included), limit reached "
            f"{cgroup.hit_limit()} times"
        )
        most = ", ".join(f"{k} {v / 2**20:.0f}" for k, v in sampler.most.items())
        print(f"cgroup memory.stat, the most of each (MiB): {most}")
    finally:
        for _ in range(50):  # its last process may still be leaving it
            try:
                cgroup.remove()
                break
            except OSError:
                time.sleep(0.1)
        shutil.rmtree(work, ignore_errors=True)


def _recv(sock: socket.socket, proc: subprocess.Popen[str]) -> bytes:
    try:
        return sock.recv(4096)
    except TimeoutError:
        if proc.poll() is not None:
            assert proc.stderr is not None
            raise SystemExit(f"daemon exited {proc.returncode}: {proc.stderr.read()}") from None
        return b""


def _read(trace: Path, names_dir: str) -> tuple[dict[str, Any], int]:
    """The trace's summary, and its FH lines that name the workload's files."""
    summary: dict[str, Any] = {}
    names = 0
    for line in read_trace_lines(trace):
        if '"FH"' in line and names_dir in line:
            names += 1
        elif '"datacrumbs_summary"' in line:
            summary = json.loads(line.rstrip(",\n"))["args"]["value"]
    return summary, names


if __name__ == "__main__":
    main()
