"""Shared pieces of the benchmarks: compile the C workload, run it as another user, trace."""

from __future__ import annotations

import atexit
import os
import platform
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from datacrumbs.common.binary_identity import file_identity
from datacrumbs.common.probe_file import write_probe_file
from datacrumbs.common.probes import Probe, ProbeType
from datacrumbs.common.signing import read_signing_key, sign
from datacrumbs.ebpf.engine import Engine, EngineConfig
from datacrumbs.trace.recording import Recording, RecordingStats
from datacrumbs.trace.writer import TraceWriter

C_DIR = Path(__file__).parent / "c"


class _Uid:
    """A bare numeric uid (gid the same) for the workload: setpriv needs no account, and no
    other process on a shared machine runs under it."""

    def __init__(self, uid: int) -> None:
        self.pw_uid = self.pw_gid = uid


USER = _Uid(45990)  # the traced job user
OTHER_USER = _Uid(45991)  # the uid traced in the "filtered" configuration
WRITE_PROBE = [Probe(type=ProbeType.SYSCALLS, name="POSIX", functions=["write"])]


def workdir() -> Path:
    """A fresh 0755 directory for one benchmark run, removed when the process exits (whether or
    not the benchmark removes it itself)."""
    path = Path(tempfile.mkdtemp(prefix="dc-bench-"))
    path.chmod(0o755)
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def compile_workload(where: Path, name: str = "wloop") -> Path:
    out = where / name
    subprocess.run(["gcc", "-O2", "-o", str(out), str(C_DIR / f"{name}.c")], check=True)
    return out


def run_as_user(argv: Sequence[str], cpu: int | None = None, cgroup: Path | None = None) -> str:
    """Run ``argv`` as :data:`USER` (pinned to ``cpu``, in cgroup v2 ``cgroup``, if given); its
    stdout."""
    cmd = ["setpriv", f"--reuid={USER.pw_uid}", f"--regid={USER.pw_gid}", "--clear-groups", "--"]
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu), *cmd]
    if cgroup is not None:  # root moves the shell in, then drops to the user
        cmd = ["sh", "-c", f'echo $$ > {cgroup}/cgroup.procs && exec "$@"', "sh", *cmd]
    return subprocess.run([*cmd, *argv], capture_output=True, text=True, check=True).stdout


def split_cpus(pin: bool) -> int | None:
    """With ``pin``: this process (engine and its threads) on the last CPU, and the CPU the
    workload should use returned; without: None (everything shares every CPU)."""
    cpus = sorted(os.sched_getaffinity(0))
    if not pin or len(cpus) < 2:
        return None
    os.sched_setaffinity(0, {cpus[-1]})
    return cpus[0]


class Traced:
    """Trace ``write`` of ``uid`` into ``trace`` for the duration of a ``with``."""

    def __init__(
        self, trace: Path, uid: int, ringbuf_bytes: int = 16 << 20, cgroup: Path | None = None
    ) -> None:
        self.engine = Engine(EngineConfig(uid=uid, ringbuf_bytes=ringbuf_bytes, cgroup=cgroup))
        self.trace = trace
        self.stats: RecordingStats | None = None

    def __enter__(self) -> Traced:
        self.engine.load()
        outcomes = self.engine.attach(WRITE_PROBE)
        assert all(o.attached for o in outcomes), outcomes
        self.trace.unlink(missing_ok=True)  # rounds reuse the path; the writer never truncates
        self.recording = Recording(self.engine, TraceWriter(self.trace))
        self.recording.start()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.stats = self.recording.stop()
        finally:
            self.engine.close()


def program_stats(fd: int) -> tuple[int, int]:
    """(run_time_ns, run_cnt) of the BPF program behind ``fd``: counted while
    ``kernel.bpf_stats_enabled`` is 1."""
    info = dict(
        line.split(":", 1) for line in Path(f"/proc/self/fdinfo/{fd}").read_text().splitlines()
    )
    return int(info.get("run_time_ns", "0")), int(info.get("run_cnt", "0"))


def foreign_programs() -> int:
    """BPF programs named like ours but not ours (another engine running): they run on every
    traced syscall too and make the numbers meaningless."""
    out = subprocess.run(["bpftool", "prog", "show"], capture_output=True, text=True).stdout
    return sum(1 for line in out.splitlines() if " name dc_" in line)


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    load = os.getloadavg()[0]
    foreign = foreign_programs()
    note = f", WARNING: {foreign} other dc_* BPF programs loaded" if foreign else ""
    return (
        f"{platform.node()}: {cpu}, {os.cpu_count()} CPUs, Linux {platform.release()}, "
        f"load {load:.2f}{note}"
    )


def signed_probe_file(
    prefix: Path, categories: list[dict[str, Any]], user: str, path: Path
) -> Path:
    """A probe file as the signer would sign it for ``user`` on this host with the secret of
    the installation at ``prefix``: a day's expiry, each binary's identity pinned."""
    for category in categories:
        if "binary_path" in category:
            category["binary_identity"] = file_identity(category["binary_path"]).model_dump()
    expires = datetime.now(UTC) + timedelta(days=1)
    document: dict[str, Any] = {
        "summary": {
            "hostname": socket.gethostname(),
            "host": socket.gethostname(),  # the installation's name: its default
            "user": user,
            "install_user": "root",
            "expires_at": expires.isoformat(timespec="seconds"),
        },
        "categories": categories,
        "checksum_algorithm": "ed25519",
    }
    key = read_signing_key(_signing_key(prefix))
    checksum = sign(key, document)
    write_probe_file(path, {**document, "checksum": checksum, "signing_key": key.key_id})
    # the user's own file, as the signer hands it back: the daemon reads it as the user
    account = pwd.getpwnam(user)
    os.chown(path, account.pw_uid, account.pw_gid)
    return path


def _signing_key(prefix: Path) -> Path:
    """The private key of the installation at ``prefix`` (beside it: never under a prefix)."""
    return prefix.parent / f"{prefix.name}.signing-key" / "probe-signing-key.pem"


SCRIPTS = Path(sys.executable).parent


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("DATACRUMBS_")}


def install_prefix(work: Path) -> Path:
    """A fresh installation in ``work/prefix`` (the real installer, this tree's code)."""
    prefix = work / "prefix"
    subprocess.run(
        [str(SCRIPTS / "datacrumbs_install"), "--prefix", str(prefix),
         "--signing-key", str(_signing_key(prefix)),
         "--state-dir", str(prefix / "share/datacrumbs/data")],
        check=True,
        capture_output=True,
        env=_clean_env() | {"DATACRUMBS_LOG_DIR": str(prefix / "var/log/datacrumbs")},
    )  # fmt: skip
    return prefix


def daemon_env(prefix: Path, work: Path, user: str, notify_socket: Path) -> dict[str, str]:
    """The environment of a daemon of the installation at ``prefix`` run by hand (not by
    systemd): its run files and traces under ``work``, READY=1 sent to ``notify_socket``. The
    trace directory is the user's (the daemon writes the trace as the user)."""
    traces = work / "traces"
    traces.mkdir(exist_ok=True)
    account = pwd.getpwnam(user)
    os.chown(traces, account.pw_uid, account.pw_gid)
    return _clean_env() | {
        "DATACRUMBS_INSTALL_PREFIX": str(prefix),
        "DATACRUMBS_USER": user,
        "DATACRUMBS_SERVER_RUN_DIR": str(work / "run"),
        "DATACRUMBS_SERVER_RUN_ID_FILE": str(work / "run/runid"),
        "DATACRUMBS_TRACE_DIR_PATTERN": str(work / "traces"),
        "NOTIFY_SOCKET": str(notify_socket),
    }
