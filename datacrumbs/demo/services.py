"""The long-running programs the demo starts — the signer and the tracing daemon — and how it
stops them.

Why each child gets its own process group: a Ctrl-C in the terminal then reaches only the demo,
which stops its children in order (the daemon first, so that it finishes the trace; then the
signer) instead of every process racing to exit at once.

The daemon runs under systemd when one is running (a transient ``datacrumbs-demo.service``
from ``systemd-run``: ``Type=notify``, so the start returns once the daemon sent READY=1, and
``systemctl stop`` sends SIGTERM and waits), else as a supervised subprocess.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Protocol

import systemd.daemon

from datacrumbs.common.errors import DatacrumbsError
from datacrumbs.common.run_files import ReadyFile, wait_ready

__all__ = [
    "Daemon",
    "Signer",
    "SubprocessDaemon",
    "SystemdDaemon",
    "start_daemon",
    "systemd_is_running",
]

STOP_TIMEOUT = 120.0  # detaching probes and draining the ring buffer can take seconds


def systemd_is_running() -> bool:
    """True when PID 1 is systemd (libsystemd's ``sd_booted()``)."""
    return bool(systemd.daemon.booted())


def _stop_process(process: subprocess.Popen[bytes], timeout: float) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


def _tail(path: Path, lines: int = 3) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except FileNotFoundError:
        return ""


class Signer:
    """``datacrumbs_sign_probes`` in the background, logging to ``log``."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._offset = log.stat().st_size if log.exists() else 0
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                argv, env=env, stdout=out, stderr=out, stdin=subprocess.DEVNULL, process_group=0
            )

    def wait_listening(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while b"listening on" not in self._new_log():
            if self.process.poll() is not None:
                raise DatacrumbsError(
                    f"the signer exited ({self.process.returncode}): "
                    f"{self._new_log().decode(errors='replace').strip()}"
                )
            if time.monotonic() > deadline:
                raise DatacrumbsError(
                    f"the signer did not listen within {timeout:.0f} s; see {self.log}"
                )
            time.sleep(0.05)

    def _new_log(self) -> bytes:
        with open(self.log, "rb") as log:
            log.seek(self._offset)
            return log.read()

    def stop(self) -> int:
        return _stop_process(self.process, STOP_TIMEOUT)


class Daemon(Protocol):
    """A started tracing daemon."""

    log: Path

    def wait_ready(self, timeout: float) -> Path:
        """Wait for the ready file; the trace's path."""
        ...

    def stop(self) -> int:
        """SIGTERM and wait; its exit status (0: the trace is finished)."""
        ...


class SubprocessDaemon:
    """``datacrumbs`` as a child process of the demo (no systemd on this machine)."""

    def __init__(self, argv: list[str], env: dict[str, str], ready: Path, log: Path) -> None:
        self.ready, self.log = ready, log
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                argv, env=env, stdout=out, stderr=out, stdin=subprocess.DEVNULL, process_group=0
            )

    def wait_ready(self, timeout: float) -> Path:
        try:
            return wait_ready(self.process, self.ready, timeout)
        except DatacrumbsError as exc:
            raise DatacrumbsError(f"{exc}: {_tail(self.log)} (log {self.log})") from None

    def stop(self) -> int:
        return _stop_process(self.process, STOP_TIMEOUT)


class SystemdDaemon:
    """``datacrumbs`` as the transient unit ``datacrumbs-demo.service`` of a running systemd."""

    unit = "datacrumbs-demo.service"

    def __init__(self, argv: list[str], env: dict[str, str], ready: Path, log: Path) -> None:
        self.ready, self.log = ready, log
        subprocess.run(["systemctl", "reset-failed", self.unit], capture_output=True)
        settings = [f"--setenv={k}={v}" for k, v in env.items() if k.startswith("DATACRUMBS_")]
        self._start = subprocess.Popen(
            [
                "systemd-run",
                f"--unit={self.unit}",
                "--collect",
                "--quiet",
                "--property=Type=notify",
                "--property=NotifyAccess=main",
                f"--property=TimeoutStopSec={STOP_TIMEOUT:.0f}",
                f"--property=StandardOutput=append:{log}",
                f"--property=StandardError=append:{log}",
                *settings,
                "--",
                *argv,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            process_group=0,
        )

    def wait_ready(self, timeout: float) -> Path:
        try:
            _, err = self._start.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise DatacrumbsError(
                f"{self.unit} was not ready within {timeout:.0f} s; see journalctl -u {self.unit}"
            ) from None
        if self._start.returncode != 0:
            raise DatacrumbsError(
                f"{self.unit} failed to start: {err.decode().strip()} {_tail(self.log)}"
            )
        found = ReadyFile.read(self.ready)
        if found is None:
            raise DatacrumbsError(f"{self.unit} is active but wrote no ready file {self.ready}")
        return found.trace

    def stop(self) -> int:
        if self._start.poll() is None:
            self._start.kill()
        result = subprocess.run(["systemctl", "stop", self.unit], capture_output=True)
        return result.returncode


def start_daemon(
    argv: list[str], env: dict[str, str], ready: Path, log: Path, use_systemd: bool
) -> SubprocessDaemon | SystemdDaemon:
    """Start the daemon under systemd or as a subprocess (see the module's docstring)."""
    os.makedirs(log.parent, exist_ok=True)
    if use_systemd:
        return SystemdDaemon(argv, env, ready, log)
    return SubprocessDaemon(argv, env, ready, log)
