"""datacrumbs_demo end to end: it traces its workload, reports the exact counts, can run again,
and leaves nothing running — also when interrupted."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from support import command

from datacrumbs.demo.workload import WorkloadPlan
from datacrumbs.trace.summary import summarize

PLAN = WorkloadPlan()


def _demo(prefix: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [command("datacrumbs_demo"), "--prefix", str(prefix), "--no-systemd", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def _processes_under(prefix: Path) -> list[str]:
    """Command lines of running processes that name the prefix (the signer, the daemon, the
    workload all do)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(prefix) in text:
            found.append(text)
    return found


def _row(out: str, function: str) -> list[str]:
    line = next(line for line in out.splitlines() if line.startswith(f"│ {function} "))
    return [cell.strip() for cell in line.strip("│").split("│")]


def _assert_nothing_left(prefix: Path) -> None:
    run_dir = prefix / "var/run/datacrumbs"
    assert not (run_dir / "datacrumbs-demo.ready").exists()
    assert not (run_dir / "datacrumbs_sign_probes.sock").exists()
    assert _processes_under(prefix) == []


def test_demo_traces_its_workload_exactly_and_runs_again(world: Path) -> None:
    prefix = world / "demo-prefix"
    first = _demo(prefix)
    assert first.returncode == 0, first.stderr
    out = first.stdout
    writes = PLAN.files * PLAN.writes + PLAN.lines
    assert (
        f"workload check: {writes:,} write calls made, {writes:,} in the trace; 0 events lost\n"
    ) in out
    assert _row(out, "write")[:3] == ["write", "posix_data", f"{writes:,}"]
    assert _row(out, "fsync")[:3] == ["fsync", "posix_sync", f"{PLAN.files}"]
    assert _row(out, "fflush")[:3] == ["fflush", "stdio", f"{PLAN.lines}"]
    assert "events lost: 0 (file names lost: 0, process names lost: 0)\n" in out
    assert "ui.perfetto.dev" in out
    trace = next(
        Path(line.split(": ", 1)[1]) for line in out.splitlines() if line.startswith("trace: ")
    )
    assert trace.name.endswith("-posix-io-stdio.pfw.gz")
    assert summarize(trace).complete
    _assert_nothing_left(prefix)

    second = _demo(prefix, "--no-stdio")
    assert second.returncode == 0, second.stderr
    assert "0 made or updated, 29 kept as they were" in second.stdout
    assert (
        f"workload check: {writes:,} write calls made, {writes:,} in the trace; 0 events lost\n"
    ) in second.stdout
    assert "│ fflush " not in second.stdout
    _assert_nothing_left(prefix)


def test_interrupted_demo_stops_the_daemon_which_finishes_the_trace(world: Path) -> None:
    prefix = world / "demo-interrupted"
    demo = subprocess.Popen(
        [command("datacrumbs_demo"), "--prefix", str(prefix), "--no-systemd", "--no-stdio"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ready = prefix / "var/run/datacrumbs/datacrumbs-demo.ready"
    deadline = time.monotonic() + 120
    while len(lines := ready.read_text().splitlines() if ready.exists() else []) < 2:
        assert demo.poll() is None, demo.communicate()
        assert time.monotonic() < deadline, "the demo's daemon was not ready in 120 s"
        time.sleep(0.02)
    trace = Path(lines[1])
    demo.send_signal(signal.SIGTERM)
    _, err = demo.communicate(timeout=180)
    assert demo.returncode == 130
    assert err.splitlines()[-1] == "datacrumbs_demo: interrupted"
    assert summarize(trace).complete  # the daemon was stopped, not killed
    _assert_nothing_left(prefix)


def test_prefix_the_user_cannot_reach_is_refused_in_one_line(world: Path) -> None:
    closed = world / "closed"
    closed.mkdir(mode=0o700)
    result = _demo(closed / "prefix")
    assert result.returncode == 2
    assert result.stderr == (
        f"datacrumbs_demo: error: nobody cannot reach {closed}/prefix: {closed} is 0700; "
        "choose a prefix under /opt or /tmp\n"
    )
    assert not (closed / "prefix").exists()
