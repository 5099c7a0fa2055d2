"""A process's metadata (command line, executable, directory, environment) is that very
process's or none (issue 25, N11): the attack repeated — a traced process exits while the
consumer is behind, its pid is taken by another process (another user's, or a later one of the
job user's) that the formatter then finds under that pid."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from engine_support import as_user
from own_users import own_users

from datacrumbs.common.probes import Probe, ProbeType
from datacrumbs.ebpf.engine import Engine, EngineConfig
from datacrumbs.trace.reading import read_trace_lines
from datacrumbs.trace.recording import Recording
from datacrumbs.trace.writer import TraceWriter

MARKER = "not-the-traced-process"
WRITE = [Probe(type=ProbeType.SYSCALLS, name="POSIX", functions=["write"])]


class StalledWriter(TraceWriter):
    """The trace's writer, the poller held at its first chunk until :attr:`release` is set:
    the consumer as far behind as a busy node (or an attacker) makes it."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.release = threading.Event()

    def submit(self, chunk: bytes) -> None:
        self.release.wait()
        super().submit(chunk)


def _wait_for_cmdline(pid: int, cmdline: bytes) -> None:
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}/cmdline").read_bytes() != cmdline:
        assert time.monotonic() < deadline, f"pid {pid} never ran {cmdline!r}"
        time.sleep(0.01)


@pytest.mark.parametrize("taker", ["another user", "the job user, later", "no one"])
def test_a_reused_pid_never_lends_its_metadata(
    taker: str,
    bpf_object: Path,
    compile_c,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    traced_user, intruder_user = own_users(2)  # no other session's processes under them
    binary = compile_c("pid_reuse.c", "pid_reuse")
    engine = Engine(EngineConfig(bpf_object=bpf_object, uid=traced_user.uid))
    holder: subprocess.Popen[str] | None = None
    try:
        engine.load()
        assert all(o.attached for o in engine.attach(WRITE))
        writer = StalledWriter(tmp_path / "trace.pfw.gz")
        recording = Recording(engine, writer)
        recording.start()
        try:
            out = subprocess.run(
                as_user(traced_user, [str(binary), "once"]),
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            pid = int(out)
            if taker != "no one":
                user = intruder_user if taker == "another user" else traced_user
                if taker == "the job user, later":
                    time.sleep(0.05)  # clock ticks later: same user, same name, later start
                holder = subprocess.Popen(
                    [str(binary), "as", str(pid), str(user.uid), str(user.gid), MARKER],
                    stdout=subprocess.PIPE, text=True,
                )  # fmt: skip
                assert holder.stdout is not None
                assert int(holder.stdout.readline()) == pid  # the very pid, as the attacker's
                _wait_for_cmdline(pid, f"{binary}\0hold\0{MARKER}\0".encode())
                assert os.stat(f"/proc/{pid}").st_uid == user.uid
        finally:
            writer.release.set()
            stats = recording.stop()  # formats everything while the pid is taken
    finally:
        if holder is not None:
            os.kill(pid, signal.SIGKILL)
            holder.wait()
        engine.close()

    lines = read_trace_lines(tmp_path / "trace.pfw.gz")
    assert not [line for line in lines if MARKER in line]
    objects = [json.loads(line) for line in lines[1:-1]]
    writes = [e for e in objects if e.get("ph") == "X" and e["pid"] == pid]
    assert [(e["name"], e["args"]["fd"], e["args"]["ret"]) for e in writes] == [
        ("write", 1, len(out))
    ]
    assert stats.lost == 0
    described = [
        (e["args"]["name"], e["args"]["value"])
        for e in objects
        if e.get("ph") == "M" and e["name"] == "PR" and e["pid"] == pid
    ]
    assert described == [("comm", "pid_reuse"), ("metadata", "unknown")]
