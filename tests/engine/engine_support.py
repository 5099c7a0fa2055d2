"""Helpers of the engine tests: users, workloads run as them, finished traces."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from datacrumbs.common.probes import Probe
from datacrumbs.ebpf.engine import Engine, EngineConfig, TargetOutcome
from datacrumbs.trace.reading import read_trace_lines
from datacrumbs.trace.recording import Recording, RecordingStats
from datacrumbs.trace.writer import TraceWriter


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int


def user_dir(public_dir: Path, user: User, name: str) -> Path:
    """A fresh directory owned by ``user`` inside the public dir."""
    path = public_dir / name
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(mode=0o755)
    os.chown(path, user.uid, user.gid)
    return path


def as_user(user: User, argv: Sequence[str]) -> list[str]:
    """``argv`` run as ``user`` (setpriv execs: the workload keeps setpriv's pid)."""
    return [
        "setpriv",
        f"--reuid={user.uid}",
        f"--regid={user.gid}",
        "--clear-groups",
        "--",
        *argv,
    ]


@dataclass
class Trace:
    """A finished trace, parsed."""

    path: Path
    stats: RecordingStats
    outcomes: list[TargetOutcome]
    lines: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lines = read_trace_lines(self.path)
        self.objects = [json.loads(line) for line in self.lines[1:-1]]

    @property
    def events(self) -> list[dict]:
        return [e for e in self.objects if e.get("ph") == "X"]

    def metadata(self, name: str) -> list[dict]:
        return [e for e in self.objects if e.get("ph") == "M" and e["name"] == name]

    def file_names(self) -> dict[str, str]:
        """fhash → file name, from the FH metadata events."""
        return {e["args"]["value"]: e["args"]["name"] for e in self.metadata("FH")}

    def events_of(self, pid: int, name: str | None = None) -> list[dict]:
        return [e for e in self.events if e["pid"] == pid and (name is None or e["name"] == name)]


class Session:
    """Trace while the body of a ``with`` runs; the parsed trace is ``.trace`` afterwards."""

    def __init__(
        self,
        config: EngineConfig,
        probes: Sequence[Probe],
        path: Path,
        trace_max_bytes: int = 0,
        aggregate_ph: str = "3",
    ) -> None:
        self.engine = Engine(config)
        self.aggregate_ph = aggregate_ph
        self.trace_max_bytes = trace_max_bytes
        self.probes = probes
        self.path = path
        self.outcomes: list[TargetOutcome] = []
        self.trace: Trace | None = None
        self.summary: dict[str, int | float | str] | None = None  # for Recording.stop()

    def __enter__(self) -> Session:
        self.engine.load()
        self.outcomes = self.engine.attach(self.probes)
        self.recording = Recording(
            self.engine,
            TraceWriter(self.path),
            trace_max_bytes=self.trace_max_bytes,
            aggregate_ph=self.aggregate_ph,
        )
        self.recording.start()
        return self

    def popen(self, user: User, argv: Sequence[str], **kwargs: object) -> subprocess.Popen:
        """``argv`` run as ``user``, started once its process has its uprobes.

        Scoped to the job (the default), a process that enters the job gets its uprobe links
        a few milliseconds after the kernel tells of it, and its calls before are not traced;
        a job's launcher, followed already, execs its programs with no such gap (the links
        follow the process through exec). So does this: a shell as the user waits on its
        stdin until the engine follows it, then execs ``argv``."""
        if self.engine.following is None:
            return subprocess.Popen(as_user(user, argv), **kwargs)  # type: ignore[call-overload]
        gate = ["sh", "-c", 'read _ && exec "$@"', "sh", *argv]
        proc = subprocess.Popen(as_user(user, gate), stdin=subprocess.PIPE, **kwargs)  # type: ignore[call-overload]
        deadline = time.monotonic() + 10
        while not self.engine.follows(proc.pid):
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise AssertionError(f"process {proc.pid} was not given its uprobes in 10 s")
            time.sleep(0.002)
        assert proc.stdin is not None
        os.write(proc.stdin.fileno(), b"\n")
        proc.stdin.close()
        proc.stdin = None
        return proc

    def run(
        self, user: User, argv: Sequence[str], check: bool = True, **kwargs: object
    ) -> subprocess.CompletedProcess:
        """:meth:`popen`, waited for, its output captured as text."""
        proc = self.popen(user, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = proc.communicate(timeout=kwargs.pop("timeout", 300))  # type: ignore[arg-type]
        if check and proc.returncode:
            raise subprocess.CalledProcessError(proc.returncode, argv, out, err)
        return subprocess.CompletedProcess(argv, proc.returncode, out, err)

    def __exit__(self, *exc: object) -> None:
        try:
            stats = self.recording.stop(self.summary)
        finally:
            self.engine.close()
        if exc[0] is None:
            self.trace = Trace(self.path, stats, self.outcomes)
