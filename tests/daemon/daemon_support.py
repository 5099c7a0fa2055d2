"""Helpers for the daemon's tests (a module of its own: conftest names collide across folders)."""

from __future__ import annotations

import json
import pwd
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from support import command

from datacrumbs.common.errors import DatacrumbsError
from datacrumbs.common.run_files import wait_ready
from datacrumbs.trace.reading import read_trace_lines

#: The job user of the daemon tests.
JOB_USER = "nobody"


def as_job_user(argv: Sequence[str]) -> list[str]:
    """``argv`` to run as the job user (setpriv: its uid and gid, no other groups)."""
    pw = pwd.getpwnam(JOB_USER)
    return ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups", *argv]


def run_as_job_user(*argv: str) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` as the job user; it must succeed; its output is captured."""
    return subprocess.run(as_job_user(argv), check=True, capture_output=True, text=True)


def compile_c(source: Path, out: Path) -> Path:
    """``source`` compiled (gcc -O1) to ``out``, in a directory the job user can reach."""
    subprocess.run(["gcc", "-O1", "-Wall", "-o", str(out), str(source)], check=True)
    return out


def run_daemon(
    probe_file: Path | str, *args: str, env: dict[str, str], timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run ``datacrumbs`` to completion (for runs that are refused at start-up)."""
    return subprocess.run(
        [command("datacrumbs"), str(probe_file), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class NotifySocket:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET; a thread collects what
    arrives, as systemd would (an unread queue of 10 datagrams would drop updates)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        self._sock.settimeout(0.05)
        self._received: list[dict[str, str]] = []
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        while not self._closing.is_set():
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                continue
            lines = data.decode().splitlines()
            self._received.append(dict(line.split("=", 1) for line in lines if line))

    def messages(self, until: str, timeout: float = 30) -> list[dict[str, str]]:
        """Every datagram received so far, each as a dict of its KEY=value lines, once one
        holding ``until`` (``READY``, ``STOPPING``) is among them. A datagram sent is not yet
        collected: the ready file is written just before READY=1, and a loaded machine runs
        the collector late. Fails after ``timeout`` seconds without it."""
        deadline = time.monotonic() + timeout
        while not any(until in m for m in self._received):
            assert time.monotonic() < deadline, f"no {until}= in {self._received}"
            time.sleep(0.01)
        return list(self._received)

    def close(self) -> None:
        self._closing.set()
        self._thread.join()
        self._sock.close()


class Daemon:
    """A ``datacrumbs`` process started in the background and stopped by a signal."""

    def __init__(self, probe_file: Path, *args: str, env: dict[str, str]) -> None:
        self.run_dir = Path(env["DATACRUMBS_SERVER_RUN_DIR"])
        self.proc = subprocess.Popen(
            [command("datacrumbs"), str(probe_file), *args],
            # a hang is diagnosed by SIGABRT: every thread's Python stack to stderr
            env=env | {"PYTHONFAULTHANDLER": "1"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stderr = ""
        self._lines: list[str] = []  # stderr so far, read as it comes (wait_for_log)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._lines.append(line)

    def wait_for_log(self, text: str, timeout: float = 30) -> str:
        """The first line of the daemon's log that holds ``text``, waited for."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self._lines):
                if text in line:
                    return line
            if self.proc.poll() is not None:
                break
            time.sleep(0.01)
        raise AssertionError(f"no {text!r} in the daemon's log: {''.join(self._lines)}")

    def wait_ready(self, run_id: str, timeout: float = 60) -> Path:
        ready = self.run_dir / f"datacrumbs-{run_id}.ready"
        try:
            wait_ready(self.proc, ready, timeout)
        except DatacrumbsError as exc:
            self.stop(signal.SIGKILL)
            raise AssertionError(f"{exc}: {self.stderr}") from None
        return ready

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGABRT)  # faulthandler dumps every thread's stack
            self.proc.wait(timeout=30)
            self._reader.join(timeout=30)
            log = "".join(self._lines)[-8000:]
            raise AssertionError(f"the daemon did not stop within {timeout} s:\n{log}") from None
        self._reader.join(timeout=timeout)
        self.stderr = "".join(self._lines)
        return self.proc.returncode


def trace_file(env: dict[str, str], run_id: str, config: str = "probes") -> Path:
    """Where the daemon run with ``env`` writes the trace of ``run_id`` (this year, this host)."""
    year = datetime.now().strftime("%Y")
    base = env["DATACRUMBS_TRACE_DIR_PATTERN"].replace("%USER%", JOB_USER).replace("%YY%", year)
    host = socket.gethostname()
    return Path(base) / f"trace-{JOB_USER}-{run_id}-{host}-{config}.pfw.gz"


def trace_events(path: Path) -> list[dict[str, Any]]:
    """The objects of a finished trace (it must open with ``[`` and close with ``]``)."""
    lines = read_trace_lines(path)
    assert lines[0] == "[" and lines[-1] == "]"
    return [json.loads(line) for line in lines[1:-1]]
